"""Indexing ops: gather / gather_elements / gather_nd, scatter_elements / scatter_nd and one_hot,
with ONNX semantics (negative indices count from the end; out-of-range indices are errors)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType, round_to_bf16
from ..errors import InterpreterError, require
from ..op import Op, register
from ..shapes import Dim, dim_le, is_static, shape_eq
from ..types import TensorType
from .shape import check_int_fill, norm_axis

INDEX_DTYPES = (DType.i32, DType.i64)
REDUCTIONS = ("none", "add", "mul", "max", "min")
_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _check_indices(op: str, indices: TensorType) -> None:
    require(indices.dtype in INDEX_DTYPES, f"{op}: indices must be i32 or i64, got {indices}")


def wrap_indices(op: str, idx: np.ndarray, n: int, where: str) -> np.ndarray:
    """Indices in 0..n-1 (negative ones count from the end); InterpreterError if any is
    outside -n..n-1."""
    idx = idx.astype(np.int64, copy=False)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise InterpreterError(
            f"{op}: index {idx[bad].reshape(-1)[0]} out of range -{n}..{n - 1} ({where})"
        )
    return np.where(idx < 0, idx + n, idx)


def _elements_grid(op: str, idx: np.ndarray, axis: int, n: int) -> tuple[np.ndarray, ...]:
    """Index arrays addressing x[i_0, ..., idx[i], ..., i_{r-1}] for every position i of idx."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = wrap_indices(op, idx, n, f"axis {axis}")
    return tuple(grid)


def _check_elements(op: str, x: TensorType, indices: TensorType, axis: int) -> int:
    _check_indices(op, indices)
    require(x.rank >= 1, f"{op}: needs rank >= 1, got {x}")
    require(indices.rank == x.rank, f"{op}: indices {indices} and data {x} ranks differ")
    ax = norm_axis(op, axis, x.rank)
    for i, (a, b) in enumerate(zip(indices.shape, x.shape)):
        require(
            i == ax or dim_le(a, b),
            f"{op}: indices {indices} exceed data {x} on axis {i} (must be provably <=)",
        )
    return ax


def _last_dim(op: str, indices: TensorType, most: int) -> int:
    require(indices.rank >= 1, f"{op}: indices need rank >= 1, got {indices}")
    m = indices.shape[-1]
    require(
        is_static(m) and 1 <= m <= most,
        f"{op}: last dim of indices {indices} must be a static 1..{most}",
    )
    return m  # type: ignore[return-value]


@register
@dataclass(frozen=True)
class Gather(Op):
    """y[a..., i..., b...] = x[a..., indices[i...], b...] along `axis` (numpy.take)."""

    name: ClassVar[str] = "gather"
    axis: int = 0

    def infer(self, x: TensorType, indices: TensorType) -> TensorType:
        _check_indices(self.name, indices)
        require(x.rank >= 1, f"gather: needs rank >= 1, got {x}")
        ax = norm_axis(self.name, self.axis, x.rank)
        return x.with_shape(x.shape[:ax] + indices.shape + x.shape[ax + 1 :])

    def ref(self, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        ax = self.axis + x.ndim if self.axis < 0 else self.axis
        idx = wrap_indices(self.name, indices, x.shape[ax], f"axis {ax}")
        return np.take(x, idx, axis=ax)


@register
@dataclass(frozen=True)
class GatherElements(Op):
    """y[i] = x[i with i[axis] replaced by indices[i]] (torch.gather); y.shape = indices.shape."""

    name: ClassVar[str] = "gather_elements"
    axis: int = 0

    def infer(self, x: TensorType, indices: TensorType) -> TensorType:
        _check_elements(self.name, x, indices, self.axis)
        return x.with_shape(indices.shape)

    def ref(self, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        ax = self.axis + x.ndim if self.axis < 0 else self.axis
        return x[_elements_grid(self.name, indices, ax, x.shape[ax])]


@register
@dataclass(frozen=True)
class GatherNd(Op):
    """ONNX GatherND: y[b..., i...] = x[b..., indices[b..., i..., :]] where the last indices
    dim m addresses the m axes after the `batch_dims` leading (shared) ones."""

    name: ClassVar[str] = "gather_nd"
    batch_dims: int = 0

    def infer(self, x: TensorType, indices: TensorType) -> TensorType:
        _check_indices(self.name, indices)
        b = self.batch_dims
        require(
            0 <= b < min(x.rank, indices.rank),
            f"gather_nd: batch_dims {b} must be in 0..min(ranks)-1 ({x}, {indices})",
        )
        require(
            shape_eq(x.shape[:b], indices.shape[:b]),
            f"gather_nd: batch dims of {x} and {indices} differ",
        )
        m = _last_dim(self.name, indices, x.rank - b)
        return x.with_shape(indices.shape[:-1] + x.shape[b + m :])

    def ref(self, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        b, m = self.batch_dims, indices.shape[-1]
        nb, nk = math.prod(x.shape[:b]), math.prod(indices.shape[b:-1])
        xb = x.reshape((nb,) + x.shape[b:])
        ib = indices.reshape(nb, nk, m)
        cols = [
            wrap_indices(self.name, ib[..., j], x.shape[b + j], f"axis {b + j}") for j in range(m)
        ]
        out = xb[(np.arange(nb)[:, None], *cols)]
        return out.reshape(indices.shape[:-1] + x.shape[b + m :])


@register
@dataclass(frozen=True)
class ScatterElements(Op):
    """y = x, then for every position i of indices: y[i with i[axis] = indices[i]] (op)=
    updates[i], op by `reduction` (none: assign; add, mul, max, min: combine)."""

    name: ClassVar[str] = "scatter_elements"
    axis: int = 0
    reduction: str = "none"

    def infer(self, x: TensorType, indices: TensorType, updates: TensorType) -> TensorType:
        require(self.reduction in REDUCTIONS, f"{self.name}: reduction {self.reduction!r}")
        _check_elements(self.name, x, indices, self.axis)
        require(updates.dtype == x.dtype, f"{self.name}: updates {updates} vs data {x}")
        require(
            shape_eq(updates.shape, indices.shape),
            f"{self.name}: updates {updates} and indices {indices} shapes differ",
        )
        return x

    def ref(self, x: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> np.ndarray:
        ax = self.axis + x.ndim if self.axis < 0 else self.axis
        grid = _elements_grid(self.name, indices, ax, x.shape[ax])
        return _scatter(x, grid, updates, self.reduction)


@register
@dataclass(frozen=True)
class ScatterNd(Op):
    """ONNX ScatterND: y = x, then y[indices[k..., :]] (op)= updates[k...] for every k, where
    the last indices dim m addresses x's first m axes (reduction as in scatter_elements)."""

    name: ClassVar[str] = "scatter_nd"
    reduction: str = "none"

    def infer(self, x: TensorType, indices: TensorType, updates: TensorType) -> TensorType:
        require(self.reduction in REDUCTIONS, f"{self.name}: reduction {self.reduction!r}")
        _check_indices(self.name, indices)
        m = _last_dim(self.name, indices, x.rank)
        require(updates.dtype == x.dtype, f"{self.name}: updates {updates} vs data {x}")
        want = indices.shape[:-1] + x.shape[m:]
        require(
            shape_eq(updates.shape, want),
            f"{self.name}: updates {updates} should have shape {[str(d) for d in want]}",
        )
        return x

    def ref(self, x: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> np.ndarray:
        m = indices.shape[-1]
        flat = indices.reshape(-1, m)
        cols = tuple(wrap_indices(self.name, flat[:, j], x.shape[j], f"axis {j}") for j in range(m))
        return _scatter(x, cols, updates.reshape((len(flat),) + x.shape[m:]), self.reduction)


def _scatter(x: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray, reduction: str):
    out = x.copy()
    if reduction == "none":
        out[where] = updates  # duplicate indices: the last write wins (ONNX leaves it open)
    else:
        _UFUNC[reduction].at(out, where, updates)
    return out


@register
@dataclass(frozen=True)
class OneHot(Op):
    """y[..., j (at `axis`), ...] = on_value if indices[...] == j (negative indices count
    from depth) else off_value, for j < depth; indices outside -depth..depth-1 give all off."""

    name: ClassVar[str] = "one_hot"
    depth: int = 2
    axis: int = -1
    on_value: float = 1.0
    off_value: float = 0.0
    dtype: DType = DType.f32

    def infer(self, indices: TensorType) -> TensorType:
        _check_indices(self.name, indices)
        require(self.depth >= 1, f"one_hot: depth {self.depth} < 1")
        check_int_fill(self.name, self.on_value, self.dtype)
        check_int_fill(self.name, self.off_value, self.dtype)
        ax = norm_axis(self.name, self.axis, indices.rank + 1)
        shape: tuple[Dim, ...] = indices.shape[:ax] + (self.depth,) + indices.shape[ax:]
        return TensorType(self.dtype, shape)

    def ref(self, indices: np.ndarray) -> np.ndarray:
        idx = indices.astype(np.int64)
        idx = np.where(idx < 0, idx + self.depth, idx)
        hot = idx[..., None] == np.arange(self.depth)
        out = np.where(hot, self.on_value, self.off_value).astype(self.dtype.np)
        if self.dtype == DType.bf16:
            out = round_to_bf16(out)
        ax = self.axis + indices.ndim + 1 if self.axis < 0 else self.axis
        return np.moveaxis(out, -1, ax)
