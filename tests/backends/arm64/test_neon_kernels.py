"""The kernel library built for arm64 (NEON, NEON + dotprod, and +nosimd portable C) against
numpy, run under qemu-aarch64 on the oldest CPU model with the variant's features: packed and
strided f32 GEMM / GEMV, softmax, layer and RMS norm, attention, the scalar math and the int8
GEMM (sdot / smull / portable) with packing bit-exact against backends/c/packing.py. Each
test sends all its calls to one driver process."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.ir.ops.nn import Attention
from lmc.ir.ops.quant import MatmulInteger

from tests.backends.arm64.arm64build import VARIANTS, Requests, needs_arm64
from tests.util import assert_close

pytestmark = needs_arm64
THREADS = (1, 2)
S8_PATH = {"arm64": "neon", "arm64+dotprod": "sdot", "arm64-nosimd": "portable"}


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def f32(a: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(a, np.float32).reshape(shape)


def gemm_tol(k: int) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5 * max(1.0, math.sqrt(k))}


def test_gemm_packed_and_gemv(variant: str) -> None:
    """GEMV rows (M <= 4), micro-tile tails (M, N not multiples of 6 / 16) and k blocks."""
    rng = np.random.default_rng(0)
    req, cases = Requests(), []
    for m, n, k in [(1, 1, 1), (1, 33, 17), (3, 16, 64), (4, 40, 7), (7, 17, 3), (13, 50, 129),
                    (64, 48, 600), (5, 0, 3), (0, 4, 4), (6, 9, 0)]:  # fmt: skip
        a = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((n, k)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        for t in THREADS:
            cases.append((req.add(1, t, [m, n, k, 1], [a, w, bias]), a, w, bias))
    res = req.run(variant)
    for i, a, w, bias in cases:
        packed, c = res[i]
        assert packed == packing.pack_gemm(w), "lmc_gemm_pack differs from packing.pack_gemm"
        assert_close(f32(c, (a.shape[0], w.shape[0])), a @ w.T + bias, **gemm_tol(a.shape[1]))


def test_gemm_strided(variant: str) -> None:
    rng = np.random.default_rng(1)
    req, cases = Requests(), []
    for m, n, k in [(1, 5, 3), (9, 31, 20), (40, 70, 33)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bt = np.ascontiguousarray(b.T)  # read through strides (1, k): a transposed view
        cases.append((req.add(2, 2, [m, n, k, n, 1], [a, b]), a @ b, k))
        cases.append((req.add(2, 1, [m, n, k, 1, k], [a, bt]), a @ b, k))
    res = req.run(variant)
    for i, want, k in cases:
        assert_close(f32(res[i][0], want.shape), want, **gemm_tol(k))


def _softmax(x: np.ndarray, log: bool) -> np.ndarray:
    z = x.astype(np.float64) - x.max(-1, keepdims=True)
    s = np.log(np.exp(z).sum(-1, keepdims=True))
    return (z - s if log else np.exp(z - s)).astype(np.float32)


def test_softmax_and_norms(variant: str) -> None:
    rng = np.random.default_rng(2)
    req, checks = Requests(), []
    for rows, cols in [(1, 1), (3, 7), (5, 33), (70, 300)]:
        x = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
        w = rng.standard_normal(cols).astype(np.float32)
        b = rng.standard_normal(cols).astype(np.float32)
        eps = np.array([1e-5], np.float32)
        for t in THREADS:
            for log in (0, 1):
                checks.append((req.add(3, t, [rows, cols, log], [x]), _softmax(x, bool(log))))
            mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
            ln = (x - mean) / np.sqrt(var + 1e-5) * w + b
            checks.append((req.add(4, t, [rows, cols], [x, w, b, eps]), ln))
            rms = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-5) * w
            checks.append((req.add(5, t, [rows, cols], [x, w, eps]), rms.astype(np.float32)))
    res = req.run(variant)
    for i, want in checks:
        assert_close(f32(res[i][0], want.shape), want, 1e-4, 1e-5)


def test_softmax_extremes(variant: str) -> None:
    """exp clamps and overflow: huge, tiny, -inf and equal logits."""
    x = np.array([[1e30, 0.0, -1e30, 5.0], [-np.inf, 0.0, 1.0, -np.inf], [88.0, 88.0, 88, 88]])
    x = np.tile(x.astype(np.float32), (1, 5))
    # log-softmax computes x - (max + log(sum)) in f32: no 1e30 there (it would absorb the log)
    xl = x[1:]
    req = Requests()
    req.add(3, 1, [3, 20, 0], [x])
    req.add(3, 1, [2, 20, 1], [xl])
    soft, log = req.run(variant)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        assert_close(f32(soft[0], x.shape), _softmax(x, False), 1e-4, 1e-6)
        assert_close(f32(log[0], xl.shape), _softmax(xl, True), 1e-4, 1e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention(variant: str, causal: bool) -> None:
    rng = np.random.default_rng(3)
    req, checks = Requests(), []
    for b, hq, hkv, sq, skv, d in [(1, 1, 1, 1, 1, 4), (2, 4, 2, 9, 9, 16), (1, 2, 1, 37, 37, 32)]:
        q = rng.standard_normal((b, hq, sq, d)).astype(np.float32)
        k = rng.standard_normal((b, hkv, skv, d)).astype(np.float32)
        v = rng.standard_normal((b, hkv, skv, d)).astype(np.float32)
        scale = np.array([1 / math.sqrt(d)], np.float32)
        want = Attention(causal=causal).ref(q, k, v)
        for t in THREADS:
            ints = [b, hq, hkv, sq, skv, d, int(causal)]
            checks.append((req.add(7, t, ints, [q, k, v, scale]), want))
    res = req.run(variant)
    for i, want in checks:
        assert_close(f32(res[i][0], want.shape), want, 1e-4, 2e-5)


def test_math(variant: str) -> None:
    erf = np.vectorize(math.erf)
    x = np.concatenate([np.linspace(-12, 12, 2001), [0.0, -0.0, 1e-8, 90, -105]])
    x = x.astype(np.float32)
    xd = x.astype(np.float64)
    want = [np.exp(xd), np.tanh(xd), erf(xd), 1 / (1 + np.exp(-xd)),
            0.5 * xd * (1 + erf(xd / math.sqrt(2))),
            0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd**3)))]  # fmt: skip
    req = Requests()
    for which in range(6):
        req.add(8, 1, [which, x.size], [x])
    res = req.run(variant)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf where both overflow
        for which, w in enumerate(want):
            assert_close(f32(res[which][0], x.shape), w.astype(np.float32), 2e-6, 1e-7,
                         name=f"math function {which}")  # fmt: skip


S8_SHAPES = [(1, 1, 1), (1, 16, 4), (3, 17, 5), (4, 48, 64), (7, 33, 130), (70, 40, 33),
             (130, 9, 4100), (2, 5, 0)]  # fmt: skip


def test_gemm_s8(variant: str) -> None:
    """Every operand signedness, zero points per value / row / column, tails in M, N, K (K
    past one 4096 block), 1 and 2 threads: bit-exact with matmul_integer's reference and the
    packing with packing.pack_gemm_s8."""
    rng = np.random.default_rng(4)
    req, checks = Requests(), []
    path = req.add(0, 1, [], [])
    for n_case, (m, n, k) in enumerate(S8_SHAPES):
        for a_dt, b_dt in [(np.int8, np.int8), (np.uint8, np.int8), (np.int8, np.uint8),
                           (np.uint8, np.uint8)]:  # fmt: skip
            info = np.iinfo(a_dt)
            a = rng.integers(info.min, info.max + 1, (m, k)).astype(a_dt)
            info = np.iinfo(b_dt)
            b = rng.integers(info.min, info.max + 1, (k, n)).astype(b_dt)
            za_period = [0, 1, m][n_case % 3]
            zb_period = [1, n, 0][n_case % 3]
            za = rng.integers(-300, 300, max(za_period, 1)).astype(np.int32)
            zb = rng.integers(-300, 300, max(zb_period, 1)).astype(np.int32)
            ref_za = za if za_period else np.zeros(1, np.int32)
            ref_zb = zb if zb_period else np.zeros(1, np.int32)
            want = MatmulInteger().ref(a, b, ref_za, ref_zb)
            t = THREADS[n_case % 2]
            ints = [m, n, k, int(a_dt == np.uint8), int(b_dt == np.uint8), za_period, zb_period]
            checks.append((req.add(6, t, ints, [a, b, za, zb]), b, want))
    res = req.run(variant)
    assert res[path][0].decode() == S8_PATH[variant]
    for i, b, want in checks:
        packed, c = res[i]
        assert packed == packing.pack_gemm_s8(b), "lmc_gemm_s8_pack differs from packing.py"
        got = np.frombuffer(c, np.int32).reshape(want.shape)
        assert_close(got, want, name=f"gemm_s8 {want.shape} b {b.dtype}")


def test_gemm_s8_wraps_like_int32(variant: str) -> None:
    """Zero points near the int32 limits: the sums wrap modulo 2^32 like the reference."""
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (5, 40)).astype(np.int8)
    b = rng.integers(-128, 128, (40, 20)).astype(np.int8)
    za = np.array([2**31 - 5], np.int32)
    zb = np.array([-(2**31) + 7], np.int32)
    req = Requests()
    req.add(6, 1, [5, 20, 40, 0, 0, 1, 1], [a, b, za, zb])
    (res,) = req.run(variant)
    with np.errstate(over="ignore"):
        want = MatmulInteger().ref(a, b, za, zb)
    np.testing.assert_array_equal(np.frombuffer(res[1], np.int32).reshape(5, 20), want)
