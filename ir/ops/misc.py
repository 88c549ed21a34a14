"""Misc tensor ops: triangular masks, depth/space rearrangements, ONNX Resize and TopK."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import require
from ..op import Op, register
from ..shapes import Dim, dim_eq, dim_le, floor_div, norm
from ..types import TensorType
from .shape import attr_dims, norm_axis

RESIZE_MODES = ("nearest", "linear", "cubic")
COORD_MODES = (
    "half_pixel",
    "half_pixel_symmetric",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
)
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@register
@dataclass(frozen=True)
class Trilu(Op):
    """Keep the upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes; 0 else."""

    name: ClassVar[str] = "trilu"
    upper: bool = True
    k: int = 0

    def infer(self, x: TensorType) -> TensorType:
        require(x.rank >= 2, f"trilu: needs rank >= 2, got {x}")
        return x

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.triu(x, self.k) if self.upper else np.tril(x, self.k)


def _divides(d: Dim, k: int) -> bool:
    return dim_eq(floor_div(d, k) * k, d)


@register
@dataclass(frozen=True)
class DepthToSpace(Op):
    """NCHW -> N, C/b^2, H*b, W*b: channel blocks become b x b spatial blocks.

    DCR: channel c' + (C/b^2) * (b*i + j) goes to (c', h*b + i, w*b + j);
    CRD: channel c' * b^2 + b*i + j goes there (torch.pixel_shuffle).
    """

    name: ClassVar[str] = "depth_to_space"
    blocksize: int = 2
    mode: str = "DCR"

    def infer(self, x: TensorType) -> TensorType:
        b = self.blocksize
        require(self.mode in ("DCR", "CRD"), f"depth_to_space: mode {self.mode!r} not DCR/CRD")
        require(b >= 1, f"depth_to_space: blocksize {b} < 1")
        require(x.rank == 4, f"depth_to_space: needs an NCHW input, got {x}")
        n, c, h, w = x.shape
        require(_divides(c, b * b), f"depth_to_space: channels of {x} not divisible by {b * b}")
        return x.with_shape((n, floor_div(c, b * b), h * b, w * b))

    def ref(self, x: np.ndarray) -> np.ndarray:
        b = self.blocksize
        n, c, h, w = x.shape
        if self.mode == "DCR":
            t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return t.reshape(n, c // (b * b), h * b, w * b)


@register
@dataclass(frozen=True)
class SpaceToDepth(Op):
    """NCHW -> N, C*b^2, H/b, W/b: y[n, (b*i + j)*C + c, h, w] = x[n, c, h*b + i, w*b + j]."""

    name: ClassVar[str] = "space_to_depth"
    blocksize: int = 2

    def infer(self, x: TensorType) -> TensorType:
        b = self.blocksize
        require(b >= 1, f"space_to_depth: blocksize {b} < 1")
        require(x.rank == 4, f"space_to_depth: needs an NCHW input, got {x}")
        n, c, h, w = x.shape
        require(
            _divides(h, b) and _divides(w, b),
            f"space_to_depth: spatial dims of {x} not divisible by {b}",
        )
        return x.with_shape((n, c * b * b, floor_div(h, b), floor_div(w, b)))

    def ref(self, x: np.ndarray) -> np.ndarray:
        b = self.blocksize
        n, c, h, w = x.shape
        t = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
        return t.reshape(n, c * b * b, h // b, w // b)


@register
@dataclass(frozen=True)
class Resize(Op):
    """ONNX Resize to `sizes`, separable per axis: output index y maps to source coordinate
    x(y) by `coordinate_transformation_mode` with scale = scales[i] if given else
    sizes[i] / in[i]; nearest rounds x by `nearest_mode`, linear/cubic (Keys kernel with
    a = cubic_coeff_a) weight the neighbours, clamped to the edge; `exclude_outside` zeroes
    and renormalizes weights of out-of-range neighbours."""

    name: ClassVar[str] = "resize"
    sizes: tuple[Dim, ...] = ()
    scales: tuple[float, ...] = ()
    mode: str = "nearest"
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    cubic_coeff_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False

    def infer(self, x: TensorType) -> TensorType:
        require(self.mode in RESIZE_MODES, f"resize: mode {self.mode!r} not in {RESIZE_MODES}")
        ctm = self.coordinate_transformation_mode
        require(
            ctm in COORD_MODES,
            f"resize: coordinate_transformation_mode {ctm!r} not supported (one of {COORD_MODES})",
        )
        require(
            self.nearest_mode in NEAREST_MODES,
            f"resize: nearest_mode {self.nearest_mode!r} not in {NEAREST_MODES}",
        )
        require(not self.antialias, "resize: antialias=true is not supported")
        require(
            self.mode == "nearest" or x.dtype.is_float,
            f"resize: {self.mode} interpolation needs a float input, got {x}",
        )
        sizes = attr_dims(self.name, self.sizes, "sizes")
        require(len(sizes) == x.rank, f"resize: {len(sizes)} sizes for {x}")
        require(
            not self.scales or len(self.scales) == x.rank,
            f"resize: {len(self.scales)} scales for {x}",
        )
        require(all(s > 0 for s in self.scales), f"resize: scales {self.scales} must be > 0")
        for i, (d, o) in enumerate(zip(x.shape, sizes)):
            require(dim_le(1, d) or dim_eq(o, 0), f"resize: cannot resize empty axis {i} of {x}")
        return x.with_shape(sizes)

    def ref(self, x: np.ndarray) -> np.ndarray:
        out = x if x.dtype == np.float64 or self.mode == "nearest" else x.astype(np.float64)
        for axis, size in enumerate(self.sizes):
            n = x.shape[axis]
            scale = self.scales[axis] if self.scales else (size / n if n else 1.0)
            if size == out.shape[axis] and scale == 1.0:
                continue  # identity along this axis in every mode
            out = self._resize_axis(out, axis, size, float(scale))
        return out.astype(x.dtype, copy=False)

    def _source_coords(self, y: np.ndarray, scale: float, n_in: int) -> np.ndarray:
        """ONNX's x_original(y), written as its reference does (same float rounding)."""
        ctm = self.coordinate_transformation_mode
        n_out = scale * n_in  # ONNX's "output_width": a float when scales are given
        if ctm == "asymmetric":
            return y / scale
        if ctm == "align_corners":
            return np.zeros_like(y) if n_out == 1 else y * (n_in - 1) / (n_out - 1)
        if ctm == "pytorch_half_pixel" and n_out == 1:
            return np.full_like(y, -0.5)
        if ctm == "half_pixel_symmetric":
            offset = n_in / 2 * (1 - len(y) / n_out)
            return offset + (y + 0.5) / scale - 0.5
        return (y + 0.5) / scale - 0.5

    def _resize_axis(self, a: np.ndarray, axis: int, size: int, scale: float) -> np.ndarray:
        n_in = a.shape[axis]
        if size == 0:
            return np.take(a, np.zeros(0, dtype=np.intp), axis=axis)
        x = self._source_coords(np.arange(size, dtype=np.float64), scale, n_in)
        base = np.floor(x)
        frac = x - base
        if self.mode == "nearest":
            # ONNX rounds on the fraction (exact), not on x - 0.5 (which can round).
            up = {
                "round_prefer_floor": frac > 0.5,
                "round_prefer_ceil": frac >= 0.5,
                "floor": np.zeros_like(frac, dtype=bool),
                "ceil": frac > 0,
            }[self.nearest_mode]
            idx = np.clip(base + up, 0, n_in - 1).astype(np.intp)
            return np.take(a, idx, axis=axis)
        if self.mode == "cubic":
            weights = _cubic_weights(frac, self.cubic_coeff_a)
        else:
            weights = np.stack([1 - frac, frac], axis=1)
        first = -1 if self.mode == "cubic" else 0
        idx = base.astype(np.int64)[:, None] + np.arange(first, first + weights.shape[1])
        if self.exclude_outside:
            weights = np.where((idx < 0) | (idx >= n_in), 0.0, weights)
            total = weights.sum(axis=1, keepdims=True)
            weights = weights / np.where(total == 0, 1.0, total)
        taken = np.take(a, np.clip(idx, 0, n_in - 1).astype(np.intp), axis=axis)
        shape = (1,) * axis + weights.shape + (1,) * (a.ndim - axis - 1)
        return (taken * weights.reshape(shape)).sum(axis=axis + 1)


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Keys cubic weights of the neighbours at offsets -1, 0, 1, 2 for fraction t in [0, 1)."""
    u = 1 - t
    return np.stack(
        [
            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * u - (a + 3)) * u * u + 1,
            ((a * (u + 1) - 5 * a) * (u + 1) + 8 * a) * (u + 1) - 4 * a,
        ],
        axis=1,
    )


@register
@dataclass(frozen=True)
class Topk(Op):
    """The k largest (or smallest) elements along `axis`, sorted, with their i64 indices;
    equal values are ordered by lower index first (ONNX)."""

    name: ClassVar[str] = "topk"
    k: Dim = 1
    axis: int = -1
    largest: bool = True
    sorted: bool = True

    def infer(self, x: TensorType) -> tuple[TensorType, TensorType]:
        require(x.rank >= 1, f"topk: needs rank >= 1, got {x}")
        ax = norm_axis(self.name, self.axis, x.rank)
        k = norm(self.k)
        require(
            dim_le(0, k) and dim_le(k, x.shape[ax]),
            f"topk: k = {k} not provably in 0..{x.shape[ax]} (axis {ax} of {x})",
        )
        shape = x.shape[:ax] + (k,) + x.shape[ax + 1 :]
        return x.with_shape(shape), TensorType(DType.i64, shape)

    def ref(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ax = self.axis + x.ndim if self.axis < 0 else self.axis
        if self.largest:
            # Stable ascending sort of the reversed axis, read backwards: descending values,
            # ties by lower original index.
            n = x.shape[ax]
            order = np.flip(np.argsort(np.flip(x, ax), axis=ax, kind="stable"), ax)
            order = n - 1 - order
        else:
            order = np.argsort(x, axis=ax, kind="stable")
        idx = np.take(order, np.arange(self.k), axis=ax)
        return np.take_along_axis(x, idx, axis=ax), idx.astype(np.int64)
