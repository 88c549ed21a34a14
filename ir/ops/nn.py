"""Neural-network ops: normalizations, softmax, attention, rotary embedding, embedding lookup.

Float references compute in at least f32 (f16/bf16 inputs widen) and cast back to the input
dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import InterpreterError, require
from ..op import Op, register
from ..shapes import Shape, broadcast_shapes, dim_eq, is_static, norm, shape_eq
from ..types import TensorType
from .linalg import compute_dtype, same_dtype


def norm_axis(op: str, axis: int, rank: int) -> int:
    """`axis` in 0..rank-1 (negative counts from the end), or IRTypeError naming `op`."""
    require(-rank <= axis < rank, f"{op}: axis {axis} out of range for rank {rank}")
    return axis % rank


def _fits(op: str, what: str, t: TensorType | None, shape: Shape) -> None:
    """Require `t` (if given) to broadcast to exactly `shape` without adding dims."""
    if t is None:
        return
    out = broadcast_shapes(t.shape, shape)
    require(
        t.rank <= len(shape) and out is not None and shape_eq(out, shape),
        f"{op}: {what} {t} does not broadcast to {list(shape)}",
    )


def _float_op(op: str, *ts: TensorType | None) -> DType:
    dt = same_dtype(op, *ts)
    require(dt.is_float, f"{op}: needs float operands, got {dt}")
    return dt


def _channel(op: str, x: TensorType, params: tuple[TensorType, ...], min_rank: int) -> None:
    """x is [N, C, ...] with rank >= min_rank; every param is [C]."""
    _float_op(op, x, *params)
    require(x.rank >= min_rank, f"{op}: input must be [N, C, ...] of rank >= {min_rank}, got {x}")
    for p in params:
        require(
            p.rank == 1 and dim_eq(p.shape[0], x.shape[1]),
            f"{op}: per-channel operand must be [{x.shape[1]}], got {p}",
        )


def _per_channel(p: np.ndarray, ndim: int, acc: np.dtype) -> np.ndarray:
    return p.astype(acc).reshape((1, -1) + (1,) * (ndim - 2))


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


# -- normalizations --------------------------------------------------------------------------


@register
@dataclass(frozen=True)
class LayerNorm(Op):
    """y = (x - mean) / sqrt(var + eps) * w + b, mean and (biased) var over dims axis..end
    (ONNX LayerNormalization); w and b broadcast to x.shape[axis:]."""

    name: ClassVar[str] = "layer_norm"
    axis: int = -1
    eps: float = 1e-5

    def infer(
        self, x: TensorType, w: TensorType | None = None, b: TensorType | None = None
    ) -> TensorType:
        _float_op(self.name, x, w, b)
        ax = norm_axis(self.name, self.axis, x.rank)
        _fits(self.name, "weight", w, x.shape[ax:])
        _fits(self.name, "bias", b, x.shape[ax:])
        return x

    def ref(
        self, x: np.ndarray, w: np.ndarray | None = None, b: np.ndarray | None = None
    ) -> np.ndarray:
        acc = compute_dtype(x.dtype)
        axes = tuple(range(self.axis % x.ndim, x.ndim))
        y = _standardize(x.astype(acc), axes, self.eps)
        y = y * w.astype(acc) if w is not None else y
        y = y + b.astype(acc) if b is not None else y
        return y.astype(x.dtype)


@register
@dataclass(frozen=True)
class RmsNorm(Op):
    """y = x / sqrt(mean(x^2) + eps) * w, the mean over dims axis..end; w broadcasts to
    x.shape[axis:]."""

    name: ClassVar[str] = "rms_norm"
    axis: int = -1
    eps: float = 1e-6

    def infer(self, x: TensorType, w: TensorType | None = None) -> TensorType:
        _float_op(self.name, x, w)
        ax = norm_axis(self.name, self.axis, x.rank)
        _fits(self.name, "weight", w, x.shape[ax:])
        return x

    def ref(self, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        acc = compute_dtype(x.dtype)
        axes = tuple(range(self.axis % x.ndim, x.ndim))
        xf = x.astype(acc)
        y = xf / np.sqrt(np.square(xf).mean(axis=axes, keepdims=True) + self.eps)
        return (y * w.astype(acc) if w is not None else y).astype(x.dtype)


@register
@dataclass(frozen=True)
class GroupNorm(Op):
    """x [N, C, ...] split into `groups` channel groups; each (n, group) is standardized over
    its channels and spatial dims, then y = x_hat * w[c] + b[c] (w, b are [C])."""

    name: ClassVar[str] = "group_norm"
    groups: int = 1
    eps: float = 1e-5

    def infer(self, x: TensorType, w: TensorType, b: TensorType) -> TensorType:
        _channel(self.name, x, (w, b), 2)
        c = x.shape[1]
        require(
            self.groups >= 1 and (self.groups == 1 or (is_static(c) and c % self.groups == 0)),
            f"group_norm: {c} channels not divisible by groups={self.groups}",
        )
        return x

    def ref(self, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x.copy()
        acc = compute_dtype(x.dtype)
        xg = x.astype(acc).reshape(x.shape[0], self.groups, -1)
        y = _standardize(xg, (-1,), self.eps).reshape(x.shape)
        return (y * _per_channel(w, x.ndim, acc) + _per_channel(b, x.ndim, acc)).astype(x.dtype)


@register
@dataclass(frozen=True)
class InstanceNorm(Op):
    """x [N, C, spatial...]: each (n, c) is standardized over its spatial dims, then
    y = x_hat * w[c] + b[c]."""

    name: ClassVar[str] = "instance_norm"
    eps: float = 1e-5

    def infer(self, x: TensorType, w: TensorType, b: TensorType) -> TensorType:
        _channel(self.name, x, (w, b), 3)
        return x

    def ref(self, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        acc = compute_dtype(x.dtype)
        y = _standardize(x.astype(acc), tuple(range(2, x.ndim)), self.eps)
        return (y * _per_channel(w, x.ndim, acc) + _per_channel(b, x.ndim, acc)).astype(x.dtype)


@register
@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference batch norm on x [N, C, ...]: y = (x - mean[c]) / sqrt(var[c] + eps) * w[c]
    + b[c]; operands in ONNX order (x, scale, bias, mean, var)."""

    name: ClassVar[str] = "batch_norm"
    eps: float = 1e-5

    def infer(
        self, x: TensorType, w: TensorType, b: TensorType, mean: TensorType, var: TensorType
    ) -> TensorType:
        _channel(self.name, x, (w, b, mean, var), 2)
        return x

    def ref(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray
    ) -> np.ndarray:
        acc, nd = compute_dtype(x.dtype), x.ndim
        inv = _per_channel(w, nd, acc) / np.sqrt(_per_channel(var, nd, acc) + self.eps)
        y = (x.astype(acc) - _per_channel(mean, nd, acc)) * inv + _per_channel(b, nd, acc)
        return y.astype(x.dtype)


# -- softmax ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SoftmaxBase(Op):
    """Shape rule of softmax-like ops: float input, a valid axis, same type out."""

    axis: int = -1

    def infer(self, x: TensorType) -> TensorType:
        require(x.dtype.is_float, f"{self.name}: needs a float input, got {x}")
        norm_axis(self.name, self.axis, x.rank)
        return x

    def _shifted(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x - max, log(sum(exp(x - max)))) along the axis, in the compute dtype."""
        xf = x.astype(compute_dtype(x.dtype))
        z = xf - xf.max(axis=self.axis, keepdims=True)
        return z, np.log(np.exp(z).sum(axis=self.axis, keepdims=True))


@register
@dataclass(frozen=True)
class Softmax(_SoftmaxBase):
    """y = exp(x - max(x)) / sum(exp(x - max(x))) along `axis` (numerically stable)."""

    name: ClassVar[str] = "softmax"

    def ref(self, x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x.copy()
        z, _ = self._shifted(x)
        e = np.exp(z)
        return (e / e.sum(axis=self.axis, keepdims=True)).astype(x.dtype)


@register
@dataclass(frozen=True)
class LogSoftmax(_SoftmaxBase):
    """y = x - max(x) - log(sum(exp(x - max(x)))) along `axis` (numerically stable)."""

    name: ClassVar[str] = "log_softmax"

    def ref(self, x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x.copy()
        z, lse = self._shifted(x)
        return (z - lse).astype(x.dtype)


# -- attention -------------------------------------------------------------------------------


@register
@dataclass(frozen=True)
class Attention(Op):
    """Scaled dot-product attention, torch sdpa layout: q [..., Hq, Sq, D], k [..., Hkv, Skv, D],
    v [..., Hkv, Skv, Dv] -> [..., Hq, Sq, Dv]; y = softmax(q k^T * scale + mask) v with
    scale = 1/sqrt(D) unless given. GQA: when Hkv divides Hq, kv head j serves q heads
    j*Hq/Hkv .. (j+1)*Hq/Hkv - 1 (torch enable_gqa / repeat_interleave). A bool mask keeps
    True entries, a float mask is added; both broadcast to [..., Hq, Sq, Skv]. causal keeps
    key j <= query i (torch is_causal: tril(diagonal=0), top-left aligned even when
    Sq != Skv) and may be combined with a mask. Rows with every key masked give 0."""

    name: ClassVar[str] = "attention"
    scale: float | None = None
    causal: bool = False

    def infer(
        self, q: TensorType, k: TensorType, v: TensorType, mask: TensorType | None = None
    ) -> TensorType:
        dt = _float_op(self.name, q, k, v)
        require(
            q.rank >= 2 and q.rank == k.rank == v.rank,
            f"attention: q, k, v need one rank >= 2, got {q}, {k}, {v}",
        )
        require(
            dim_eq(q.shape[-1], k.shape[-1]), f"attention: q {q} and k {k} differ in the head dim"
        )
        require(
            dim_eq(k.shape[-2], v.shape[-2]), f"attention: k {k} and v {v} differ in the key length"
        )
        lead: tuple = ()
        if q.rank >= 3:
            hq, hk = q.shape[-3], k.shape[-3]
            require(dim_eq(hk, v.shape[-3]), f"attention: k {k} and v {v} differ in heads")
            gqa = (
                dim_eq(hq, hk)
                or hk == 1
                or (is_static(hq) and is_static(hk) and hk > 0 and hq % hk == 0)
            )
            require(gqa, f"attention: {hk} kv heads do not divide {hq} query heads")
            batch = broadcast_shapes(q.shape[:-3], k.shape[:-3], v.shape[:-3])
            require(batch is not None, f"attention: batch dims of {q}, {k}, {v} differ")
            lead = tuple(batch) + (hq,)  # type: ignore[arg-type]
        if mask is not None:
            require(
                mask.dtype in (DType.bool, dt), f"attention: mask must be bool or {dt}, got {mask}"
            )
            _fits(self.name, "mask", mask, lead + (q.shape[-2], k.shape[-2]))
        return TensorType(dt, lead + (q.shape[-2], v.shape[-1]))

    def ref(
        self, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        acc = compute_dtype(q.dtype)
        qf, kf, vf = q.astype(acc), k.astype(acc), v.astype(acc)
        if q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
            rep = q.shape[-3] // k.shape[-3]
            kf, vf = np.repeat(kf, rep, axis=-3), np.repeat(vf, rep, axis=-3)
        scale = self.scale if self.scale is not None else 1.0 / np.sqrt(q.shape[-1])
        s = np.matmul(qf, np.swapaxes(kf, -1, -2)) * acc.type(scale)
        keep = np.tril(np.ones(s.shape[-2:], np.bool_)) if self.causal else None
        if mask is not None and mask.dtype == np.bool_:
            keep = mask if keep is None else keep & mask
        elif mask is not None:
            s = s + mask.astype(acc)
        if keep is not None:
            s = np.where(keep, s, -np.inf)
        m = s.max(axis=-1, keepdims=True, initial=-np.inf)
        e = np.exp(s - np.where(np.isneginf(m), 0, m))
        den = e.sum(axis=-1, keepdims=True)
        p = e / np.where(den == 0, 1, den)
        return np.matmul(p, vf).astype(q.dtype)


@register
@dataclass(frozen=True)
class RotaryEmbedding(Op):
    """Rotary position embedding of x [..., S, D] by cos, sin [..., S, R/2] (broadcast to x's
    leading dims), rotating the first R = 2*cos.shape[-1] features and passing the rest.
    Rotate-half form (HF LLaMA): x1 = x[:R/2], x2 = x[R/2:R], y = (x1 c - x2 s, x2 c + x1 s).
    interleaved: pairs (x[2i], x[2i+1]) -> (x[2i] c_i - x[2i+1] s_i, x[2i+1] c_i + x[2i] s_i)."""

    name: ClassVar[str] = "rotary_embedding"
    interleaved: bool = False

    def infer(self, x: TensorType, cos: TensorType, sin: TensorType) -> TensorType:
        _float_op(self.name, x, cos, sin)
        require(x.rank >= 2, f"rotary_embedding: x must be [..., S, D], got {x}")
        require(
            cos.rank >= 1 and shape_eq(cos.shape, sin.shape),
            f"rotary_embedding: cos {cos} and sin {sin} must have one shape",
        )
        half, d = cos.shape[-1], x.shape[-1]
        require(
            dim_eq(2 * half, d) or (is_static(half) and is_static(d) and 2 * half <= d),
            f"rotary_embedding: 2 * {half} rotary features exceed head dim {d} ({x})",
        )
        _fits(self.name, "cos", cos.with_shape(cos.shape[:-1]), x.shape[:-1])
        return x

    def ref(self, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        acc = compute_dtype(x.dtype)
        half = cos.shape[-1]
        xf, c, s = x.astype(acc), cos.astype(acc), sin.astype(acc)
        rot = xf[..., : 2 * half]
        if self.interleaved:
            x1, x2 = rot[..., 0::2], rot[..., 1::2]
            y = np.stack([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).reshape(rot.shape)
        else:
            x1, x2 = rot[..., :half], rot[..., half:]
            y = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
        return np.concatenate([y, xf[..., 2 * half :]], axis=-1).astype(x.dtype)


@register
@dataclass(frozen=True)
class Embedding(Op):
    """y[i..., :] = table[ids[i...], :] for table [V, D] and integer ids (torch embedding);
    ids outside 0..V-1 are an error."""

    name: ClassVar[str] = "embedding"

    def infer(self, table: TensorType, ids: TensorType) -> TensorType:
        require(table.rank == 2, f"embedding: table must be [V, D], got {table}")
        require(ids.dtype.is_int, f"embedding: ids must be integers, got {ids}")
        return TensorType(table.dtype, ids.shape + (norm(table.shape[1]),))

    def ref(self, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
        bad = (ids < 0) | (ids >= table.shape[0])
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InterpreterError(
                f"embedding: id {ids[at]} at index {at} is outside "
                f"0..{table.shape[0] - 1} (table {list(table.shape)})"
            )
        return table[ids.astype(np.int64)]
