"""Symbolic shapes: the symbol factory, provable equality, broadcasting and bounds."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from lmc.ir.dtypes import DType
from lmc.ir.shapes import (
    broadcast_shapes,
    ceil_div,
    dim_eq,
    dim_ne,
    evaluate,
    floor_div,
    free_symbols,
    norm,
    numel,
    shape_eq,
    sym,
    to_c,
    upper_bound,
)
from lmc.ir.types import TensorType

s0, s1 = sym("s0"), sym("s1")


def test_sym_is_cached_with_one_set_of_assumptions():
    assert sym("s0") is s0
    assert s0.is_integer and s0.is_positive
    # A Symbol built elsewhere is a different symbol: subs through it silently does nothing.
    assert sympy.Symbol("s0") != s0
    assert (2 * s0).subs({s0: 3}) == 6


@pytest.mark.parametrize("bad", ["", "1x", "a.b", "a b", "s-0"])
def test_sym_rejects_non_identifiers(bad):
    with pytest.raises(ValueError):
        sym(bad)


def test_norm():
    assert norm(3) == 3 and type(norm(np.int64(3))) is int
    assert type(norm(sympy.Integer(4))) is int
    assert norm(s0 + s0) == 2 * s0
    assert type(norm(s0 - s0 + 2)) is int
    with pytest.raises(TypeError):
        norm(True)
    with pytest.raises(TypeError):
        norm(1.5)


def test_tensor_type_normalizes_dims():
    t = TensorType(DType.f32, [np.int32(2), s0 * 2 - s0, sympy.Integer(3)])
    assert t.shape == (2, s0, 3) and all(type(d) is int for d in (t.shape[0], t.shape[2]))
    assert str(t) == "f32[2, s0, 3]"
    assert t.numel == 6 * s0


@pytest.mark.parametrize(
    "a, b",
    [
        (3, 3),
        (s0, s0),
        (2 * s0, s0 + s0),
        (s0 * s1, s1 * s0),
        (sympy.floor((2 * s0) / 2), s0),
        ((s0 + 1) ** 2, s0**2 + 2 * s0 + 1),
    ],
)
def test_dim_eq_when_provable(a, b):
    assert dim_eq(a, b) and dim_eq(b, a)


@pytest.mark.parametrize(
    "a, b",
    [
        (3, 4),
        (s0, s1),
        (s0, 4),
        (2 * sympy.floor(s0 / 2), s0),
        (sympy.Max(s0, s1), s0),
        (sympy.Mod(s0, 2), 0),
    ],
)
def test_dim_eq_not_assumed(a, b):
    assert not dim_eq(a, b) and not dim_eq(b, a)


def test_dim_ne_only_when_provable():
    assert dim_ne(3, 4) and dim_ne(s0, s0 + 1)
    assert not dim_ne(s0, s1)  # could be equal
    assert not dim_ne(s0, 4)
    assert not dim_ne(s0, s0)


def test_shape_eq():
    assert shape_eq((s0, 2), (s0, 2))
    assert not shape_eq((s0, 2), (s0,))
    assert not shape_eq((s0, 2), (s1, 2))


@pytest.mark.parametrize(
    "shapes, want",
    [
        (((s0, 4), (4,)), (s0, 4)),
        (((s0, 1), (1, 4)), (s0, 4)),
        (((1,), (s0,)), (s0,)),
        (((), (s0, 3)), (s0, 3)),
        (((2, 1, s1), (s0, 1)), (2, s0, s1)),
        (((s0,), (s0,), (1,)), (s0,)),
        (((), ()), ()),
    ],
)
def test_broadcast(shapes, want):
    got = broadcast_shapes(*shapes)
    assert got is not None and shape_eq(got, want), got


@pytest.mark.parametrize(
    "shapes", [((3,), (4,)), ((s0,), (s1,)), ((s0,), (4,)), ((s0, 2), (s0 + 1, 2))]
)
def test_broadcast_not_provable(shapes):
    assert broadcast_shapes(*shapes) is None


def test_evaluate():
    assert evaluate(7, {}) == 7
    assert evaluate(2 * s0 + s1, {"s0": 3, "s1": 4}) == 10
    assert evaluate(sympy.floor(s0 / 2), {"s0": 5}) == 2
    with pytest.raises(KeyError):
        evaluate(s0 + s1, {"s0": 1})
    with pytest.raises(ValueError):
        evaluate(s0 / 2, {"s0": 3})


def test_upper_bound():
    bounds = {"s0": (1, 8), "s1": (2, 5)}
    assert upper_bound(4, bounds) == 4
    assert upper_bound(s0, bounds) == 8
    assert upper_bound(s0 * s1 + 1, bounds) == 41
    assert upper_bound(s0 - s1, bounds) == 6
    assert upper_bound(sympy.ceiling(s0 / 3), bounds) == 3
    assert type(upper_bound(s0 * 2, bounds)) is int


def test_div_helpers_and_numel():
    assert ceil_div(7, 2) == 4 and floor_div(7, 2) == 3
    assert evaluate(ceil_div(s0, 4), {"s0": 5}) == 2
    assert evaluate(floor_div(s0, 4), {"s0": 5}) == 1
    assert numel(()) == 1 and numel((2, 3)) == 6
    assert dim_eq(numel((s0, 2, s1)), 2 * s0 * s1)


def test_free_symbols_and_c_text():
    assert free_symbols(3) == set()
    assert free_symbols(s0 * s1 + 1) == {"s0", "s1"}
    assert to_c(5) == "5"
    assert to_c(2 * s0 + 1) == "2*s0 + 1"
