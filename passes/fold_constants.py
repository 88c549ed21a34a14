"""Constant folding: evaluate nodes whose operands are all known, including shape arithmetic
over symbolic dims (`shape(x)` and the integer ops that consume it)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np

from ..ir.errors import LmcError
from ..ir.graph import Graph, Node, Value
from ..ir.ops.source import MAX_INLINE_CONSTANT, Constant, Param
from ..ir.printer import node_line
from ..ir.shapes import dim_le, dim_max, dim_min, floor_div, norm, shape_is_static
from ..ir.types import TensorType
from .eliminate_dead_nodes import drop_unused_weights, unused_weights
from .manager import PassContext, Prop, graph_pass, prop_check
from .rewrite import remove_dead

# A fold whose results exceed this many elements, and outnumber its operands' elements, is
# kept as a node: materializing a broadcast (full, expand) would bloat the weights store.
MAX_FOLD_ELEMENTS = 1 << 20

# Ops that only move elements: their reference can be run on element ids instead of values,
# so symbolic operands fold too. Value: the operand positions that carry data (None: all);
# the other operands (indices, conditions) must be numeric.
DATA_MOVES: dict[str, tuple[int, ...] | None] = {
    "identity": (0,),
    "reshape": (0,),
    "transpose": (0,),
    "expand": (0,),
    "squeeze": (0,),
    "unsqueeze": (0,),
    "flatten": (0,),
    "slice": (0,),
    "split": (0,),
    "gather": (0,),
    "gather_elements": (0,),
    "gather_nd": (0,),
    "tile": (0,),
    "concat": None,
    "where": (1, 2),
}


# -- reading known values ------------------------------------------------------------------
def is_symbolic(a: np.ndarray) -> bool:
    return a.dtype == object


def constant_values(v: Value) -> np.ndarray | None:
    """A `constant`'s values: a numeric array in the interpreter's storage dtype, or an
    object array of ints and sympy dims when some value is symbolic; None if not constant."""
    n = v.node
    if not isinstance(n.op, Constant):
        return None
    if all(isinstance(x, (int, float, bool)) for x in n.op.value):
        return n.op.materialize(v.type, {})
    return _object_array(n.op.value, v.type.shape)


def _object_array(values: Sequence[object], shape: Sequence[int]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out.reshape(tuple(shape))


def _known(
    v: Value, g: Graph, fold_params: bool, known: dict[int, np.ndarray] | None
) -> np.ndarray | None:
    if known is not None and id(v) in known:
        return known[id(v)]
    a = constant_values(v)
    if a is None and fold_params and isinstance(v.node.op, Param):
        w = g.weights.get(v.node.op.key)
        if (
            isinstance(w, np.ndarray)
            and w.dtype == v.type.dtype.np
            and shape_is_static(v.type.shape)
            and w.shape == tuple(v.type.shape)
        ):
            a = w
    return a


def shape_values(n: Node) -> list[object] | None:
    """The dims a `shape` node reads (ints or sympy exprs), None if not a foldable `shape`."""
    if n.op.name != "shape" or len(n.inputs) != 1 or len(n.outputs) != 1:
        return None
    dims = list(n.inputs[0].type.shape)
    attrs = n.op.attrs()
    start, end = attrs.get("start", 0), attrs.get("end")
    if not isinstance(start, int) or not (end is None or isinstance(end, int)):
        return None
    picked = dims[start:end]  # Python slicing clamps and wraps like ONNX Shape
    out = n.outputs[0].type
    if len(out.shape) != 1 or out.shape[0] != len(picked) or not out.dtype.is_int:
        return None
    return picked


# -- evaluation ----------------------------------------------------------------------------
def _numel(t: TensorType) -> int:
    return int(np.prod(t.shape)) if t.shape else 1


def evaluate_node(
    g: Graph, n: Node, fold_params: bool = False, known: dict[int, np.ndarray] | None = None
) -> list[np.ndarray] | None:
    """The results of `n` when every operand is known (a constant, a param with
    `fold_params`, or in `known`: id(Value) -> array), as arrays (object arrays hold symbolic
    dims); None when `n` cannot or should not be folded."""
    op = n.op
    if op.declares_type or not op.pure or not all(shape_is_static(v.type.shape) for v in n.outputs):
        return None
    dims = shape_values(n)
    if dims is not None:
        results: list[np.ndarray] | None = [_object_array(dims, (len(dims),))]
    else:
        args = [_known(v, g, fold_params, known) for v in n.inputs]
        if any(a is None for a in args) or op.symbols():
            return None
        out_size = sum(_numel(v.type) for v in n.outputs)
        if out_size > MAX_FOLD_ELEMENTS and out_size > sum(a.size for a in args):
            return None
        if any(is_symbolic(a) for a in args):
            results = _evaluate_symbolic(n, args)
        else:
            results = _evaluate_numeric(n, args)
    if results is None or len(results) != len(n.outputs):
        return None
    settled = [_settle(r, v.type) for r, v in zip(results, n.outputs)]
    if any(s is None or is_symbolic(s) and s.size > MAX_INLINE_CONSTANT for s in settled):
        return None  # symbolic values live only in small constants
    return settled  # type: ignore[return-value]


def _evaluate_numeric(n: Node, args: list[np.ndarray]) -> list[np.ndarray] | None:
    try:
        with np.errstate(all="ignore"):
            out = n.op.ref(*args)
    except (LmcError, ValueError, TypeError, IndexError, ZeroDivisionError):
        return None  # e.g. an out-of-range constant index: leave the error to run time
    return list(out) if isinstance(out, tuple) else [out]


def _settle(r: object, t: TensorType) -> np.ndarray | None:
    """Check a result against its declared type; object arrays of plain ints become numeric."""
    if not isinstance(r, np.ndarray) or r.shape != tuple(t.shape):
        return None
    if is_symbolic(r):
        if not t.dtype.is_int:
            return None
        flat = [norm(x) for x in r.reshape(-1)]
        if all(isinstance(x, int) for x in flat):
            return np.array(flat, dtype=t.dtype.np).reshape(r.shape)
        return _object_array(flat, r.shape)
    return r if r.dtype == t.dtype.np else None


def _as_object(r: object) -> np.ndarray:
    """numpy returns a bare element for 0-d results of object ufuncs; wrap it again."""
    if isinstance(r, np.ndarray):
        return r.astype(object)
    out = np.empty((), dtype=object)
    out[()] = r
    return out


class _Unknown(Exception):
    """A symbolic value the fold cannot express exactly (the node is then kept)."""


def _div(a: object, b: object) -> object:
    """Integer `div` as the reference defines it: truncate toward zero, x / 0 = 0. Symbolic
    operands fold only when provably a >= 0 and b >= 1 (where truncating is flooring)."""
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            return 0
        q = abs(a) // abs(b)
        return q if (a < 0) == (b < 0) else -q
    if dim_le(0, a) and dim_le(1, b):  # type: ignore[arg-type]
        return floor_div(a, b)  # type: ignore[arg-type]
    raise _Unknown(f"{a} / {b}")


# Integer arithmetic on dims, elementwise over object arrays, matching the references.
SYMBOLIC_ELEMENTWISE: dict[str, Callable[..., object]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": _div,
    "neg": operator.neg,
    "maximum": dim_max,
    "minimum": dim_min,
}
SYMBOLIC_REDUCE: dict[str, np.ufunc] = {"reduce_prod": np.multiply, "reduce_sum": np.add}


def _evaluate_symbolic(n: Node, args: list[np.ndarray]) -> list[np.ndarray] | None:
    name = n.op.name
    if not all(v.type.dtype.is_int for v in list(n.inputs) + n.outputs) and name != "where":
        return None
    if name == "cast":
        return [args[0]] if n.outputs[0].type.dtype.bits >= 32 else None
    if name in SYMBOLIC_ELEMENTWISE:
        fn = SYMBOLIC_ELEMENTWISE[name]
        try:
            return [_as_object(np.frompyfunc(fn, len(args), 1)(*args))]
        except _Unknown:
            return None
    if name in SYMBOLIC_REDUCE:
        attrs = n.op.attrs()
        axes = attrs.get("axes") or tuple(range(args[0].ndim))
        ufunc = SYMBOLIC_REDUCE[name]
        out = ufunc.reduce(args[0], axis=tuple(axes), keepdims=bool(attrs.get("keepdims")))
        return [_as_object(out)]
    if name in DATA_MOVES:
        return _move_symbolic(n, args, DATA_MOVES[name])
    return None


def _move_symbolic(
    n: Node, args: list[np.ndarray], data: tuple[int, ...] | None
) -> list[np.ndarray] | None:
    """Run a data-movement reference on element ids, then map the ids back to values."""
    positions = range(len(args)) if data is None else data
    if any(is_symbolic(a) for i, a in enumerate(args) if i not in positions):
        return None
    pool: list[object] = []
    ids = list(args)
    for i in positions:
        a = args[i]
        if not np.issubdtype(a.dtype, np.integer) and not is_symbolic(a):
            return None
        dtype = np.dtype(np.int64) if is_symbolic(a) else a.dtype
        if len(pool) + a.size - 1 > np.iinfo(dtype).max:
            return None  # the ids would not fit the operand's dtype
        ids[i] = np.arange(len(pool), len(pool) + a.size, dtype=dtype).reshape(a.shape)
        pool.extend(a.reshape(-1).tolist())
    out = _evaluate_numeric(n, ids)
    if out is None:
        return None
    table = _object_array(pool, (len(pool),))
    return [table[np.asarray(r, dtype=np.int64)] for r in out]


# -- rewriting -----------------------------------------------------------------------------
def _fresh_key(g: Graph, taken: set[str]) -> str:
    i = 0
    while f"const.{i}" in g.weights or f"const.{i}" in taken:
        i += 1
    return f"const.{i}"


def source_names(g: Graph) -> set[str]:
    """The names of inputs, params and constants (a new param's name must be fresh)."""
    return {v.name for m in g.nodes if m.op.declares_type for v in m.outputs if v.name}


def materialize(
    g: Graph,
    n: Node,
    results: list[np.ndarray],
    values: list[Value] | None = None,
    taken: set[str] | None = None,
) -> list[Value]:
    """New `constant` (small) or `param` (large, stored in g.weights) nodes for `results`
    (typed like `values`, default: n's results); constants go right before `n`. `taken`:
    names in use (default: computed), updated with the new params' names."""
    taken = source_names(g) if taken is None else taken
    out = []
    for r, v in zip(results, values or n.outputs):
        if r.size <= MAX_INLINE_CONSTANT:
            out.append(g.constant(r.reshape(-1).tolist(), v.type, before=n))
        else:
            key = _fresh_key(g, taken)
            taken.add(key)
            out.append(g.param(key, np.ascontiguousarray(r), type=v.type))
    return out


def fold_graph(g: Graph, fold_params: bool = False) -> dict[str, int]:
    """Fold every foldable node in one in-order walk (operands fold before their users);
    only results something unfolded still reads are materialized. Returns per-op counts."""
    known: dict[int, np.ndarray] = {}
    folded: list[Node] = []
    counts: dict[str, int] = {}
    for n in g.nodes:
        results = evaluate_node(g, n, fold_params, known)
        if results is None:
            continue
        folded.append(n)
        counts[n.op.name] = counts.get(n.op.name, 0) + 1
        for v, r in zip(n.outputs, results):
            known[id(v)] = r
    folded_ids = {id(n) for n in folded}
    taken = source_names(g)
    for n in folded:
        needed = [
            (v, known[id(v)])
            for v in n.outputs
            if g.is_output(v) or any(id(u) not in folded_ids for u, _ in v.uses)
        ]
        values = [v for v, _ in needed]
        for v, new in zip(values, materialize(g, n, [r for _, r in needed], values, taken)):
            for u, i in list(v.uses):
                if id(u) not in folded_ids:
                    g.set_input(u, i, new)
            g.set_outputs(new if o is v else o for o in g.outputs)
    remove_dead(g, folded, force=True)
    return counts


@graph_pass(
    ensures={Prop.TYPED, Prop.FOLDED}, breaks={Prop.CANONICAL, Prop.NO_COMMON_SUBEXPRESSIONS}
)
def fold_constants(g: Graph, ctx: PassContext) -> Graph:
    """Replace each pure node whose operands are all `constant` nodes (also params with
    `options["fold_params"]`) by its value computed with the op's reference: small results
    become `constant` nodes, larger ones params `const.<n>` in the weights store. `shape(x)`
    becomes an i64 constant of x's dims, and integer arithmetic / data movement over such
    symbolic constants folds with sympy. Results that would be huge compared with their
    operands (a broadcast to millions of elements) are kept as nodes.

    Safe because the reference interpreter is the spec: it computes exactly this value at run
    time for every binding of the symbols (symbolic values are exact integer expressions,
    evaluated when interpreted). Producers left unread are deleted with the folded node.
    """
    fold_params = bool(ctx.options.get("fold_params", False))
    unused_before = unused_weights(g)
    for name, count in fold_graph(g, fold_params).items():
        ctx.stat(f"folded.{name}", count)
    dropped = drop_unused_weights(g, keep=unused_before)
    if dropped:
        ctx.stat("weights_dropped", dropped)
    return g


@prop_check(Prop.FOLDED)
def check_folded(g: Graph) -> str | None:
    for n in g.nodes:
        if evaluate_node(g, n) is not None:
            return f"foldable node left: {node_line(n)}"
    return None
