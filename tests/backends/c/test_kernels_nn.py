"""The C kernel library's fused attention and convolution against the IR references
(lmc.ir.ops attention / conv `ref`), for every SIMD path this CPU runs and 1 and 2 threads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lmc.ir.ops.conv import Conv
from lmc.ir.ops.nn import Attention

from tests.backends.c.kernels_harness import (
    AttnArgs,
    ConvShape,
    Epilogue,
    estrides,
    ptr,
)
from tests.util import assert_close

# ---- attention ---------------------------------------------------------------------------

# B, Hq, Hkv, Sq, Skv, D, Dv
ATTN_SHAPES = {
    "tiny": (1, 1, 1, 1, 1, 1, 1),
    "plain": (2, 4, 4, 17, 33, 16, 16),
    "gqa": (1, 8, 2, 70, 70, 64, 64),
    "mqa_long": (2, 4, 1, 5, 130, 32, 48),
    "q_longer": (1, 2, 2, 33, 20, 8, 8),
    "wide_head": (1, 1, 1, 5, 70, 520, 8),  # D > 512: dot-product scores
    "wide_value": (1, 2, 1, 40, 70, 16, 600),  # Dv > 512: several value passes
    "no_head_dim": (1, 1, 1, 3, 4, 0, 5),
    "no_keys": (2, 2, 1, 4, 0, 8, 8),
    "rows_tail": (1, 2, 1, 34, 40, 16, 16),  # a 2-query tail block: row layout
    "huge_head": (1, 1, 1, 6, 5, 6000, 4),  # Q^T does not fit the scratch: row layout
}


def bshd(rng: np.random.Generator, b: int, h: int, s: int, d: int, layout: str) -> np.ndarray:
    """A [B, H, S, D] array; as a view of a [B, S, H, D + 3] buffer for layout 'bshd'."""
    if layout == "bhsd":
        return rng.standard_normal((b, h, s, d)).astype(np.float32)
    buf = rng.standard_normal((b, s, h, d + 3)).astype(np.float32)
    return buf[..., :d].transpose(0, 2, 1, 3)


def attention(
    k, threads, q, kk, v, *, causal=False, offset=0, mask=None, scale=None, out_layout="bhsd"
):
    b, hq, sq, d = q.shape
    hkv, skv, dv = kk.shape[1], kk.shape[2], v.shape[3]
    if out_layout == "bhsd":
        buf = np.full((b, hq, sq, dv), np.nan, np.float32)
        out = buf
    else:
        buf = np.full((b, sq, hq, dv + 2), np.nan, np.float32)
        out = buf[..., :dv].transpose(0, 2, 1, 3)
    a = AttnArgs(B=b, Hq=hq, Hkv=hkv, Sq=sq, Skv=skv, D=d, Dv=dv)
    for name, arr in (("q", q), ("k", kk), ("v", v), ("o", out)):
        sb, sh, ss, last = estrides(arr)
        assert last == 1 or arr.size == 0 or arr.shape[3] <= 1
        setattr(a, "out" if name == "o" else name, ptr(arr))
        setattr(a, f"{name}_sb", sb), setattr(a, f"{name}_sh", sh), setattr(a, f"{name}_ss", ss)
    if mask is not None:
        a.mask_kind = 1 if mask.dtype == np.bool_ else 2
        m = mask.astype(np.uint8) if mask.dtype == np.bool_ else mask
        a.mask = ptr(m)
        a.m_sb, a.m_sh, a.m_sq, a.m_sk = estrides(np.broadcast_to(m, (b, hq, sq, skv)))
    a.causal, a.causal_offset = int(causal), offset
    a.scale = (1 / math.sqrt(d) if d else 1.0) if scale is None else scale
    k.lib.lmc_attention_f32(k.pool(threads), a)
    if out_layout != "bhsd":
        assert np.isnan(buf[..., dv:]).all(), "attention wrote into the output's padding"
    return out, m if mask is not None else None


def attn_ref(q, kk, v, *, causal=False, offset=0, mask=None, scale=None) -> np.ndarray:
    d = q.shape[-1]
    scale = (1 / math.sqrt(d) if d else 1.0) if scale is None else scale
    q64, k64, v64 = (x.astype(np.float64) for x in (q, kk, v))
    if offset != 0 and causal:  # not an IR attribute: express it as a bool mask
        sq, skv = q.shape[2], kk.shape[2]
        keep = np.arange(skv)[None, :] <= np.arange(sq)[:, None] + offset
        mask = keep if mask is None else (mask & keep if mask.dtype == np.bool_ else None)
        assert mask is not None, "offset causal with a float mask is not used in these tests"
        causal = False
    m64 = None if mask is None else (mask if mask.dtype == np.bool_ else mask.astype(np.float64))
    return Attention(scale=scale, causal=causal).ref(q64, k64, v64, m64)


@pytest.mark.parametrize("shape", ATTN_SHAPES.values(), ids=ATTN_SHAPES.keys())
@pytest.mark.parametrize("causal", (False, True))
def test_attention(k, threads: int, shape: tuple, causal: bool) -> None:
    b, hq, hkv, sq, skv, d, dv = shape
    rng = np.random.default_rng(sum(shape))
    q, kk = bshd(rng, b, hq, sq, d, "bhsd"), bshd(rng, b, hkv, skv, d, "bhsd")
    v = bshd(rng, b, hkv, skv, dv, "bhsd")
    out, _ = attention(k, threads, q, kk, v, causal=causal)
    want = attn_ref(q, kk, v, causal=causal)
    assert_close(out, want, rtol=1e-4, atol=1e-5, name=f"{k.isa} attention {shape}")


def test_attention_bshd_views(k, threads: int) -> None:
    """q, k, v and out as [B, S, H, D] buffers with padding: strides only, no copies."""
    rng = np.random.default_rng(3)
    q = bshd(rng, 2, 6, 37, 24, "bshd")
    kk, v = bshd(rng, 2, 3, 80, 24, "bshd"), bshd(rng, 2, 3, 80, 20, "bshd")
    out, _ = attention(k, threads, q, kk, v, causal=True, scale=0.3, out_layout="bshd")
    assert_close(out, attn_ref(q, kk, v, causal=True, scale=0.3), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offset", (-5, 3, 97))
def test_attention_causal_offset(k, threads: int, offset: int) -> None:
    """keep j <= i + offset: 97 = Skv - Sq is the bottom-right (KV cache) alignment; a negative
    offset leaves the first rows with no keys, which must give zeros."""
    rng = np.random.default_rng(offset + 10)
    q = bshd(rng, 1, 2, 3 if offset == 97 else 40, 16, "bhsd")
    kk, v = bshd(rng, 1, 2, 100, 16, "bhsd"), bshd(rng, 1, 2, 100, 16, "bhsd")
    out, _ = attention(k, threads, q, kk, v, causal=True, offset=offset)
    want = attn_ref(q, kk, v, causal=True, offset=offset)
    assert_close(out, want, rtol=1e-4, atol=1e-5, name=f"offset {offset}")
    if offset < 0:
        assert (out[:, :, :-offset] == 0).all()


@pytest.mark.parametrize("sq", (3, 19))
def test_attention_bool_mask(k, threads: int, sq: int) -> None:
    """A per-(head, query) bool mask broadcast over the batch, with one fully masked row
    (3 queries: row layout, 19: lane layout)."""
    rng = np.random.default_rng(4)
    b, hq, skv = 2, 4, 75
    q, kk, v = (bshd(rng, b, h, s, 16, "bhsd") for h, s in ((hq, sq), (2, skv), (2, skv)))
    mask = rng.random((1, hq, sq, skv)) < 0.7
    mask[0, 1, sq // 2] = False
    for causal in (False, True):
        out, _ = attention(k, threads, q, kk, v, causal=causal, mask=mask)
        want = attn_ref(q, kk, v, causal=causal, mask=mask)
        assert_close(out, want, rtol=1e-4, atol=1e-5, name=f"bool mask causal={causal}")
        assert (out[:, 1, sq // 2] == 0).all()


@pytest.mark.parametrize("sq", (2, 10))
def test_attention_float_mask(k, threads: int, sq: int) -> None:
    """An additive [B, 1, 1, Skv] padding mask (-inf on padded keys) plus random biases."""
    rng = np.random.default_rng(5)
    b, h, skv = 3, 2, 70
    q, kk, v = (bshd(rng, b, h, s, 8, "bhsd") for s in (sq, skv, skv))
    mask = rng.standard_normal((b, 1, 1, skv)).astype(np.float32)
    mask[1, ..., 40:] = -np.inf
    mask[2] = -np.inf  # every key of batch 2 masked: zeros
    out, _ = attention(k, threads, q, kk, v, mask=mask)
    assert_close(out, attn_ref(q, kk, v, mask=mask), rtol=1e-4, atol=1e-5, name="float mask")
    assert (out[2] == 0).all()


def test_attention_empty_queries(k, threads: int) -> None:
    rng = np.random.default_rng(6)
    q, kk, v = (bshd(rng, 1, 1, s, 4, "bhsd") for s in (0, 5, 5))
    out, _ = attention(k, threads, q, kk, v)
    assert out.shape == (1, 1, 0, 4)


# ---- convolution -------------------------------------------------------------------------

# N, C, H, W, K, (R, S), stride, (pad top, left, bottom, right), dilation, groups
CONV_CASES = {
    "pointwise": (2, 8, 5, 7, 16, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_s2": (1, 8, 9, 9, 4, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "3x3_pad": (2, 3, 17, 19, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "strided_dilated": (1, 5, 20, 23, 7, (3, 2), (2, 3), (0, 1, 2, 1), (2, 2), 1),
    "groups": (1, 8, 10, 10, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "depthwise": (2, 16, 12, 13, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),
    "depthwise_s2": (1, 12, 15, 14, 12, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 12),
    "depthwise_dil": (1, 6, 11, 11, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 6),
    "depthwise_mult": (1, 5, 9, 8, 10, (3, 3), (1, 2), (1, 0, 1, 2), (1, 1), 5),
    "conv1d": (2, 4, 1, 50, 8, (1, 5), (1, 2), (0, 2, 0, 2), (1, 1), 1),
    "kernel_gt_input": (1, 3, 4, 3, 5, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
    "single_channel": (2, 1, 9, 9, 8, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "single_channel_direct": (1, 1, 9, 9, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "deep": (1, 64, 14, 14, 160, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "tiny": (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    # the GEMM path's variants: pixels or channels on the wide side, several k / channel
    # blocks, stride-2 patch copies, padded copies of x
    "stem_7x7_s2": (1, 3, 30, 41, 20, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    "s2_wide_rows": (1, 4, 9, 70, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    "7x7_image": (1, 24, 7, 7, 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "7x7_deep": (2, 70, 7, 7, 48, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "small_image_groups": (2, 16, 5, 5, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "6x6_image": (1, 10, 6, 6, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "two_pixel_blocks": (1, 6, 20, 15, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "many_out_channels": (1, 8, 20, 20, 200, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "k_blocks_pixels_wide": (1, 70, 20, 20, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "downsample_1x1_s2": (1, 16, 13, 13, 24, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "one_pixel_padded": (1, 5, 1, 1, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "odd_everything": (3, 7, 9, 11, 13, (2, 3), (1, 2), (1, 0, 0, 2), (2, 1), 1),
    "end_pad_only": (1, 3, 6, 6, 5, (3, 3), (2, 2), (0, 0, 2, 2), (1, 1), 1),
    "one_in_channel_groups": (1, 4, 6, 7, 40, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
}


def conv_shape(case: tuple) -> tuple[ConvShape, tuple[int, int]]:
    n, c, h, w, kout, (r, s), (sh, sw), (pt, pl, pb, pr), (dh, dw), g = case
    oh = (h + pt + pb - dh * (r - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (s - 1) - 1) // sw + 1
    shape = ConvShape(
        N=n,
        C=c,
        H=h,
        W=w,
        K=kout,
        R=r,
        S=s,
        OH=oh,
        OW=ow,
        stride_h=sh,
        stride_w=sw,
        pad_top=pt,
        pad_left=pl,
        dil_h=dh,
        dil_w=dw,
        groups=g,
    )
    return shape, (oh, ow)


def run_conv(k, threads, case, x, w, bias, epi=None, y=None, workspace=True):
    """lmc_conv2d_f32 with the weight packed by lmc_conv2d_pack, and a workspace of
    lmc_conv2d_workspace_bytes (workspace=False: NULL, the bounds-checked packing)."""
    shape, (oh, ow) = conv_shape(case)
    if y is None:
        y = np.full((case[0], case[4], oh, ow), np.nan, np.float32)
    packed = np.zeros(max(1, k.lib.lmc_conv2d_packed_bytes(shape) // 4), np.float32)
    k.lib.lmc_conv2d_pack(shape, ptr(w), ptr(packed))
    ws = np.full(k.lib.lmc_conv2d_workspace_bytes(shape) // 4 + 1, np.nan, np.float32)
    k.lib.lmc_conv2d_f32(
        k.pool(threads),
        shape,
        ptr(x),
        ptr(packed),
        ptr(bias),
        ptr(y),
        ptr(ws) if workspace else None,
        k.epilogue if epi else None,
        epi.ref() if epi else None,
    )
    return y


def conv_ref(case, x, w, bias) -> np.ndarray:
    _, _, _, _, _, _, stride, pads, dil, g = case
    op = Conv(stride=stride, padding=(pads[0], pads[1], pads[2], pads[3]), dilation=dil, groups=g)
    b64 = None if bias is None else bias.astype(np.float64)
    return op.ref(x.astype(np.float64), w.astype(np.float64), b64)


def conv_inputs(case, seed: int):
    n, c, h, wd, kout, (r, s), *_, g = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((kout, c // g, r, s)).astype(np.float32)
    bias = rng.standard_normal(kout).astype(np.float32) if seed % 2 else None
    return x, w, bias


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
@pytest.mark.parametrize("seed", (0, 1))
@pytest.mark.parametrize("workspace", (True, False), ids=("ws", "no_ws"))
def test_conv2d(k, threads: int, case: tuple, seed: int, workspace: bool) -> None:
    x, w, bias = conv_inputs(case, seed)
    y = run_conv(k, threads, case, x, w, bias, workspace=workspace)
    red = w.shape[1] * w.shape[2] * w.shape[3]
    assert_close(
        y,
        conv_ref(case, x, w, bias),
        rtol=1e-4,
        atol=1e-5 * math.sqrt(red),
        name=f"{k.isa} conv {case}",
    )


@pytest.mark.parametrize(
    "name",
    (
        "pointwise",
        "strided_dilated",
        "depthwise",
        "deep",
        "7x7_deep",
        "small_image_groups",
        "many_out_channels",
        "stem_7x7_s2",
    ),
)
def test_conv2d_epilogue(k, threads: int, name: str) -> None:
    """Epilogue tiles cover y viewed as [N*K, OH*OW] once; a fused relu(y + residual)."""
    case = CONV_CASES[name]
    x, w, bias = conv_inputs(case, 1)
    shape, (oh, ow) = conv_shape(case)
    y = np.zeros((case[0], case[4], oh, ow), np.float32)
    res = np.random.default_rng(9).standard_normal(y.shape).astype(np.float32)
    epi = Epilogue(y, oh * ow, res.reshape(-1, oh * ow))
    run_conv(k, threads, case, x, w, bias, epi=epi, y=y)
    epi.check(case[0] * case[4], oh * ow)
    want = np.maximum(conv_ref(case, x, w, bias) + res, 0)
    assert_close(y, want, rtol=1e-4, atol=1e-4, name=f"{k.isa} conv epilogue {name}")


def test_conv2d_empty_batch(k, threads: int) -> None:
    case = (0, 3, 5, 5, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    x, w, bias = conv_inputs(case, 1)
    assert run_conv(k, threads, case, x, w, bias).shape == (0, 4, 5, 5)
