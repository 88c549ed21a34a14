"""The int8 GEMM of the kernel library (lmc_int8.c) on this CPU: the AVX2 path (host builds
with avx2) and portable C, against matmul_integer's reference, with the packing bit-exact
against backends/c/packing.py. The NEON / sdot paths are tested under qemu in
tests/backends/arm64/test_neon_kernels.py."""

from __future__ import annotations

import ctypes as C

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.ir.ops.quant import MatmulInteger

from tests.backends.c.kernels_harness import THREADS, isa_params, kernels, ptr

i64, fp = C.c_int64, C.c_void_p


class S8Args(C.Structure):
    _fields_ = [
        ("M", i64), ("N", i64), ("K", i64),
        ("a", fp), ("lda", i64), ("a_u8", C.c_int),
        ("a_zp", fp), ("a_zp_period", i64),
        ("b_packed", fp), ("b_u8", C.c_int),
        ("b_zp", fp), ("b_zp_period", i64),
        ("c", fp), ("ldc", i64),
    ]  # fmt: skip


SIGNATURES = {
    "lmc_gemm_s8_layout": (C.c_char_p, []),
    "lmc_gemm_s8_path": (C.c_char_p, []),
    "lmc_gemm_s8_packed_bytes": (C.c_size_t, [i64, i64]),
    "lmc_gemm_s8_pack": (None, [i64, i64, fp, C.c_int, i64, i64, fp]),
    "lmc_gemm_s8": (None, [fp, C.POINTER(S8Args)]),
}


@pytest.fixture(params=isa_params())
def k(request):
    kk = kernels(request.param)
    for name, (res, args) in SIGNATURES.items():
        fn = getattr(kk.lib, name)
        fn.restype, fn.argtypes = res, args
    return kk


def test_layout_and_path(k) -> None:
    assert k.lib.lmc_gemm_s8_layout().decode() == packing.GEMM_S8_LAYOUT
    want = "portable" if k.isa == "portable" else "avx2"
    assert k.lib.lmc_gemm_s8_path().decode() == want


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
@pytest.mark.parametrize(
    "m, n, kd", [(1, 1, 1), (3, 17, 5), (4, 48, 64), (70, 40, 33), (9, 20, 4100), (2, 5, 0)]
)
@pytest.mark.parametrize("signs", ["i8i8", "u8i8", "i8u8", "u8u8"])
def test_gemm_s8(k, threads: int, m: int, n: int, kd: int, signs: str) -> None:
    rng = np.random.default_rng(m * 7 + n + kd)
    a_dt = np.uint8 if signs[:2] == "u8" else np.int8
    b_dt = np.uint8 if signs[2:] == "u8" else np.int8
    a = rng.integers(np.iinfo(a_dt).min, np.iinfo(a_dt).max + 1, (m, kd)).astype(a_dt)
    b = rng.integers(np.iinfo(b_dt).min, np.iinfo(b_dt).max + 1, (kd, n)).astype(b_dt)
    za = rng.integers(-300, 300, m).astype(np.int32)
    zb = rng.integers(-300, 300, 1).astype(np.int32)
    nbytes = k.lib.lmc_gemm_s8_packed_bytes(n, kd)
    assert nbytes == packing.gemm_s8_packed_bytes(n, kd)
    packed = np.zeros(max(nbytes, 1), np.uint8)
    k.lib.lmc_gemm_s8_pack(n, kd, ptr(b), int(b_dt == np.uint8), n, 1, ptr(packed))
    assert packed.tobytes()[:nbytes] == packing.pack_gemm_s8(b)
    c = np.full((m, n), 12345, np.int32)
    args = S8Args(m, n, kd, ptr(a), kd, int(a_dt == np.uint8), ptr(za), m, ptr(packed),
                  int(b_dt == np.uint8), ptr(zb), 1, ptr(c), n)  # fmt: skip
    k.lib.lmc_gemm_s8(k.pool(threads), C.byref(args))
    np.testing.assert_array_equal(c, MatmulInteger().ref(a, b, za, zb))
