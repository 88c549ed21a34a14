"""Hypothesis strategies that build random graphs from the op registry.

A graph starts from a pool of inputs, params and constants (random dtypes, static and symbolic
shapes with declared bounds, hostile names); then it repeatedly picks a registered op class,
operands from the pool (respecting `cls.arity()`) and attributes drawn from the field
annotations (`cls.attr_types()`), and keeps the node when `g.add_node` (the op's `infer`)
accepts it. Random values become the outputs.
"""

from __future__ import annotations

import functools
import math
import types as pytypes
import typing
from dataclasses import dataclass, field
from typing import Any

import sympy
from hypothesis import strategies as st
from lmc.ir import OPS, DType, Graph, LmcError, TensorType, print_graph, sym
from lmc.ir.graph import Value
from lmc.ir.op import Op
from lmc.ir.ops.source import Constant

SOURCE_OPS = frozenset({"input", "param", "constant"})

# Names the printer must quote and the parser must read back unchanged.
HOSTILE_NAMES = [
    '*/ system("x"); /*',
    'say "hi"',
    "back\\slash",
    "new\nline",
    "tab\tstop",
    "100%",
    "%0",
    "0",
    "12",
    "two words",
    "9lives",
    "ünïcødé ✓",
    "\u2028",
    "",
    "@g",
    "a.b",
    "x-y",
    "}",
    "// not a comment",
    "graph",
    "return",
    "true",
    "f32",
    "nan",
]
# A few values real string attributes take, plus hostile ones.
STRINGS = [
    "",
    "none",
    "tanh",
    "constant",
    "reflect",
    "edge",
    "nearest",
    "linear",
    "cubic",
    "DCR",
    "CRD",
    "sum",
    "mul",
    "add",
    "max",
    "min",
    "half_pixel",
    "asymmetric",
    "round_prefer_floor",
    "ij,jk->ik",
    "bi,bi->b",
    "...i->...",
    *HOSTILE_NAMES,
]
FLOATS = [0.0, -0.0, 1.0, -1.5, 0.5, 2.0, 1e-5, 1e-12, 3.0e38, math.inf, -math.inf, math.nan]
DTYPES = list(DType)
# Dtypes for inputs: weighted towards f32, which most ops accept.
INPUT_DTYPES = [DType.f32] * 6 + [DType.f16, DType.f64, DType.i64, DType.i32, DType.bool]
SYMBOLS = ("s0", "s1")


@functools.cache
def names() -> st.SearchStrategy[str]:
    """Value names: plain identifiers, hostile strings and arbitrary text."""
    plain = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,6}", fullmatch=True)
    return st.one_of(plain, st.sampled_from(HOSTILE_NAMES), st.text(max_size=6))


# Strategies are built once per argument (cached): building them per draw costs more than
# drawing from them.
@functools.cache
def dim_exprs(symbols: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Symbolic dim expressions over the declared symbols, as shapes and attributes use."""
    s = st.sampled_from(symbols).map(sym)
    k = st.integers(1, 4)
    return st.one_of(
        s,
        st.tuples(s, k).map(lambda p: p[0] + p[1]),
        st.tuples(s, k).map(lambda p: p[0] * p[1]),
        st.tuples(s, s).map(lambda p: p[0] * p[1]),
        st.tuples(s, st.integers(2, 4)).map(lambda p: sympy.floor(p[0] / p[1])),
        st.tuples(s, st.integers(2, 4)).map(lambda p: sympy.Mod(p[0], p[1])),
        st.tuples(s, s).map(lambda p: sympy.Max(p[0], p[1])),
    )


@functools.cache
def dims(symbols: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([1, 1, 2, 3, 4]), st.sampled_from(symbols).map(sym), dim_exprs(symbols)
    )


@functools.cache
def attr_values(ann: Any, symbols: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Values for an attribute annotated `ann` (the annotations ops may use, see STYLE.md)."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, pytypes.UnionType):
        return st.one_of(*(attr_values(m, symbols) for m in typing.get_args(ann)))
    if origin is tuple:
        args = typing.get_args(ann)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(attr_values(args[0], symbols), max_size=4).map(tuple)
        return st.tuples(*(attr_values(a, symbols) for a in args))
    if ann is type(None):
        return st.none()
    if ann is bool:
        return st.booleans()
    if ann is int:
        return st.one_of(st.integers(-3, 8), st.sampled_from([-1, 0, 1, 2**40]))
    if ann is float:
        return st.one_of(st.sampled_from(FLOATS), st.floats(width=64))
    if ann is str:
        return st.one_of(st.sampled_from(STRINGS), st.text(max_size=8))
    if ann is DType:
        return st.sampled_from(DTYPES)
    if ann is sympy.Expr:
        return dim_exprs(symbols)
    raise TypeError(f"no strategy for attribute annotation {ann!r}: extend tests/ir/strategies")


@dataclass
class Built:
    """A random graph and the ops whose `infer` crashed instead of raising an LmcError."""

    graph: Graph
    crashes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Built(crashes={self.crashes!r}, graph=\n{print_graph(self.graph)})"


@st.composite
def op_instances(draw, cls: type[Op], symbols: tuple[str, ...]) -> Op | None:
    """An instance of `cls`; each attribute keeps its default half of the time."""
    defaults = cls().attrs()
    attrs = {}
    for k, ann in cls.attr_types().items():
        if draw(st.booleans()):
            attrs[k] = draw(attr_values(ann, symbols))
        else:
            attrs[k] = defaults[k]
    try:
        return cls(**attrs)
    except (LmcError, TypeError, ValueError):
        return None


@functools.cache
def _constant_values(dtype: DType, symbols: tuple[str, ...]) -> st.SearchStrategy[Any]:
    if dtype == DType.bool:
        return st.booleans()
    if dtype.is_float:
        return st.sampled_from(FLOATS)
    return st.one_of(st.integers(-5, 9), dim_exprs(symbols))


@st.composite
def graphs(draw, max_steps: int = 8, ops: tuple[str, ...] | None = None) -> Built:
    """A random graph: a pool of sources, then ops from the registry (or `ops`) applied to
    the pool."""
    bounds = {
        s: (lo, lo + draw(st.integers(0, 30)))
        for s, lo in zip(SYMBOLS, draw(st.tuples(st.integers(1, 4), st.integers(1, 4))))
    }
    symbols = tuple(bounds)
    g = Graph(draw(st.one_of(st.just("main"), names())), bounds)
    base = draw(st.lists(dims(symbols), min_size=0, max_size=4))
    used_names: set[str] = set()

    def fresh_name(allow_empty: bool = True) -> str:
        # `g.param(key, name="")` names the value after its key: no empty param names.
        name = draw(names())
        while name in used_names or not (name or allow_empty):
            name += "_"
        used_names.add(name)
        return name

    def shape() -> list[Any]:
        # Mostly the base shape or a broadcastable variant, so binary ops find partners.
        kind = draw(st.integers(0, 3))
        if kind == 0:
            return draw(st.lists(dims(symbols), max_size=4))
        if kind == 1 and base:
            return [1 if draw(st.booleans()) else d for d in base]
        return base[draw(st.integers(0, len(base))) :] if kind == 2 else list(base)

    pool: list[Value] = []
    for _ in range(draw(st.integers(1, 3))):
        pool.append(g.input(fresh_name(), TensorType(draw(st.sampled_from(INPUT_DTYPES)), shape())))
    for _ in range(draw(st.integers(0, 2))):
        t = TensorType(draw(st.sampled_from(INPUT_DTYPES)), shape())
        key = draw(names())
        pool.append(g.param(key, type=t, name=fresh_name(allow_empty=False)))
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([DType.f32, DType.i64, DType.bool, DType.f16]))
        cshape = draw(st.lists(st.integers(1, 3), max_size=2))
        n = math.prod(cshape)
        values = tuple(draw(st.lists(_constant_values(dtype, symbols), min_size=n, max_size=n)))
        pool.append(g.add_node(Constant(value=values), (), [TensorType(dtype, cshape)]).out)

    built = Built(g)
    op_names = sorted(ops or set(OPS) - SOURCE_OPS)

    def pick() -> Value:
        return pool[draw(st.integers(0, len(pool) - 1))]

    for _ in range(draw(st.integers(1, max_steps))):
        for _attempt in range(4):  # most random (op, operands, attributes) are rejected
            cls = OPS[draw(st.sampled_from(op_names))]
            lo, hi = cls.arity()
            operands = [pick() for _ in range(draw(st.integers(lo, lo + 3 if hi is None else hi)))]
            op = draw(op_instances(cls, symbols))
            if op is None:
                continue
            try:
                node = g.add_node(op, operands)
            except LmcError:
                continue
            except Exception as e:  # noqa: BLE001 - recorded: infer must reject with IRTypeError
                types = ", ".join(str(v.type) for v in operands)
                built.crashes.append(f"{op!r} on ({types}): {type(e).__name__}: {e}")
                continue
            pool.extend(node.outputs)
            break
    outs = [pick() for _ in range(draw(st.integers(1, 3)))]
    g.set_outputs(outs)
    return built
