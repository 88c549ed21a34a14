"""ONNX converters for Resize (and the deprecated Upsample).

The IR's `resize` covers nearest/linear/cubic with the usual coordinate modes. Antialiased
downsampling and tf_crop_and_resize are linear maps along each axis too: their per-axis
interpolation matrices (and the out-of-range mask of crop-and-resize) are computed here with
ONNX's coefficient rules, and applied as matmuls on static shapes.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import Dim, is_static, norm
from .onnx_ops import Row, mk
from .onnx_ops_ctx import OT, NodeCtx


def _resize_target(
    c: NodeCtx, x: OT, scales: list[float] | None, sizes: list[Dim] | None, axes: list[int]
) -> tuple[list[Dim], list[float] | None]:
    """Output sizes and per-axis scales (None: sizes / input) from Resize's operands."""
    rank = x.rank
    if sizes is not None:
        out = list(x.shape)
        for a, s in zip(axes, sizes):
            out[a] = s
        policy = c.attr("keep_aspect_ratio_policy", "stretch")
        if policy == "stretch":
            return out, None
        if not all(is_static(x.shape[a]) and is_static(out[a]) for a in axes):
            c.fail("keep_aspect_ratio_policy on symbolic dims")
        ratios = [int(out[a]) / int(x.shape[a]) for a in axes]
        scale = min(ratios) if policy == "not_larger" else max(ratios)
        full = [1.0] * rank
        for a in axes:
            full[a] = scale
            out[a] = int(math.floor(int(x.shape[a]) * scale + 0.5))
        return out, full
    assert scales is not None
    full = [1.0] * rank
    for a, s in zip(axes, scales):
        full[a] = float(s)
    out: list[Dim] = []
    for d, s in zip(x.shape, full):
        if is_static(d):
            out.append(int(math.floor(int(d) * s)))
        elif float(s).is_integer():
            out.append(norm(d * int(s)))
        else:
            c.fail(f"non-integral scale {s} on symbolic dim {d}")
    return out, full


def convert_resize(c: NodeCtx) -> OT:
    x = c.x(0)
    mode = str(c.attr("mode", "nearest"))
    if mode not in ("nearest", "linear", "cubic"):
        c.fail(f"mode {mode!r}")
    ctm = str(c.attr("coordinate_transformation_mode", "half_pixel"))
    if c.since < 11:
        ctm = "asymmetric"
    axes = [int(a) % x.rank for a in (c.attr("axes") or range(x.rank))]
    scales = sizes = None
    if c.since < 11:
        scales = [float(v) for v in c.const(1).reshape(-1)]
    else:
        if c.has(3) and c.x(3).shape != (0,):
            sizes = c.ints(3)
        elif c.has(2) and c.x(2).shape != (0,):
            scales = [float(v) for v in c.const(2).reshape(-1)]
        else:
            c.fail("neither scales nor sizes given")
    out, full_scales = _resize_target(c, x, scales, sizes, axes)
    if ctm == "tf_crop_and_resize" or bool(c.attr("antialias", 0)):
        roi = None
        if ctm == "tf_crop_and_resize":
            given = [float(v) for v in c.const(1).reshape(-1)]
            roi = [0.0] * x.rank + [1.0] * x.rank
            for k, a in enumerate(axes):
                roi[a], roi[x.rank + a] = given[k], given[len(axes) + k]
        if full_scales is None:
            full_scales = [
                int(o) / int(d) if is_static(o) and is_static(d) and int(d) else 1.0
                for o, d in zip(out, x.shape)
            ]
        return resize_by_matrices(c, x, out, full_scales, mode, ctm, roi)
    nearest = str(c.attr("nearest_mode", "round_prefer_floor"))
    if c.since < 11:
        nearest = "floor" if mode == "nearest" else nearest
    op = mk(
        "resize",
        sizes=tuple(out),
        scales=tuple(full_scales or ()),
        mode=mode,
        coordinate_transformation_mode=ctm,
        nearest_mode=nearest,
        cubic_coeff_a=float(c.attr("cubic_coeff_a", -0.75)),
        exclude_outside=bool(c.attr("exclude_outside", 0)),
        antialias=bool(c.attr("antialias", 0)),
    )
    return c.emit(op, x)


def convert_upsample(c: NodeCtx) -> OT:
    x = c.x(0)
    mode = str(c.attr("mode", "nearest"))
    scales = [float(v) for v in c.const(1).reshape(-1)]
    out, full = _resize_target(c, x, scales, None, list(range(x.rank)))
    op = mk(
        "resize",
        sizes=tuple(out),
        scales=tuple(full or ()),
        mode=mode,
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return c.emit(op, x)


# -- interpolation matrices ----------------------------------------------------------------------
def _source_coords(
    ctm: str,
    m: int,
    n: int,
    scale: float,
    roi: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """ONNX's x_original for output positions 0..m-1 (and, for tf_crop_and_resize, which of
    them fall outside the input)."""
    y = np.arange(m, dtype=np.float64)
    out_w = scale * n
    if ctm == "align_corners":
        return (np.zeros(m) if out_w == 1 else y * (n - 1) / (out_w - 1)), None
    if ctm == "asymmetric":
        return y / scale, None
    if ctm == "tf_crop_and_resize":
        assert roi is not None
        lo, hi = roi
        x = (
            np.full(m, (hi - lo) * (n - 1) / 2)
            if out_w == 1
            else y * (hi - lo) * (n - 1) / (out_w - 1)
        )
        x = x + lo * (n - 1)
        return x, (x < 0) | (x > n - 1)
    if ctm == "pytorch_half_pixel":
        return (np.full(m, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5), None
    if ctm == "half_pixel_symmetric":
        offset = n / 2 * (1 - m / out_w)
        return offset + (y + 0.5) / scale - 0.5, None
    return (y + 0.5) / scale - 0.5, None


def _cubic(x: float, a: float) -> float:
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def _coeffs(
    mode: str, ratio: float, scale: float, antialias: bool, a: float, nearest: str
) -> np.ndarray:
    """Weights of the kernel's taps for a source coordinate with fraction `ratio` in (0, 1]."""
    if mode == "nearest":
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {
            "round_prefer_floor": ratio > 0.5,
            "round_prefer_ceil": ratio >= 0.5,
            "floor": False,
            "ceil": True,
        }[nearest]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    if not antialias:
        if mode == "linear":
            return np.array([1 - ratio, ratio])
        return np.array(
            [_cubic(ratio + 1, a), _cubic(ratio, a), _cubic(1 - ratio, a), _cubic(2 - ratio, a)]
        )
    s = min(scale, 1.0)
    if mode == "linear":
        start = int(np.floor(-1 / s) + 1)
        taps = (np.arange(start, 2 - start) - ratio) * s
        w = np.clip(1 - np.abs(taps), 0, 1)
    else:
        start = int(np.floor(-2 / s) + 1)
        w = np.array([_cubic(s * (i - ratio), a) for i in range(start, 2 - start)])
    return w / w.sum()


def interpolation_matrix(
    n: int,
    m: int,
    scale: float,
    mode: str,
    ctm: str,
    antialias: bool,
    a: float,
    nearest: str,
    exclude_outside: bool,
    roi: tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """W [m, n] with y = W @ x along one axis, and the extrapolated rows (crop mode)."""
    x, outside = _source_coords(ctm, m, n, scale, roi)
    base = np.floor(x)
    ratios = np.where(x == base, 1.0, x - base)
    w = np.zeros((m, n))
    for i in range(m):
        coeffs = _coeffs(mode, float(ratios[i]), scale, antialias, a, nearest)
        k = len(coeffs)
        pad = int(np.ceil(k / 2))
        xp = x[i] + pad
        p = int(np.floor(xp))
        frac = xp - p
        if k % 2 == 0:
            first = p + (-(k // 2) if frac == 0 else -(k // 2) + 1)
        else:
            first = p - (k - 1) // 2 + (0 if frac <= 0.5 else 1)
        idx = first + np.arange(k) - pad
        if exclude_outside:
            coeffs = np.where((idx < 0) | (idx >= n), 0.0, coeffs)
            total = coeffs.sum()
            coeffs = coeffs / (total if total != 0 else 1.0)
        for j, cf in zip(np.clip(idx, 0, n - 1), coeffs):
            w[i, j] += cf
    return w, outside


def resize_by_matrices(
    c: NodeCtx,
    x: OT,
    sizes: list[Dim],
    scales: list[float],
    mode: str,
    ctm: str,
    roi: list[float] | None,
) -> OT:
    """Resize applied one axis at a time as a matmul with its interpolation matrix."""
    if not all(is_static(d) for d in list(x.shape) + list(sizes)):
        c.fail("antialias / tf_crop_and_resize on symbolic dims")
    if not x.dtype.is_float:
        c.fail(f"{mode} resize of {x.dtype}")
    rank = x.rank
    y = x
    extrapolate = float(c.attr("extrapolation_value", 0.0))
    for ax in range(rank):
        n, m = int(x.shape[ax]), int(sizes[ax])
        axis_roi = (roi[ax], roi[rank + ax]) if roi is not None else None
        if n == m and scales[ax] == 1.0 and ctm != "tf_crop_and_resize":
            continue
        w, outside = interpolation_matrix(
            n,
            m,
            scales[ax],
            mode,
            ctm,
            bool(c.attr("antialias", 0)),
            float(c.attr("cubic_coeff_a", -0.75)),
            str(c.attr("nearest_mode", "round_prefer_floor")),
            bool(c.attr("exclude_outside", 0)),
            axis_roi,
        )
        perm = tuple(i for i in range(rank) if i != ax) + (ax,)
        back = tuple(int(np.argsort(perm)[i]) for i in range(rank))
        moved = c.emit(mk("transpose", perm=perm), y)
        prod = c.emit(mk("matmul"), moved, c.const_ot(w.T.astype(x.dtype.np), x.dtype))
        y = c.emit(mk("transpose", perm=back), prod)
        if outside is not None and outside.any():
            shape = [1] * rank
            shape[ax] = m
            mask = c.const_ot(outside.reshape(shape), DType.bool)
            y = c.emit(mk("where"), mask, c.scalar(extrapolate, x.dtype), y)
    return y if y is not x else c.emit(mk("identity"), x)


ROWS: list[Row] = [
    ("Resize", (10, 11, 13, 18, 19), convert_resize),
    ("Upsample", (9, 10), convert_upsample),
]
