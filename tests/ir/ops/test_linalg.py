"""matmul, linear, einsum: references against torch, symbolic shape rules, rejections, cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, parse_ir, print_graph, run, sym, verify
from lmc.ir.dtypes import from_numpy
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.linalg import Einsum, Linear, Matmul
from lmc.ir.shapes import dim_eq
from lmc.ir.types import TensorType

from tests.util import assert_close, random_inputs, symbol_values, tolerance

CASES = Path(__file__).resolve().parents[2] / "cases"
RNG = np.random.default_rng(0)
F32, F64 = DType.f32, DType.f64
s0, s1 = sym("s0"), sym("s1")


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def check_torch(op, arrays, expected: torch.Tensor, dtype: DType = F32) -> None:
    """op.ref on `arrays` matches `expected` and op.infer predicts its shape and dtype."""
    got = op.ref(*arrays)
    t = op.infer(*(TensorType(from_numpy(a.dtype), a.shape) for a in arrays))
    assert got.shape == t.concrete({}) and got.dtype == t.dtype.np
    rtol, atol = tolerance("torch", dtype)
    assert_close(got, expected.numpy(), rtol, atol, name=f"{op}")


def check_case(name: str, extra_envs: tuple[dict[str, int], ...] = ()) -> None:
    """A case file parses, verifies, prints back identically and interprets at several envs."""
    text = (CASES / name).read_text()
    g = parse_ir(text)
    verify(g)
    assert print_graph(g) == text
    envs = symbol_values(g) + list(extra_envs)
    assert len(envs) >= 2
    for env in envs:
        ins = [np.abs(a) if a.dtype.kind == "i" else a for a in random_inputs(g, env)]
        outs = run(g, ins)
        for v, o in zip(g.outputs, outs):
            assert o.shape == v.type.concrete(env)


# -- matmul ---------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4,)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 4), (4,)),
    ((1, 1), (1, 1)),
    ((0, 4), (4, 2)),
    ((3, 0), (0, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
def test_matmul_matches_torch(sa, sb, np_dtype):
    a, b = rand(*sa, dtype=np_dtype), rand(*sb, dtype=np_dtype)
    dt = F32 if np_dtype == np.float32 else F64
    check_torch(Matmul(), [a, b], torch.matmul(torch.from_numpy(a), torch.from_numpy(b)), dt)


@pytest.mark.parametrize("np_dtype", [np.int8, np.int32, np.int64])
def test_matmul_ints_wrap_like_torch(np_dtype):
    a = RNG.integers(-100, 100, (2, 3, 7)).astype(np_dtype)
    b = RNG.integers(-100, 100, (7, 4)).astype(np_dtype)
    want = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got = Matmul().ref(a, b)
    assert got.dtype == np_dtype
    assert_close(got, want)


def test_matmul_f16_accumulates_in_f32():
    a, b = rand(8, 64, dtype=np.float16), rand(64, 3, dtype=np.float16)
    want = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    got = Matmul().ref(a, b)
    assert got.dtype == np.float16
    assert_close(got, want, *tolerance("reference", DType.f16))


def test_matmul_symbolic_shapes():
    op = Matmul()
    t = op.infer(TensorType(F32, (s0, 4)), TensorType(F32, (4, s1)))
    assert t.shape == (s0, s1)
    t = op.infer(TensorType(F32, (s1, 1, s0, 4)), TensorType(F32, (5, 4, 2)))
    assert t.shape == (s1, 5, s0, 2)
    t = op.infer(TensorType(F32, (s0,)), TensorType(F32, (3, s0, 2)))
    assert t.shape == (3, 2)
    t = op.infer(TensorType(F32, (2, s0 + 1)), TensorType(F32, (s0 + 1,)))
    assert t.shape == (2,)


@pytest.mark.parametrize(
    "ta,tb",
    [
        ((F32, (3, 4)), (F32, (5, 2))),
        ((F32, (3, 4)), (F64, (4, 2))),
        ((DType.bool, (3, 4)), (DType.bool, (4, 2))),
        ((F32, ()), (F32, (4, 2))),
        ((F32, (2, 3, 4)), (F32, (3, 4, 2))),
        ((F32, (3, s0)), (F32, (s1, 2))),
    ],
)
def test_matmul_rejects(ta, tb):
    with pytest.raises(IRTypeError, match="^matmul"):
        Matmul().infer(TensorType(*ta), TensorType(*tb))


# -- linear ---------------------------------------------------------------------------------


@pytest.mark.parametrize("xs", [(5,), (2, 3, 5), (1, 5), (0, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(xs, bias):
    x, w, b = rand(*xs), rand(7, 5), rand(7)
    arrays = [x, w, b] if bias else [x, w]
    want = F.linear(*(torch.from_numpy(a) for a in arrays))
    check_torch(Linear(), arrays, want)


def test_linear_symbolic_and_rejects():
    t = Linear().infer(
        TensorType(F32, (s0, s1, 8)), TensorType(F32, (16, 8)), TensorType(F32, (16,))
    )
    assert t.shape == (s0, s1, 16)
    bad = [
        ((F32, (2, 8)), (F32, (16, 7)), None),
        ((F32, (2, 8)), (F32, (16, 8)), (F32, (8,))),
        ((F32, (2, 8)), (F32, (8,)), None),
        ((F32, (2, 8)), (F64, (16, 8)), None),
        ((F32, (2, s0)), (F32, (16, s1)), None),
    ]
    for tx, tw, tb in bad:
        with pytest.raises(IRTypeError, match="^linear"):
            Linear().infer(TensorType(*tx), TensorType(*tw), tb and TensorType(*tb))


# -- einsum ---------------------------------------------------------------------------------

EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 1)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij->ji", [(2, 3)]),
    ("i,j->ij", [(3,), (1,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("...i->...", [(2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 4), (2, 3, 6, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i...,i...", [(2, 3), (2, 1)]),
    ("b a, A b", [(2, 3), (4, 2)]),
    ("ij->", [(3, 0)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUMS)
def test_einsum_matches_numpy_and_torch(eq, shapes):
    xs = [rand(*s) for s in shapes]
    want = np.einsum(eq, *(x.astype(np.float64) for x in xs))
    check_torch(Einsum(equation=eq), xs, torch.from_numpy(np.asarray(want, np.float32)))
    if "..." not in eq and " " not in eq:
        check_torch(Einsum(equation=eq), xs, torch.einsum(eq, *(torch.from_numpy(x) for x in xs)))


def test_einsum_symbolic_shapes():
    t = Einsum(equation="bhqd,bhkd->bhqk").infer(
        TensorType(F32, (s0, 8, s1, 64)), TensorType(F32, (s0, 8, s1 + 1, 64))
    )
    assert t.shape[:3] == (s0, 8, s1) and dim_eq(t.shape[3], s1 + 1)
    t = Einsum(equation="...d,d").infer(TensorType(F32, (s0, 1, 4)), TensorType(F32, (4,)))
    assert t.shape == (s0, 1)


@pytest.mark.parametrize(
    "eq,shapes",
    [
        ("ij,jk->ik", [(3, 4), (5, 6)]),
        ("ij,jk->ik", [(3, 4)]),
        ("ij->k", [(3, 4)]),
        ("ij->ii", [(3, 3)]),
        ("i1->i", [(3, 1)]),
        ("ijk->i", [(3, 4)]),
        ("i->i", [(3, 4)]),
        ("...i,...i->i", [(2, 3), (4, 3)]),
        ("...i->i", [(2, 3)]),
        ("i->...i", [(3,)]),
        ("......i->i", [(2, 3)]),
    ],
)
def test_einsum_rejects(eq, shapes):
    with pytest.raises(IRTypeError, match="^einsum"):
        Einsum(equation=eq).infer(*(TensorType(F32, s) for s in shapes))


def test_einsum_rejects_symbol_mismatch_and_dtypes():
    with pytest.raises(IRTypeError, match="^einsum"):
        Einsum(equation="ij,jk").infer(TensorType(F32, (2, s0)), TensorType(F32, (s1, 2)))
    with pytest.raises(IRTypeError, match="^einsum"):
        Einsum(equation="ij,jk").infer(TensorType(F32, (2, 3)), TensorType(F64, (3, 2)))


def test_linalg_case():
    check_case("linalg.lmc", ({"s0": 4, "s1": 2},))
