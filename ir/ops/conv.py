"""Convolution and pooling ops over N-d spatial dims in NC(spatial) layout.

Spatial attributes are tuples with one value per spatial dim; `padding` holds the begin pads
then the end pads (2 * nd values, ONNX order). An empty tuple means the default for every
spatial dim: stride 1, padding 0, dilation 1, output_padding 0 (for pools too: an empty stride
is 1, not torch's kernel size). The printer shows the tuples as stored, so `stride=[]` and
`stride=[1, 1]` both print as written and mean the same. Pools take torch's rules: pads at most
half the (dilated) window, ceil_mode never starts a window inside the end padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import require
from ..op import Op, register
from ..shapes import DIM_FUNCS, Dim, ceil_div, dim_eq, floor_div, is_static, norm
from ..types import TensorType
from .linalg import compute_dtype, same_dtype

IntTuple = tuple[int, ...]


def spatial(op: str, what: str, vals: IntTuple, nd: int, default: int, lo: int) -> IntTuple:
    """`vals` expanded to one value per spatial dim (empty -> default), each >= lo."""
    if not vals:
        return (default,) * nd
    require(len(vals) == nd, f"{op}: {what} has {len(vals)} values, expected {nd} (or [])")
    require(all(v >= lo for v in vals), f"{op}: {what} values must be >= {lo}, got {vals}")
    return tuple(vals)


def pads(op: str, vals: IntTuple, nd: int) -> tuple[IntTuple, IntTuple]:
    """(begins, ends) from a 2*nd padding tuple (empty -> zeros)."""
    if not vals:
        return (0,) * nd, (0,) * nd
    require(
        len(vals) == 2 * nd,
        f"{op}: padding has {len(vals)} values, expected {2 * nd} (begins then ends, or [])",
    )
    require(all(v >= 0 for v in vals), f"{op}: padding must be >= 0, got {vals}")
    return tuple(vals[:nd]), tuple(vals[nd:])


def window_slices(
    off: tuple[int, ...], dil: IntTuple, stride: IntTuple, out: tuple[int, ...]
) -> tuple[slice, ...]:
    """Slices of the padded input read by kernel offset `off` for every output position."""
    return tuple(
        slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(off, dil, stride, out)
    )


def _positive(op: str, dims: list[Dim], x: TensorType) -> None:
    for d in dims:
        require(not is_static(d) or d >= 1, f"{op}: output spatial dims {dims} < 1 for {x}")


@dataclass(frozen=True)
class _ConvBase(Op):
    """Shared checks of conv and conv_transpose."""

    def _check(self, x: TensorType, w: TensorType, b: TensorType | None) -> int:
        dt = same_dtype(self.name, x, w, b)
        require(dt.is_float, f"{self.name}: needs float operands, got {x}")
        require(x.rank >= 3, f"{self.name}: input must be [N, C, spatial...], got {x}")
        require(w.rank == x.rank, f"{self.name}: weight {w} must have rank {x.rank} like {x}")
        require(self.groups >= 1, f"{self.name}: groups must be >= 1, got {self.groups}")
        return x.rank - 2


@register
@dataclass(frozen=True)
class Conv(_ConvBase):
    """y[n, g*Cog + o, p] = b[.] + sum_{c, k} x_pad[n, g*Cig + c, p*stride + k*dilation]
    * w[g*Cog + o, c, k]: cross-correlation with w [C_out, C_in/groups, k...]. Output dims
    floor((L + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1."""

    name: ClassVar[str] = "conv"
    stride: IntTuple = ()
    padding: IntTuple = ()
    dilation: IntTuple = ()
    groups: int = 1

    def infer(self, x: TensorType, w: TensorType, b: TensorType | None = None) -> TensorType:
        nd = self._check(x, w, b)
        g, cout = self.groups, w.shape[0]
        require(
            dim_eq(x.shape[1], w.shape[1] * g),
            f"conv: input has {x.shape[1]} channels, weight {w} with groups={g} expects "
            f"{w.shape[1] * g}",
        )
        require(
            not is_static(cout) or cout % g == 0,
            f"conv: {cout} output channels not divisible by groups={g}",
        )
        if b is not None:
            require(
                b.rank == 1 and dim_eq(b.shape[0], cout), f"conv: bias must be [{cout}], got {b}"
            )
        s = spatial(self.name, "stride", self.stride, nd, 1, 1)
        d = spatial(self.name, "dilation", self.dilation, nd, 1, 1)
        pb, pe = pads(self.name, self.padding, nd)
        out = [
            floor_div(x.shape[2 + i] + pb[i] + pe[i] - d[i] * (w.shape[2 + i] - 1) - 1, s[i]) + 1
            for i in range(nd)
        ]
        _positive(self.name, out, x)
        return TensorType(x.dtype, (x.shape[0], cout, *out))

    def ref(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        nd, acc, g = x.ndim - 2, compute_dtype(x.dtype), self.groups
        s = spatial(self.name, "stride", self.stride, nd, 1, 1)
        d = spatial(self.name, "dilation", self.dilation, nd, 1, 1)
        pb, pe = pads(self.name, self.padding, nd)
        xp = np.pad(x.astype(acc), [(0, 0), (0, 0)] + list(zip(pb, pe)))
        n, c, co, ks = x.shape[0], x.shape[1], w.shape[0], w.shape[2:]
        out = tuple((xp.shape[2 + i] - d[i] * (ks[i] - 1) - 1) // s[i] + 1 for i in range(nd))
        xg = xp.reshape(n, g, c // g, *xp.shape[2:])
        wg = w.astype(acc).reshape(g, co // g, c // g, *ks)
        y = np.zeros((n, g, co // g, *out), acc)
        for off in np.ndindex(*ks):
            patch = xg[(slice(None),) * 3 + window_slices(off, d, s, out)]
            y += np.einsum("ngc...,goc->ngo...", patch, wg[(Ellipsis, *off)])
        y = y.reshape(n, co, *out)
        if b is not None:
            y += b.astype(acc).reshape(co, *(1,) * nd)
        return y.astype(x.dtype)


@register
@dataclass(frozen=True)
class ConvTranspose(_ConvBase):
    """The gradient of conv w.r.t. its input: each x[n, ci, p] scatters x * w[ci, o, k] to
    y[n, g*Cog + o, p*stride + k*dilation - pad_begin]; w is [C_in, C_out/groups, k...]
    (torch/ONNX). Output dims (L-1)*stride - pad_begin - pad_end + dilation*(k-1)
    + output_padding + 1; output_padding extends the end and must be < stride or dilation."""

    name: ClassVar[str] = "conv_transpose"
    stride: IntTuple = ()
    padding: IntTuple = ()
    output_padding: IntTuple = ()
    dilation: IntTuple = ()
    groups: int = 1

    def _attrs(self, nd: int) -> tuple[IntTuple, IntTuple, IntTuple, IntTuple, IntTuple]:
        s = spatial(self.name, "stride", self.stride, nd, 1, 1)
        d = spatial(self.name, "dilation", self.dilation, nd, 1, 1)
        op = spatial(self.name, "output_padding", self.output_padding, nd, 0, 0)
        pb, pe = pads(self.name, self.padding, nd)
        return s, d, op, pb, pe

    def infer(self, x: TensorType, w: TensorType, b: TensorType | None = None) -> TensorType:
        nd = self._check(x, w, b)
        g = self.groups
        require(
            dim_eq(x.shape[1], w.shape[0]),
            f"conv_transpose: input has {x.shape[1]} channels, weight {w} expects {w.shape[0]}",
        )
        require(
            not is_static(w.shape[0]) or w.shape[0] % g == 0,
            f"conv_transpose: {w.shape[0]} input channels not divisible by groups={g}",
        )
        cout = norm(w.shape[1] * g)
        if b is not None:
            require(
                b.rank == 1 and dim_eq(b.shape[0], cout),
                f"conv_transpose: bias must be [{cout}], got {b}",
            )
        s, d, op, pb, pe = self._attrs(nd)
        require(
            all(o < si or o < di for o, si, di in zip(op, s, d)),
            f"conv_transpose: output_padding {op} must be < stride {s} or dilation {d}",
        )
        out = [
            (x.shape[2 + i] - 1) * s[i] - pb[i] - pe[i] + d[i] * (w.shape[2 + i] - 1) + op[i] + 1
            for i in range(nd)
        ]
        out = [norm(o) for o in out]
        _positive(self.name, out, x)
        return TensorType(x.dtype, (x.shape[0], cout, *out))

    def ref(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        nd, acc, g = x.ndim - 2, compute_dtype(x.dtype), self.groups
        s, d, op, pb, pe = self._attrs(nd)
        n, c, cog, ks, ls = x.shape[0], x.shape[1], w.shape[1], w.shape[2:], x.shape[2:]
        full = tuple((ls[i] - 1) * s[i] + d[i] * (ks[i] - 1) + 1 + op[i] for i in range(nd))
        xg = x.astype(acc).reshape(n, g, c // g, *ls)
        wg = w.astype(acc).reshape(g, c // g, cog, *ks)
        y = np.zeros((n, g, cog, *full), acc)
        for off in np.ndindex(*ks):
            idx = (slice(None),) * 3 + window_slices(off, d, s, ls)
            y[idx] += np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis, *off)])
        crop = tuple(slice(pb[i], full[i] - pe[i]) for i in range(nd))
        y = y.reshape(n, g * cog, *full)[(slice(None), slice(None)) + crop]
        if b is not None:
            y = y + b.astype(acc).reshape(g * cog, *(1,) * nd)
        return np.ascontiguousarray(y).astype(x.dtype)


# -- pooling ---------------------------------------------------------------------------------


def pool_out(length: Dim, k_eff: int, s: int, pb: int, pe: int, ceil_mode: bool) -> Dim:
    """Pooled length like torch: floor (or ceil) of (L + pads - k_eff) / s, plus 1; in ceil
    mode a last window starting inside the end padding is dropped."""
    span = length + pb + pe - k_eff
    if not ceil_mode:
        return norm(floor_div(span, s) + 1)
    out = norm(ceil_div(span, s) + 1)
    limit = norm(floor_div(length + pb - 1, s) + 1)
    if is_static(out) and is_static(limit):
        return min(out, limit)
    return norm(DIM_FUNCS["Min"](out, limit))  # type: ignore[operator]


@dataclass(frozen=True)
class _Pool(Op):
    """Sliding-window pooling over the last len(kernel) dims (shared shape rule). Subclasses
    declare the fields kernel, stride, padding, ceil_mode (declared there to keep the
    printed attribute order)."""

    def _dil(self, nd: int) -> IntTuple:
        return (1,) * nd

    def _attrs(self, nd: int) -> tuple[IntTuple, IntTuple, IntTuple, IntTuple, IntTuple]:
        s = spatial(self.name, "stride", self.stride, nd, 1, 1)
        pb, pe = pads(self.name, self.padding, nd)
        return self.kernel, s, self._dil(nd), pb, pe

    def _out(self, lengths: tuple[int, ...]) -> tuple[int, ...]:
        k, s, d, pb, pe = self._attrs(len(self.kernel))
        return tuple(
            int(pool_out(n, d[i] * (k[i] - 1) + 1, s[i], pb[i], pe[i], self.ceil_mode))
            for i, n in enumerate(lengths)
        )

    def infer(self, x: TensorType) -> TensorType:
        nd = len(self.kernel)
        require(
            nd >= 1 and all(v >= 1 for v in self.kernel),
            f"{self.name}: kernel must list one size >= 1 per pooled dim, got {self.kernel}",
        )
        require(
            x.rank >= nd + 1,
            f"{self.name}: input {x} needs rank >= {nd + 1} for kernel {list(self.kernel)}",
        )
        k, s, d, pb, pe = self._attrs(nd)
        for i in range(nd):
            half = (d[i] * (k[i] - 1) + 1) // 2
            require(
                pb[i] <= half and pe[i] <= half,
                f"{self.name}: padding {self.padding} exceeds half the window {half}",
            )
        lead = x.rank - nd
        out = [
            pool_out(x.shape[lead + i], d[i] * (k[i] - 1) + 1, s[i], pb[i], pe[i], self.ceil_mode)
            for i in range(nd)
        ]
        _positive(self.name, out, x)
        return TensorType(x.dtype, x.shape[:lead] + tuple(out))

    def _padded(self, x: np.ndarray, fill: object) -> tuple[np.ndarray, tuple[int, ...]]:
        """x padded with `fill` so every window of every output position is in bounds."""
        nd = len(self.kernel)
        k, s, d, pb, pe = self._attrs(nd)
        lengths = x.shape[x.ndim - nd :]
        out = self._out(lengths)
        ends = [
            max(pe[i], (out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - lengths[i] - pb[i])
            for i in range(nd)
        ]
        widths = [(0, 0)] * (x.ndim - nd) + list(zip(pb, ends))
        return np.pad(x, widths, constant_values=fill), out


@register
@dataclass(frozen=True)
class MaxPool(_Pool):
    """y[..., p] = max over k of x_pad[..., p*stride + k*dilation], pads never win (-inf);
    pools the last len(kernel) dims; output size as torch (see `pool_out`)."""

    name: ClassVar[str] = "max_pool"
    kernel: IntTuple = ()
    stride: IntTuple = ()
    padding: IntTuple = ()
    dilation: IntTuple = ()
    ceil_mode: bool = False

    def _dil(self, nd: int) -> IntTuple:
        return spatial(self.name, "dilation", self.dilation, nd, 1, 1)

    def infer(self, x: TensorType) -> TensorType:
        require(x.dtype.is_float or x.dtype.is_int, f"max_pool: needs a numeric input, got {x}")
        return super().infer(x)

    def ref(self, x: np.ndarray) -> np.ndarray:
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp, out = self._padded(x, fill)
        k, s, d, _, _ = self._attrs(len(self.kernel))
        lead = (slice(None),) * (x.ndim - len(k))
        y = np.full(x.shape[: x.ndim - len(k)] + out, fill, x.dtype)
        for off in np.ndindex(*k):
            y = np.maximum(y, xp[lead + window_slices(off, d, s, out)])
        return y


@register
@dataclass(frozen=True)
class AvgPool(_Pool):
    """y[..., p] = sum over k of x_pad[..., p*stride + k] / count, where count is the number
    of window elements inside the padded input (count_include_pad) or inside x itself;
    pools the last len(kernel) dims; output size as torch (see `pool_out`)."""

    name: ClassVar[str] = "avg_pool"
    kernel: IntTuple = ()
    stride: IntTuple = ()
    padding: IntTuple = ()
    ceil_mode: bool = False
    count_include_pad: bool = True

    def infer(self, x: TensorType) -> TensorType:
        require(x.dtype.is_float, f"avg_pool: needs a float input, got {x}")
        return super().infer(x)

    def ref(self, x: np.ndarray) -> np.ndarray:
        nd = len(self.kernel)
        k, s, d, pb, pe = self._attrs(nd)
        xp, out = self._padded(x.astype(compute_dtype(x.dtype)), 0)
        lead = (slice(None),) * (x.ndim - nd)
        total = np.zeros(x.shape[: x.ndim - nd] + out, xp.dtype)
        for off in np.ndindex(*k):
            total += xp[lead + window_slices(off, d, s, out)]
        count = np.ones((), xp.dtype)
        for i in range(nd):  # the divisor is a product of 1-D window counts
            n = x.shape[x.ndim - nd + i]
            inside = np.zeros(xp.shape[x.ndim - nd + i], xp.dtype)
            lo, hi = (0, pb[i] + n + pe[i]) if self.count_include_pad else (pb[i], pb[i] + n)
            inside[lo:hi] = 1
            c = sum(inside[o : o + s[i] * (out[i] - 1) + 1 : s[i]] for o in range(k[i]))
            count = np.multiply.outer(count, c)
        return (total / count).astype(x.dtype)


@dataclass(frozen=True)
class _GlobalPool(Op):
    """Reduce every dim after the first two to size 1."""

    ints_ok: ClassVar[bool] = False

    def infer(self, x: TensorType) -> TensorType:
        require(
            x.dtype.is_float or (x.dtype.is_int and self.ints_ok),
            f"{self.name}: unsupported dtype, got {x}",
        )
        require(x.rank >= 3, f"{self.name}: input must be [N, C, spatial...], got {x}")
        return TensorType(x.dtype, x.shape[:2] + (1,) * (x.rank - 2))


@register
@dataclass(frozen=True)
class GlobalAvgPool(_GlobalPool):
    """y[n, c, 1...] = mean of x[n, c, ...] over all spatial dims."""

    name: ClassVar[str] = "global_avg_pool"

    def ref(self, x: np.ndarray) -> np.ndarray:
        axes = tuple(range(2, x.ndim))
        return x.astype(compute_dtype(x.dtype)).mean(axis=axes, keepdims=True).astype(x.dtype)


@register
@dataclass(frozen=True)
class GlobalMaxPool(_GlobalPool):
    """y[n, c, 1...] = max of x[n, c, ...] over all spatial dims."""

    name: ClassVar[str] = "global_max_pool"
    ints_ok: ClassVar[bool] = True

    def ref(self, x: np.ndarray) -> np.ndarray:
        return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


@dataclass(frozen=True)
class _AdaptivePool(Op):
    """Pools the last len(output_size) dims into fixed sizes: output index i of a dim of
    length L covers [floor(i*L/out), ceil((i+1)*L/out)) (torch's adaptive windows)."""

    output_size: IntTuple = ()
    reduce: ClassVar[str]

    def infer(self, x: TensorType) -> TensorType:
        nd = len(self.output_size)
        require(
            nd >= 1 and all(v >= 1 for v in self.output_size),
            f"{self.name}: output_size must list sizes >= 1, got {self.output_size}",
        )
        require(x.rank >= nd + 1, f"{self.name}: input {x} needs rank >= {nd + 1}")
        require(
            x.dtype.is_float or (x.dtype.is_int and self.reduce == "max"),
            f"{self.name}: unsupported dtype, got {x}",
        )
        return TensorType(x.dtype, x.shape[: x.rank - nd] + tuple(self.output_size))

    def ref(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(compute_dtype(x.dtype)) if self.reduce == "mean" else x
        fn = np.mean if self.reduce == "mean" else np.max
        for i, o in enumerate(self.output_size):
            ax = x.ndim - len(self.output_size) + i
            n = y.shape[ax]
            parts = [
                fn(y.take(range(j * n // o, -(-(j + 1) * n // o)), axis=ax), axis=ax, keepdims=True)
                for j in range(o)
            ]
            y = np.concatenate(parts, axis=ax)
        return y.astype(x.dtype)


@register
@dataclass(frozen=True)
class AdaptiveAvgPool(_AdaptivePool):
    """y[..., i] = mean of x over the adaptive window of i (see the base class)."""

    name: ClassVar[str] = "adaptive_avg_pool"
    reduce: ClassVar[str] = "mean"


@register
@dataclass(frozen=True)
class AdaptiveMaxPool(_AdaptivePool):
    """y[..., i] = max of x over the adaptive window of i (see the base class)."""

    name: ClassVar[str] = "adaptive_max_pool"
    reduce: ClassVar[str] = "max"
