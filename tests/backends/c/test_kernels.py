"""The C kernel library (templates/c/lib) against numpy: packed and strided GEMM, GEMV,
epilogue tiles, weight packing (bit-exact with backends/c/packing.py), scalar math and row ops,
for every SIMD path this CPU runs and for 1 and 2 threads. Attention and convolution are in
test_kernels_nn.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from lmc.backends.c import packing

from tests.backends.c.kernels_harness import Epilogue, ptr
from tests.util import assert_close

SIZES = (0, 1, 3, 17, 64, 129)


def gemm_tol(kdim: int) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5 * max(1.0, math.sqrt(kdim))}


def packed(k, w: np.ndarray) -> np.ndarray:
    n, kd = w.shape
    out = np.zeros(max(1, k.lib.lmc_gemm_packed_bytes(n, kd) // 4), np.float32)
    k.lib.lmc_gemm_pack(n, kd, ptr(w), w.strides[0] // 4 if w.size else kd, ptr(out))
    return out


# ---- build and packing ------------------------------------------------------------------


def test_builds_without_warnings(k) -> None:
    assert k.warnings.strip() == "", k.warnings


def test_layout_names(k) -> None:
    assert k.lib.lmc_gemm_layout().decode() == packing.GEMM_LAYOUT
    assert k.lib.lmc_conv2d_layout().decode() == packing.CONV2D_LAYOUT


@pytest.mark.parametrize("n, kd", [(0, 5), (5, 0), (1, 1), (16, 3), (17, 64), (33, 7), (64, 129)])
def test_pack_gemm_bit_exact(k, n: int, kd: int) -> None:
    rng = np.random.default_rng(n * 1000 + kd)
    w = rng.standard_normal((n, kd)).astype(np.float32)
    nbytes = k.lib.lmc_gemm_packed_bytes(n, kd)
    assert nbytes == packing.gemm_packed_bytes(n, kd)
    py = packing.pack_gemm(w)
    assert len(py) == nbytes
    assert packed(k, w).tobytes()[:nbytes] == py
    assert np.array_equal(packing.unpack_gemm(py, n, kd), w)


def test_pack_gemm_strided_source(k) -> None:
    """lmc_gemm_pack reads W with a leading dimension (a view of a wider matrix)."""
    big = np.random.default_rng(1).standard_normal((19, 40)).astype(np.float32)
    w = big[:, 3:30]
    out = np.zeros(k.lib.lmc_gemm_packed_bytes(19, 27) // 4, np.float32)
    k.lib.lmc_gemm_pack(19, 27, ptr(w), 40, ptr(out))
    assert out.tobytes() == packing.pack_gemm(np.ascontiguousarray(w))


def test_pack_conv_bit_exact(k) -> None:
    from tests.backends.c.kernels_harness import ConvShape

    w = np.random.default_rng(2).standard_normal((6, 2, 3, 5)).astype(np.float32)
    s = ConvShape(
        N=1,
        C=6,
        H=8,
        W=8,
        K=6,
        R=3,
        S=5,
        OH=6,
        OW=4,
        stride_h=1,
        stride_w=1,
        pad_top=0,
        pad_left=0,
        dil_h=1,
        dil_w=1,
        groups=3,
    )
    nbytes = k.lib.lmc_conv2d_packed_bytes(s)
    assert nbytes == packing.conv2d_packed_bytes(w.shape, 3)
    out = np.zeros(nbytes // 4, np.float32)
    k.lib.lmc_conv2d_pack(s, ptr(w), ptr(out))
    assert out.tobytes() == packing.pack_conv2d(w, groups=3)
    assert k.lib.lmc_conv2d_workspace_bytes(s) == 0


def test_packing_rejects_bad_weights() -> None:
    with pytest.raises(packing.PackingError, match="float32"):
        packing.pack_gemm(np.zeros((2, 2), np.float64))
    with pytest.raises(packing.PackingError, match="rank-2"):
        packing.pack_gemm(np.zeros(4, np.float32))
    with pytest.raises(packing.PackingError, match="groups=4"):
        packing.pack_conv2d(np.zeros((6, 1, 3, 3), np.float32), groups=4)


# ---- GEMM with packed weights (GEMV for M <= 4) ------------------------------------------


def run_packed(k, threads, a, w, bias=None, lda=None, ldc=None, epi=None):
    m, kd = a.shape[0], w.shape[1]
    n = w.shape[0]
    ldc = ldc or max(n, 1)
    c = np.full((m, ldc), 7.0, np.float32)
    wp = packed(k, w)
    k.lib.lmc_gemm_f32_packed(
        k.pool(threads),
        m,
        n,
        kd,
        ptr(a),
        lda or max(kd, 1),
        ptr(wp),
        ptr(c),
        ldc,
        ptr(bias),
        k.epilogue if epi else None,
        epi.ref() if epi else None,
    )
    return c


@pytest.mark.parametrize("m", (*SIZES, 2, 4, 5, 7, 8, 9, 13))
def test_gemm_packed(k, threads: int, m: int) -> None:
    rng = np.random.default_rng(m)
    for n, kd in itertools.product(SIZES + (32, 33), SIZES + (256, 300)):
        a = rng.standard_normal((m, kd)).astype(np.float32)
        w = rng.standard_normal((n, kd)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32) if (n + kd) % 2 else None
        c = run_packed(k, threads, a, w, bias, ldc=n + 3)
        want = a.astype(np.float64) @ w.T.astype(np.float64) + (0 if bias is None else bias)
        assert_close(c[:, :n], want, **gemm_tol(kd), name=f"{k.isa} M={m} N={n} K={kd}")
        assert (c[:, n:] == 7.0).all(), "wrote past N into the ldc padding"


@pytest.mark.parametrize("m", (1, 2, 3, 4, 6, 8, 9))
def test_gemm_packed_wide_strided_a(k, threads: int, m: int) -> None:
    """Long K, many GEMV tasks, and an A with a leading dimension larger than K."""
    rng = np.random.default_rng(10 + m)
    n, kd = 1000, 1500
    a_full = rng.standard_normal((m, kd + 37)).astype(np.float32)
    w = rng.standard_normal((n, kd)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = run_packed(k, threads, a_full, w, bias, lda=kd + 37)
    want = a_full[:, :kd].astype(np.float64) @ w.T.astype(np.float64) + bias
    assert_close(c, want, **gemm_tol(kd), name=f"{k.isa} M={m}")


@pytest.mark.parametrize(
    "m, n, kd", [(1, 100, 37), (4, 33, 300), (5, 17, 3), (129, 300, 64), (64, 1, 1), (3, 16, 0)]
)
def test_gemm_packed_epilogue(k, threads: int, m: int, n: int, kd: int) -> None:
    rng = np.random.default_rng(m * n)
    a = rng.standard_normal((m, kd)).astype(np.float32)
    w = rng.standard_normal((n, kd)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    epi = Epilogue(c, n, res)
    wp = packed(k, w)
    k.lib.lmc_gemm_f32_packed(
        k.pool(threads),
        m,
        n,
        kd,
        ptr(a),
        max(kd, 1),
        ptr(wp),
        ptr(c),
        n,
        ptr(bias),
        k.epilogue,
        epi.ref(),
    )
    epi.check(m, n)
    want = np.maximum(a.astype(np.float64) @ w.T.astype(np.float64) + bias + res, 0)
    assert_close(c, want, **gemm_tol(kd), name=f"{k.isa} epilogue {m}x{n}x{kd}")


# ---- GEMM with strided (unpacked) B -------------------------------------------------------


def b_views(b: np.ndarray):
    """The same [K, N] values as a contiguous matrix, a transposed view and a doubly strided
    view (element strides, as the C API takes them)."""
    kd, n = b.shape
    yield "rowmajor", b.copy(), max(n, 1), 1
    t = np.ascontiguousarray(b.T)
    yield "transposed", t, 1, max(kd, 1)
    big = np.zeros((2 * kd + 1, 3 * n + 1), np.float32)
    big[::2, ::3][:kd, :n] = b
    yield "strided", big, 2 * big.shape[1], 3


@pytest.mark.parametrize("m", SIZES)
def test_gemm_strided(k, threads: int, m: int) -> None:
    rng = np.random.default_rng(100 + m)
    for n, kd in itertools.product(SIZES, SIZES + (300,)):
        a = rng.standard_normal((m, kd)).astype(np.float32)
        b = rng.standard_normal((kd, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32) if m % 2 else None
        want = a.astype(np.float64) @ b.astype(np.float64) + (0 if bias is None else bias)
        for name, buf, ldk, ldn in b_views(b):
            c = np.full((m, max(n, 1)), 7.0, np.float32)
            k.lib.lmc_gemm_f32(
                k.pool(threads),
                m,
                n,
                kd,
                ptr(a),
                max(kd, 1),
                ptr(buf),
                ldk,
                ldn,
                ptr(c),
                max(n, 1),
                ptr(bias),
                None,
                None,
            )
            assert_close(c[:, :n], want, **gemm_tol(kd), name=f"{k.isa} {name} {m}x{n}x{kd}")


def test_gemm_strided_epilogue(k, threads: int) -> None:
    rng = np.random.default_rng(5)
    m, n, kd = 150, 70, 260
    a = rng.standard_normal((m, kd)).astype(np.float32)
    b = rng.standard_normal((kd, n)).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    c = np.zeros((m, n + 5), np.float32)
    epi = Epilogue(c, n + 5, res)
    epi.ctx.ldr = n
    k.lib.lmc_gemm_f32(
        k.pool(threads),
        m,
        n,
        kd,
        ptr(a),
        kd,
        ptr(b),
        n,
        1,
        ptr(c),
        n + 5,
        None,
        k.epilogue,
        epi.ref(),
    )
    epi.check(m, n)
    want = np.maximum(a.astype(np.float64) @ b.astype(np.float64) + res, 0)
    assert_close(c[:, :n], want, **gemm_tol(kd), name=f"{k.isa} strided epilogue")


# ---- scalar math (lmc_math.h) -----------------------------------------------------------

MATH = ("exp", "tanh", "erf", "sigmoid", "gelu_erf", "gelu_tanh")


def math_ref(name: str, x: np.ndarray) -> np.ndarray:
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        if name == "exp":
            return np.exp(xd)
        if name == "tanh":
            return np.tanh(xd)
        if name == "erf":
            return np.array([math.erf(v) for v in xd])
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xd))
        if name == "gelu_erf":
            return np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xd])
        u = math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)
        return xd / (1 + np.exp(-2 * u))  # = 0.5 x (1 + tanh u) without cancellation


def run_math(k, name: str, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    k.lib.lmc_test_math(MATH.index(name), x.size, ptr(x), ptr(y))
    return y


@pytest.mark.parametrize("name", MATH)
def test_math_accuracy(k, name: str) -> None:
    rng = np.random.default_rng(7)
    lo = {"exp": -87.0, "sigmoid": -80.0, "gelu_erf": -13.0, "gelu_tanh": -3.0}.get(name, -12.0)
    hi = {"exp": 88.0}.get(name, 12.0)
    x = np.concatenate(
        [
            rng.uniform(-1, 1, 20000),
            rng.uniform(lo, hi, 20000),
            np.linspace(lo, hi, 20001),
            [0.0, 1e-30, -1e-30, 1e-5, -1e-5],
        ]
    )
    x = x.astype(np.float32)
    y, want = run_math(k, name, x).astype(np.float64), math_ref(name, x)
    big = np.abs(want) > 1e-30
    rel = np.abs(y - want)[big] / np.abs(want[big])
    bound = 3e-7 if name in ("exp", "tanh", "sigmoid", "erf") else 1e-6
    worst = int(np.argmax(rel))
    assert rel[worst] <= bound, f"{name}: rel error {rel[worst]:.3g} at x={x[big][worst]!r}"
    assert np.abs(y - want)[~big].max(initial=0) <= 1e-30


@np.errstate(invalid="ignore", over="ignore")
def test_math_special_values(k) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -200.0], np.float32)
    assert_close(run_math(k, "exp", x), [np.nan, np.inf, 0, 1, 1, np.inf, 0], atol=0)
    assert_close(run_math(k, "tanh", x), [np.nan, 1, -1, 0, 0, 1, -1], atol=0)
    assert_close(run_math(k, "erf", x), [np.nan, 1, -1, 0, 0, 1, -1], atol=0)
    assert_close(run_math(k, "sigmoid", x), [np.nan, 1, 0, 0.5, 0.5, 1, 0], atol=0)
    assert_close(run_math(k, "gelu_erf", x), [np.nan, np.inf, 0, 0, 0, 100, 0], atol=0)
    assert_close(run_math(k, "gelu_tanh", x[[0, 1, 3, 5, 6]]), [np.nan, np.inf, 0, 100, 0], atol=0)
    assert np.signbit(run_math(k, "tanh", np.array([-0.0], np.float32)))[0]


def test_gelu_erf_tail_stays_relative(k) -> None:
    """0.5 x (1 + erf(x/sqrt2)) would cancel to 0 far on the negative side; the erfc form
    keeps ~1e-6 relative accuracy down to x = -13 (values near 1e-38)."""
    x = np.linspace(-13, -4, 5001).astype(np.float32)
    y, want = run_math(k, "gelu_erf", x), math_ref("gelu_erf", x)
    assert_close(y, want, rtol=1e-6, atol=0, name="gelu_erf tail")


def test_gelu_tanh_tail_has_no_cancellation(k) -> None:
    """x sigmoid(2u) instead of 0.5 x (1 + tanh u): relative accuracy limited only by the
    rounding of u (|2u| up to ~80 here), not lost to cancellation."""
    x = np.linspace(-10, -3, 5001).astype(np.float32)
    y, want = run_math(k, "gelu_tanh", x), math_ref("gelu_tanh", x)
    assert_close(y, want, rtol=2e-5, atol=0, name="gelu_tanh tail")


# ---- row ops ----------------------------------------------------------------------------

ROWS, COLS = (0, 1, 3, 17, 64), (0, 1, 3, 17, 64, 129, 1000)


def test_softmax(k, threads: int) -> None:
    rng = np.random.default_rng(11)
    for rows, cols, log in itertools.product(ROWS, COLS, (0, 1)):
        x = (rng.standard_normal((rows, cols)) * 5).astype(np.float32)
        y = np.full_like(x, 7.0)
        k.lib.lmc_softmax_f32(k.pool(threads), rows, cols, ptr(x), ptr(y), log)
        if cols == 0:
            continue
        xd = x.astype(np.float64)
        z = xd - xd.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        want = z - lse if log else np.exp(z - lse)
        assert_close(y, want, rtol=2e-6, atol=2e-6, name=f"softmax log={log} {rows}x{cols}")


def test_softmax_in_place_and_extremes(k, threads: int) -> None:
    x = np.array([[0, 1e30, -1e30, 3], [-np.inf, 0, -np.inf, 0]], np.float32)
    want = np.array([[0, 1, 0, 0], [0, 0.5, 0, 0.5]])
    y = x.copy()
    k.lib.lmc_softmax_f32(k.pool(threads), 2, 4, ptr(y), ptr(y), 0)
    assert_close(y, want, atol=0)


@pytest.mark.parametrize("affine", ("none", "weight", "both"))
def test_layer_norm(k, threads: int, affine: str) -> None:
    rng = np.random.default_rng(12)
    for rows, cols in itertools.product(ROWS, COLS):
        x = (rng.standard_normal((rows, cols)) * 3 + 10).astype(np.float32)
        w = rng.standard_normal(cols).astype(np.float32) if affine != "none" else None
        b = rng.standard_normal(cols).astype(np.float32) if affine == "both" else None
        y = np.full_like(x, 7.0)
        k.lib.lmc_layer_norm_f32(k.pool(threads), rows, cols, ptr(x), ptr(w), ptr(b), 1e-5, ptr(y))
        if cols == 0:
            continue
        xd = x.astype(np.float64)
        want = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-5)
        want = want * (1 if w is None else w) + (0 if b is None else b)
        assert_close(y, want, rtol=2e-5, atol=2e-5, name=f"layer_norm {rows}x{cols}")


@pytest.mark.parametrize("weight", (False, True))
def test_rms_norm(k, threads: int, weight: bool) -> None:
    rng = np.random.default_rng(13)
    for rows, cols in itertools.product(ROWS, COLS):
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        w = rng.standard_normal(cols).astype(np.float32) if weight else None
        y = x.copy()  # in place
        k.lib.lmc_rms_norm_f32(k.pool(threads), rows, cols, ptr(y), ptr(w), 1e-6, ptr(y))
        if cols == 0:
            continue
        xd = x.astype(np.float64)
        want = xd / np.sqrt((xd**2).mean(1, keepdims=True) + 1e-6) * (1 if w is None else w)
        assert_close(y, want, rtol=2e-5, atol=2e-6, name=f"rms_norm {rows}x{cols}")
