"""The kernel library built for wasm32 (SIMD128 micro-kernels, lmc_simd.h's WASM branch) and
wasm32-nosimd (portable C) against numpy and the IR references: packed GEMM and the GEMV path
(every row count it takes, panel tails), strided GEMM, epilogue tiling, row ops, attention (row
and lane layouts, masks, GQA), convolution and the vector math."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tests.backends.c.test_kernels import MATH, gemm_tol, math_ref
from tests.backends.c.test_kernels_conv import POOLS, maxpool_ref
from tests.backends.c.test_kernels_nn import CONV_CASES, attn_ref, bshd, conv_ref, conv_shape
from tests.util import assert_close

from .kernels_wasm import ATTN_ARGS, EPI_CTX, kernels
from .wasmbuild import TARGETS, needs_wasm

pytestmark = needs_wasm


@pytest.fixture(params=TARGETS, scope="module")
def k(request):
    return kernels(request.param)


def test_builds_without_warnings(k) -> None:
    assert "warning" not in k.warnings, k.warnings


def _cstr(k, ptr: int) -> str:
    view = k._view()
    end = ptr
    while view[end]:
        end += 1
    return bytes(view[ptr:end]).decode()


def test_layout_is_the_hosts(k) -> None:
    assert _cstr(k, k.call("lmc_gemm_layout")) == "lmc.gemm.panel16.v1"


def gemm_packed(k, a, w, bias=None, ldc=None, res=None):
    """C = a @ w.T + bias (and relu(C + res) through the test epilogue, counting coverage)."""
    m, kd = a.shape
    n = w.shape[0]
    ldc = ldc or max(n, 1)
    c = np.full((m, ldc), 7.0, np.float32)
    nbytes = k.call("lmc_gemm_packed_bytes", n, kd)
    with k.frame() as f:
        pw, pp = f.put(np.ascontiguousarray(w)), f.alloc(nbytes)
        k.call("lmc_gemm_pack", n, kd, pw, max(kd, 1), pp)
        pc = f.put(c)
        epi, ctx, count = 0, 0, None
        if res is not None:
            count = np.zeros((max(m, 1), ldc), np.int32)
            rec = np.zeros(1, EPI_CTX)
            rec[0] = (pc, ldc, f.put(count), ldc, f.put(res), res.shape[1], 0)
            epi, ctx = k.epilogue, f.struct(rec)
        args = (m, n, kd, f.put(a), max(kd, 1), pp, pc, ldc, f.put(bias), epi, ctx)
        k.call("lmc_gemm_f32_packed", 0, *args)
        out = f.get(pc, c)
        if res is not None:
            rec = f.get_struct(ctx, EPI_CTX)
            assert rec["bad"] == 0, "an epilogue got a wrong tile pointer, ldc or empty tile"
            seen = f.get(rec["count"], count)[:m, :n]
            assert (seen == 1).all(), f"epilogue coverage {np.unique(seen)}"
    return out


@pytest.mark.parametrize("m", (1, 2, 3, 4, 5, 7, 13, 50))
def test_gemm_packed(k, m: int) -> None:
    """M <= 4 is the GEMV path (1 row: two panels at once, 2: a panel, 3-4: half panels)."""
    rng = np.random.default_rng(m)
    for n, kd in itertools.product((1, 3, 16, 17, 33, 64), (0, 1, 5, 64, 600)):
        a = rng.standard_normal((m, kd)).astype(np.float32)
        w = rng.standard_normal((n, kd)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32) if (n + kd) % 2 else None
        c = gemm_packed(k, a, w, bias, ldc=n + 3)
        want = a.astype(np.float64) @ w.T.astype(np.float64) + (0 if bias is None else bias)
        assert_close(c[:, :n], want, **gemm_tol(kd), name=f"{k.target} M={m} N={n} K={kd}")
        assert (c[:, n:] == 7.0).all(), "wrote past N into the ldc padding"


@pytest.mark.parametrize("m, n, kd", [(1, 100, 37), (4, 33, 300), (5, 17, 3), (129, 300, 64)])
def test_gemm_packed_epilogue(k, m: int, n: int, kd: int) -> None:
    rng = np.random.default_rng(m * n)
    a = rng.standard_normal((m, kd)).astype(np.float32)
    w = rng.standard_normal((n, kd)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    c = gemm_packed(k, a, w, bias, res=res)
    want = np.maximum(a.astype(np.float64) @ w.T.astype(np.float64) + bias + res, 0)
    assert_close(c, want, **gemm_tol(kd), name=f"{k.target} epilogue {m}x{n}x{kd}")


@pytest.mark.parametrize("m", (1, 6, 70))
def test_gemm_strided(k, m: int) -> None:
    rng = np.random.default_rng(100 + m)
    for n, kd in itertools.product((1, 17, 40), (1, 17, 300)):
        a = rng.standard_normal((m, kd)).astype(np.float32)
        b = rng.standard_normal((kd, n)).astype(np.float32)
        want = a.astype(np.float64) @ b.astype(np.float64)
        for bt, ldk, ldn in ((b, n, 1), (np.ascontiguousarray(b.T), 1, kd)):
            c = np.full((m, n), 7.0, np.float32)
            with k.frame() as f:
                pc = f.put(c)
                k.call(
                    "lmc_gemm_f32", 0, m, n, kd, f.put(a), kd, f.put(bt), ldk, ldn, pc, n, 0, 0, 0
                )
                got = f.get(pc, c)
            assert_close(got, want, **gemm_tol(kd), name=f"{k.target} strided {m}x{n}x{kd}")


ROWS, COLS = (1, 3, 17), (1, 3, 4, 17, 129, 1000)


def test_softmax(k) -> None:
    rng = np.random.default_rng(11)
    for rows, cols, log in itertools.product(ROWS, COLS, (0, 1)):
        x = (rng.standard_normal((rows, cols)) * 5).astype(np.float32)
        with k.frame() as f:
            px = f.put(x)
            k.call("lmc_softmax_f32", 0, rows, cols, px, px, log)
            y = f.get(px, x)
        xd = x.astype(np.float64)
        z = xd - xd.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        want = z - lse if log else np.exp(z - lse)
        assert_close(y, want, rtol=2e-6, atol=2e-6, name=f"softmax log={log} {rows}x{cols}")


def test_softmax_extremes_and_nan(k) -> None:
    """The vector max's NaN rule and the vector exp's clamps (9 columns: vectors and a tail)."""
    x = np.array(
        [[0, 1e30, -1e30, 3, 0, 0, 0, 0, 0], [-np.inf, 0, -np.inf, 0] + [-np.inf] * 5,
         [np.nan] + [0.0] * 8],
        np.float32,
    )  # fmt: skip
    with k.frame() as f:
        px = f.put(x)
        k.call("lmc_softmax_f32", 0, 3, 9, px, px, 0)
        y = f.get(px, x)
    assert_close(y[:2], [[0, 1] + [0] * 7, [0, 0.5, 0, 0.5] + [0] * 5], atol=0)
    assert np.isnan(y[2]).all()


@pytest.mark.parametrize("affine", ("none", "both"))
def test_layer_norm(k, affine: str) -> None:
    rng = np.random.default_rng(12)
    for rows, cols in itertools.product(ROWS, COLS):
        x = (rng.standard_normal((rows, cols)) * 3 + 10).astype(np.float32)
        w = rng.standard_normal(cols).astype(np.float32) if affine != "none" else None
        b = rng.standard_normal(cols).astype(np.float32) if affine == "both" else None
        y = np.zeros_like(x)
        with k.frame() as f:
            py = f.put(y)
            k.call("lmc_layer_norm_f32", 0, rows, cols, f.put(x), f.put(w), f.put(b), 1e-5, py)
            y = f.get(py, y)
        xd = x.astype(np.float64)
        want = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-5)
        want = want * (1 if w is None else w) + (0 if b is None else b)
        assert_close(y, want, rtol=2e-5, atol=2e-5, name=f"layer_norm {rows}x{cols}")


def test_rms_norm(k) -> None:
    rng = np.random.default_rng(13)
    for rows, cols in itertools.product(ROWS, COLS):
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        w = rng.standard_normal(cols).astype(np.float32)
        with k.frame() as f:
            px = f.put(x)
            k.call("lmc_rms_norm_f32", 0, rows, cols, px, f.put(w), 1e-6, px)
            y = f.get(px, x)
        xd = x.astype(np.float64)
        want = xd / np.sqrt((xd**2).mean(1, keepdims=True) + 1e-6) * w
        assert_close(y, want, rtol=2e-5, atol=2e-6, name=f"rms_norm {rows}x{cols}")


def attention(k, q, kk, v, *, causal=False, offset=0, mask=None):
    b, hq, sq, d = q.shape
    hkv, skv, dv = kk.shape[1], kk.shape[2], v.shape[3]
    out = np.full((b, hq, sq, dv), np.nan, np.float32)
    rec = np.zeros(1, ATTN_ARGS)
    r = rec[0]
    r["B"], r["Hq"], r["Hkv"], r["Sq"], r["Skv"], r["D"], r["Dv"] = b, hq, hkv, sq, skv, d, dv
    with k.frame() as f:
        for name, arr in (("q", q), ("k", kk), ("v", v), ("out", out)):
            r[name] = f.put(arr)
            for axis, x in zip("bhs", arr.strides[:3]):
                r[f"{name[0]}_s{axis}"] = x // 4
        if mask is not None:
            m = mask.astype(np.uint8) if mask.dtype == np.bool_ else mask
            r["mask_kind"], r["mask"] = (1 if mask.dtype == np.bool_ else 2), f.put(m)
            strides = np.broadcast_to(m, (b, hq, sq, skv)).strides
            for axis, x in zip("bhqk", strides):
                r[f"m_s{axis}"] = x // m.itemsize
        r["causal"], r["causal_offset"] = int(causal), offset
        r["scale"] = 1 / math.sqrt(d) if d else 1.0
        k.call("lmc_attention_f32", 0, f.struct(rec))
        return f.get(int(r["out"]), out)


ATTN = {
    "decode": (1, 4, 2, 1, 70, 16, 16),  # row layout, GQA
    "lanes": (2, 2, 2, 19, 33, 16, 12),  # queries in the vector lanes, with a tail
    "wide_head": (1, 1, 1, 5, 70, 520, 8),
}


@pytest.mark.parametrize("shape", ATTN.values(), ids=ATTN.keys())
@pytest.mark.parametrize("causal", (False, True))
def test_attention(k, shape: tuple, causal: bool) -> None:
    b, hq, hkv, sq, skv, d, dv = shape
    rng = np.random.default_rng(sum(shape))
    q, kk = bshd(rng, b, hq, sq, d, "bhsd"), bshd(rng, b, hkv, skv, d, "bhsd")
    v = bshd(rng, b, hkv, skv, dv, "bhsd")
    out = attention(k, q, kk, v, causal=causal)
    assert_close(out, attn_ref(q, kk, v, causal=causal), rtol=1e-4, atol=1e-5, name=str(shape))


@pytest.mark.parametrize("sq", (3, 19))
def test_attention_masks(k, sq: int) -> None:
    rng = np.random.default_rng(4)
    b, hq, skv = 2, 4, 75
    q, kk, v = (bshd(rng, b, h, s, 16, "bhsd") for h, s in ((hq, sq), (2, skv), (2, skv)))
    bool_mask = rng.random((1, hq, sq, skv)) < 0.7
    bool_mask[0, 1, sq // 2] = False
    out = attention(k, q, kk, v, causal=True, mask=bool_mask)
    want = attn_ref(q, kk, v, causal=True, mask=bool_mask)
    assert_close(out, want, rtol=1e-4, atol=1e-5, name="bool mask")
    assert (out[:, 1, sq // 2] == 0).all()
    float_mask = rng.standard_normal((b, 1, 1, skv)).astype(np.float32)
    float_mask[1, ..., 40:] = -np.inf
    out = attention(k, q, kk, v, mask=float_mask, offset=0)
    assert_close(out, attn_ref(q, kk, v, mask=float_mask), rtol=1e-4, atol=1e-5, name="float")


CONV_NAMES = (
    "pointwise",
    "3x3_pad",
    "strided_dilated",
    "groups",
    "depthwise",
    "stem_7x7_s2",
    "7x7_deep",
    "small_image_groups",
    "two_pixel_blocks",
    "odd_everything",
)


@pytest.mark.parametrize("name", CONV_NAMES)
@pytest.mark.parametrize("workspace", (True, False), ids=("ws", "no_ws"))
def test_conv2d(k, name: str, workspace: bool) -> None:
    case = CONV_CASES[name]
    n, c, h, wd, kout, (r, s), *_, g = case
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((kout, c // g, r, s)).astype(np.float32)
    bias = rng.standard_normal(kout).astype(np.float32)
    shape, (oh, ow) = conv_shape(case)
    rec = np.frombuffer(bytes(shape), dtype="<i8")  # 16 int64: the same layout on wasm32
    y = np.full((n, kout, oh, ow), np.nan, np.float32)
    with k.frame() as f:
        ps = f.put(rec.copy())
        packed = f.alloc(max(4, k.call("lmc_conv2d_packed_bytes", ps)))
        k.call("lmc_conv2d_pack", ps, f.put(w), packed)
        py = f.put(y)
        ws = f.alloc(max(4, k.call("lmc_conv2d_workspace_bytes", ps))) if workspace else 0
        k.call("lmc_conv2d_f32", 0, ps, f.put(x), packed, f.put(bias), py, ws, 0, 0)
        y = f.get(py, y)
    assert_close(y, conv_ref(case, x, w, bias), rtol=1e-4, atol=1e-4, name=f"conv {name}")


@pytest.mark.parametrize("name", ("resnet_3x3_s2", "2x2_s2_ceil_pad", "3x3_s1_pad", "dilated"))
def test_max_pool2d(k, name: str) -> None:
    case = POOLS[name]
    planes, h, w, (kh, kw), (sh, sw), (pt, pl, _, _), (dh, dw), _ = case
    x = np.random.default_rng(h).standard_normal((planes, h, w)).astype(np.float32)
    x[0, 1, 1] = np.nan
    want = maxpool_ref(x, case)
    oh, ow = want.shape[1:]
    rec = np.array([planes, h, w, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw], "<i8")
    y = np.full((planes, oh, ow), 7.0, np.float32)
    with k.frame() as f:
        py = f.put(y)
        k.call("lmc_max_pool2d_f32", 0, f.put(rec), f.put(x), py)
        y = f.get(py, y)
    assert np.array_equal(np.isnan(y), np.isnan(want))
    assert np.array_equal(y[~np.isnan(want)], want[~np.isnan(want)])


@pytest.mark.parametrize("name", MATH)
def test_math(k, name: str) -> None:
    rng = np.random.default_rng(7)
    lo = {"exp": -87.0, "sigmoid": -80.0, "gelu_erf": -13.0, "gelu_tanh": -3.0}.get(name, -12.0)
    hi = {"exp": 88.0}.get(name, 12.0)
    x = np.concatenate([rng.uniform(-1, 1, 5000), np.linspace(lo, hi, 5001)]).astype(np.float32)
    with k.frame() as f:
        px, py = f.put(x), f.put(np.zeros_like(x))
        k.call("lmc_test_math", MATH.index(name), x.size, px, py)
        y = f.get(py, x).astype(np.float64)
    want = math_ref(name, x)
    big = np.abs(want) > 1e-30
    rel = np.abs(y - want)[big] / np.abs(want[big])
    bound = 3e-7 if name in ("exp", "tanh", "sigmoid", "erf") else 1e-6
    assert rel.max() <= bound, f"{name}: rel error {rel.max():.3g}"
