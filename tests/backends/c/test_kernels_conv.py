"""The convolution weight layout (packing.py against lmc_conv2d_pack, byte for byte), the conv
workspace contract between the emitter and the kernel, and the max-pool kernel against the IR
reference, for every SIMD path this CPU runs and 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.backends.c.emit_conv import _conv_workspace, conv_packed_key
from lmc.ir import DType, Graph, TensorType
from lmc.ir.ops.conv import Conv, MaxPool

from tests.backends.c.kernels_harness import Pool2dShape, ptr
from tests.backends.c.test_kernels_nn import conv_shape

# ---- weight layout ------------------------------------------------------------------------

# K, C/groups, R, S, groups
PACK_SHAPES = {
    "plain": (64, 3, 7, 7, 1),
    "k_not_16": (20, 5, 3, 3, 1),
    "k_lt_16": (5, 2, 1, 3, 1),
    "groups": (24, 4, 3, 3, 3),
    "groups_k_not_16": (18, 2, 2, 2, 2),
    "pointwise": (33, 17, 1, 1, 1),
    "one_in_channel_gemm": (40, 1, 3, 3, 4),  # C/groups == 1 but 10 out channels per group
    "depthwise": (16, 1, 3, 3, 16),  # the direct path: the weight as given
    "depthwise_mult": (12, 1, 5, 5, 4),
    "tiny": (1, 1, 1, 1, 1),
}


def pack_c(k, w: np.ndarray, groups: int) -> bytes:
    kout, cg, r, s = w.shape
    case = (1, cg * groups, r, s, kout, (r, s), (1, 1), (0, 0, 0, 0), (1, 1), groups)
    shape, _ = conv_shape(case)
    nbytes = k.lib.lmc_conv2d_packed_bytes(shape)
    assert nbytes == packing.conv2d_packed_bytes(w.shape, groups)
    out = np.full(max(nbytes, 4) // 4, np.nan, np.float32)
    k.lib.lmc_conv2d_pack(shape, ptr(w), ptr(out))
    return out.tobytes()[:nbytes]


@pytest.mark.parametrize("shape", PACK_SHAPES.values(), ids=PACK_SHAPES.keys())
def test_pack_conv2d_bit_exact(k, shape: tuple) -> None:
    kout, cg, r, s, groups = shape
    w = np.random.default_rng(kout * 7 + cg).standard_normal((kout, cg, r, s)).astype(np.float32)
    w[0, 0, 0, 0] = -0.0  # signed zero and a subnormal survive bit for bit
    w[-1, -1, -1, -1] = np.float32(1e-42)
    py = packing.pack_conv2d(w, groups)
    assert pack_c(k, w, groups) == py


@pytest.mark.parametrize("shape", PACK_SHAPES.values(), ids=PACK_SHAPES.keys())
def test_pack_conv2d_layout(shape: tuple) -> None:
    """The documented layout: per group, 16-channel panels stored reduction-major, zero past
    the group's channels; the weight itself on the direct (depthwise) path."""
    kout, cg, r, s, groups = shape
    w = np.arange(kout * cg * r * s, dtype=np.float32).reshape(kout, cg, r, s) + 1
    got = np.frombuffer(packing.pack_conv2d(w, groups), "<f4")
    if packing.conv2d_direct(w.shape, groups):
        assert np.array_equal(got, w.ravel())
        return
    kg, red = kout // groups, cg * r * s
    panels = -(-kg // 16)
    got = got.reshape(groups, panels, red, 16)
    for g in range(groups):
        wg = w[g * kg : (g + 1) * kg].reshape(kg, red)
        for p in range(panels):
            for j in range(16):
                want = wg[16 * p + j] if 16 * p + j < kg else np.zeros(red, np.float32)
                assert np.array_equal(got[g, p, :, j], want)


def test_pack_conv2d_empty_and_bad() -> None:
    assert packing.pack_conv2d(np.zeros((0, 3, 3, 3), np.float32)) == b""
    assert packing.conv2d_packed_bytes((4, 0, 3, 3)) == 0
    with pytest.raises(packing.PackingError, match="groups=4"):
        packing.pack_conv2d(np.zeros((6, 1, 3, 3), np.float32), groups=4)
    with pytest.raises(packing.PackingError, match="rank-4"):
        packing.pack_conv2d(np.zeros((6, 1, 3), np.float32))


# ---- workspace ------------------------------------------------------------------------------

# N, C, H, W, K, (R, S), stride, (pad top, left, bottom, right), dilation, groups
WS_CASES = [
    (2, 4, 17, 19, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 3, 30, 41, 20, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    (1, 5, 20, 23, 7, (3, 2), (2, 3), (0, 1, 2, 1), (2, 2), 1),
    (1, 3, 6, 6, 5, (3, 3), (2, 2), (0, 0, 2, 2), (1, 1), 1),  # end pads only
    (1, 3, 7, 7, 5, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # no padding: no copy
    (1, 8, 9, 9, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),  # depthwise: no copy
]


@pytest.mark.parametrize("case", WS_CASES)
@pytest.mark.parametrize("param", (True, False), ids=("param_w", "computed_w"))
def test_workspace_bound(k, case: tuple, param: bool) -> None:
    """The emitter reserves at least what the kernel asks for (and room for the weight packed at
    run time when it is not a pre-packed param)."""
    n, c, h, wd, kout, (r, s), stride, pads, dil, groups = case
    shape, (oh, ow) = conv_shape(case)
    need = k.lib.lmc_conv2d_workspace_bytes(shape)
    g = Graph("ws")
    x = g.input("x", TensorType(DType.f32, [n, c, h, wd]))
    wshape = (kout, c // groups, r, s)
    w = (
        g.param("w", np.zeros(wshape, np.float32))
        if param
        else g.input("w", TensorType(DType.f32, list(wshape)))
    )
    y = g.apply(Conv(stride=stride, padding=pads, dilation=dil, groups=groups), x, w)
    g.set_outputs([y])
    node = y.node
    assert list(y.type.shape) == [n, kout, oh, ow]
    assert (conv_packed_key(node) is not None) == param
    got = _conv_workspace(node)
    reserved = 0 if got is None else int(got)
    packed = 0 if param else k.lib.lmc_conv2d_packed_bytes(shape)
    assert reserved >= need + (-(-packed // 64) * 64 if packed else 0)
    if param and need == 0:
        assert got is None or sum(pads) > 0
    if not any(pads):
        assert need == 0


# ---- max pool ---------------------------------------------------------------------------------

# planes, H, W, (KH, KW), stride, (pad top, left, bottom, right), dilation, ceil_mode
POOLS = {
    "resnet_3x3_s2": (8, 24, 22, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    "2x2_s2": (5, 12, 13, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
    "2x2_s2_ceil_pad": (3, 9, 11, (2, 2), (2, 2), (1, 1, 1, 1), (1, 1), True),
    "3x3_s1_pad": (4, 10, 37, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False),
    "3x3_s2_odd_ceil": (2, 15, 17, (3, 3), (2, 2), (0, 1, 0, 1), (1, 1), True),
    "3x2_s2x1": (3, 11, 9, (3, 2), (2, 1), (1, 0, 1, 1), (1, 1), False),
    "1x1_s2": (2, 7, 8, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), False),
    "wide_row": (1, 5, 300, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    "one_pixel": (3, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False),
    "single_row": (2, 1, 12, (1, 3), (1, 2), (0, 1, 0, 1), (1, 1), False),
    "dilated": (2, 13, 14, (3, 3), (1, 2), (2, 2, 2, 2), (2, 2), False),
    "big_window_s3": (2, 16, 17, (5, 4), (3, 3), (2, 1, 2, 2), (1, 1), True),
    "tall_image": (1, 700, 6, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
}


def maxpool_ref(x: np.ndarray, case: tuple) -> np.ndarray:
    _, _, _, kern, stride, pads, dil, ceil = case
    return MaxPool(kernel=kern, stride=stride, padding=pads, dilation=dil, ceil_mode=ceil).ref(x)


def run_maxpool(k, threads: int, x: np.ndarray, case: tuple, oh: int, ow: int) -> np.ndarray:
    planes, h, w, (kh, kw), (sh, sw), (pt, pl, _, _), (dh, dw), _ = case
    y = np.full((planes, oh, ow), np.nan, np.float32)
    s = Pool2dShape(planes, h, w, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw)
    k.lib.lmc_max_pool2d_f32(k.pool(threads), s, ptr(x), ptr(y))
    return y


@pytest.mark.parametrize("case", POOLS.values(), ids=POOLS.keys())
def test_max_pool2d(k, threads: int, case: tuple) -> None:
    planes, h, w = case[:3]
    x = np.random.default_rng(h * w).standard_normal((planes, h, w)).astype(np.float32)
    want = maxpool_ref(x, case)
    got = run_maxpool(k, threads, x, case, *want.shape[1:])
    assert np.array_equal(got, want), f"{k.isa}: max pool differs"


@pytest.mark.parametrize("name", ("resnet_3x3_s2", "3x3_s1_pad", "dilated", "2x2_s2"))
def test_max_pool2d_nan_and_inf(k, threads: int, name: str) -> None:
    """NaN anywhere in a window wins (as np.maximum); -inf and +inf are ordinary values."""
    case = POOLS[name]
    planes, h, w = case[:3]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((planes, h, w)).astype(np.float32)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=3 * 3, replace=False)
    flat[idx[:3]] = np.nan
    flat[idx[3:6]] = np.inf
    flat[idx[6:]] = -np.inf
    x[0, 0, 0] = np.nan  # a corner: reached only by border windows
    x[-1, -1, -1] = np.nan
    want = maxpool_ref(x, case)
    got = run_maxpool(k, threads, x, case, *want.shape[1:])
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{k.isa}: NaN positions differ"
    assert np.array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


def test_max_pool2d_all_negative_infinity(k) -> None:
    case = POOLS["resnet_3x3_s2"]
    x = np.full(case[:3], -np.inf, np.float32)
    want = maxpool_ref(x, case)
    assert np.array_equal(run_maxpool(k, 1, x, case, *want.shape[1:]), want)


def test_max_pool2d_empty(k) -> None:
    y = np.full((1,), 7.0, np.float32)
    s = Pool2dShape(0, 4, 4, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1)
    k.lib.lmc_max_pool2d_f32(None, s, ptr(y), ptr(y))
    assert y[0] == 7.0
