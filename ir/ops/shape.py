"""Shape ops: reshape, transpose, concat/split, ONNX-style slice and pad, expand, (un)squeeze,
flatten, tile, and the ops that make tensors from shapes: shape, full and range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType, round_to_bf16
from ..errors import IRTypeError, require
from ..op import Op, register
from ..shapes import (
    Dim,
    ceil_div,
    dim_eq,
    dim_le,
    dim_max,
    dim_min,
    dim_ne,
    is_static,
    norm,
    numel,
)
from ..types import TensorType

# ONNX spells "to the end" as a huge bound (INT64_MAX, INT32_MAX, INT64_MIN). A static slice
# bound at least this large in magnitude is +/- infinity; symbolic dims are assumed below it.
HUGE = 2**31 - 1
PAD_MODES = ("constant", "reflect", "edge", "wrap")


# -- helpers shared by the shape, index and misc op families ------------------------------------
def norm_axis(op: str, axis: int, rank: int, what: str = "axis") -> int:
    """`axis` in 0..rank-1 (negative counts from the end); IRTypeError when out of range."""
    require(-rank <= axis < rank, f"{op}: {what} {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def norm_axes(op: str, axes: tuple[int, ...], rank: int) -> tuple[int, ...]:
    out = tuple(norm_axis(op, a, rank) for a in axes)
    require(len(set(out)) == len(out), f"{op}: repeated axes {list(axes)}")
    return out


def attr_dims(op: str, dims: tuple[Dim, ...], what: str) -> tuple[Dim, ...]:
    """Normalized attribute dims, each provably >= 0."""
    out = tuple(norm(d) for d in dims)
    for d in out:
        require(dim_le(0, d), f"{op}: {what} {[str(x) for x in out]} has {d}, not provably >= 0")
    return out


def check_int_fill(op: str, value: float, dtype: DType) -> None:
    """An integer tensor can only be filled with an integral value in its dtype's range."""
    if dtype == DType.bool or dtype.is_float:
        return
    lo, hi = (
        (-(2 ** (dtype.bits - 1)), 2 ** (dtype.bits - 1) - 1)
        if dtype.is_signed
        else (0, 2**dtype.bits - 1)
    )
    require(
        math.isfinite(value) and float(value).is_integer() and lo <= value <= hi,
        f"{op}: value {value} does not fit dtype {dtype}",
    )


# -- reshape, transpose, concat, split -----------------------------------------------------------
@register
@dataclass(frozen=True)
class Reshape(Op):
    """y = x with the same elements in row-major order and shape `shape` (numel unchanged)."""

    name: ClassVar[str] = "reshape"
    shape: tuple[Dim, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        out = attr_dims(self.name, self.shape, "shape")
        require(
            dim_eq(numel(out), x.numel),
            f"reshape: {x} has {x.numel} elements, shape {[str(d) for d in out]} has {numel(out)}",
        )
        return x.with_shape(out)

    def ref(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.shape)


@register
@dataclass(frozen=True)
class Transpose(Op):
    """y[i_perm[0], ..., i_perm[r-1]] = x[i_0, ..., i_{r-1}]: y.shape[k] = x.shape[perm[k]]."""

    name: ClassVar[str] = "transpose"
    perm: tuple[int, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        require(
            sorted(self.perm) == list(range(x.rank)),
            f"transpose: perm {list(self.perm)} is not a permutation of 0..{x.rank - 1} ({x})",
        )
        return x.with_shape(x.shape[p] for p in self.perm)

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.transpose(x, self.perm)


@register
@dataclass(frozen=True)
class Concat(Op):
    """y = the operands joined along `axis` (other dims equal); y.shape[axis] = sum."""

    name: ClassVar[str] = "concat"
    axis: int = 0

    def infer(self, x: TensorType, *xs: TensorType) -> TensorType:
        require(x.rank >= 1, f"concat: operands need rank >= 1, got {x}")
        ax = norm_axis(self.name, self.axis, x.rank)
        total: Dim = x.shape[ax]
        for t in xs:
            require(t.dtype == x.dtype, f"concat: dtypes differ ({x} vs {t})")
            require(t.rank == x.rank, f"concat: ranks differ ({x} vs {t})")
            for i, (a, b) in enumerate(zip(x.shape, t.shape)):
                require(i == ax or dim_eq(a, b), f"concat: dim {i} differs ({x} vs {t})")
            total = total + t.shape[ax]
        return x.with_shape(x.shape[:ax] + (norm(total),) + x.shape[ax + 1 :])

    def ref(self, x: np.ndarray, *xs: np.ndarray) -> np.ndarray:
        return np.concatenate((x, *xs), axis=self.axis)


@register
@dataclass(frozen=True)
class Split(Op):
    """y_k = x[..., o_k : o_k + sizes[k], ...] along `axis`, o_k = sum(sizes[:k])."""

    name: ClassVar[str] = "split"
    axis: int = 0
    sizes: tuple[Dim, ...] = ()

    def infer(self, x: TensorType) -> tuple[TensorType, ...]:
        require(x.rank >= 1, f"split: needs rank >= 1, got {x}")
        require(len(self.sizes) >= 1, "split: needs at least one size")
        ax = norm_axis(self.name, self.axis, x.rank)
        sizes = attr_dims(self.name, self.sizes, "sizes")
        total = norm(sum(sizes))
        require(
            dim_eq(total, x.shape[ax]),
            f"split: sizes {[str(s) for s in sizes]} sum to {total}, axis {ax} of {x} is "
            f"{x.shape[ax]}",
        )
        return tuple(x.with_shape(x.shape[:ax] + (s,) + x.shape[ax + 1 :]) for s in sizes)

    def ref(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        cuts = np.cumsum(self.sizes[:-1], dtype=np.int64) if len(self.sizes) > 1 else []
        return tuple(np.split(x, cuts, axis=self.axis))


# -- slice and pad -------------------------------------------------------------------------------
def _slice_bound(op: str, v: Dim, d: Dim, lo: Dim, hi: Dim) -> Dim:
    """An ONNX slice bound: negative counts from the end (v + d), then clamped to [lo, hi]."""
    v = norm(v)
    if is_static(v) and v >= HUGE:
        return hi
    if is_static(v) and v <= -HUGE:
        return lo
    if dim_le(v, -1):
        v = norm(v + d)
    elif not dim_le(0, v):
        raise IRTypeError(f"{op}: cannot tell whether bound {v} counts from the end")
    return dim_min(dim_max(v, lo), hi)


def slice_range(op: str, d: Dim, start: Dim, end: Dim, step: int) -> tuple[Dim, Dim, Dim]:
    """(first index, clamped end, length) of ONNX Slice start:end:step over a dim of size d.

    step > 0: start and end clamp to [0, d]; step < 0: start to [0, d-1], end to [-1, d-1]
    (-1 = before the first element). length = max(0, ceil((end - start) / step)).
    """
    if step > 0:
        s = _slice_bound(op, start, d, 0, d)
        e = _slice_bound(op, end, d, 0, d)
    else:
        s = _slice_bound(op, start, d, 0, norm(d - 1))
        e = _slice_bound(op, end, d, -1, norm(d - 1))
    return s, e, dim_max(0, ceil_div(e - s, step))


@register
@dataclass(frozen=True)
class Slice(Op):
    """ONNX Slice: along axes[i], y takes x[starts[i] : ends[i] : steps[i]].

    Negative bounds count from the end; bounds clamp to the dim (see `slice_range`), so a bound
    like 9223372036854775807 means "to the end"; results may be empty.
    """

    name: ClassVar[str] = "slice"
    axes: tuple[int, ...] = ()
    starts: tuple[Dim, ...] = ()
    ends: tuple[Dim, ...] = ()
    steps: tuple[int, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        n = len(self.axes)
        require(
            len(self.starts) == n and len(self.ends) == n and len(self.steps) == n,
            f"slice: axes/starts/ends/steps lengths differ ({n}, {len(self.starts)}, "
            f"{len(self.ends)}, {len(self.steps)})",
        )
        axes = norm_axes(self.name, self.axes, x.rank)
        require(all(s != 0 for s in self.steps), f"slice: steps {list(self.steps)} contain 0")
        shape = list(x.shape)
        for ax, st, en, sp in zip(axes, self.starts, self.ends, self.steps):
            shape[ax] = slice_range(self.name, x.shape[ax], st, en, sp)[2]
        return x.with_shape(shape)

    def ref(self, x: np.ndarray) -> np.ndarray:
        index = [slice(None)] * x.ndim
        for ax, st, en, sp in zip(self.axes, self.starts, self.ends, self.steps):
            ax = ax + x.ndim if ax < 0 else ax
            s, e, _ = slice_range(self.name, x.shape[ax], st, en, sp)
            index[ax] = slice(s, None if e < 0 else e, sp)
        return x[(..., *index)]  # the Ellipsis keeps a rank-0 result an array


@register
@dataclass(frozen=True)
class Pad(Op):
    """Pad axis i by pads[i] before and pads[rank + i] after; negative pads crop (first).

    Modes: constant (`value`), reflect (mirror without the edge), edge (repeat the edge),
    wrap (periodic), as numpy.pad applied to the cropped tensor.
    """

    name: ClassVar[str] = "pad"
    pads: tuple[Dim, ...] = ()
    mode: str = "constant"
    value: float = 0.0

    def infer(self, x: TensorType) -> TensorType:
        require(self.mode in PAD_MODES, f"pad: mode {self.mode!r} not in {PAD_MODES}")
        r = x.rank
        require(len(self.pads) == 2 * r, f"pad: {len(self.pads)} pads for rank {r} ({x})")
        if self.mode == "constant":
            check_int_fill(self.name, self.value, x.dtype)
        pads = tuple(norm(p) for p in self.pads)
        shape = []
        for i, d in enumerate(x.shape):
            out = norm(d + pads[i] + pads[r + i])
            require(dim_le(0, out), f"pad: axis {i} of {x} would have size {out}")
            if self.mode != "constant" and not (dim_le(pads[i], 0) and dim_le(pads[r + i], 0)):
                kept = norm(d + dim_min(pads[i], 0) + dim_min(pads[r + i], 0))
                require(dim_le(1, kept), f"pad: {self.mode} padding of an empty axis {i} ({x})")
            shape.append(out)
        return x.with_shape(shape)

    def ref(self, x: np.ndarray) -> np.ndarray:
        r = x.ndim
        if r == 0:
            return x.copy()
        begin, end = self.pads[:r], self.pads[r:]
        crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, begin, end))
        widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
        mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}
        kw = {"constant_values": self.value} if self.mode == "constant" else {}
        return np.pad(x[crop], widths, mode=mode[self.mode], **kw).astype(x.dtype, copy=False)


# -- broadcasting and rank changes ---------------------------------------------------------------
@register
@dataclass(frozen=True)
class Expand(Op):
    """y = numpy.broadcast_to(x, shape): x's dims align right and must be 1 or equal."""

    name: ClassVar[str] = "expand"
    shape: tuple[Dim, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        out = attr_dims(self.name, self.shape, "shape")
        require(len(out) >= x.rank, f"expand: shape {[str(d) for d in out]} shorter than {x}")
        for i, d in enumerate(x.shape):
            o = out[len(out) - x.rank + i]
            require(
                d == 1 or dim_eq(d, o),
                f"expand: dim {i} of {x} does not broadcast to {[str(d) for d in out]}",
            )
        return x.with_shape(out)

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, self.shape).copy()


@register
@dataclass(frozen=True)
class Squeeze(Op):
    """Remove the listed size-1 axes (empty `axes`: every static size-1 axis)."""

    name: ClassVar[str] = "squeeze"
    axes: tuple[int, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        if self.axes:
            axes = norm_axes(self.name, self.axes, x.rank)
            for a in axes:
                require(dim_eq(x.shape[a], 1), f"squeeze: axis {a} of {x} is not 1")
        else:
            # ref squeezes every size-1 axis of the array, so a dim that may be 1 is ambiguous.
            for d in x.shape:
                require(
                    d == 1 or dim_ne(d, 1),
                    f"squeeze: axes=[] is ambiguous for {x} (dim {d} may be 1); list the axes",
                )
            axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
        return x.with_shape(d for i, d in enumerate(x.shape) if i not in axes)

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.squeeze(x, axis=self.axes if self.axes else None)


@register
@dataclass(frozen=True)
class Unsqueeze(Op):
    """Insert size-1 axes at `axes`, numbered in the output (negative counts from its end)."""

    name: ClassVar[str] = "unsqueeze"
    axes: tuple[int, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        r = x.rank + len(self.axes)
        axes = norm_axes(self.name, self.axes, r)
        rest = iter(x.shape)
        return x.with_shape(1 if i in axes else next(rest) for i in range(r))

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.expand_dims(x, self.axes)


@register
@dataclass(frozen=True)
class Flatten(Op):
    """ONNX Flatten: y = x.reshape(prod(shape[:axis]), prod(shape[axis:])), axis in -r..r."""

    name: ClassVar[str] = "flatten"
    axis: int = 1

    def infer(self, x: TensorType) -> TensorType:
        r = x.rank
        require(-r <= self.axis <= r, f"flatten: axis {self.axis} out of range -{r}..{r} ({x})")
        ax = self.axis + r if self.axis < 0 else self.axis
        return x.with_shape((numel(x.shape[:ax]), numel(x.shape[ax:])))

    def ref(self, x: np.ndarray) -> np.ndarray:
        ax = self.axis + x.ndim if self.axis < 0 else self.axis
        return x.reshape(math.prod(x.shape[:ax]), math.prod(x.shape[ax:]))


@register
@dataclass(frozen=True)
class Tile(Op):
    """y = numpy.tile(x, repeats), one repeat count per axis: y.shape[i] = x.shape[i] * r_i."""

    name: ClassVar[str] = "tile"
    repeats: tuple[Dim, ...] = ()

    def infer(self, x: TensorType) -> TensorType:
        reps = attr_dims(self.name, self.repeats, "repeats")
        require(len(reps) == x.rank, f"tile: {len(reps)} repeats for {x}")
        return x.with_shape(d * r for d, r in zip(x.shape, reps))

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.tile(x, self.repeats)


# -- tensors made from shapes --------------------------------------------------------------------
@register
@dataclass(frozen=True)
class Shape(Op):
    """y = i64 vector x.shape[start:end] (ONNX Shape: bounds count from the end, clamp)."""

    name: ClassVar[str] = "shape"
    start: int = 0
    end: int | None = None

    def infer(self, x: TensorType) -> TensorType:
        return TensorType(DType.i64, (len(x.shape[self.start : self.end]),))

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.array(x.shape[self.start : self.end], dtype=np.int64).reshape(-1)


@register
@dataclass(frozen=True)
class Full(Op):
    """y = a `dtype` tensor of shape `shape` with every element `value` (ConstantOfShape)."""

    name: ClassVar[str] = "full"
    shape: tuple[Dim, ...] = ()
    value: float = 0.0
    dtype: DType = DType.f32

    def infer(self) -> TensorType:
        check_int_fill(self.name, self.value, self.dtype)
        return TensorType(self.dtype, attr_dims(self.name, self.shape, "shape"))

    def ref(self) -> np.ndarray:
        value = bool(self.value) if self.dtype == DType.bool else self.value
        out = np.full(self.shape, value, dtype=self.dtype.np)
        return round_to_bf16(out) if self.dtype == DType.bf16 else out


def range_length(start: Dim | float, limit: Dim | float, delta: Dim | float) -> Dim:
    """max(ceil((limit - start) / delta), 0): exact integer arithmetic unless a bound is a
    non-integral float (integral floats count as integers, so symbolic bounds work)."""
    vals = [int(v) if isinstance(v, float) and v.is_integer() else v for v in (start, limit, delta)]
    if any(isinstance(v, float) for v in vals):
        n = (float(limit) - float(start)) / float(delta)
        if not math.isfinite(n):
            raise IRTypeError(f"range: length of {start}..{limit} by {delta} overflows")
        return max(math.ceil(n), 0)
    s, lim, d = (norm(v) for v in vals)
    return dim_max(ceil_div(norm(lim - s), d), 0)


@register
@dataclass(frozen=True)
class Range(Op):
    """y[i] = start + i * delta for i < max(ceil((limit - start) / delta), 0), as `dtype`."""

    name: ClassVar[str] = "range"
    start: Dim | float = 0
    limit: Dim | float = 0
    delta: Dim | float = 1
    dtype: DType = DType.i64

    def infer(self) -> TensorType:
        require(self.dtype != DType.bool, "range: dtype bool is not a number type")
        vals = (self.start, self.limit, self.delta)
        floats = [v for v in vals if isinstance(v, float)]
        require(all(math.isfinite(v) for v in floats), f"range: bounds {vals} not finite")
        symbolic = any(not isinstance(v, (int, float)) for v in vals)
        if not self.dtype.is_float or symbolic:
            require(
                all(v.is_integer() for v in floats),
                f"range: non-integral bounds {vals} with dtype {self.dtype}"
                + (" and symbolic bounds" if symbolic else ""),
            )
        delta = self.delta if isinstance(self.delta, float) else norm(self.delta)
        require(
            delta != 0 and (isinstance(delta, float) or dim_ne(delta, 0)),
            f"range: delta {delta} is (or may be) 0",
        )
        return TensorType(self.dtype, (range_length(*vals),))

    def ref(self) -> np.ndarray:
        n = range_length(self.start, self.limit, self.delta)
        work = np.float64 if self.dtype.is_float else np.int64
        start, delta = work(self.start), work(self.delta)
        out = (start + np.arange(n, dtype=work) * delta).astype(self.dtype.np)
        return round_to_bf16(out) if self.dtype == DType.bf16 else out
