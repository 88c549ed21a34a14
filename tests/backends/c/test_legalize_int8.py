"""Legalization of integer matmuls onto matmul_integer (backends/c/legalize_int8.py): the
forms ONNX MatMulInteger leaves after constant folding, zero points per value / row / column,
i32 weights stored as 8 bits plus per-column offsets; forms it must leave alone. Each graph is
interpreted before and after (bit-exact) and the rewritten ones run on host."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.backends.c.build import lower
from lmc.backends.targets import parse_target
from lmc.ir import DType, Graph, TensorType, sym
from lmc.ir.interpreter import run
from lmc.ir.ops.elementwise import Cast, Sub
from lmc.ir.ops.linalg import Matmul

from .hostbuild import check_host, needs_cc

S = sym("s0")


def _graph(a_dt: DType, za_shape, b_kind: str, zb_shape) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("mm8", {"s0": (1, 9)})
    a = g.input("a", TensorType(a_dt, [S, 12]))
    x = g.apply(Cast(DType.i32), a)
    if za_shape is not None:
        if S in za_shape:  # per row: an input of the batch's size
            za = g.input("za", TensorType(DType.i32, list(za_shape)))
        else:
            za = g.param("za", rng.integers(-3, 200, za_shape).astype(np.int32))
        x = g.apply(Sub(), x, za)
    if b_kind == "input":
        y = g.apply(Cast(DType.i32), g.input("b", TensorType(DType.u8, [12, 10])))
        if zb_shape is not None:
            y = g.apply(Sub(), y, g.param("zb", rng.integers(0, 9, zb_shape).astype(np.int32)))
    else:
        lo, hi = {"i8": (-128, 128), "u8": (0, 256), "shifted": (-200, 50), "wide": (-999, 999)}[
            b_kind
        ]
        w = rng.integers(lo, hi, (12, 10)).astype(np.int32)
        if b_kind == "shifted":
            w += np.arange(10, dtype=np.int32) * 300  # each column its own range
        y = g.param("w", w)
    g.set_outputs([g.apply(Matmul(), x, y)])
    return g


FORMS = [
    (DType.u8, (), "i8", None),
    (DType.i8, None, "u8", None),
    (DType.u8, (1, 1), "shifted", None),
    (DType.i8, (S, 1), "i8", None),
    (DType.u8, (), "input", (1, 10)),
    (DType.i8, (1,), "input", None),
    (DType.u8, None, "input", ()),
]


def _runs(g: Graph) -> list:
    out = []
    for rows in (1, 7):
        rng = np.random.default_rng(rows)
        ins = [
            rng.integers(np.iinfo(v.type.dtype.np).min, np.iinfo(v.type.dtype.np).max + 1,
                         [rows if d == S else d for d in v.type.shape]).astype(v.type.dtype.np)
            for v in g.inputs
        ]  # fmt: skip
        out.append(ins)
    return out


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{f[0]}-{f[1]}-{f[2]}-{f[3]}")
def test_rewritten_and_exact(form):
    g = _graph(*form)
    after = lower(g, parse_target("host"))
    ops = [n.op.name for n in after.nodes]
    assert "matmul_integer" in ops and "matmul" not in ops, ops
    for ins in _runs(g):
        np.testing.assert_array_equal(run(after, ins)[0], run(g, ins)[0])


@pytest.mark.parametrize(
    "form", [(DType.u8, None, "wide", None), (DType.i8, (12,), "i8", None)], ids=["wide", "zp_k"]
)
def test_left_alone(form):
    """A weight spanning more than 256 values per column, a zero point along k."""
    ops = [n.op.name for n in lower(_graph(*form), parse_target("host")).nodes]
    assert "matmul" in ops and "matmul_integer" not in ops, ops


@needs_cc
@pytest.mark.parametrize("form", FORMS[2:5], ids=["shifted", "per_row", "input_b"])
def test_rewritten_forms_on_host(form):
    check_host(_graph(*form), label=str(form))
