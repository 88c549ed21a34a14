"""ONNX frontend: an onnx ModelProto (or a path to one) -> lmc IR graph and capture report.

Each node is converted by the function that `onnx_ops.CONVERTERS` keys by (op_type,
since_version), the version resolved with `onnx.defs.get_schema(op, model opset)`. Import-time
knowledge travels with every tensor (`OT`): its type, and its contents when known (initializers,
constants, shapes, and whatever folds from them, symbolic dims included as numpy object arrays),
so Shape -> Gather -> Concat -> Reshape chains on dynamic dims become symbolic attributes.
Every problem is collected and reported at once (`UnsupportedOpsError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.errors import LmcError
from ..ir.graph import Graph, Value
from ..ir.op import Op
from ..ir.ops.source import MAX_INLINE_CONSTANT
from ..ir.shapes import Dim, norm, sym
from ..ir.types import TensorType
from ..ir.verifier import verify
from .common import CaptureReport, ModelImportError, Unsupported
from .onnx_ops_ctx import (
    NARROW,
    ONNX_DTYPES,
    OT,
    NeedsConstant,
    NeedsConstantInputsError,
    NodeCtx,
    NodeUnsupported,
    dtype_of_onnx,
    symbol_name,
    tensor_to_numpy,
)

DEFAULT_BOUNDS = (1, 4096)  # bounds of a dynamic dim unless `dynamic_shapes` says otherwise
FOLD_LIMIT = 1 << 16  # elements: a source op (no operands) with more is emitted, not folded

__all__ = [
    "NARROW",
    "ONNX_DTYPES",
    "OT",
    "NeedsConstant",
    "NeedsConstantInputsError",
    "NodeCtx",
    "NodeUnsupported",
    "import_onnx",
    "load_onnx",
    "symbol_name",
    "tensor_to_numpy",
]


@dataclass
class _Importer:
    model: Any
    dynamic_shapes: Mapping[str, Mapping[int, Any]] | None = None
    g: Graph = field(init=False)
    env: dict[str, OT] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    problems: Unsupported = field(default_factory=lambda: Unsupported("onnx"))
    needs: set[str] = field(default_factory=set)
    raw_symbols: dict[str, str] = field(default_factory=dict)
    n_const: int = 0
    opsets: dict[str, int] = field(default_factory=dict)

    def run(self) -> Graph:
        graph = self.model.graph
        name = symbol_name(graph.name) if graph.name else "main"
        self.g = Graph(name)
        for o in self.model.opset_import:
            self.opsets["" if o.domain == "ai.onnx" else o.domain] = o.version
        inits = self._initializers(graph)
        self._inputs(graph, inits)
        for i, node in enumerate(graph.node):
            self._node(node, i)
        outs = self._outputs(graph)
        if self.problems:
            problems = self.problems.problems
            if self.needs:  # fixing those inputs may make the rest convertible too
                raise NeedsConstantInputsError(problems, self.needs)
            self.problems.raise_if_any()
        self.g.set_outputs(outs)
        verify(self.g)
        return self.g

    # -- sources ----------------------------------------------------------------------------
    def _initializers(self, graph: Any) -> set[str]:
        names = set()
        for t in graph.initializer:
            try:
                arr, dt = tensor_to_numpy(t, f"initializer {t.name!r}")
            except NodeUnsupported as e:
                self.problems.add("initializer", t.name, str(e))
                self.failed.add(t.name)
                continue
            self.env[t.name] = OT(dt, tuple(arr.shape), const=arr, key=t.name)
            names.add(t.name)
        for t in graph.sparse_initializer:
            self.problems.add("sparse initializer", t.values.name, "not supported")
            self.failed.add(t.values.name)
        return names

    def _inputs(self, graph: Any, inits: set[str]) -> None:
        index = 0
        for vi in graph.input:
            if vi.name in inits or vi.name in self.failed:
                continue
            try:
                t = self._input_type(vi)
            except NodeUnsupported as e:
                self.problems.add("graph input", vi.name, str(e))
                self.failed.add(vi.name)
                continue
            v = self.g.input(vi.name, t)
            index += 1
            narrow = vi.type.tensor_type.elem_type if t.dtype != DType.bool else 0
            self.env[vi.name] = OT(
                t.dtype,
                t.shape,
                value=v,
                deps=frozenset({vi.name}),
                narrow=narrow if narrow in NARROW else 0,
            )

    def _input_type(self, vi: Any) -> TensorType:
        if not vi.type.HasField("tensor_type"):
            raise NodeUnsupported(f"is a {vi.type.WhichOneof('value')}, not a tensor")
        tt = vi.type.tensor_type
        dt = (
            NARROW[tt.elem_type][0]
            if tt.elem_type in NARROW
            else dtype_of_onnx(tt.elem_type, "input")
        )
        if not tt.HasField("shape"):
            raise NodeUnsupported("has no shape (unknown rank)")
        overrides = (self.dynamic_shapes or {}).get(vi.name, {})
        dims: list[Dim] = []
        for axis, d in enumerate(tt.shape.dim):
            spec = overrides.get(axis, overrides.get(axis - len(tt.shape.dim)))
            if spec is not None:
                dims.append(self._symbol(vi.name, axis, spec))
            elif d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(self._symbol(vi.name, axis, d.dim_param))
            else:
                dims.append(self._symbol(vi.name, axis, None))
        return TensorType(dt, dims)

    def _symbol(self, input_name: str, axis: int, spec: Any) -> Dim:
        """The symbol for a dynamic dim: spec is a dim_param, ("name", lo, hi), (lo, hi), an
        int (a static size) or None (an unnamed dim: a fresh symbol)."""
        lo, hi = DEFAULT_BOUNDS
        if isinstance(spec, int):
            return spec
        if isinstance(spec, tuple) and len(spec) == 3:
            raw, lo, hi = spec
        elif isinstance(spec, tuple) and len(spec) == 2:
            raw, (lo, hi) = f"{input_name}_{axis}", spec
        elif isinstance(spec, str):
            raw = spec
        elif spec is None:
            raw = f"{input_name}_{axis}"
        else:
            raise ModelImportError(
                f"dynamic_shapes[{input_name!r}][{axis}] = {spec!r}: expected "
                "a name, (name, lo, hi), (lo, hi) or an int"
            )
        if raw not in self.raw_symbols:
            name = symbol_name(raw)
            while name in self.raw_symbols.values():
                name += "_"
            self.raw_symbols[raw] = name
        name = self.raw_symbols[raw]
        if not 1 <= int(lo) <= int(hi):
            raise ModelImportError(f"symbol {name}: bad bounds {lo}..{hi}")
        if spec is not None and not isinstance(spec, str) or name not in self.g.symbols:
            self.g.symbols[name] = (int(lo), int(hi))
        return sym(name)

    # -- nodes ------------------------------------------------------------------------------
    def _node(self, node: Any, index: int) -> None:
        import onnx

        from .onnx_ops import CONVERTERS

        name = node.name or f"{node.op_type}_{index}"
        domain = "" if node.domain == "ai.onnx" else node.domain
        opset = self.opsets.get(domain)
        label = node.op_type if not domain else f"{domain}.{node.op_type}"
        outs = [o for o in node.output if o]
        if opset is None:
            return self._fail(outs, label, name, f"domain {domain!r} is not imported")
        try:
            since = onnx.defs.get_schema(node.op_type, opset, domain).since_version
        except onnx.defs.SchemaError:
            return self._fail(outs, label, name, f"unknown op in opset {opset}")
        fn = CONVERTERS.get((node.op_type, since)) if not domain else None
        if fn is None:
            return self._fail(outs, label, name, f"opset {opset}, version {since}: no converter")
        if any(n and (n in self.failed or n not in self.env) for n in node.input):
            missing = [n for n in node.input if n and n not in self.env and n not in self.failed]
            if missing:
                self.problems.add(label, name, f"reads undefined tensor(s) {missing}")
            self.failed.update(outs)
            return None
        ctx = NodeCtx(self, node, name, since, [self.env[n] if n else None for n in node.input])
        try:
            res = fn(ctx)
        except NodeUnsupported as e:
            return self._fail(outs, label, name, f"version {since}: {e}")
        except NeedsConstant as e:
            which = node.input[e.index]
            if e.ot.deps:
                self.needs |= e.ot.deps
            deps = f" (it depends on graph input(s) {sorted(e.ot.deps)})" if e.ot.deps else ""
            return self._fail(
                outs, label, name, f"operand {e.index} ({which!r}) must be known at import{deps}"
            )
        except (LmcError, ValueError, TypeError, IndexError, ZeroDivisionError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            return self._fail(outs, label, name, f"version {since}: cannot convert: {msg}")
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        for i, out_name in enumerate(node.output):
            if not out_name:
                continue
            if i >= len(res) or res[i] is None:
                self.problems.add(label, name, f"version {since}: output {i} not produced")
                self.failed.add(out_name)
            else:
                self.env[out_name] = res[i]
        return None

    def run_subgraph(self, graph: Any, inputs: list[OT]) -> list[OT]:
        """Convert a Loop/If body inline with its inputs bound to `inputs`; returns its
        outputs. Outer-scope tensors stay visible; the body's own names are dropped after."""
        before = set(self.env)
        problems_before = sum(len(v) for v in self.problems.problems.values())
        try:
            for t in graph.initializer:
                arr, dt = tensor_to_numpy(t, f"initializer {t.name!r}")
                self.env[t.name] = OT(dt, tuple(arr.shape), const=arr)
            for vi, ot in zip(graph.input, inputs):
                self.env[vi.name] = ot
            for i, node in enumerate(graph.node):
                self._node(node, i)
            missing = [o.name for o in graph.output if o.name not in self.env]
            if missing or sum(len(v) for v in self.problems.problems.values()) > problems_before:
                raise NodeUnsupported(f"its body could not be converted ({missing or 'see above'})")
            return [self.env[o.name] for o in graph.output]
        finally:
            for name in set(self.env) - before:
                del self.env[name]

    def _fail(self, outs: list[str], label: str, name: str, reason: str) -> None:
        self.problems.add(label, name, reason)
        self.failed.update(outs)

    def emit(self, op: Op, xs: list[OT | None]) -> Any:
        """op(*xs): folded with op.ref when every operand is known, else an IR node."""
        while xs and xs[-1] is None:
            xs.pop()
        if any(x is None for x in xs):
            raise NodeUnsupported(f"{op.name}: a missing operand before a present one")
        ots: list[OT] = xs  # type: ignore[assignment]
        types = op.infer(*(x.type for x in ots))
        types = types if isinstance(types, tuple) else (types,)
        deps = frozenset().union(*(x.deps for x in ots)) if ots else frozenset()
        if self._foldable(op, ots, types):
            with np.errstate(all="ignore"):
                res = op.ref(*(x.const for x in ots))
            res = res if isinstance(res, tuple) else (res,)
            outs = [OT(t.dtype, t.shape, const=np.asarray(r)) for t, r in zip(types, res)]
        else:
            node = self.g.add_node(op, [self.value_of(x) for x in ots], list(types))
            outs = [OT(t.dtype, t.shape, value=v, deps=deps) for t, v in zip(types, node.outputs)]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _foldable(self, op: Op, ots: list[OT], types: tuple[TensorType, ...]) -> bool:
        if not op.pure or op.symbols() or any(x.const is None or x.symbolic for x in ots):
            return False
        if not all(isinstance(d, int) for t in types for d in t.shape):
            return False
        return bool(ots) or sum(int(np.prod(t.shape)) for t in types) <= FOLD_LIMIT

    def value_of(self, ot: OT) -> Value:
        """The IR value of a tensor, materializing known contents as a constant or param."""
        if ot.value is not None:
            return ot.value
        arr = ot.const
        assert arr is not None, "a tensor with neither a value nor contents"
        t = ot.type
        if ot.key is not None or (arr.dtype != object and arr.size > MAX_INLINE_CONSTANT):
            key = ot.key or self._const_key()
            ot.value = self.g.param(key, arr, t)
        else:
            if arr.size > MAX_INLINE_CONSTANT:
                raise NodeUnsupported(f"a symbolic constant of {arr.size} elements is too big")
            vals = [norm(v) if arr.dtype == object else v for v in arr.reshape(-1).tolist()]
            if arr.dtype == object and not ot.dtype.is_int:
                # Symbolic dims as floats: an i64 constant, cast at run time.
                from ..ir.op import OPS

                ints = self.g.constant(vals, TensorType(DType.i64, ot.shape))
                ot.value = self.g.add_node(OPS["cast"](dtype=ot.dtype), [ints]).out
                return ot.value
            ot.value = self.g.constant(vals, t)
        return ot.value

    def _const_key(self) -> str:
        self.n_const += 1
        return f"onnx_const.{self.n_const}"

    # -- outputs ----------------------------------------------------------------------------
    def _outputs(self, graph: Any) -> list[Value]:
        outs = []
        for vi in graph.output:
            if vi.name in self.failed:
                continue
            if vi.name not in self.env:
                self.problems.add("graph output", vi.name, "is not produced by any node")
                continue
            ot = self.env[vi.name]
            tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
            elem = tt.elem_type if tt is not None else 0
            ok = ot.narrow == elem if elem in NARROW else ONNX_DTYPES.get(elem) == ot.dtype
            if elem and not ok:
                self.problems.add(
                    "graph output",
                    vi.name,
                    f"converted to {ot.dtype}, the model declares elem_type {elem}",
                )
                continue
            try:
                outs.append(self.value_of(ot))
            except NodeUnsupported as e:
                self.problems.add("graph output", vi.name, str(e))
        return outs


def load_onnx(model_or_path: Any) -> Any:
    """A ModelProto from a ModelProto, a path or bytes; ModelImportError when unreadable."""
    import onnx

    if isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
        where = "ModelProto"
    else:
        path = Path(model_or_path) if not isinstance(model_or_path, bytes) else None
        where = str(path) if path else "bytes"
        if path is not None and not path.is_file():
            raise ModelImportError(f"ONNX model file {where!r} does not exist")
        try:
            model = (
                onnx.load_model_from_string(model_or_path) if path is None else onnx.load(str(path))
            )
        except Exception as e:  # protobuf DecodeError, external data errors, OSError
            raise ModelImportError(
                f"{where}: not a readable ONNX model (corrupt or truncated "
                f"file?): {type(e).__name__}: {e}"
            ) from None
    problems = []
    if not model.HasField("graph"):
        problems.append("it has no graph")
    elif not model.graph.output:
        problems.append("its graph has no outputs")
    if not model.opset_import:
        problems.append("it imports no opset")
    if problems:
        raise ModelImportError(
            f"{where}: not a valid ONNX model ({'; '.join(problems)}); "
            "the file may be corrupt or truncated"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError: a damaged or ill-formed model
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not any(t in first for t in _TOLERATED_CHECKS):
            raise ModelImportError(
                f"{where}: the ONNX checker rejects the model: {first}"
            ) from None
    return model


# Checker complaints that do not stop an import: value infos without a shape (lmc infers
# every shape itself; onnx's own run_node helpers write such outputs).
_TOLERATED_CHECKS = ("Field 'shape' of 'type' is required",)


def import_onnx(
    model_or_path: Any,
    dynamic_shapes: Mapping[str, Mapping[int, Any]] | None = None,
) -> tuple[Graph, CaptureReport]:
    """Import an ONNX model (ModelProto, path or bytes) into an IR graph with its weights.

    dynamic_shapes: `{"input": {axis: ("name", lo, hi)}}` (or a dim_param-like name, or
    (lo, hi)) renames, bounds or makes dynamic the dims of graph inputs; dim_params become
    symbols with bounds 1..4096 otherwise, and unnamed dynamic dims get fresh symbols.
    Raises ModelImportError for unreadable models and UnsupportedOpsError listing every node
    that cannot be converted.
    """
    model = load_onnx(model_or_path)
    imp = _Importer(model, dynamic_shapes)
    g = imp.run()
    opset = imp.opsets.get("", 0)
    source = str(model_or_path) if isinstance(model_or_path, (str, Path)) else "onnx.ModelProto"
    notes = [f"producer: {model.producer_name} {model.producer_version}".strip()]
    return g, CaptureReport.of(g, source, f"onnx (opset {opset})", notes)
