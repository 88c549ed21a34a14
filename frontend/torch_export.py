"""PyTorch frontend: capture a model with torch.export (torch.fx.symbolic_trace as the fallback)
and build the IR by mapping every ATen node through the converter table in `torch_ops`."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch.export.graph_signature import InputKind, OutputKind
from torch.utils import _pytree as pytree

from ..ir.graph import Graph
from .common import CaptureReport, ModelImportError
from .torch_build import AUTOCAST, SCALAR_TYPES, SET_GRAD, SKIPPED_TARGETS, Builder, _ident
from .torch_ops import CONVERTERS

DEFAULT_MAX_DIM = 4096  # upper bound given to a dynamic dim that torch reports as unbounded


@dataclass
class Capture:
    """An ATen-level fx graph plus what the builder needs to turn it into IR."""

    gm: torch.fx.GraphModule
    source: str
    path: str
    user_inputs: list[tuple[torch.fx.Node, str]] = field(default_factory=list)
    params: dict[torch.fx.Node, str] = field(default_factory=dict)  # placeholder -> weight key
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    constants: dict[torch.fx.Node, Any] = field(default_factory=dict)  # non-tensor user inputs
    outputs: list[Any] = field(default_factory=list)
    ranges: dict[Any, tuple[int, int | None]] = field(default_factory=dict)  # torch sym -> bounds
    notes: list[str] = field(default_factory=list)


def import_torch(
    model: Any,
    example_inputs: Any = None,
    dynamic_shapes: Any = None,
    *,
    max_dim: int = DEFAULT_MAX_DIM,
) -> tuple[Graph, CaptureReport]:
    """Import a PyTorch model into the lmc IR; returns (graph with weights, capture report).

    `model` is a `torch.nn.Module` (exported with `torch.export.export`; when export rejects it,
    traced with `torch.fx.symbolic_trace` and static shapes, with a warning), a
    `torch.export.ExportedProgram`, or the path of a `.pt2` file saved by `torch.export.save`.
    `example_inputs` is a tensor, a tuple of positional arguments, or a dict of keyword
    arguments (needed for modules only).

    `dynamic_shapes` takes either form:

    - torch's own spec, passed to `torch.export.export` unchanged, e.g.
      `{"x": {0: torch.export.Dim("batch", max=64)}}`; IR symbols take the `Dim` names;
    - the lmc form `{"input_name": {axis: ("s0", lo, hi)}}` (also `("s0",)` or `"s0"`, with
      `lo`/`hi` optional): axes sharing a name share one symbol. It is turned into `Dim`s for
      export; for an ExportedProgram or `.pt2` it only names symbols and sets bounds.

    Symbol bounds are those torch reports (`ep.range_constraints`); an unbounded upper bound
    becomes `max_dim` (default 4096). When torch cannot prove a shape guard over the declared
    ranges, the module is exported again with the guard as an assertion, which lmc checks at
    the bounds and sample values (an error names a failing value: narrow the bounds).

    Parameters, buffers and lifted constants become `param` nodes keyed by their state-dict
    names. Ops without a converter are reported together in one `UnsupportedOpsError`; a model
    neither export nor fx can capture raises `ModelImportError`.
    """
    notes: list[str] = []
    naming = DimNaming()
    if isinstance(model, (str, Path)):
        path = Path(model)
        try:
            ep = torch.export.load(str(path))
        except Exception as e:  # torch raises many types for a bad archive
            raise ModelImportError(
                f"cannot load {path.name} as a torch.export archive: {_first_lines(e)}"
            ) from e
        naming = DimNaming.from_spec(dynamic_shapes, None)
        cap = _from_exported(ep, f"{path.name}", "torch.export.load")
    elif isinstance(model, torch.export.ExportedProgram):
        naming = DimNaming.from_spec(dynamic_shapes, None)
        cap = _from_exported(model, "ExportedProgram", "torch.export (ExportedProgram given)")
    elif isinstance(model, torch.nn.Module):
        args, kwargs = _example_args(model, example_inputs)
        naming = DimNaming.from_spec(dynamic_shapes, _arg_names(model, args, kwargs))
        cap = _capture_module(model, args, kwargs, naming, notes)
    else:
        raise ModelImportError(
            f"import_torch: expected a torch.nn.Module, ExportedProgram or "
            f".pt2 path, got {type(model).__name__}"
        )
    cap.notes = notes + cap.notes
    g = Builder(cap, CONVERTERS, naming, max_dim).build()
    return g, CaptureReport.of(g, cap.source, cap.path, cap.notes)


# -- capture ---------------------------------------------------------------------------------


def _capture_module(
    model: torch.nn.Module, args: tuple, kwargs: dict, naming: DimNaming, notes: list[str]
) -> Capture:
    modes = {m: m.training for m in model.modules()}
    if any(modes.values()):
        notes.append("module was in training mode; captured in eval mode")
    model.eval()
    try:
        spec = naming.torch_spec(model, args, kwargs)
        path = "torch.export"
        try:
            ep = torch.export.export(model, args, kwargs, dynamic_shapes=spec)
        except Exception as e:  # export raises many exception types; all mean "rejected"
            if "Constraints violated" not in str(e):
                return _capture_fx(model, args, kwargs, e)
            # torch could not prove some shape guards over the declared ranges: retry with the
            # guards as runtime assertions, which the builder checks over the symbol ranges
            try:
                ep = torch.export.export(
                    model,
                    args,
                    kwargs,
                    dynamic_shapes=spec,
                    prefer_deferred_runtime_asserts_over_guards=True,
                )
            except Exception:
                return _capture_fx(model, args, kwargs, e)
            path = "torch.export (unproven shape guards deferred to assertions)"
            notes.append(
                f"torch.export could not prove some shape guards "
                f"({str(e).splitlines()[0]}); exported with the guards as "
                "assertions, checked by lmc at sample values of the symbols"
            )
        return _from_exported(ep, type(model).__name__, path)
    finally:
        for m, training in modes.items():  # model.train() would flip every submodule
            m.training = training


def _from_exported(ep: torch.export.ExportedProgram, source: str, path: str) -> Capture:
    try:
        if needs_decomposition(ep.graph_module):
            ep = ep.run_decompositions(decomposition_table())
    except Exception as e:
        raise ModelImportError(
            f"{source}: torch could not decompose the exported program to "
            f"core ATen: {_first_lines(e)}"
        ) from e
    gm = ep.graph_module
    cap = Capture(gm, source, path)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for spec, node in zip(ep.graph_signature.input_specs, placeholders):
        if spec.kind == InputKind.USER_INPUT:
            if isinstance(node.meta.get("val"), torch.Tensor):
                cap.user_inputs.append((node, node.name))
            else:
                cap.constants[node] = getattr(spec.arg, "value", node.meta.get("val"))
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            key = spec.target
            tensor = ep.state_dict.get(key)
            if tensor is None:
                tensor = ep.constants.get(key)
            if not isinstance(tensor, torch.Tensor):
                raise ModelImportError(f"{source}: no tensor stored for {spec.kind.name} {key!r}")
            cap.params[node] = key
            cap.weights[key] = tensor
        else:
            raise ModelImportError(
                f"{source}: input {node.name} of kind {spec.kind.name} "
                "(custom objects, effect tokens) is not supported"
            )
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    for spec, arg in zip(ep.graph_signature.output_specs, out_node.args[0]):
        if spec.kind == OutputKind.USER_OUTPUT:
            cap.outputs.append(arg)
        else:
            cap.notes.append(
                f"dropped {spec.kind.name.lower()} output {spec.target!r} "
                "(state updates are not kept)"
            )
    for s, vr in ep.range_constraints.items():
        lo, hi = vr.lower, vr.upper  # int_oo / oo when unbounded
        cap.ranges[s] = (int(lo) if lo.is_Integer else 1, int(hi) if hi.is_Integer else None)
    return cap


def _capture_fx(model: torch.nn.Module, args: tuple, kwargs: dict, why: Exception) -> Capture:
    """The fallback: fx.symbolic_trace, then make_fx on fake tensors for ATen ops (static)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    name = type(model).__name__
    export_err = _first_lines(why)
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception as e:
        hint = ""
        if "control flow" in str(e) or "data-dependent" in export_err:
            hint = (
                "\n  (data-dependent Python control flow cannot be captured; rewrite it "
                "with torch.where / torch.cond, or export the branch you need)"
            )
        raise ModelImportError(
            f"{name}: cannot capture the model.\n  torch.export failed: {export_err}\n"
            f"  torch.fx.symbolic_trace failed too: {_first_lines(e)}{hint}"
        ) from None
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    keys = list(state)
    flat_inputs, in_spec = pytree.tree_flatten((args, kwargs))

    def functional(*flat: torch.Tensor) -> Any:
        a, kw = pytree.tree_unflatten(list(flat[len(keys) :]), in_spec)
        return torch.func.functional_call(traced, dict(zip(keys, flat[: len(keys)])), a, kw)

    try:
        gm = make_fx(
            functional,
            tracing_mode="fake",
            decomposition_table=decomposition_table(materialize=True),
        )(*state.values(), *flat_inputs)
    except Exception as e:
        raise ModelImportError(
            f"{name}: cannot capture the model.\n  torch.export failed: {export_err}\n"
            f"  the torch.fx fallback could not trace ATen ops: {_first_lines(e)}"
        ) from None
    path = f"torch.fx.symbolic_trace (torch.export failed: {export_err.splitlines()[0]})"
    msg = (
        f"lmc: torch.export rejected {name} ({export_err.splitlines()[0]}); captured with "
        "torch.fx.symbolic_trace instead, with shapes fixed to the example inputs"
    )
    warnings.warn(msg, stacklevel=3)
    cap = Capture(gm, name, path, notes=[msg])
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, key in zip(placeholders, keys):
        cap.params[node] = key
        cap.weights[key] = state[key]
    arg_names = _flat_input_names(model, args, kwargs, len(flat_inputs))
    for node, in_name, value in zip(placeholders[len(keys) :], arg_names, flat_inputs):
        if isinstance(value, torch.Tensor):
            cap.user_inputs.append((node, in_name))
        else:
            cap.constants[node] = value
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    cap.outputs = pytree.tree_leaves(out_node.args[0])
    return cap


# in-place ops that only change autograd metadata: no functionalization needed
METADATA_ONLY = frozenset({torch.ops.aten.detach_.default})


def needs_decomposition(gm: torch.fx.GraphModule) -> bool:
    """Whether torch must decompose the graph first: it mutates tensors (the exported graph
    may keep in-place ops; decomposition functionalizes them) or has ops without converters.
    Skipping it when not needed saves a full re-trace."""
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            body = getattr(gm, str(node.target))
            if isinstance(body, torch.fx.GraphModule) and needs_decomposition(body):
                return True
            continue
        if node.op != "call_function":
            continue
        if node.target is AUTOCAST and node.args[2]:
            return True  # an enabled autocast region: torch applies its casts
        if not isinstance(node.target, torch._ops.OpOverload):
            if isinstance(node.target, torch._ops.HigherOrderOperator) and node.target not in (
                SET_GRAD,
                AUTOCAST,
            ):
                return True
            continue
        if node.target in SKIPPED_TARGETS or isinstance(node.meta.get("val"), SCALAR_TYPES):
            continue
        mutates = node.target._schema.is_mutable and node.target not in METADATA_ONLY
        if mutates or node.target not in CONVERTERS:
            return True
    return False


def decomposition_table(materialize: bool = False) -> Any:
    """torch.export's default decompositions minus every op the converter table takes whole
    (sdpa, layer_norm, linear, gelu, group_norm, ...), so those arrive undecomposed."""
    table = torch.export.default_decompositions()
    for op in CONVERTERS:
        if isinstance(op, torch._ops.OpOverload) and op in table:
            table.pop(op)
    return table.materialize() if materialize else table


class DimNaming:
    """The user's names and bounds for dynamic dims: input name -> axis -> (name, lo, hi)."""

    def __init__(self) -> None:
        self.by_input: dict[str, dict[int, tuple[str | None, int | None, int | None]]] = {}
        self.spec: Any = None  # torch's form, passed to export as is
        self.lmc_form = False

    @classmethod
    def from_spec(cls, spec: Any, arg_names: list[str] | None) -> DimNaming:
        self = cls()
        self.spec = spec
        if spec is None:
            return self
        if isinstance(spec, (list, tuple)):
            if arg_names is None or len(arg_names) < len(spec):
                raise ModelImportError(
                    "positional dynamic_shapes need the module's argument "
                    "names; use a dict keyed by input name"
                )
            spec = dict(zip(arg_names, spec))
        if not isinstance(spec, Mapping):
            raise ModelImportError(
                f"dynamic_shapes must be a dict or tuple, got {type(spec).__name__}"
            )
        for name, axes in spec.items():
            if axes is None:
                continue
            if isinstance(axes, (list, tuple)):
                axes = dict(enumerate(axes))
            if not isinstance(axes, Mapping):
                raise ModelImportError(
                    f"dynamic_shapes[{name!r}] must map axes to dims, got {axes!r}"
                )
            entry = self.by_input.setdefault(str(name), {})
            for axis, d in axes.items():
                parsed = self._parse_dim(name, axis, d)
                if parsed is not None:
                    entry[int(axis)] = parsed
        return self

    def _parse_dim(self, name: str, axis: Any, d: Any) -> tuple | None:
        if d is None:
            return None
        if isinstance(d, str):
            self.lmc_form = True
            return (d, None, None)
        if isinstance(d, tuple):
            self.lmc_form = True
            if not 1 <= len(d) <= 3 or not isinstance(d[0], str):
                raise ModelImportError(
                    f'dynamic_shapes[{name!r}][{axis}]: expected ("name", lo, hi), got {d!r}'
                )
            lo = d[1] if len(d) > 1 else None
            hi = d[2] if len(d) > 2 else None
            return (d[0], lo, hi)
        from torch.export.dynamic_shapes import Dim, _DerivedDim

        if isinstance(d, Dim) and not isinstance(d, _DerivedDim):
            return (d.__name__, None, None)
        return None  # Dim.AUTO / DYNAMIC / STATIC, derived dims: torch names the symbol

    def torch_spec(self, model: torch.nn.Module, args: tuple, kwargs: dict) -> Any:
        """The spec for torch.export: the user's torch spec, or Dims built from the lmc form."""
        if not self.lmc_form:
            return self.spec
        from torch.export import Dim

        dims: dict[str, Any] = {}
        out: dict[str, Any] = {}
        for arg in _arg_names(model, args, kwargs):
            axes = self.by_input.get(arg)
            if not axes:
                out[arg] = None
                continue
            out[arg] = {}
            for axis, (name, lo, hi) in axes.items():
                if name not in dims:
                    kw = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
                    dims[name] = Dim(name, **kw)
                out[arg][axis] = dims[name]
        unknown = set(self.by_input) - set(out)
        if unknown:
            raise ModelImportError(
                f"dynamic_shapes names unknown input(s) {sorted(unknown)}; inputs: {list(out)}"
            )
        return out


# -- arguments and names ---------------------------------------------------------------------


def _example_args(model: torch.nn.Module, example_inputs: Any) -> tuple[tuple, dict]:
    if example_inputs is None:
        raise ModelImportError(
            f"{type(model).__name__}: example_inputs are needed to export a torch.nn.Module"
        )
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (list, tuple)):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


def _arg_names(model: torch.nn.Module, args: tuple, kwargs: dict) -> list[str]:
    """Names of the forward arguments bound by (args, kwargs), in signature order."""
    try:
        bound = inspect.signature(model.forward).bind(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ModelImportError(
            f"{type(model).__name__}.forward does not accept the example inputs: {e}"
        ) from None
    return list(bound.arguments)


def _flat_input_names(model: torch.nn.Module, args: tuple, kwargs: dict, n: int) -> list[str]:
    names = _arg_names(model, args, kwargs)
    if len(names) == n:
        return [_ident(x) for x in names]
    return [f"input{i}" for i in range(n)]


def _first_lines(e: BaseException, n: int = 6) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n    ".join(lines[:n]) + ("\n    ..." if len(lines) > n else "")


__all__ = ["DEFAULT_MAX_DIM", "Capture", "decomposition_table", "import_torch"]
