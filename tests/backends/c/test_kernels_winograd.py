"""The Winograd F(2x2, 3x3) convolution kernel (lmc_winograd.c) against the float64 conv
reference, and its weight layout (packing.pack_conv2d_winograd against lmc_conv2d_wino_pack,
byte for byte, and the layout name per SIMD path), for every SIMD path this CPU runs and 1 and
2 threads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lmc.backends.c import packing

from tests.backends.c.kernels_harness import Epilogue, ptr
from tests.backends.c.test_kernels_nn import conv_inputs, conv_ref, conv_shape
from tests.util import assert_close


def case3(n: int, c: int, h: int, w: int, kout: int, pads=(1, 1, 1, 1)) -> tuple:
    return (n, c, h, w, kout, (3, 3), (1, 1), pads, (1, 1), 1)


# N, C, H, W, K, pads: tile rows of one panel or several, partial panels, blocks that cross
# tile rows and images, odd output sizes, channel counts off the micro-tile sizes
CASES = {
    "resnet_56": case3(1, 64, 56, 56, 64),
    "resnet_28": case3(1, 32, 28, 28, 48),
    "odd_sizes": case3(1, 5, 9, 13, 7),
    "no_pad": case3(1, 17, 11, 40, 20, (0, 0, 0, 0)),
    "pad_2": case3(1, 3, 6, 8, 9, (2, 2, 2, 2)),
    "asymmetric_pad": case3(1, 4, 7, 10, 6, (0, 1, 2, 0)),
    "batch_2": case3(2, 8, 10, 70, 13),
    "tall_narrow": case3(1, 6, 33, 3, 5),
    "one_pixel": case3(2, 2, 1, 1, 3),
    "wide_out": case3(1, 2, 4, 100, 70),
}


def run_wino(k, threads: int, case: tuple, x, w, bias, epi=None, y=None) -> np.ndarray:
    shape, (oh, ow) = conv_shape(case)
    assert k.lib.lmc_conv2d_wino_applies(shape)
    if y is None:
        y = np.full((case[0], case[4], oh, ow), np.nan, np.float32)
    nbytes = k.lib.lmc_conv2d_wino_packed_bytes(shape)
    packed = np.frombuffer(packing.pack_conv2d_winograd(w, k.isa), np.float32).copy()
    assert packed.nbytes == nbytes
    k.lib.lmc_conv2d_wino_f32(
        k.pool(threads),
        shape,
        ptr(x),
        ptr(packed),
        ptr(bias),
        ptr(y),
        k.epilogue if epi else None,
        epi.ref() if epi else None,
    )
    return y


def test_layout_name(k) -> None:
    assert k.lib.lmc_conv2d_wino_layout().decode() == packing.winograd_layout(k.isa)


@pytest.mark.parametrize("kout, c", [(1, 1), (5, 3), (20, 17), (64, 64)])
def test_pack_bit_exact(k, kout: int, c: int) -> None:
    w = np.random.default_rng(kout + c).standard_normal((kout, c, 3, 3)).astype(np.float32)
    shape, _ = conv_shape(case3(1, c, 4, 4, kout))
    out = np.full(k.lib.lmc_conv2d_wino_packed_bytes(shape) // 4, np.nan, np.float32)
    k.lib.lmc_conv2d_wino_pack(shape, ptr(w), ptr(out))
    assert out.tobytes() == packing.pack_conv2d_winograd(w, k.isa)


def test_pack_layout() -> None:
    """U[xi] = G g G^T in row panels of MR channels: unpacked, it equals the transform of each
    filter, and its inverse image under the transform's pseudo-inverse is the filter."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((11, 4, 3, 3)).astype(np.float32)
    mr = packing.MICRO_ROWS["avx2"]
    got = np.frombuffer(packing.pack_conv2d_winograd(w, "avx2"), "<f4")
    rows = -(-11 // mr) * mr
    u = got.reshape(16, rows // mr, 4, mr).transpose(0, 1, 3, 2).reshape(16, rows, 4)
    assert not u[:, 11:].any()
    g = packing.WINO_G
    for kk, cc in ((0, 0), (10, 3), (5, 2)):
        want = g @ w[kk, cc].astype(np.float64) @ g.T
        np.testing.assert_allclose(u[:, kk, cc].reshape(4, 4), want, rtol=1e-6, atol=1e-6)
        back = (
            np.linalg.pinv(g) @ u[:, kk, cc].reshape(4, 4).astype(np.float64) @ np.linalg.pinv(g).T
        )
        np.testing.assert_allclose(back, w[kk, cc], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("seed", (0, 1))
def test_winograd_conv(k, threads: int, case: tuple, seed: int) -> None:
    x, w, bias = conv_inputs(case, seed)
    y = run_wino(k, threads, case, x, w, bias)
    assert_close(
        y,
        conv_ref(case, x, w, bias),
        rtol=1e-4,
        atol=1e-5 * math.sqrt(9 * case[1]),
        name=f"{k.isa} winograd {case}",
    )


@pytest.mark.parametrize("name", ("resnet_56", "batch_2", "asymmetric_pad", "wide_out"))
def test_winograd_epilogue(k, threads: int, name: str) -> None:
    """Epilogue tiles cover y viewed as [N*K, OH*OW] once (after their values are final)."""
    case = CASES[name]
    x, w, bias = conv_inputs(case, 1)
    _, (oh, ow) = conv_shape(case)
    y = np.zeros((case[0], case[4], oh, ow), np.float32)
    res = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
    epi = Epilogue(y, oh * ow, res.reshape(-1, oh * ow))
    run_wino(k, threads, case, x, w, bias, epi=epi, y=y)
    epi.check(case[0] * case[4], oh * ow)
    want = np.maximum(conv_ref(case, x, w, bias) + res, 0)
    assert_close(y, want, rtol=1e-4, atol=1e-4, name=f"{k.isa} winograd epilogue {name}")


@pytest.mark.parametrize(
    "case",
    [
        (1, 4, 8, 8, 4, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),  # stride 2
        (1, 4, 8, 8, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),  # dilation 2
        (1, 4, 8, 8, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),  # groups
        (1, 4, 8, 8, 4, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),  # 5x5
        (1, 4, 8, 8, 4, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1), 1),  # 1x3
        (1, 4096, 8, 8, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # beyond the scratch
    ],
)
def test_applies_only_to_what_it_computes(k, case: tuple) -> None:
    shape, _ = conv_shape(case)
    assert not k.lib.lmc_conv2d_wino_applies(shape)
