"""Symbolic shapes: the only module that touches sympy directly.

Dims are `int | sympy.Expr`; ints are always plain Python ints. Symbols come only from `sym`,
which caches them with one set of assumptions (integer, positive) so that `.subs` works.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

import sympy

Dim = Union[int, sympy.Expr]
Shape = tuple[Dim, ...]

# Functions allowed in dim expressions (text IR and attributes); nothing else is evaluated.
DIM_FUNCS: dict[str, object] = {
    "floor": sympy.floor,
    "ceiling": sympy.ceiling,
    "Max": sympy.Max,
    "Min": sympy.Min,
    "Mod": sympy.Mod,
}


@functools.cache
def sym(name: str) -> sympy.Symbol:
    """The symbol `name` (integer, positive). The one factory: never build Symbols elsewhere."""
    if not name.isidentifier():
        raise ValueError(f"symbol name {name!r} is not an identifier")
    return sympy.Symbol(name, integer=True, positive=True)


@functools.lru_cache(maxsize=1 << 14)
def _simplify(d: sympy.Basic) -> sympy.Basic:
    """sympy.simplify, cached: shape rules re-normalize the same few exprs very often."""
    return sympy.simplify(d)


def norm(d: object) -> Dim:
    """Normalize a dim: sympy integers become Python ints; other exprs are simplified."""
    if isinstance(d, bool):
        raise TypeError(f"a dim cannot be a bool ({d!r})")
    if isinstance(d, int):
        return d
    if isinstance(d, sympy.Basic):
        if d.is_Integer:
            return int(d)
        d = _simplify(d) if not d.is_Symbol else d
        return int(d) if d.is_Integer else d
    if hasattr(d, "__index__"):
        return int(d)  # numpy integers
    raise TypeError(f"not a dim: {d!r}")


def norm_shape(shape: Iterable[object]) -> Shape:
    return tuple(norm(d) for d in shape)


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def shape_is_static(shape: Sequence[Dim]) -> bool:
    return all(isinstance(d, int) for d in shape)


def dim_eq(a: Dim, b: Dim) -> bool:
    """True only when a == b is provable for every value of the symbols."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.simplify(sympy.Integer(a) - b if isinstance(a, int) else a - b) == 0


def dim_ne(a: Dim, b: Dim) -> bool:
    """True only when a != b is provable (e.g. two different constants, or s0 vs s0 + 1)."""
    diff = sympy.simplify(sympy.sympify(a) - sympy.sympify(b))
    return bool(diff.is_nonzero) if diff.is_nonzero is not None else False


def shape_eq(a: Sequence[Dim], b: Sequence[Dim]) -> bool:
    return len(a) == len(b) and all(dim_eq(x, y) for x, y in zip(a, b))


def free_symbols(d: Dim) -> set[str]:
    return set() if isinstance(d, int) else {s.name for s in d.free_symbols}


def numel(shape: Sequence[Dim]) -> Dim:
    """Product of the dims (1 for a scalar)."""
    return norm(functools.reduce(lambda a, b: a * b, shape, 1)) if shape else 1


def evaluate(d: Dim, env: Mapping[str, int]) -> int:
    """The integer value of `d` with symbols bound by `env` (KeyError names a missing symbol)."""
    if isinstance(d, int):
        return d
    subs = {}
    for s in d.free_symbols:
        if s.name not in env:
            raise KeyError(s.name)
        subs[s] = env[s.name]
    v = d.subs(subs)
    if not v.is_Integer:
        raise ValueError(f"dim {d} is not an integer at {dict(env)} (got {v})")
    return int(v)


def upper_bound(d: Dim, bounds: Mapping[str, tuple[int, int]]) -> int:
    """Largest value of d over the box of symbol bounds (dims are monotone in practice:
    we take the max over the box corners, which is exact for monotone expressions)."""
    if isinstance(d, int):
        return d
    names = sorted(free_symbols(d))
    best = None
    for corner in range(1 << len(names)):
        env = {n: bounds[n][(corner >> i) & 1] for i, n in enumerate(names)}
        v = evaluate(d, env)
        best = v if best is None else max(best, v)
    return int(best)


def broadcast_shapes(*shapes: Sequence[Dim]) -> Shape | None:
    """numpy broadcasting over symbolic dims; None when not provably compatible."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        non_one = [d for d in dims if not (isinstance(d, int) and d == 1)]
        if not non_one:
            out.append(1)
            continue
        first = non_one[0]
        if not all(dim_eq(first, d) for d in non_one[1:]):
            return None
        out.append(first)
    return tuple(out)


def to_c(d: Dim) -> str:
    """C expression for a dim (sympy.ccode; nobody prints sympy into C by hand)."""
    return str(d) if isinstance(d, int) else sympy.ccode(d)


def dim_str(d: Dim) -> str:
    """Canonical text of a dim, as the printer writes it and the parser reads it back."""
    return str(d)


def ceil_div(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return -(-a // b)
    return norm(sympy.ceiling(sympy.sympify(a) / b))


def floor_div(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return norm(sympy.floor(sympy.sympify(a) / b))


def prod_static(shape: Sequence[int]) -> int:
    return math.prod(shape)


def dim_le(a: Dim, b: Dim) -> bool:
    """True only when a <= b is provable for every value of the symbols (all >= 1)."""
    if isinstance(a, int) and isinstance(b, int):
        return a <= b
    diff = sympy.sympify(b) - sympy.sympify(a)
    if diff.is_nonnegative:
        return True
    # sympy does not derive s0 + s1 >= 2 from s0, s1 >= 1: write each symbol as 1 + t with t a
    # nonnegative integer (an exact substitution) and ask again.
    shift = {s: 1 + _nonneg(s.name) for s in diff.free_symbols}
    return bool(sympy.expand(diff.xreplace(shift)).is_nonnegative)


@functools.cache
def _nonneg(name: str) -> sympy.Symbol:
    return sympy.Dummy(f"{name}_minus_1", integer=True, nonnegative=True)


def dim_min(*ds: Dim) -> Dim:
    """min of dims: a dim provably <= the others when there is one, else a sympy Min."""
    if all(isinstance(d, int) for d in ds):
        return min(ds)  # type: ignore[type-var]
    for d in ds:
        if all(dim_le(d, e) for e in ds if e is not d):
            return d
    return _int_if_integer(sympy.Min(*ds))


def dim_max(*ds: Dim) -> Dim:
    """max of dims: a dim provably >= the others when there is one, else a sympy Max."""
    if all(isinstance(d, int) for d in ds):
        return max(ds)  # type: ignore[type-var]
    for d in ds:
        if all(dim_le(e, d) for e in ds if e is not d):
            return d
    return _int_if_integer(sympy.Max(*ds))


def _int_if_integer(d: sympy.Expr) -> Dim:
    return int(d) if d.is_Integer else d
