"""Elementwise, unary-math and activation ops: references against torch, shape rules, cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, parse_ir, print_graph, run, sym, verify
from lmc.ir.dtypes import from_numpy, round_to_bf16
from lmc.ir.errors import IRTypeError
from lmc.ir.op import Op
from lmc.ir.ops import activation as A
from lmc.ir.ops import elementwise as E
from lmc.ir.ops import unary as U
from lmc.ir.types import TensorType

from tests.util import assert_close, random_inputs, symbol_values, tolerance

CASES = Path(__file__).resolve().parents[2] / "cases"
F16, F32, F64, I8, I32, I64, U8, BOOL = (
    DType.f16, DType.f32, DType.f64, DType.i8, DType.i32, DType.i64, DType.u8, DType.bool,
)  # fmt: skip
FLOATS = (F32, F64, F16)
INTS = (I32, I8, I64)
SHAPES = [(3, 4), (1, 5, 1), (0, 3), (), (2, 3, 4)]
PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 1, 4), (3, 1)), ((0, 3), (1, 3)),
         ((), (2, 2)), ((5,), ())]  # fmt: skip
s0, s1 = sym("s0"), sym("s1")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def sample(shape, dt: DType, domain: str = "any", seed: int = 0) -> np.ndarray:
    """Random values of `dt` in the domain an op is defined on."""
    r = rng(seed)
    if dt == BOOL:
        return r.random(shape) < 0.5
    if dt.is_int:
        lo, hi = {"nonzero": (1, 9), "small": (-9, 10), "big": (-(10**5), 10**5)}.get(
            domain, (-50, 51)
        )
        v = r.integers(lo, hi, size=shape)
        v = v * r.choice([-1, 1], size=shape) if domain == "nonzero" and dt.is_signed else v
        return (np.abs(v) if not dt.is_signed else v).astype(dt.np)
    v = {
        "any": lambda: r.standard_normal(shape) * 2,
        "small": lambda: r.standard_normal(shape),
        "pos": lambda: np.abs(r.standard_normal(shape)) + 0.1,
        "unit": lambda: r.uniform(-0.95, 0.95, shape),
        "ge1": lambda: 1 + np.abs(r.standard_normal(shape)) * 2,
        "wide": lambda: r.standard_normal(shape) * 12,
        "halves": lambda: np.round(r.standard_normal(shape) * 6) / 2,  # many exact .5s
        "nonzero": lambda: (np.abs(r.standard_normal(shape)) + 0.25) * r.choice([-1, 1], shape),
    }[domain]()
    return np.asarray(v).astype(dt.np)


def tt(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, order="C"))  # keeps 0-d arrays 0-d


def check(op: Op, arrays, expected, dt: DType) -> None:
    """op.ref on arrays matches `expected` (within the torch tolerance for dt) and op.infer
    predicts the result's shape and dtype."""
    got = op.ref(*arrays)
    t = op.infer(*(TensorType(from_numpy(a.dtype), a.shape) for a in arrays))
    assert got.shape == t.concrete({}) and got.dtype == t.dtype.np, (op, got.shape, got.dtype)
    want = expected.numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert_close(got, want, *tolerance("torch", dt), name=f"{op} {dt}")


def torch_fn(fn, arrays):
    """fn over torch tensors; f16 falls back to f32 compute where torch has no CPU kernel."""
    try:
        return fn(*(tt(a) for a in arrays))
    except (RuntimeError, NotImplementedError):
        wide = [a.astype(np.float32) if a.dtype == np.float16 else a for a in arrays]
        return fn(*(tt(a) for a in wide)).half()


# -- unary math ---------------------------------------------------------------------------

UNARY = [
    (U.Neg(), torch.neg, "any"),
    (U.Abs(), torch.abs, "any"),
    (U.Exp(), torch.exp, "any"),
    (U.Log(), torch.log, "pos"),
    (U.Log1p(), torch.log1p, "pos"),
    (U.Expm1(), torch.expm1, "any"),
    (U.Sqrt(), torch.sqrt, "pos"),
    (U.Rsqrt(), torch.rsqrt, "pos"),
    (U.Reciprocal(), torch.reciprocal, "nonzero"),
    (U.Sin(), torch.sin, "any"),
    (U.Cos(), torch.cos, "any"),
    (U.Tan(), torch.tan, "unit"),
    (U.Asin(), torch.asin, "unit"),
    (U.Acos(), torch.acos, "unit"),
    (U.Atan(), torch.atan, "any"),
    (U.Sinh(), torch.sinh, "any"),
    (U.Cosh(), torch.cosh, "any"),
    (U.Tanh(), torch.tanh, "any"),
    (U.Asinh(), torch.asinh, "any"),
    (U.Acosh(), torch.acosh, "ge1"),
    (U.Atanh(), torch.atanh, "unit"),
    (U.Erf(), torch.erf, "any"),
    (U.Floor(), torch.floor, "halves"),
    (U.Ceil(), torch.ceil, "halves"),
    (U.Round(), torch.round, "halves"),
    (U.Sign(), torch.sign, "halves"),
]
NUMERIC_UNARY = [(op, fn) for op, fn, _ in UNARY if op.allowed == "number"]


@pytest.mark.parametrize("op,fn,domain", UNARY, ids=[u[0].name for u in UNARY])
@pytest.mark.parametrize("dt", FLOATS, ids=str)
def test_unary_matches_torch(op, fn, domain, dt):
    for i, shape in enumerate(SHAPES):
        x = sample(shape, dt, domain, seed=i)
        check(op, [x], torch_fn(fn, [x]), dt)


@pytest.mark.parametrize("op,fn", NUMERIC_UNARY, ids=[u[0].name for u in NUMERIC_UNARY])
@pytest.mark.parametrize("dt", (*INTS, U8), ids=str)
def test_numeric_unary_on_integers(op, fn, dt):
    for i, shape in enumerate(SHAPES):
        x = sample(shape, dt, seed=i)
        check(op, [x], fn(tt(x)), dt)


def test_round_is_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997], np.float32)
    assert U.Round().ref(x).tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0]


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    assert np.isnan(U.Sign().ref(x)[0]) and U.Sign().ref(x)[1:].tolist() == [1, -1, 0, 0]
    assert U.Exp().ref(np.array([1000.0], np.float32))[0] == np.inf
    assert U.Erf().ref(x[1:3]).tolist() == [1.0, -1.0]
    assert U.Neg().ref(np.array([-128], np.int8)).tolist() == [-128]  # wraps


@pytest.mark.parametrize("dt", [F32, I32, BOOL, DType.i4, DType.bf16], ids=str)
def test_identity(dt):
    x = np.arange(-8, 8).reshape(4, 4).astype(dt.np)
    x = x[:, :0] if dt == BOOL else x
    assert E.Identity().infer(TensorType(dt, [s0, 3])) == TensorType(dt, [s0, 3])
    y = E.Identity().ref(x)
    assert y.dtype == x.dtype and np.array_equal(y, x) and y is not x


# -- activations --------------------------------------------------------------------------


def _hardsigmoid_onnx(x):
    return torch.clamp(0.2 * x + 0.5, 0, 1)


ACTIVATIONS = [
    (A.Sigmoid(), torch.sigmoid),
    (A.Relu(), F.relu),
    (A.Gelu(), F.gelu),
    (A.Gelu(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    (A.Silu(), F.silu),
    (A.Mish(), F.mish),
    (A.Hardswish(), F.hardswish),
    (A.Hardsigmoid(), F.hardsigmoid),
    (A.Hardsigmoid(alpha=0.2), _hardsigmoid_onnx),
    (A.LeakyRelu(), F.leaky_relu),
    (A.LeakyRelu(alpha=0.2), lambda x: F.leaky_relu(x, 0.2)),
    (A.Elu(), F.elu),
    (A.Elu(alpha=0.5), lambda x: F.elu(x, 0.5)),
    (A.Selu(), F.selu),
    (A.Celu(), F.celu),
    (A.Celu(alpha=2.0), lambda x: F.celu(x, 2.0)),
    (A.Softplus(), F.softplus),
    (A.Softplus(beta=2.0, threshold=5.0), lambda x: F.softplus(x, 2.0, 5.0)),
    (A.Softplus(threshold=math.inf), lambda x: torch.log1p(torch.exp(x))),
    (A.Softsign(), F.softsign),
]


@pytest.mark.parametrize("op,fn", ACTIVATIONS, ids=[str(a[0]) for a in ACTIVATIONS])
@pytest.mark.parametrize("dt", FLOATS, ids=str)
def test_activation_matches_torch(op, fn, dt):
    for i, shape in enumerate(SHAPES):
        x = sample(shape, dt, "wide" if i % 2 else "any", seed=i)
        check(op, [x], torch_fn(fn, [x]), dt)


def test_sigmoid_and_softplus_do_not_overflow():
    x = np.array([-1000.0, 1000.0], np.float32)
    assert A.Sigmoid().ref(x).tolist() == [0.0, 1.0]
    assert A.Softplus(threshold=math.inf).ref(x).tolist() == [0.0, 1000.0]


@pytest.mark.parametrize("dt", INTS, ids=str)
def test_relu_on_integers(dt):
    x = sample((4, 5), dt)
    check(A.Relu(), [x], torch.relu(tt(x)), dt)


@pytest.mark.parametrize("dt", FLOATS, ids=str)
def test_prelu_matches_torch(dt):
    x = sample((2, 3, 4, 5), dt)
    w = sample((3,), dt, seed=1)
    want = torch_fn(F.prelu, [x, w])
    check(A.Prelu(), [x, w.reshape(3, 1, 1)], want, dt)
    check(A.Prelu(), [x, w[:1]], torch_fn(F.prelu, [x, w[:1]]), dt)  # one shared slope
    check(A.Prelu(), [x[:0], w.reshape(3, 1, 1)], torch_fn(F.prelu, [x[:0], w]), dt)


# -- predicates ---------------------------------------------------------------------------


def with_specials(shape, dt: DType, seed: int = 0) -> np.ndarray:
    x = sample(shape, dt, seed=seed)
    flat = x.reshape(-1)
    for k, v in zip(range(0, flat.size, 3), [np.nan, np.inf, -np.inf, 0.0, -0.0]):
        flat[k] = v
    return x


@pytest.mark.parametrize("dt", FLOATS, ids=str)
def test_isnan_isinf(dt):
    for i, shape in enumerate(SHAPES):
        x = with_specials(shape, dt, seed=i)
        check(E.Isnan(), [x], torch.isnan(tt(x)), BOOL)
        check(E.Isinf(), [x], torch.isinf(tt(x)), BOOL)
        check(E.Isinf(detect_negative=False), [x], torch.isposinf(tt(x)), BOOL)
        check(E.Isinf(detect_positive=False), [x], torch.isneginf(tt(x)), BOOL)
        check(
            E.Isinf(detect_positive=False, detect_negative=False),
            [x],
            np.zeros(x.shape, bool),
            BOOL,
        )


def test_logical_not():
    for i, shape in enumerate(SHAPES):
        x = sample(shape, BOOL, seed=i)
        check(E.LogicalNot(), [x], torch.logical_not(tt(x)), BOOL)


# -- binary -------------------------------------------------------------------------------


def _div_trunc(a, b):
    return torch.div(a, b, rounding_mode="trunc")


ARITH = [
    (E.Add(), torch.add, (*FLOATS, *INTS, U8), "any"),
    (E.Sub(), torch.sub, (*FLOATS, *INTS, U8), "any"),
    (E.Mul(), torch.mul, (*FLOATS, *INTS, U8), "small"),
    (E.Div(), torch.div, FLOATS, "nonzero"),
    (E.Div(), _div_trunc, (*INTS, U8), "nonzero"),
    (E.Pow(), torch.pow, FLOATS, "pos"),
    (E.Mod(), torch.remainder, (*FLOATS, *INTS, U8), "nonzero"),
    (E.Mod(fmod=True), torch.fmod, (*FLOATS, *INTS, U8), "nonzero"),
    (E.Maximum(), torch.maximum, (*FLOATS, *INTS, U8), "nan"),
    (E.Minimum(), torch.minimum, (*FLOATS, *INTS, U8), "nan"),
    (E.BitwiseAnd(), torch.bitwise_and, (*INTS, U8, BOOL), "any"),
    (E.BitwiseOr(), torch.bitwise_or, (*INTS, U8, BOOL), "any"),
    (E.BitwiseXor(), torch.bitwise_xor, (*INTS, U8, BOOL), "any"),
    (E.LogicalAnd(), torch.logical_and, (BOOL,), "any"),
    (E.LogicalOr(), torch.logical_or, (BOOL,), "any"),
    (E.LogicalXor(), torch.logical_xor, (BOOL,), "any"),
    (E.Equal(), torch.eq, (*FLOATS, I32, U8, BOOL), "nan"),
    (E.NotEqual(), torch.ne, (*FLOATS, I32, U8, BOOL), "nan"),
    (E.Less(), torch.lt, (*FLOATS, I32, U8), "nan"),
    (E.LessEqual(), torch.le, (*FLOATS, I32, U8), "nan"),
    (E.Greater(), torch.gt, (*FLOATS, I32, U8), "nan"),
    (E.GreaterEqual(), torch.ge, (*FLOATS, I32, U8), "nan"),
]
ARITH_CASES = [(op, fn, dt, dom) for op, fn, dts, dom in ARITH for dt in dts]


def operands(sa, sb, dt: DType, domain: str, seed: int):
    if domain == "nan":  # specials in both; ties between a and b for the comparisons
        a = with_specials(sa, dt, seed) if dt.is_float else sample(sa, dt, "small", seed)
        b = sample(sb, dt, "small" if dt.is_int else "halves", seed + 1)
        return a, b
    if domain == "pos":
        return sample(sa, dt, "pos", seed), sample(sb, dt, "any", seed + 1)
    a = sample(sa, dt, "small" if domain == "small" else "any", seed)
    return a, sample(sb, dt, domain, seed + 1)


@pytest.mark.parametrize(
    "op,fn,dt,domain", ARITH_CASES, ids=[f"{c[0]}-{c[2]}" for c in ARITH_CASES]
)
def test_binary_matches_torch(op, fn, dt, domain):
    for i, (sa, sb) in enumerate(PAIRS):
        a, b = operands(sa, sb, dt, domain, seed=i)
        out_dt = op.infer(TensorType(dt, sa), TensorType(dt, sb)).dtype
        check(op, [a, b], torch_fn(fn, [a, b]), out_dt)


def test_integer_division_truncates_and_mod_signs():
    a = np.array([7, -7, 7, -7, 5, 0], np.int32)
    b = np.array([2, 2, -2, -2, 0, 3], np.int32)
    assert E.Div().ref(a, b).tolist() == [3, -3, -3, 3, 0, 0]  # x / 0 -> 0 in the reference
    assert E.Mod().ref(a, b).tolist() == [1, 1, -1, -1, 0, 0]
    assert E.Mod(fmod=True).ref(a, b).tolist() == [1, -1, 1, -1, 0, 0]
    af, bf = np.array([-7.5, 7.5], np.float32), np.array([2.0, -2.0], np.float32)
    assert E.Mod().ref(af, bf).tolist() == [0.5, -0.5]
    assert E.Mod(fmod=True).ref(af, bf).tolist() == [-1.5, 1.5]


def test_where_matches_torch():
    shapes = [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((0, 1), (1, 2), (2,)),
              ((2, 1, 1), (3, 1), (1, 4))]  # fmt: skip
    for i, (sc, sa, sb) in enumerate(shapes):
        for dt in (F32, F16, I32, BOOL):
            c, a, b = sample(sc, BOOL, seed=i), sample(sa, dt, seed=i), sample(sb, dt, seed=i + 9)
            check(E.Where(), [c, a, b], torch.where(tt(c), tt(a), tt(b)), dt)


CLIPS = [(-0.5, 0.5), (None, 1.0), (-1.0, None), (None, None), (2.0, -2.0), (-math.inf, 0.25)]


def _clamp(lo, hi):
    def clamp(t: torch.Tensor) -> torch.Tensor:
        return t.clone() if lo is None and hi is None else torch.clamp(t, lo, hi)

    return clamp


@pytest.mark.parametrize("lo,hi", CLIPS)
@pytest.mark.parametrize("dt", FLOATS, ids=str)
def test_clip_floats_match_torch(lo, hi, dt):
    for i, shape in enumerate(SHAPES):
        x = with_specials(shape, dt, seed=i)  # NaN stays NaN, infs are clipped
        check(E.Clip(min=lo, max=hi), [x], torch_fn(_clamp(lo, hi), [x]), dt)


@pytest.mark.parametrize("dt", (I8, I32, I64), ids=str)
def test_clip_integers_round_bounds_inward(dt):
    x = sample((4, 6), dt)
    check(E.Clip(min=-1.5, max=2.5), [x], torch.clamp(tt(x), -1, 2), dt)
    check(E.Clip(min=-1e30, max=math.inf), [x], x, dt)
    check(E.Clip(min=None, max=-3.0), [x], torch.clamp(tt(x), max=-3), dt)


def test_clip_unsigned_bounds_saturate_into_range():
    x = np.array([0, 3, 200], np.uint8)
    assert E.Clip(min=-1.5, max=2.5).ref(x).tolist() == [0, 2, 2]
    assert E.Clip(max=-3.0).ref(x).tolist() == [0, 0, 0]
    assert E.Clip(min=1e9).ref(x).tolist() == [255, 255, 255]


# -- cast ---------------------------------------------------------------------------------

BF16 = DType.bf16
CASTS = [
    (F32, I32, "halves"), (F32, I8, "halves"), (F32, U8, "pos"), (F32, I64, "wide"),
    (F32, BOOL, "halves"), (F32, F16, "wide"), (F64, F32, "any"), (F32, BF16, "any"),
    (F64, BF16, "wide"), (F16, F32, "any"), (F16, I32, "wide"), (I32, F32, "any"),
    (I64, I8, "big"), (I32, U8, "big"), (BOOL, F32, "any"), (BOOL, I32, "any"),
    (I8, BOOL, "small"), (U8, I8, "big"), (I32, I64, "big"), (I8, F16, "big"),
    (I32, F16, "any"), (BF16, F32, "any"),
]  # fmt: skip
TORCH_DT = {F64: torch.float64, F32: torch.float32, F16: torch.float16, BF16: torch.bfloat16,
            I64: torch.int64, I32: torch.int32, I8: torch.int8, U8: torch.uint8,
            BOOL: torch.bool}  # fmt: skip


@pytest.mark.parametrize("src,dst,domain", CASTS, ids=[f"{a}-{b}" for a, b, _ in CASTS])
def test_cast_matches_torch(src, dst, domain):
    for i, shape in enumerate(SHAPES):
        x = sample(shape, src, domain, seed=i)
        if domain == "wide" and dst.is_int:
            x = (x * 4).astype(x.dtype)  # |x| up to ~150 truncated, inside i32/i64 range
        x = round_to_bf16(x) if src == BF16 else x
        xt = tt(x).to(torch.bfloat16) if src == BF16 else tt(x)
        want = xt.to(TORCH_DT[dst])
        want = want.float() if dst == BF16 else want
        op = E.Cast(dtype=dst)
        assert op.infer(TensorType(src, [s0, 2])) == TensorType(dst, [s0, 2])
        got = op.ref(x)
        assert got.dtype == dst.np and got.shape == x.shape
        assert_close(got, want.numpy(), 0, 0, name=f"cast {src}->{dst}")


def test_cast_float_to_int_saturates_and_nan_is_zero():
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 1e20, -2.9, 2.9], np.float32)
    assert E.Cast(dtype=I32).ref(x).tolist() == [0, 2**31 - 1, -(2**31), 2**31 - 1, -(2**31),
                                                 2**31 - 1, -2, 2]  # fmt: skip
    assert E.Cast(dtype=I64).ref(x).tolist()[1:3] == [2**63 - 1, -(2**63)]
    assert E.Cast(dtype=U8).ref(x).tolist() == [0, 255, 0, 255, 0, 255, 0, 2]
    assert E.Cast(dtype=BOOL).ref(x).tolist() == [True] * 8


def test_cast_4bit():
    i = np.arange(-9, 10, dtype=np.int32)
    assert E.Cast(dtype=DType.i4).ref(i).tolist() == [7] + list(range(-8, 8)) + [-8, -7]
    assert E.Cast(dtype=DType.u4).ref(i).tolist() == [v & 15 for v in range(-9, 10)]
    f = np.array([-9.5, -8.7, -1.5, 0.5, 6.9, 7.9, 20.0, np.nan], np.float32)
    assert E.Cast(dtype=DType.i4).ref(f).tolist() == [-8, -8, -1, 0, 6, 7, 7, 0]
    assert E.Cast(dtype=DType.u4).ref(f).tolist() == [0, 0, 0, 0, 6, 7, 15, 0]
    assert E.Cast(dtype=DType.i4).ref(f).dtype == np.int8
    back = E.Cast(dtype=F32).ref(np.array([-8, 7], np.int8))
    assert back.tolist() == [-8.0, 7.0]


def test_cast_to_bf16_rounds_to_nearest_even():
    x = np.array([1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-7 + 2**-9, 70000.0], np.float32)
    want = tt(x).to(torch.bfloat16).float().numpy()
    got = E.Cast(dtype=BF16).ref(x)
    assert got.dtype == np.float32 and got.tolist() == want.tolist()


# -- shape rules --------------------------------------------------------------------------


def test_infer_symbolic_shapes():
    t = TensorType
    assert E.Add().infer(t(F32, [s0, 1]), t(F32, [1, s1])) == t(F32, [s0, s1])
    assert E.Mul().infer(t(F32, [s0, 4]), t(F32, [4])) == t(F32, [s0, 4])
    assert E.Sub().infer(t(I32, [2 * s0, 1]), t(I32, [2 * s0, s1])) == t(I32, [2 * s0, s1])
    assert E.Less().infer(t(F16, [s0, 3]), t(F16, [])) == t(BOOL, [s0, 3])
    assert E.Where().infer(t(BOOL, [s0, 1]), t(F32, [1, s1]), t(F32, [])) == t(F32, [s0, s1])
    assert U.Exp().infer(t(F32, [s0, s1 + 1])) == t(F32, [s0, s1 + 1])
    assert E.Isnan().infer(t(F16, [s0, 3])) == t(BOOL, [s0, 3])
    assert A.Gelu().infer(t(F32, [s0])) == t(F32, [s0])
    assert A.Prelu().infer(t(F32, [s0, 3, 5]), t(F32, [3, 1])) == t(F32, [s0, 3, 5])
    assert E.Clip(min=0.0).infer(t(I8, [s0])) == t(I8, [s0])
    assert E.Cast(dtype=DType.u4).infer(t(F32, [s0, 2])) == t(DType.u4, [s0, 2])
    i4 = t(DType.i4, [s0, 2])  # 4-bit ints: no arithmetic, but bitwise ops and compares
    assert E.BitwiseXor().infer(i4, i4) == i4
    assert E.GreaterEqual().infer(i4, i4) == t(BOOL, [s0, 2])


REJECTS = [
    (E.Add(), [(F32, [3]), (F16, [3])]),  # dtypes differ
    (E.Add(), [(F32, [s0]), (F32, [s1])]),  # not provably equal
    (E.Add(), [(F32, [3, 4]), (F32, [4, 3])]),
    (E.Add(), [(BOOL, [3]), (BOOL, [3])]),
    (E.Add(), [(DType.i4, [3]), (DType.i4, [3])]),  # 4-bit ints are storage only
    (E.Div(), [(I32, [s0]), (I32, [s0 + 1])]),
    (E.Pow(), [(I32, [3]), (I32, [3])]),
    (E.BitwiseAnd(), [(F32, [3]), (F32, [3])]),
    (E.LogicalOr(), [(I8, [3]), (I8, [3])]),
    (E.Equal(), [(I32, [3]), (I64, [3])]),
    (E.Maximum(), [(BOOL, [2]), (BOOL, [2])]),
    (E.Where(), [(F32, [3]), (F32, [3]), (F32, [3])]),  # condition not bool
    (E.Where(), [(BOOL, [3]), (F32, [3]), (F16, [3])]),
    (E.Where(), [(BOOL, [2]), (F32, [3]), (F32, [3])]),
    (U.Exp(), [(I32, [3])]),
    (U.Neg(), [(BOOL, [3])]),
    (U.Sign(), [(DType.u4, [3])]),
    (E.Isnan(), [(I32, [3])]),
    (E.LogicalNot(), [(F32, [3])]),
    (A.Relu(), [(BOOL, [3])]),
    (A.Sigmoid(), [(I8, [3])]),
    (A.Gelu(approximate="erf"), [(F32, [3])]),
    (A.Celu(alpha=0.0), [(F32, [3])]),
    (A.Softplus(beta=0.0), [(F32, [3])]),
    (A.Prelu(), [(F32, [2, 3]), (F32, [2])]),
    (E.Clip(min=math.nan), [(F32, [3])]),
    (E.Clip(), [(BOOL, [3])]),
]


@pytest.mark.parametrize(
    "op,types", REJECTS, ids=[f"{r[0].name}-{i}" for i, r in enumerate(REJECTS)]
)
def test_infer_rejects(op, types):
    with pytest.raises(IRTypeError, match=op.name):
        op.infer(*(TensorType(dt, shape) for dt, shape in types))


# -- cases --------------------------------------------------------------------------------

CASE_FILES = ["unary.lmc", "binary.lmc", "activations.lmc"]


@pytest.mark.parametrize("name", CASE_FILES)
def test_case(name):
    """The case parses, verifies, prints back identically and interprets at two symbol values."""
    text = (CASES / name).read_text()
    g = parse_ir(text)
    verify(g)
    assert print_graph(g) == text
    envs = symbol_values(g)
    assert len(envs) >= 2
    for env in envs:
        outs = run(g, random_inputs(g, env))
        for v, o in zip(g.outputs, outs):
            assert o.shape == v.type.concrete(env) and o.dtype == v.type.dtype.np


def test_every_op_has_a_case():
    used = {n.op.name for f in CASE_FILES for n in parse_ir((CASES / f).read_text()).nodes}
    ops = {c.name for m in (E, U, A) for c in vars(m).values()
           if isinstance(c, type) and issubclass(c, Op) and c.__module__ == m.__name__
           and "name" in c.__dict__}  # fmt: skip
    assert ops - used == set()
