"""Builds the IR from a captured ATen fx graph: symbols, params, the converter calls, and the
helpers converters use (dims from torch SymInts, constants, casts, type promotion)."""

from __future__ import annotations

import functools
import keyword
import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy
import torch
import torch.fx

from ..ir.dtypes import DType
from ..ir.errors import LmcError
from ..ir.graph import Graph, Value
from ..ir.op import Op
from ..ir.ops.elementwise import Cast
from ..ir.shapes import DIM_FUNCS, Dim, evaluate, norm, sym
from ..ir.types import TensorType
from .common import ModelImportError, Unsupported

if TYPE_CHECKING:
    from .torch_export import Capture, DimNaming

TORCH_DTYPES: dict[torch.dtype, DType] = {
    torch.float64: DType.f64,
    torch.float32: DType.f32,
    torch.float16: DType.f16,
    torch.bfloat16: DType.bf16,
    torch.int64: DType.i64,
    torch.int32: DType.i32,
    torch.int16: DType.i16,
    torch.int8: DType.i8,
    torch.uint8: DType.u8,
    torch.bool: DType.bool,
}
TO_TORCH_DTYPE = {v: k for k, v in TORCH_DTYPES.items()}

# Nodes that only assert facts about shapes or metadata: nothing to build.
SKIPPED_TARGETS = frozenset(
    {
        torch.ops.aten._assert_scalar.default,
        torch.ops.aten._assert_tensor_metadata.default,
        torch.ops.aten.sym_constrain_range.default,
        torch.ops.aten.sym_constrain_range_for_size.default,
        torch.ops.aten._assert_async.msg,
        torch._check,
        torch._check_is_size,
    }
)
# Higher-order ops whose bodies are inlined (no effect on inference; autocast only disabled)
SET_GRAD = torch.ops.higher_order.wrap_with_set_grad_enabled
AUTOCAST = torch.ops.higher_order.wrap_with_autocast
SCALAR_TYPES = (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)

Converter = Callable[..., Any]


class NotConvertible(LmcError):
    """A converter cannot express this node (e.g. an unsupported argument); collected."""


class _Poison:
    """The result of a node that could not be converted (its users are skipped)."""


POISON = _Poison()


class Missing(_Poison):
    """A result a converter does not produce (e.g. max_pool indices): an error only when a
    node or a graph output reads it."""

    def __init__(self, op: str, node: str, reason: str) -> None:
        self.op, self.node, self.reason = op, node, reason


class Builder:
    """Turns one Capture into a Graph. Converters receive the builder as `cx` and use its
    helpers; the IR types they produce are checked against torch's own metadata."""

    def __init__(
        self, cap: Capture, converters: Mapping[Any, Converter], naming: DimNaming, max_dim: int
    ) -> None:
        self.cap = cap
        self.converters = converters
        self.subs: dict[sympy.Symbol, sympy.Expr] = {}
        self.g = Graph(_ident(cap.source), self._symbols(naming, max_dim))
        self.env: dict[torch.fx.Node, Any] = {}
        self.node: torch.fx.Node | None = None
        self.unsupported = Unsupported("PyTorch")

    # -- symbols -----------------------------------------------------------------------------
    def _symbols(self, naming: DimNaming, max_dim: int) -> dict[str, tuple[int, int]]:
        bounds: dict[str, tuple[int | None, int | None]] = {}
        for node, name in self.cap.user_inputs:
            for axis, d in enumerate(node.meta["val"].shape):
                e = d.node.expr if isinstance(d, torch.SymInt) else None
                user = naming.by_input.get(name, {}).get(axis)
                if isinstance(e, sympy.Symbol) and e not in self.subs and user and user[0]:
                    self.subs[e] = sym(user[0])
                    bounds[user[0]] = (user[1], user[2])
        # fresh names avoid torch's own symbol names, so a dim holds torch or lmc symbols only
        taken = {s.name for s in self.subs.values()} | {str(s) for s in self.cap.ranges}
        for node, _ in self.cap.user_inputs:
            for d in node.meta["val"].shape:
                if isinstance(d, torch.SymInt):
                    taken |= {str(s) for s in d.node.expr.free_symbols}
        count = 0
        for node, _ in self.cap.user_inputs:
            for d in node.meta["val"].shape:
                if not isinstance(d, torch.SymInt):
                    continue
                for s in sorted(d.node.expr.free_symbols, key=str):
                    if s in self.subs:
                        continue
                    while f"s{count}" in taken:
                        count += 1
                    taken.add(f"s{count}")
                    self.subs[s] = sym(f"s{count}")
                    bounds[f"s{count}"] = (None, None)
        symbols: dict[str, tuple[int, int]] = {}
        for tsym, ours in self.subs.items():
            t_lo, t_hi = self.cap.ranges.get(tsym, (1, None))
            u_lo, u_hi = bounds[ours.name]
            lo = max(1, u_lo if u_lo is not None else t_lo)
            hi = u_hi if u_hi is not None else (t_hi if t_hi is not None else max_dim)
            symbols[ours.name] = (lo, max(lo, hi))
        return symbols

    # -- the walk ----------------------------------------------------------------------------
    def build(self) -> Graph:
        cap = self.cap
        for node, key in cap.params.items():
            self.env[node] = self.g.param(key, _to_numpy(cap.weights[key]))
        for node, name in cap.user_inputs:
            self.env[node] = self.g.input(name, self.ttype(node.meta["val"]))
        for node, value in cap.constants.items():
            self.env[node] = value
        self._walk(cap.gm)
        outs = [self.env.get(o, o) if isinstance(o, torch.fx.Node) else o for o in cap.outputs]
        self._report_missing(outs)
        self.unsupported.raise_if_any()
        values = []
        for i, v in enumerate(outs):
            if not isinstance(v, Value):
                raise ModelImportError(
                    f"{cap.source}: output {i} is {type(v).__name__}, not a "
                    "tensor (only tensor outputs are supported)"
                )
            values.append(v)
        self.g.set_outputs(values)
        return self.g

    def _walk(self, gm: torch.fx.GraphModule) -> None:
        for node in gm.graph.nodes:
            if node.op in ("placeholder", "output"):
                continue
            if node.op == "get_attr":
                self._get_attr(gm, node)
            elif node.op == "call_function":
                self.env[node] = self._call(node)
            else:
                self.unsupported.add(f"{node.op} {node.target}", node.name)
                self.env[node] = POISON

    def _get_attr(self, gm: torch.fx.GraphModule, node: torch.fx.Node) -> None:
        obj = getattr(gm, str(node.target))
        if isinstance(obj, torch.Tensor):
            key = str(node.target)
            self.env[node] = self.g.param(key, _to_numpy(obj))
        elif isinstance(obj, torch.fx.GraphModule):
            self.env[node] = obj  # the body of a higher-order op, inlined where it is called
        else:
            self.unsupported.add(f"get_attr of {type(obj).__name__}", node.name)
            self.env[node] = POISON

    def _inline(self, node: torch.fx.Node, body: Any, operands: tuple) -> Any:
        """A higher-order op that only changes grad or (disabled) autocast state: its body's
        nodes are converted in place, its placeholders bound to the operands."""
        if not isinstance(body, torch.fx.GraphModule):
            self.unsupported.add(_op_name(node.target), node.name, "no subgraph")
            return POISON
        placeholders = [n for n in body.graph.nodes if n.op == "placeholder"]
        for ph, v in zip(placeholders, operands):
            self.env[ph] = v
        self._walk(body)
        out = next(n for n in body.graph.nodes if n.op == "output").args[0]
        return self.resolve(tuple(out) if isinstance(out, (list, tuple)) else (out,))

    def _call(self, node: torch.fx.Node) -> Any:
        target = node.target
        val = node.meta.get("val")
        if target is torch.ops.aten._assert_scalar.default:
            self._check_assertion(node)
            return None
        if target in SKIPPED_TARGETS:
            return None
        args, kwargs = self.resolve(node.args), self.resolve(node.kwargs)
        if _poisoned((args, kwargs)):
            self._report_missing((args, kwargs))
            return POISON
        if target is operator.getitem:
            return _getitem(self, node, args[0], args[1])
        if target is SET_GRAD:
            return self._inline(node, args[1], args[2:])
        if target is AUTOCAST and not args[2]:
            return self._inline(node, args[4], args[5:])
        if isinstance(val, SCALAR_TYPES) and target not in self.converters:
            try:
                return self.scalar_value(val)
            except NotConvertible as e:
                self.unsupported.add(_op_name(target), node.name, str(e))
                return POISON
        fn = self.converters.get(target)
        if fn is None:
            self.unsupported.add(_op_name(target), node.name)
            return POISON
        self.node = node
        try:
            result = self._invoke(fn, target, args, kwargs)
            self._check(node, result)
        except NotConvertible as e:
            self.unsupported.add(_op_name(target), node.name, str(e))
            return POISON
        except LmcError as e:
            msg = str(e).splitlines()[0]
            self.unsupported.add(_op_name(target), node.name, f"conversion failed: {msg}")
            return POISON
        except Exception as e:  # a converter bug or unexpected arguments: report, not crash
            msg = f"converter error: {type(e).__name__}: {e}".splitlines()[0]
            self.unsupported.add(_op_name(target), node.name, msg)
            return POISON
        return result

    def _report_missing(self, a: Any) -> None:
        if isinstance(a, Missing):
            self.unsupported.add(a.op, a.node, a.reason)
        elif isinstance(a, (list, tuple)):
            for x in a:
                self._report_missing(x)
        elif isinstance(a, dict):
            self._report_missing(list(a.values()))

    def _invoke(self, fn: Converter, target: Any, args: tuple, kwargs: dict) -> Any:
        """Call a converter with the ATen schema's arguments as keywords (`self` is passed as
        `x`), defaults filled in; converters take `**_` for those they ignore."""
        schema = getattr(target, "_schema", None)
        if schema is None:
            return fn(self, *args, **kwargs)
        kw: dict[str, Any] = {}
        for i, a in enumerate(schema.arguments):
            name = "x" if a.name == "self" else a.name + ("_" if keyword.iskeyword(a.name) else "")
            if not a.kwarg_only and i < len(args):
                kw[name] = args[i]
            elif a.name in kwargs:
                kw[name] = kwargs[a.name]
            elif a.has_default_value():
                kw[name] = a.default_value
        return fn(self, **kw)

    def resolve(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return self.env.get(a, POISON)
        if isinstance(a, (list, tuple)):
            return type(a)(self.resolve(x) for x in a)
        if isinstance(a, dict):
            return {k: self.resolve(v) for k, v in a.items()}
        return a

    def _check(self, node: torch.fx.Node, result: Any) -> None:
        """Converter results must agree with torch's metadata: dtype, rank, and every dim at
        sample values of the symbols (numeric: proving dims equal with sympy is slow)."""
        val = node.meta.get("val")
        pairs = []
        if isinstance(val, torch.Tensor):
            if not isinstance(result, Value):
                raise ModelImportError(
                    f"converter of {_op_name(node.target)} returned "
                    f"{type(result).__name__} for tensor node {node.name}"
                )
            pairs.append((result, val))
        elif isinstance(val, (list, tuple)) and isinstance(result, tuple):
            pairs += [
                (r, v)
                for r, v in zip(result, val)
                if isinstance(v, torch.Tensor) and isinstance(r, Value)
            ]
        for r, v in pairs:
            want, got = self.ttype(v), r.type
            ok = got.dtype == want.dtype and got.rank == want.rank
            for env in self._sample_envs:
                ok = ok and all(
                    evaluate(a, env) == evaluate(b, env) for a, b in zip(got.shape, want.shape)
                )
            if not ok:
                raise ModelImportError(
                    f"converter of {_op_name(node.target)} produced {got} for "
                    f"node {node.name}, torch says {want}"
                )

    def _check_assertion(self, node: torch.fx.Node) -> None:
        """A shape guard torch deferred to run time: it must hold at sample symbol values."""
        cond = node.args[0].meta.get("val") if isinstance(node.args[0], torch.fx.Node) else None
        if not isinstance(cond, torch.SymBool):
            return
        expr = cond.node.expr
        names = {s: ours.name for s, ours in self.subs.items()}
        if not expr.free_symbols <= set(names):
            return  # mentions data-dependent values: nothing to check here
        for env in self._sample_envs + self._bound_envs:
            value = expr.subs({s: env[names[s]] for s in expr.free_symbols})
            if value is sympy.false or value is False:
                shown = expr.xreplace({s: self.subs[s] for s in expr.free_symbols})
                raise ModelImportError(
                    f"{self.cap.source}: the exported graph is only valid when {shown} "
                    f"(a shape guard torch deferred), which fails at "
                    f"{', '.join(f'{k}={v}' for k, v in env.items())}; narrow the bounds"
                )

    @functools.cached_property
    def _bound_envs(self) -> list[dict[str, int]]:
        syms = self.g.symbols.items()
        return [{s: b for s, (_, b) in syms}, {s: (a + b) // 2 for s, (a, b) in syms}]

    @functools.cached_property
    def _sample_envs(self) -> list[dict[str, int]]:
        lo = {s: a for s, (a, _) in self.g.symbols.items()}
        mid = {s: min(b, a + 5 + i) for i, (s, (a, b)) in enumerate(self.g.symbols.items())}
        return [lo, mid] if mid != lo else [lo]

    # -- helpers for converters --------------------------------------------------------------
    def dim(self, x: Any) -> Dim:
        """A dim from a Python int, a torch SymInt or a (torch) sympy expression."""
        if isinstance(x, bool):
            raise NotConvertible(f"expected a size, got {x!r}")
        if isinstance(x, (int, np.integer)):
            return int(x)
        if isinstance(x, torch.SymInt):
            x = x.node.expr
        if isinstance(x, sympy.Basic):
            if x.free_symbols <= set(self.subs.values()):
                return norm(x)
            return norm(self._expr(x))
        raise NotConvertible(f"expected a size, got {x!r}")

    def dims(self, xs: Any) -> tuple[Dim, ...]:
        return tuple(self.dim(x) for x in xs)

    def _expr(self, e: sympy.Basic) -> sympy.Expr:
        if e.is_Integer:
            return sympy.Integer(int(e))
        if e.is_Rational:
            return sympy.Rational(e.p, e.q)
        if e.is_Symbol:
            if e not in self.subs:
                raise NotConvertible(f"data-dependent size {e} (not derived from input shapes)")
            return self.subs[e]
        args = [self._expr(a) for a in e.args]
        if isinstance(e, sympy.Add):
            return sympy.Add(*args)
        if isinstance(e, sympy.Mul):
            return sympy.Mul(*args)
        if isinstance(e, sympy.Pow):
            return sympy.Pow(*args)
        fn = SYMPY_FUNCS.get(type(e).__name__)
        if fn is None:
            raise NotConvertible(f"size expression {e} uses {type(e).__name__}")
        return fn(*args)

    def scalar_value(self, v: Any) -> Any:
        """A SymInt / SymFloat / SymBool (or plain number) as a dim, float or bool."""
        if isinstance(v, torch.SymInt):
            return self.dim(v)
        if isinstance(v, torch.SymFloat):
            e = v.node.expr
            if e.is_number:
                return float(e)
            raise NotConvertible(f"symbolic float {e}")
        if isinstance(v, torch.SymBool):
            e = v.node.expr
            return bool(e) if e in (sympy.true, sympy.false) else None
        return v

    def ttype(self, fake: torch.Tensor) -> TensorType:
        if fake.dtype not in TORCH_DTYPES:
            raise NotConvertible(f"dtype {fake.dtype} has no lmc dtype")
        return TensorType(TORCH_DTYPES[fake.dtype], self.dims(fake.shape))

    @property
    def out(self) -> TensorType:
        """The IR type of the current node's (first) tensor result, from torch's metadata."""
        val = self.node.meta["val"]
        return self.ttype(val[0] if isinstance(val, (list, tuple)) else val)

    def out_types(self) -> list[TensorType | None]:
        val = self.node.meta["val"]
        return [self.ttype(v) if isinstance(v, torch.Tensor) else None for v in val]

    def apply(self, op: Op, *vals: Value) -> Any:
        return self.g.apply(op, *vals)

    def const(self, value: Any, dtype: DType) -> Value:
        """A 0-d constant (value may be a symbolic dim for integer dtypes)."""
        if isinstance(value, (bool, int, float, np.number)):
            if dtype == DType.bool:
                v: Any = bool(value)
            elif dtype.is_float:
                v = float(value)
            else:
                v = int(value)
            return self.g.constant([v], TensorType(dtype, ()))
        # a symbolic dim: an i64 constant, cast when another dtype is wanted
        c = self.g.constant([norm(value)], TensorType(DType.i64, ()))
        return self.cast(c, dtype)

    def tensor(self, x: Any, dtype: DType) -> Value:
        """`x` (a Value or a Python/symbolic scalar) as a value of `dtype`."""
        if isinstance(x, Value):
            return self.cast(x, dtype)
        return self.const(x, dtype)

    def cast(self, v: Value, dtype: DType) -> Value:
        return v if v.type.dtype == dtype else self.apply(Cast(dtype=dtype), v)

    def promote(self, *xs: Any) -> DType:
        """torch's result dtype of an op over tensors and scalars (type promotion)."""
        dummies = []
        for x in xs:
            if isinstance(x, Value):
                shape = () if x.type.rank == 0 else (1,)
                dummies.append(torch.empty(shape, dtype=TO_TORCH_DTYPE[x.type.dtype]))
            elif isinstance(x, (bool, int, float)):
                dummies.append(x)
            else:  # a symbolic int
                dummies.append(1)
        result = dummies[0]
        dt = None
        for d in dummies[1:]:
            dt = torch.result_type(result, d)
            result = torch.empty((1,), dtype=dt) if _has_tensor(result, d) else _scalar_of(dt)
        if dt is None:
            dt = result.dtype if isinstance(result, torch.Tensor) else _scalar_dtype(result)
        return TORCH_DTYPES[dt]


def _has_tensor(a: Any, b: Any) -> bool:
    return isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)


def _scalar_of(dt: torch.dtype) -> Any:
    return True if dt == torch.bool else (1.0 if dt.is_floating_point else 1)


def _scalar_dtype(x: Any) -> torch.dtype:
    if isinstance(x, bool):
        return torch.bool
    return torch.get_default_dtype() if isinstance(x, float) else torch.int64


def _getitem(cx: Builder, node: torch.fx.Node, seq: Any, i: Any) -> Any:
    if not isinstance(seq, (list, tuple)):
        cx.unsupported.add("operator.getitem", node.name, f"on {type(seq).__name__}")
        return POISON
    item = seq[i]
    if item is None:
        src = node.args[0].target if isinstance(node.args[0], torch.fx.Node) else "?"
        return Missing(_op_name(src), node.name, f"result {i} is not supported")
    return item


def _poisoned(a: Any) -> bool:
    if a is POISON:
        return True
    if isinstance(a, (list, tuple)):
        return any(_poisoned(x) for x in a)
    if isinstance(a, dict):
        return any(_poisoned(x) for x in a.values())
    return False


def _op_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)  # "aten.add.Tensor"
    return getattr(target, "__qualname__", None) or str(target)


def _ident(name: str) -> str:
    """A name usable as an IR identifier."""
    out = re.sub(r"\W", "_", name)
    return out if out and not out[0].isdigit() else f"_{out}"


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()  # C-contiguous, 0-d stays 0-d (ascontiguousarray makes it 1-d)


def _floordiv(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return sympy.floor(a / b)


def _ceildiv(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return sympy.ceiling(a / b)


def _truediv(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return a / b


def _identity(a: sympy.Expr) -> sympy.Expr:
    return a


# torch's sympy functions (torch.utils._sympy.functions) -> ours, by class name.
SYMPY_FUNCS: dict[str, Callable[..., sympy.Expr]] = {
    "FloorDiv": _floordiv,
    "CleanDiv": _floordiv,
    "CeilDiv": _ceildiv,
    "IntTrueDiv": _truediv,
    "FloatTrueDiv": _truediv,
    "Mod": DIM_FUNCS["Mod"],  # type: ignore[dict-item]
    "PythonMod": DIM_FUNCS["Mod"],  # type: ignore[dict-item]
    "Max": DIM_FUNCS["Max"],  # type: ignore[dict-item]
    "Min": DIM_FUNCS["Min"],  # type: ignore[dict-item]
    "floor": DIM_FUNCS["floor"],  # type: ignore[dict-item]
    "ceiling": DIM_FUNCS["ceiling"],  # type: ignore[dict-item]
    "FloorToInt": DIM_FUNCS["floor"],  # type: ignore[dict-item]
    "CeilToInt": DIM_FUNCS["ceiling"],  # type: ignore[dict-item]
    "TruncToInt": DIM_FUNCS["floor"],  # type: ignore[dict-item]  (sizes are >= 0)
    "ToFloat": _identity,
    "Identity": _identity,
}
