"""Elementwise ops: unary math, binary arithmetic with numpy broadcasting, comparisons, logic,
predicates, where, clip and cast. Unary math lives in `unary.py`, activations in
`activation.py`.

Conventions shared by the family (the references below are the spec):
- f16 is computed in f32 and rounded once to f16; f32 and f64 compute in their own precision.
- bf16 values live in f32 storage; ops compute on them in f32 and do not re-round (only `cast`
  rounds to bf16).
- Integer arithmetic wraps modulo 2**bits like C/numpy; i4/u4 are storage types: arithmetic
  rejects them, while cast, comparisons, bitwise ops, where and identity accept them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType, round_to_bf16
from ..errors import require
from ..op import Op, register
from ..shapes import broadcast_shapes
from ..types import TensorType

# Dtype kinds an op may accept, and how error messages name them.
KINDS: dict[str, str] = {
    "any": "any",
    "float": "a float",
    "number": "a numeric (float or 8+ bit integer)",
    "int_bool": "an integer or bool",
    "bool": "a bool",
}


def dtype_in(kind: str, dt: DType) -> bool:
    """Whether dtype `dt` belongs to the kind `kind` (a key of KINDS)."""
    if kind == "float":
        return dt.is_float
    if kind == "number":
        return dt != DType.bool and dt.bits >= 8
    if kind == "int_bool":
        return dt.is_int or dt == DType.bool
    if kind == "bool":
        return dt == DType.bool
    return kind == "any"


def require_kind(op: str, kind: str, t: TensorType) -> None:
    require(dtype_in(kind, t.dtype), f"{op}: expected {KINDS[kind]} input, got {t}")


def opmath(x: np.ndarray) -> np.ndarray:
    """The array to compute on: f16 widened to f32 (rounded back once by the caller)."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


@dataclass(frozen=True)
class Unary(Op):
    """Base of unary elementwise ops: y = fn(x, **attributes), same shape as x.

    A subclass sets `name`, a docstring and `fn` (a named function or numpy ufunc); `allowed`
    names the accepted dtype kind, `out_dtype` a fixed result dtype (None: the input's).
    """

    fn: ClassVar[Callable[..., np.ndarray]]
    allowed: ClassVar[str] = "float"
    out_dtype: ClassVar[DType | None] = None

    def check_attrs(self) -> None:
        """Reject bad attribute values with IRTypeError (override where attributes exist)."""

    def infer(self, x: TensorType) -> TensorType:
        require_kind(self.name, self.allowed, x)
        self.check_attrs()
        return x if self.out_dtype is None else x.with_dtype(self.out_dtype)

    def ref(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # overflow to inf and NaN results are defined by IEEE
            out = np.asarray(type(self).fn(opmath(x), **self.attrs()))
        return out.astype(self.out_dtype.np if self.out_dtype else x.dtype, copy=False)


@dataclass(frozen=True)
class Binary(Op):
    """Base of binary elementwise ops: y = fn(a, b, **attributes) with numpy broadcasting.

    Both operands have one dtype (frontends insert casts); `allowed` names the accepted kind.
    """

    fn: ClassVar[Callable[..., np.ndarray]]
    out_dtype: ClassVar[DType | None] = None  # None: same as the operands
    allowed: ClassVar[str] = "any"

    def check_attrs(self) -> None:
        """Reject bad attribute values with IRTypeError (override where attributes exist)."""

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        require(a.dtype == b.dtype, f"{self.name}: operand dtypes differ ({a} vs {b})")
        require_kind(self.name, self.allowed, a)
        self.check_attrs()
        shape = broadcast_shapes(a.shape, b.shape)
        require(shape is not None, f"{self.name}: shapes {a} and {b} do not broadcast")
        return TensorType(self.out_dtype or a.dtype, shape)  # type: ignore[arg-type]

    def ref(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.asarray(type(self).fn(opmath(a), opmath(b), **self.attrs()))
        return out.astype(self.out_dtype.np if self.out_dtype else a.dtype, copy=False)


@register
@dataclass(frozen=True)
class Identity(Unary):
    """y = x (any dtype)."""

    name: ClassVar[str] = "identity"
    allowed: ClassVar[str] = "any"
    fn = staticmethod(np.copy)


# -- predicates ----------------------------------------------------------------------------


def _isinf(x: np.ndarray, detect_positive: bool, detect_negative: bool) -> np.ndarray:
    return ((x == np.inf) & detect_positive) | ((x == -np.inf) & detect_negative)


@register
@dataclass(frozen=True)
class Isnan(Unary):
    """y = (x is NaN), bool."""

    name: ClassVar[str] = "isnan"
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.isnan)


@register
@dataclass(frozen=True)
class Isinf(Unary):
    """y = (x == +inf and detect_positive) or (x == -inf and detect_negative), bool."""

    name: ClassVar[str] = "isinf"
    out_dtype: ClassVar[DType | None] = DType.bool
    detect_positive: bool = True
    detect_negative: bool = True
    fn = staticmethod(_isinf)


@register
@dataclass(frozen=True)
class LogicalNot(Unary):
    """y = not x, bool in and out."""

    name: ClassVar[str] = "logical_not"
    allowed: ClassVar[str] = "bool"
    fn = staticmethod(np.logical_not)


# -- clip and cast -------------------------------------------------------------------------


def _int_bound(v: float | None, up: bool, info: np.iinfo) -> int | None:
    """A float bound for an integer tensor: rounded inward (ceil for min, floor for max)."""
    if v is None:
        return None
    if math.isinf(v):
        return int(info.min) if v < 0 else int(info.max)
    return min(max(math.ceil(v) if up else math.floor(v), int(info.min)), int(info.max))


def _clip(x: np.ndarray, min: float | None, max: float | None) -> np.ndarray:
    lo, hi = min, max
    if x.dtype.kind in "iu":
        lo, hi = _int_bound(lo, True, np.iinfo(x.dtype)), _int_bound(hi, False, np.iinfo(x.dtype))
    out = x if lo is None else np.maximum(x, np.asarray(lo, dtype=x.dtype))
    return out if hi is None else np.minimum(out, np.asarray(hi, dtype=x.dtype))


@register
@dataclass(frozen=True)
class Clip(Unary):
    """y = minimum(maximum(x, min), max); a None bound is absent; min > max gives max.

    NaN in x stays NaN. For integer x the bounds round inward (ceil(min), floor(max)).
    """

    name: ClassVar[str] = "clip"
    allowed: ClassVar[str] = "number"
    min: float | None = None
    max: float | None = None
    fn = staticmethod(_clip)

    def check_attrs(self) -> None:
        for v in (self.min, self.max):
            require(v is None or not math.isnan(v), f"clip: bounds must not be NaN, got {v}")


def _int_range(dt: DType) -> tuple[int, int]:
    if dt == DType.i4:
        return -8, 7
    if dt == DType.u4:
        return 0, 15
    info = np.iinfo(dt.np)
    return int(info.min), int(info.max)


def _float_to_int(x: np.ndarray, dt: DType) -> np.ndarray:
    lo, hi = _int_range(dt)
    t = np.trunc(x.astype(np.float64))
    big = t >= hi  # compared in f64: exact for every bound below 2**53, and 2**63 - 1 -> 2**63
    safe = np.where(np.isnan(t) | big, 0.0, np.maximum(t, lo))
    return np.where(big, hi, safe.astype(np.int64)).astype(dt.np)


def _wrap_int(x: np.ndarray, dt: DType) -> np.ndarray:
    v = x.astype(np.int64)
    if dt == DType.i4:
        return (((v + 8) & 15) - 8).astype(np.int8)
    if dt == DType.u4:
        return (v & 15).astype(np.uint8)
    return v.astype(dt.np)


@register
@dataclass(frozen=True)
class Cast(Op):
    """y = x converted to `dtype` (any dtype to any dtype).

    - to bool: x != 0 (NaN gives true).
    - float to int (i4/u4 included): truncate toward zero, then saturate to the target range;
      NaN gives 0. Out-of-range and NaN are undefined in C/ONNX/torch: backends may differ there.
    - int or bool to int: keep the low `bits` bits, two's complement (wraps like C and numpy;
      i4 takes values -8..7, u4 0..15).
    - to a float: round to nearest even (overflow gives inf); to bf16 through f32 then
      `round_to_bf16` (so f64 -> bf16 rounds twice, as torch does).
    """

    name: ClassVar[str] = "cast"
    dtype: DType = DType.f32

    def infer(self, x: TensorType) -> TensorType:
        return x.with_dtype(self.dtype)

    def ref(self, x: np.ndarray) -> np.ndarray:
        dt = self.dtype
        if dt == DType.bool:
            return np.asarray(x != 0)
        if dt.is_int:
            return _float_to_int(x, dt) if x.dtype.kind == "f" else _wrap_int(x, dt)
        with np.errstate(over="ignore"):
            out = x.astype(dt.np)
        return round_to_bf16(out) if dt == DType.bf16 else out


# -- binary --------------------------------------------------------------------------------


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True division for floats; for integers the quotient truncated toward zero (x / 0 -> 0)."""
    if a.dtype.kind == "f":
        return np.true_divide(a, b)
    q = np.floor_divide(a, b)
    return q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0))).astype(a.dtype)


def _mod(a: np.ndarray, b: np.ndarray, fmod: bool) -> np.ndarray:
    return np.fmod(a, b) if fmod else np.remainder(a, b)


@register
@dataclass(frozen=True)
class Add(Binary):
    """y = a + b."""

    name: ClassVar[str] = "add"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.add)


@register
@dataclass(frozen=True)
class Sub(Binary):
    """y = a - b."""

    name: ClassVar[str] = "sub"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.subtract)


@register
@dataclass(frozen=True)
class Mul(Binary):
    """y = a * b."""

    name: ClassVar[str] = "mul"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.multiply)


@register
@dataclass(frozen=True)
class Div(Binary):
    """y = a / b; floats: true division; integers: truncated toward zero like C and ONNX.

    Integer division by zero gives 0 in the reference (undefined in C: do not rely on it).
    """

    name: ClassVar[str] = "div"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(_div)


@register
@dataclass(frozen=True)
class Pow(Binary):
    """y = a ** b for floats (NaN for a negative base with a non-integer exponent)."""

    name: ClassVar[str] = "pow"
    allowed: ClassVar[str] = "float"
    fn = staticmethod(np.power)


@register
@dataclass(frozen=True)
class Mod(Binary):
    """y = a - b * floor(a / b) (sign of b, Python and ONNX fmod=0) when fmod is false;
    y = a - b * trunc(a / b) (sign of a, C fmod) when fmod is true.

    Integer modulo by zero gives 0 in the reference; float modulo by zero gives NaN.
    """

    name: ClassVar[str] = "mod"
    allowed: ClassVar[str] = "number"
    fmod: bool = False
    fn = staticmethod(_mod)


@register
@dataclass(frozen=True)
class Maximum(Binary):
    """y = max(a, b); NaN in either operand gives NaN."""

    name: ClassVar[str] = "maximum"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.maximum)


@register
@dataclass(frozen=True)
class Minimum(Binary):
    """y = min(a, b); NaN in either operand gives NaN."""

    name: ClassVar[str] = "minimum"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.minimum)


@register
@dataclass(frozen=True)
class BitwiseAnd(Binary):
    """y = a & b, bit by bit (two's complement for signed integers), integers and bool."""

    name: ClassVar[str] = "bitwise_and"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "int_bool"
    fn = staticmethod(np.bitwise_and)


@register
@dataclass(frozen=True)
class BitwiseOr(Binary):
    """y = a | b, bit by bit (two's complement for signed integers), integers and bool."""

    name: ClassVar[str] = "bitwise_or"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "int_bool"
    fn = staticmethod(np.bitwise_or)


@register
@dataclass(frozen=True)
class BitwiseXor(Binary):
    """y = a ^ b, bit by bit (two's complement for signed integers), integers and bool."""

    name: ClassVar[str] = "bitwise_xor"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "int_bool"
    fn = staticmethod(np.bitwise_xor)


@register
@dataclass(frozen=True)
class LogicalAnd(Binary):
    """y = a and b, bool."""

    name: ClassVar[str] = "logical_and"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "bool"
    fn = staticmethod(np.logical_and)


@register
@dataclass(frozen=True)
class LogicalOr(Binary):
    """y = a or b, bool."""

    name: ClassVar[str] = "logical_or"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "bool"
    fn = staticmethod(np.logical_or)


@register
@dataclass(frozen=True)
class LogicalXor(Binary):
    """y = a != b, bool."""

    name: ClassVar[str] = "logical_xor"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "bool"
    fn = staticmethod(np.logical_xor)


@register
@dataclass(frozen=True)
class Equal(Binary):
    """y = (a == b), bool (NaN equals nothing)."""

    name: ClassVar[str] = "equal"
    commutative: ClassVar[bool] = True
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.equal)


@register
@dataclass(frozen=True)
class NotEqual(Binary):
    """y = (a != b), bool (true where either is NaN)."""

    name: ClassVar[str] = "not_equal"
    commutative: ClassVar[bool] = True
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.not_equal)


@register
@dataclass(frozen=True)
class Less(Binary):
    """y = (a < b), bool (false where either is NaN)."""

    name: ClassVar[str] = "less"
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.less)


@register
@dataclass(frozen=True)
class LessEqual(Binary):
    """y = (a <= b), bool (false where either is NaN)."""

    name: ClassVar[str] = "less_equal"
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.less_equal)


@register
@dataclass(frozen=True)
class Greater(Binary):
    """y = (a > b), bool (false where either is NaN)."""

    name: ClassVar[str] = "greater"
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.greater)


@register
@dataclass(frozen=True)
class GreaterEqual(Binary):
    """y = (a >= b), bool (false where either is NaN)."""

    name: ClassVar[str] = "greater_equal"
    out_dtype: ClassVar[DType | None] = DType.bool
    fn = staticmethod(np.greater_equal)


@register
@dataclass(frozen=True)
class Where(Op):
    """y = a where cond else b; cond is bool, a and b share a dtype; all three broadcast."""

    name: ClassVar[str] = "where"

    def infer(self, cond: TensorType, a: TensorType, b: TensorType) -> TensorType:
        require(cond.dtype == DType.bool, f"where: condition must be bool, got {cond}")
        require(a.dtype == b.dtype, f"where: branch dtypes differ ({a} vs {b})")
        shape = broadcast_shapes(cond.shape, a.shape, b.shape)
        require(shape is not None, f"where: shapes {cond}, {a} and {b} do not broadcast")
        return TensorType(a.dtype, shape)  # type: ignore[arg-type]

    def ref(self, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(np.where(cond, a, b)).astype(a.dtype, copy=False)
