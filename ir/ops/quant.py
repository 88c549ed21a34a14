"""Quantization ops: ONNX-style quantize / dequantize, quantized linears (int4 / int8
weight-only, int8 weights x int8 activations) and matmul_integer (ONNX MatMulInteger, the C
backends' int8 GEMM). The references are the spec kernels follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import require
from ..op import Op, register
from ..shapes import Dim, ceil_div, dim_eq
from ..types import TensorType

# Integer ranges of the storage types quantize saturates to.
QUANT_RANGES: dict[DType, tuple[int, int]] = {
    DType.i4: (-8, 7),
    DType.u4: (0, 15),
    DType.i8: (-128, 127),
    DType.u8: (0, 255),
    DType.i16: (-32768, 32767),
    DType.u16: (0, 65535),
}
# dequantize also reads i32 (ONNX's quantized biases).
DEQUANT_DTYPES = frozenset(QUANT_RANGES) | {DType.i32}
# Activation dtypes the quantized linears take (they compute in f32).
LINEAR_X_DTYPES = frozenset({DType.f32, DType.f16, DType.bf16})


# -- int4 packing (two codes per byte, low nibble = even column) ----------------------------
def pack_int4(codes: np.ndarray) -> np.ndarray:
    """u8 [..., n] codes in 0..15 -> u8 [..., ceil(n / 2)]: byte j holds code 2j in its low
    nibble and code 2j + 1 in its high nibble (0 when n is odd)."""
    c = np.asarray(codes).astype(np.uint8)
    if c.shape[-1] % 2:
        c = np.concatenate([c, np.zeros(c.shape[:-1] + (1,), np.uint8)], axis=-1)
    return (c[..., 0::2] & 15) | ((c[..., 1::2] & 15) << 4)


def unpack_int4(packed: np.ndarray, n: int) -> np.ndarray:
    """The inverse of `pack_int4`: u8 [..., ceil(n / 2)] -> u8 [..., n] codes in 0..15."""
    p = np.asarray(packed, dtype=np.uint8)
    out = np.empty(p.shape[:-1] + (2 * p.shape[-1],), np.uint8)
    out[..., 0::2] = p & 15
    out[..., 1::2] = p >> 4
    return out[..., :n]


def group_count(n: Dim, group: int) -> Dim:
    """Groups along n columns: ceil(n / group); group 0 means one group spanning the row."""
    return 1 if group == 0 else ceil_div(n, group)


def expand_groups(p: np.ndarray, n: int, group: int) -> np.ndarray:
    """Per-group parameters [out, groups] repeated to per-column [out, n]."""
    return p if group == 0 else np.repeat(p, group, axis=1)[:, :n]


# -- quantize / dequantize -------------------------------------------------------------------
def _param_shape(op: str, x: TensorType, axis: int | None, block: int) -> tuple[Dim, ...]:
    """The shape scale / zero point must have for x: [] per tensor, [x.shape[axis]] per axis,
    x.shape with the axis dim replaced by ceil(dim / block) when blocked."""
    require(block >= 0, f"{op}: block must be >= 0, got {block}")
    if axis is None:
        require(block == 0, f"{op}: blocked quantization (block={block}) needs an axis")
        return ()
    require(-x.rank <= axis < x.rank, f"{op}: axis {axis} out of range for {x}")
    ax = axis % x.rank
    if block == 0:
        return (x.shape[ax],)
    return x.shape[:ax] + (ceil_div(x.shape[ax], block),) + x.shape[ax + 1 :]


def _check_param(op: str, what: str, p: TensorType, want: tuple[Dim, ...], x: TensorType) -> None:
    ok = p.rank == len(want) and all(dim_eq(a, b) for a, b in zip(p.shape, want))
    require(
        ok, f"{op}: {what} must have shape [{', '.join(map(str, want))}] for input {x}, got {p}"
    )


def _expand_param(p: np.ndarray, shape: tuple[int, ...], axis: int | None, block: int):
    """A scale / zero point made broadcastable to an array of `shape`."""
    if axis is None:
        return p
    ax = axis % len(shape)
    if block == 0:
        view = [1] * len(shape)
        view[ax] = p.shape[0]
        return p.reshape(view)
    return np.take(p, np.arange(shape[ax]) // block, axis=ax)


@register
@dataclass(frozen=True)
class Quantize(Op):
    """q = saturate(round_half_to_even(x / scale) + zero_point), stored as `dtype`
    (ONNX QuantizeLinear).

    axis None: per tensor, scale and zero_point are scalars. axis set, block 0: per axis,
    scale is 1-D of length x.shape[axis]. block > 0: blocked along axis, scale has x's shape
    with that dim replaced by ceil(dim / block); element i uses scale[i // block]. x / scale
    is computed in numpy's promoted dtype of the two (f16 / f16 stays f16, as ONNX does);
    saturation clips to dtype's range (i4 -8..7, u4 0..15, i8, u8, i16, u16); NaN becomes 0
    before the zero point is added. zero_point (dtype `dtype`) absent means 0."""

    name: ClassVar[str] = "quantize"
    axis: int | None = None
    dtype: DType = DType.i8
    block: int = 0

    def infer(
        self, x: TensorType, scale: TensorType, zero_point: TensorType | None = None
    ) -> TensorType:
        require(
            self.dtype in QUANT_RANGES,
            f"quantize: dtype must be one of {sorted(d.value for d in QUANT_RANGES)}, "
            f"got {self.dtype}",
        )
        require(x.dtype.is_float, f"quantize: input must be float, got {x}")
        require(scale.dtype.is_float, f"quantize: scale must be float, got {scale}")
        want = _param_shape(self.name, x, self.axis, self.block)
        _check_param(self.name, "scale", scale, want, x)
        if zero_point is not None:
            require(
                zero_point.dtype == self.dtype,
                f"quantize: zero_point must be {self.dtype}, got {zero_point}",
            )
            _check_param(self.name, "zero_point", zero_point, want, x)
        return x.with_dtype(self.dtype)

    def ref(
        self, x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None
    ) -> np.ndarray:
        s = _expand_param(scale, x.shape, self.axis, self.block)
        q = np.nan_to_num(np.rint(x / s), nan=0.0).astype(np.float64)
        if zero_point is not None:
            q = q + _expand_param(zero_point, x.shape, self.axis, self.block)
        lo, hi = QUANT_RANGES[self.dtype]
        return np.clip(q, lo, hi).astype(self.dtype.np)


@register
@dataclass(frozen=True)
class Dequantize(Op):
    """y = (q - zero_point) * scale, with scale's dtype (ONNX DequantizeLinear).

    axis / block as for `quantize`. q - zero_point is exact in f32 (f64 for i32 codes); the
    product is computed in f32 (f64 when scale is f64 or q is i32) and rounded once to
    scale's dtype. zero_point (q's dtype) absent means 0."""

    name: ClassVar[str] = "dequantize"
    axis: int | None = None
    block: int = 0

    def infer(
        self, q: TensorType, scale: TensorType, zero_point: TensorType | None = None
    ) -> TensorType:
        require(
            q.dtype in DEQUANT_DTYPES,
            f"dequantize: input must be one of {sorted(d.value for d in DEQUANT_DTYPES)}, got {q}",
        )
        require(scale.dtype.is_float, f"dequantize: scale must be float, got {scale}")
        want = _param_shape(self.name, q, self.axis, self.block)
        _check_param(self.name, "scale", scale, want, q)
        if zero_point is not None:
            require(
                zero_point.dtype == q.dtype,
                f"dequantize: zero_point must be {q.dtype} like the input, got {zero_point}",
            )
            _check_param(self.name, "zero_point", zero_point, want, q)
        return q.with_dtype(scale.dtype)

    def ref(
        self, q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None
    ) -> np.ndarray:
        wide = q.dtype == np.int32 or scale.dtype == np.float64
        acc = np.float64 if wide else np.float32
        d = q.astype(acc)
        if zero_point is not None:
            d = d - _expand_param(zero_point, q.shape, self.axis, self.block).astype(acc)
        s = _expand_param(scale, q.shape, self.axis, self.block).astype(acc)
        return (d * s).astype(scale.dtype)


# -- quantized linears -----------------------------------------------------------------------
def _check_linear_x(op: str, x: TensorType) -> Dim:
    require(x.dtype in LINEAR_X_DTYPES, f"{op}: input must be f32, f16 or bf16, got {x}")
    require(x.rank >= 1, f"{op}: input needs rank >= 1, got {x}")
    return x.shape[-1]


def _check_bias(op: str, bias: TensorType | None, x: TensorType, out: Dim) -> None:
    if bias is not None:
        require(
            bias.dtype == x.dtype and bias.rank == 1 and dim_eq(bias.shape[0], out),
            f"{op}: bias must be {x.dtype}[{out}], got {bias}",
        )


def _is_float(t) -> bool:
    return t.dtype.is_float if isinstance(t, TensorType) else t.dtype.kind == "f"


def split_zeros_bias(zeros, bias):
    """Optional operands after the scales are told apart by dtype: u8 = zeros, float = bias
    (a symmetric linear with a bias reads `linear_w4(x, codes, scales, bias)`)."""
    if zeros is not None and bias is None and _is_float(zeros):
        return None, zeros
    return zeros, bias


def _check_weight_params(op: str, scales, zeros, out: Dim, n_in: Dim, group: int) -> None:
    require(group >= 0, f"{op}: group must be >= 0 (0: one group per row), got {group}")
    groups = group_count(n_in, group)
    require(
        scales.dtype in (DType.f32, DType.f16)
        and scales.rank == 2
        and dim_eq(scales.shape[0], out)
        and dim_eq(scales.shape[1], groups),
        f"{op}: scales must be f32 or f16 [{out}, {groups}] (group={group}), got {scales}",
    )
    if zeros is not None:
        require(
            zeros.dtype == DType.u8
            and zeros.rank == 2
            and dim_eq(zeros.shape[0], out)
            and dim_eq(zeros.shape[1], groups),
            f"{op}: zeros must be u8[{out}, {groups}] (group={group}), got {zeros}",
        )


def dequant_weight(
    codes: np.ndarray,
    scales: np.ndarray,
    zeros: np.ndarray | None,
    implicit_zero: int,
    n: int,
    group: int,
) -> np.ndarray:
    """W[o, i] = (code[o, i] - zero[o, i // group]) * scale[o, i // group] in f32: the
    difference is exact, the product rounds once."""
    c = codes.astype(np.float32)
    z = (
        np.float32(implicit_zero)
        if zeros is None
        else expand_groups(zeros, n, group).astype(np.float32)
    )
    return (c - z) * expand_groups(scales, n, group).astype(np.float32)


def _affine(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = x @ w.T + b in f32 (leading dims of x flattened for BLAS), in x's dtype."""
    x2 = x.astype(np.float32).reshape(-1, x.shape[-1])
    y = np.matmul(x2, w.T).reshape(x.shape[:-1] + (w.shape[0],))
    if bias is not None:
        y = y + bias.astype(np.float32)
    return y.astype(x.dtype)


@register
@dataclass(frozen=True)
class LinearW4(Op):
    """y = x @ W.T + b with int4 weights, W[o, i] = (code[o, i] - zero[o, g]) * scale[o, g],
    g = i // group (group 0: one group per row).

    codes: u8 [out, ceil(in / 2)], two codes per byte, the low nibble holds the even input
    column. scales: f32 or f16 [out, groups]; zeros: u8 [out, groups] holding 0..15
    (asymmetric), absent for symmetric codes with the implicit zero 8. The optional operands
    after scales are told apart by dtype (u8 zeros, float bias). Order of the reference (what
    kernels compute): W dequantized in f32 (one rounding per element), y = x @ W.T accumulated
    in f32, + b in f32, rounded to x's dtype."""

    name: ClassVar[str] = "linear_w4"
    group: int = 128

    def infer(
        self,
        x: TensorType,
        codes: TensorType,
        scales: TensorType,
        zeros: TensorType | None = None,
        bias: TensorType | None = None,
    ) -> TensorType:
        zeros, bias = split_zeros_bias(zeros, bias)
        n_in = _check_linear_x(self.name, x)
        require(
            codes.dtype == DType.u8 and codes.rank == 2,
            f"linear_w4: codes must be u8[out, ceil(in / 2)], got {codes}",
        )
        require(
            dim_eq(codes.shape[1], ceil_div(n_in, 2)),
            f"linear_w4: codes {codes} hold {codes.shape[1]} bytes per row, input {x} "
            f"needs ceil({n_in} / 2)",
        )
        out = codes.shape[0]
        _check_weight_params(self.name, scales, zeros, out, n_in, self.group)
        _check_bias(self.name, bias, x, out)
        return TensorType(x.dtype, x.shape[:-1] + (out,))

    def ref(
        self,
        x: np.ndarray,
        codes: np.ndarray,
        scales: np.ndarray,
        zeros: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> np.ndarray:
        zeros, bias = split_zeros_bias(zeros, bias)
        n = x.shape[-1]
        w = dequant_weight(unpack_int4(codes, n), scales, zeros, 8, n, self.group)
        return _affine(x, w, bias)


@register
@dataclass(frozen=True)
class LinearW8(Op):
    """y = x @ W.T + b with int8 weights, W[o, i] = (code[o, i] - zero[o, g]) * scale[o, g],
    g = i // group (group 0, the default: one group per row, i.e. per output channel).

    codes: i8 [out, in] (symmetric, zero 0, no zeros operand) or u8 [out, in] with zeros
    u8 [out, groups] (asymmetric). scales: f32 or f16 [out, groups]. The optional operands
    after scales are told apart by dtype (u8 zeros, float bias). Reference order as for
    linear_w4: W in f32, f32 matmul accumulation, + b, rounded to x's dtype."""

    name: ClassVar[str] = "linear_w8"
    group: int = 0

    def infer(
        self,
        x: TensorType,
        codes: TensorType,
        scales: TensorType,
        zeros: TensorType | None = None,
        bias: TensorType | None = None,
    ) -> TensorType:
        zeros, bias = split_zeros_bias(zeros, bias)
        n_in = _check_linear_x(self.name, x)
        require(
            codes.dtype in (DType.i8, DType.u8)
            and codes.rank == 2
            and dim_eq(codes.shape[1], n_in),
            f"linear_w8: codes must be i8 or u8 [out, {n_in}] for input {x}, got {codes}",
        )
        require(
            (codes.dtype == DType.u8) == (zeros is not None),
            f"linear_w8: u8 codes need u8 zeros and i8 codes take none (got codes {codes}, "
            f"zeros {zeros})",
        )
        out = codes.shape[0]
        _check_weight_params(self.name, scales, zeros, out, n_in, self.group)
        _check_bias(self.name, bias, x, out)
        return TensorType(x.dtype, x.shape[:-1] + (out,))

    def ref(
        self,
        x: np.ndarray,
        codes: np.ndarray,
        scales: np.ndarray,
        zeros: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> np.ndarray:
        zeros, bias = split_zeros_bias(zeros, bias)
        n = x.shape[-1]
        w = dequant_weight(codes, scales, zeros, 0, n, self.group)
        return _affine(x, w, bias)


# |acc| <= in * 128 * 128 must fit int32.
W8A8_MAX_IN = (2**31 - 1) // (128 * 128)


def quantize_rows_i8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic per-row symmetric int8: sx = max|x_row| / 127 (f32), q = clip(rint(x / sx),
    -128, 127), and q = 0 for all-zero rows (sx = 0). Returns (q as i8, sx [..., 1])."""
    xf = x.astype(np.float32)
    sx = (np.max(np.abs(xf), axis=-1, keepdims=True) / np.float32(127)).astype(np.float32)
    return quantize_i8(xf, sx), sx


def quantize_i8(xf: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """q = clip(rint(x / sx), -128, 127) in f32 arithmetic; 0 where sx <= 0."""
    safe = np.where(sx > 0, sx, np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(xf / safe), -128, 127)
    return np.where(sx > 0, q, 0).astype(np.int8)


def int8_matmul(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """acc[r, o] = sum_i q[r, i] * w[o, i] exactly, as i32. Computed with f64 BLAS: every
    partial sum is an integer below 2**53, so nothing rounds."""
    acc = np.matmul(q.astype(np.float64), w.astype(np.float64).T)
    return acc.astype(np.int32)


def _split_bias_scale(bias, x_scale):
    """bias is 1-D, x_scale 0-D: a lone rank-0 operand after w_scales is the x_scale."""
    if bias is not None and x_scale is None and _rank(bias) == 0:
        return None, bias
    return bias, x_scale


def _rank(t) -> int:
    return t.rank if isinstance(t, TensorType) else t.ndim


@register
@dataclass(frozen=True)
class LinearW8a8(Op):
    """y = acc * sx * sw[o] + b with int8 weights and int8 activations, in f32.

    w_codes: i8 [out, in], symmetric per output channel with w_scales f32 [out].
    Activations: per_token (default) quantizes each row of x dynamically, sx = max|x_row| /
    127 (f32); else sx = x_scale, an f32 [] operand (static, from calibration). In both,
    q = clip(round_half_to_even(x / sx), -128, 127) with an f32 division, q = 0 when sx <= 0.
    acc[r, o] = sum_i q[r, i] * w[o, i] in int32, exact (in <= 131071). Then, per element in
    f32 and in this order: y = (float(acc) * sx) * sw[o] + b; rounded to x's dtype. The
    optional operands after w_scales are told apart by rank (bias [out], x_scale [])."""

    name: ClassVar[str] = "linear_w8a8"
    per_token: bool = True

    def infer(
        self,
        x: TensorType,
        w_codes: TensorType,
        w_scales: TensorType,
        bias: TensorType | None = None,
        x_scale: TensorType | None = None,
    ) -> TensorType:
        bias, x_scale = _split_bias_scale(bias, x_scale)
        n_in = _check_linear_x(self.name, x)
        require(
            w_codes.dtype == DType.i8 and w_codes.rank == 2 and dim_eq(w_codes.shape[1], n_in),
            f"linear_w8a8: w_codes must be i8[out, {n_in}] for input {x}, got {w_codes}",
        )
        require(
            not isinstance(n_in, int) or n_in <= W8A8_MAX_IN,
            f"linear_w8a8: {n_in} input features overflow the int32 accumulator "
            f"(at most {W8A8_MAX_IN})",
        )
        out = w_codes.shape[0]
        require(
            w_scales.dtype == DType.f32 and w_scales.rank == 1 and dim_eq(w_scales.shape[0], out),
            f"linear_w8a8: w_scales must be f32[{out}], got {w_scales}",
        )
        _check_bias(self.name, bias, x, out)
        if self.per_token:
            require(x_scale is None, "linear_w8a8: per_token quantization takes no x_scale")
        else:
            require(
                x_scale is not None and x_scale.dtype == DType.f32 and x_scale.rank == 0,
                f"linear_w8a8: static (per_token=false) needs an f32[] x_scale, got {x_scale}",
            )
        return TensorType(x.dtype, x.shape[:-1] + (out,))

    def ref(
        self,
        x: np.ndarray,
        w_codes: np.ndarray,
        w_scales: np.ndarray,
        bias: np.ndarray | None = None,
        x_scale: np.ndarray | None = None,
    ) -> np.ndarray:
        bias, x_scale = _split_bias_scale(bias, x_scale)
        x2 = x.reshape(-1, x.shape[-1])
        if self.per_token:
            q, sx = quantize_rows_i8(x2)
        else:
            sx = np.asarray(x_scale, np.float32)
            q = quantize_i8(x2.astype(np.float32), sx)
        acc = int8_matmul(q, w_codes)
        y = acc.astype(np.float32) * sx * w_scales.astype(np.float32)
        if bias is not None:
            y = y + bias.astype(np.float32)
        return y.reshape(x.shape[:-1] + (w_codes.shape[0],)).astype(x.dtype)


def _w4a8_operands(rest: tuple) -> tuple:
    """The optional operands of linear_w4a8 after scales, told apart by dtype and rank:
    zeros (u8), bias (float [out]), x_scale (float [])."""
    zeros = bias = x_scale = None
    for t in rest:
        if not _is_float(t):
            zeros = t
        elif _rank(t) == 0:
            x_scale = t
        else:
            bias = t
    return zeros, bias, x_scale


# |acc_g| <= group * 128 * 15 must fit int32 (group 0: the whole row).
W4A8_MAX_GROUP = (2**31 - 1) // (128 * 15)


@register
@dataclass(frozen=True)
class LinearW4a8(Op):
    """y = (sum_g float(acc_g) * sw[o, g]) * sx + b with int4 weights and int8 activations.

    codes, scales (f32) and zeros as linear_w4 (no zeros: the implicit zero 8), group as
    linear_w4. Activations as linear_w8a8: per_token (default) quantizes each row of x
    dynamically, sx = max|x_row| / 127 (f32); else sx = x_scale, an f32 [] operand (static);
    q = clip(round_half_to_even(x / sx), -128, 127) with an f32 division, 0 when sx <= 0.
    acc_g[r, o] = sum over group g's columns i of q[r, i] * (code[o, i] - zero[o, g]) in int32,
    exact. Then per element in f32: t = sum over g in ascending order of float(acc_g) *
    sw[o, g] (kernels may fuse each multiply-add: equal within f32 rounding), y = t * sx + b,
    rounded to x's dtype. Optional operands after scales, in this order when present: zeros
    (u8), bias (x's dtype, [out]), x_scale (f32 [])."""

    name: ClassVar[str] = "linear_w4a8"
    group: int = 128
    per_token: bool = True

    def infer(
        self, x: TensorType, codes: TensorType, scales: TensorType, *rest: TensorType
    ) -> TensorType:
        require(len(rest) <= 3, f"linear_w4a8: at most 6 operands, got {3 + len(rest)}")
        zeros, bias, x_scale = _w4a8_operands(rest)
        n_in = _check_linear_x(self.name, x)
        require(
            codes.dtype == DType.u8
            and codes.rank == 2
            and dim_eq(codes.shape[1], ceil_div(n_in, 2)),
            f"linear_w4a8: codes must be u8[out, ceil({n_in} / 2)] for input {x}, got {codes}",
        )
        span = n_in if self.group == 0 else self.group
        require(
            not isinstance(span, int) or span <= W4A8_MAX_GROUP,
            f"linear_w4a8: groups of {span} inputs overflow the int32 accumulator "
            f"(at most {W4A8_MAX_GROUP})",
        )
        out = codes.shape[0]
        _check_weight_params(self.name, scales, zeros, out, n_in, self.group)
        require(scales.dtype == DType.f32, f"linear_w4a8: scales must be f32, got {scales}")
        _check_bias(self.name, bias, x, out)
        if self.per_token:
            require(x_scale is None, "linear_w4a8: per_token quantization takes no x_scale")
        else:
            require(
                x_scale is not None and x_scale.dtype == DType.f32,
                f"linear_w4a8: static (per_token=false) needs an f32[] x_scale, got {x_scale}",
            )
        return TensorType(x.dtype, x.shape[:-1] + (out,))

    def ref(self, x: np.ndarray, codes: np.ndarray, scales: np.ndarray, *rest) -> np.ndarray:
        zeros, bias, x_scale = _w4a8_operands(rest)
        n = x.shape[-1]
        x2 = x.reshape(-1, n)
        if self.per_token:
            q, sx = quantize_rows_i8(x2)
        else:
            sx = np.asarray(x_scale, np.float32)
            q = quantize_i8(x2.astype(np.float32), sx)
        c = unpack_int4(codes, n).astype(np.int32)
        groups = scales.shape[1]
        t = np.zeros((x2.shape[0], codes.shape[0]), np.float32)
        for g in range(groups):
            sl = slice(0, n) if self.group == 0 else slice(g * self.group, (g + 1) * self.group)
            z = 8 if zeros is None else zeros[:, g : g + 1].astype(np.int32)
            acc = int8_matmul(q[:, sl], (c[:, sl] - z).astype(np.int8))
            t = t + acc.astype(np.float32) * scales[:, g].astype(np.float32)
        y = t * sx
        if bias is not None:
            y = y + bias.astype(np.float32)
        return y.reshape(x.shape[:-1] + (codes.shape[0],)).astype(x.dtype)


# -- matmul_integer (ONNX MatMulInteger; the C backends' int8 GEMM) ----------------------------
EIGHT_BIT = (DType.i8, DType.u8)


def _zero_point_ok(zp: TensorType, d: Dim) -> bool:
    """i32 [] or [1] (one value), or [d] (one per row / column)."""
    if zp.dtype != DType.i32:
        return False
    return zp.rank == 0 or (zp.rank == 1 and (dim_eq(zp.shape[0], 1) or dim_eq(zp.shape[0], d)))


@register
@dataclass(frozen=True)
class MatmulInteger(Op):
    """y[..., m, n] = sum_k (a[..., m, k] - za[m]) * (b[k, n] - zb[n]) in int32, wrapping like
    numpy's int32 matmul. a [..., M, K] and b [K, N] are i8 or u8 (independently); the zero
    points are i32, za [] / [1] (one value) or [M] (per row), zb [] / [1] or [N] (per column).
    """

    name: ClassVar[str] = "matmul_integer"

    def infer(
        self, a: TensorType, b: TensorType, a_zero_point: TensorType, b_zero_point: TensorType
    ) -> TensorType:
        require(
            a.dtype in EIGHT_BIT and b.dtype in EIGHT_BIT,
            f"matmul_integer: operands must be i8 or u8, got {a} @ {b}",
        )
        require(a.rank >= 2, f"matmul_integer: a needs rank >= 2 ([..., M, K]), got {a}")
        require(b.rank == 2, f"matmul_integer: b must be a [K, N] matrix, got {b}")
        require(
            dim_eq(a.shape[-1], b.shape[0]),
            f"matmul_integer: contraction dims differ: {a.shape[-1]} vs {b.shape[0]} ({a} @ {b})",
        )
        require(
            _zero_point_ok(a_zero_point, a.shape[-2]),
            f"matmul_integer: a_zero_point must be i32 [], [1] or [{a.shape[-2]}], "
            f"got {a_zero_point}",
        )
        require(
            _zero_point_ok(b_zero_point, b.shape[1]),
            f"matmul_integer: b_zero_point must be i32 [], [1] or [{b.shape[1]}], "
            f"got {b_zero_point}",
        )
        return TensorType(DType.i32, tuple(a.shape[:-1]) + (b.shape[1],))

    def ref(self, a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
        za = za.astype(np.int32).reshape(-1, 1)  # per row (or one value) against a's columns
        zb = zb.astype(np.int32).reshape(-1)
        ac = a.astype(np.int32) - za
        bc = b.astype(np.int32) - zb
        return np.asarray(np.matmul(ac, bc)).astype(np.int32)
