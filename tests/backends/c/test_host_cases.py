"""Every op on the host C target against the reference interpreter: each tests/cases/*.lmc graph
compiled for host (kernel library on, and plain loops for the compute-heavy cases), the cases
retyped to f64 / f16 / bf16, and registry-generated graphs of the integer and bool dtypes; each
at two values of every symbol."""

from __future__ import annotations

import pytest
from lmc.backends.c.emit import C
from lmc.backends.c.legalize import UNSUPPORTED, LegalizeError, legalize
from lmc.ir import OPS, DType, Graph, TensorType, sym
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.elementwise import Cast, Where
from lmc.ir.ops.fused import elementwise_ops
from lmc.ir.ops.source import Constant, Input, Param
from lmc.passes import PassContext

from .hostbuild import CASES, case_graph, check_host, needs_cc, retype

NATIVE = ["attention", "conv", "fused", "linalg", "lowered", "norm", "pool"]
SOURCES = (Input, Param, Constant)


def test_every_op_has_a_c_emitter_or_a_reason():
    missing = [
        name
        for name, cls in sorted(OPS.items())
        if cls not in SOURCES and not C.has(cls) and cls not in UNSUPPORTED
    ]
    assert not missing, f"ops with neither a C emitter nor an UNSUPPORTED entry: {missing}"
    assert all(reason for reason in UNSUPPORTED.values())


def test_legalize_lists_every_unsupported_node_at_once(monkeypatch):
    relu, exp = OPS["relu"], OPS["exp"]
    monkeypatch.setitem(UNSUPPORTED, relu, "not today")
    monkeypatch.setitem(UNSUPPORTED, exp, "nor this")
    g = Graph("bad", {"s0": (1, 4)})
    x = g.input("x", TensorType(DType.f32, [sym("s0"), 2]))
    g.set_outputs([g.apply(relu(), x), g.apply(exp(), g.apply(relu(), x))])
    with pytest.raises(LegalizeError) as e:
        legalize(g, PassContext())
    msg = str(e.value)
    assert "3 node(s)" in msg and msg.count("relu(") == 2 and msg.count("exp(") == 1
    assert "not today" in msg and "nor this" in msg


@needs_cc
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_on_host(path):
    check_host(case_graph(path), label=path.stem)


@needs_cc
@pytest.mark.parametrize("name", NATIVE)
def test_case_on_host_plain_loops(name):
    """The same cases with the kernel library off: the plain-loop paths of GEMM, conv,
    attention and the row ops (what other dtypes use)."""
    path = next(p for p in CASES if p.stem == name)
    check_host(case_graph(path), {"kernels": False}, label=f"{name} (plain loops)")


BF16_CASES = ("binary", "linalg", "norm", "unary", "shape")  # bf16 shares f32's kernels
RETYPED = [(p, dt) for dt in (DType.f64, DType.f16) for p in CASES] + [
    (p, DType.bf16) for p in CASES if p.stem in BF16_CASES
]


@needs_cc
@pytest.mark.parametrize("path,dtype", RETYPED, ids=[f"{p.stem}-{d}" for p, d in RETYPED])
def test_case_retyped_on_host(path, dtype):
    g = retype(case_graph(path), DType.f32, dtype)
    assert g.outputs, f"{path.stem}: no node accepts {dtype}"
    check_host(g, label=f"{path.stem} as {dtype}")


INT_DTYPES = [
    DType.i8,
    DType.i16,
    DType.i32,
    DType.i64,
    DType.u8,
    DType.u16,
    DType.u32,
    DType.u64,
    DType.i4,
    DType.u4,
    DType.bool,
]


def _try(g: Graph, op, *args):
    try:
        return g.apply(op, *args)
    except IRTypeError:
        return None


def integer_graph() -> Graph:
    """Every elementwise op (and cast to every dtype) on every integer dtype and bool that its
    shape rule accepts, plus reductions, matmul and data movement on a few of them."""
    s0 = sym("s0")
    g = Graph("ints", {"s0": (1, 16)})
    cond = g.input("cond", TensorType(DType.bool, [s0, 3]))
    big = g.input("big", TensorType(DType.f32, [s0, 3]))
    outs = []
    for dt in INT_DTYPES:
        a = g.input(f"a_{dt}", TensorType(dt, [s0, 3]))
        b = g.input(f"b_{dt}", TensorType(dt, [1, 3]))
        for _name, cls in sorted(elementwise_ops().items()):
            if cls is Cast:
                outs += [_try(g, Cast(to), a) for to in DType]
            elif cls is Where:
                outs.append(_try(g, Where(), cond, a, b))
            else:
                arity = cls.arity()[0]
                outs.append(_try(g, cls(), a) if arity == 1 else _try(g, cls(), a, b))
        if dt in (DType.i8, DType.i32, DType.i64, DType.u8):
            for red in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
                outs.append(_try(g, OPS[red](axes=(0,), keepdims=False), a))
            outs.append(_try(g, OPS["argmax"](axis=1), a))
            outs.append(_try(g, OPS["cumsum"](axis=0), a))
            outs.append(_try(g, OPS["matmul"](), a, _try(g, OPS["transpose"]((1, 0)), a)))
        outs.append(_try(g, OPS["concat"](axis=0), a, b))
        outs.append(_try(g, OPS["pad"]((1, 0, 0, 2), "constant", 1.0), a))
    scaled = g.apply(OPS["mul"](), big, g.constant((300.0,), TensorType(DType.f32, (1,))))
    outs += [_try(g, Cast(to), scaled) for to in DType]  # saturating float -> int casts
    g.set_outputs([v for v in outs if v is not None])
    return g


@needs_cc
def test_integer_and_bool_dtypes_on_host():
    g = integer_graph()
    assert len(g.outputs) > 300
    check_host(g, label="ints")
