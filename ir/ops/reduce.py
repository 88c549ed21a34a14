"""Reductions over axes (sum, mean, max, norms, log-sum-exp), argmax/argmin and cumsum.

`axes=[]` reduces every axis; negative axes count from the end. Reducing an empty axis is
legal and gives what ONNX defines: sum, l1, l2, sum_square -> 0, prod -> 1, max -> -inf (the
dtype's minimum for integers), min -> +inf (the maximum), log_sum_exp -> -inf; mean (undefined
in ONNX) gives NaN here. argmax/argmin of an empty axis is an error (IRTypeError when provably
empty, else at run time). f16 accumulates in f32; integers accumulate in i64 and wrap to their
dtype once at the end (the same as wrapping at every step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import require
from ..op import Op, register
from ..shapes import Dim, dim_eq
from ..types import TensorType
from .elementwise import opmath, require_kind


def norm_axes(op: str, axes: Sequence[int], rank: int) -> tuple[int, ...]:
    """Axes made non-negative and sorted; IRTypeError when out of range or repeated."""
    for a in axes:
        require(-rank <= a < rank, f"{op}: axis {a} out of range for rank {rank}")
    out = sorted(a % rank for a in axes)
    require(len(set(out)) == len(out), f"{op}: repeated axis in {list(axes)}")
    return tuple(out)


def reduced_shape(shape: Sequence[Dim], axes: Sequence[int], keepdims: bool) -> list[Dim]:
    if keepdims:
        return [1 if i in axes else d for i, d in enumerate(shape)]
    return [d for i, d in enumerate(shape) if i not in axes]


@dataclass(frozen=True)
class Reduce(Op):
    """Base of reductions: y = fn(x) over `axes` (all when empty), dropped or kept as size 1.

    A subclass sets `name`, a docstring, `fn(x, axes)` (returns with the axes kept) and the
    accepted dtype kind `allowed`.
    """

    fn: ClassVar[Callable[[np.ndarray, tuple[int, ...]], np.ndarray]]
    allowed: ClassVar[str] = "number"
    axes: tuple[int, ...] = ()
    keepdims: bool = False

    def reduced_axes(self, rank: int) -> tuple[int, ...]:
        return norm_axes(self.name, self.axes, rank) if self.axes else tuple(range(rank))

    def infer(self, x: TensorType) -> TensorType:
        require_kind(self.name, self.allowed, x)
        return x.with_shape(reduced_shape(x.shape, self.reduced_axes(x.rank), self.keepdims))

    def ref(self, x: np.ndarray) -> np.ndarray:
        axes = self.reduced_axes(x.ndim)
        with np.errstate(all="ignore"):
            out = np.asarray(type(self).fn(opmath(x), axes))
        if not self.keepdims:
            out = out.reshape(reduced_shape(x.shape, axes, False))
        return out.astype(x.dtype)


def _acc(x: np.ndarray) -> np.dtype:
    """Accumulator dtype: i64 for integers (wrapped at the end), else the compute dtype."""
    return np.dtype(np.int64) if x.dtype.kind in "iu" else x.dtype


def _sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sum(x, axis=axes, keepdims=True, dtype=_acc(x))


def _mean(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod([x.shape[a] for a in axes]))
    return _sum(x, axes) / np.asarray(count, dtype=x.dtype)


def _lowest(dt: np.dtype) -> object:
    return -np.inf if dt.kind == "f" else np.iinfo(dt).min


def _highest(dt: np.dtype) -> object:
    return np.inf if dt.kind == "f" else np.iinfo(dt).max


def _max(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.max(x, axis=axes, keepdims=True, initial=_lowest(x.dtype))


def _min(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.min(x, axis=axes, keepdims=True, initial=_highest(x.dtype))


def _prod(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.prod(x, axis=axes, keepdims=True, dtype=_acc(x))


def _l1(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return _sum(np.abs(x), axes)


def _sum_square(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return _sum(x * x, axes)


def _l2(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sqrt(_sum_square(x, axes))


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    m = _max(x, axes)
    m = np.where(np.isfinite(m), m, np.zeros_like(m))  # all -inf, +inf or empty: no shift
    return np.log(_sum(np.exp(x - m), axes)) + m


@register
@dataclass(frozen=True)
class ReduceSum(Reduce):
    """y = sum of x over axes (0 for an empty axis)."""

    name: ClassVar[str] = "reduce_sum"
    fn = staticmethod(_sum)


@register
@dataclass(frozen=True)
class ReduceMean(Reduce):
    """y = sum of x over axes / number of elements reduced (NaN for an empty axis)."""

    name: ClassVar[str] = "reduce_mean"
    allowed: ClassVar[str] = "float"
    fn = staticmethod(_mean)


@register
@dataclass(frozen=True)
class ReduceMax(Reduce):
    """y = max of x over axes; NaN propagates; -inf (integer minimum) for an empty axis."""

    name: ClassVar[str] = "reduce_max"
    fn = staticmethod(_max)


@register
@dataclass(frozen=True)
class ReduceMin(Reduce):
    """y = min of x over axes; NaN propagates; +inf (integer maximum) for an empty axis."""

    name: ClassVar[str] = "reduce_min"
    fn = staticmethod(_min)


@register
@dataclass(frozen=True)
class ReduceProd(Reduce):
    """y = product of x over axes (1 for an empty axis)."""

    name: ClassVar[str] = "reduce_prod"
    fn = staticmethod(_prod)


@register
@dataclass(frozen=True)
class ReduceL1(Reduce):
    """y = sum of |x| over axes."""

    name: ClassVar[str] = "reduce_l1"
    fn = staticmethod(_l1)


@register
@dataclass(frozen=True)
class ReduceL2(Reduce):
    """y = sqrt(sum of x**2 over axes)."""

    name: ClassVar[str] = "reduce_l2"
    allowed: ClassVar[str] = "float"
    fn = staticmethod(_l2)


@register
@dataclass(frozen=True)
class ReduceSumSquare(Reduce):
    """y = sum of x**2 over axes."""

    name: ClassVar[str] = "reduce_sum_square"
    fn = staticmethod(_sum_square)


@register
@dataclass(frozen=True)
class ReduceLogSumExp(Reduce):
    """y = ln(sum of e**x over axes), computed as m + ln(sum e**(x - m)) with m = max x."""

    name: ClassVar[str] = "reduce_log_sum_exp"
    allowed: ClassVar[str] = "float"
    fn = staticmethod(_log_sum_exp)


@dataclass(frozen=True)
class ArgReduce(Op):
    """Base of argmax/argmin: i64 index along `axis` (first hit, or last if select_last_index)."""

    fn: ClassVar[Callable[..., np.ndarray]]
    axis: int = 0
    keepdims: bool = False
    select_last_index: bool = False

    def infer(self, x: TensorType) -> TensorType:
        require_kind(self.name, "number", x)
        (axis,) = norm_axes(self.name, (self.axis,), x.rank)
        require(not dim_eq(x.shape[axis], 0), f"{self.name}: axis {self.axis} of {x} is empty")
        return TensorType(DType.i64, reduced_shape(x.shape, (axis,), self.keepdims))

    def ref(self, x: np.ndarray) -> np.ndarray:
        axis = self.axis % x.ndim
        if x.shape[axis] == 0:
            raise ValueError(f"{self.name}: axis {self.axis} of shape {list(x.shape)} is empty")
        fn = type(self).fn
        if self.select_last_index:
            idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=self.keepdims)
        else:
            idx = fn(x, axis=axis, keepdims=self.keepdims)
        return np.asarray(idx).astype(np.int64)


@register
@dataclass(frozen=True)
class Argmax(ArgReduce):
    """y = index of the max of x along axis (NaN counts as the max), i64."""

    name: ClassVar[str] = "argmax"
    fn = staticmethod(np.argmax)


@register
@dataclass(frozen=True)
class Argmin(ArgReduce):
    """y = index of the min of x along axis (NaN counts as the min), i64."""

    name: ClassVar[str] = "argmin"
    fn = staticmethod(np.argmin)


@register
@dataclass(frozen=True)
class Cumsum(Op):
    """y[i] = sum of x[j] along axis for j <= i (j < i if exclusive; j >= i / j > i if reverse).

    Same shape and dtype as x; integers wrap like reduce_sum.
    """

    name: ClassVar[str] = "cumsum"
    axis: int = 0
    exclusive: bool = False
    reverse: bool = False

    def infer(self, x: TensorType) -> TensorType:
        require_kind(self.name, "number", x)
        norm_axes(self.name, (self.axis,), x.rank)
        return x

    def ref(self, x: np.ndarray) -> np.ndarray:
        axis = self.axis % x.ndim
        y = opmath(x)
        y = np.flip(y, axis) if self.reverse else y
        out = np.cumsum(y, axis=axis, dtype=_acc(y))
        if self.exclusive:  # shift by one along axis, 0 first
            pad = [(0, 0)] * x.ndim
            pad[axis] = (1, 0)
            out = np.pad(out, pad)[tuple(slice(0, n) for n in x.shape)]
        out = np.flip(out, axis) if self.reverse else out
        return np.ascontiguousarray(out).astype(x.dtype)
