"""Compile-time weight packing for the C kernel library: the exact byte layouts that
templates/c/lib reads (see lmc_kernels.h), named so the weights metadata can record them.

The layouts do not depend on the SIMD flavour: every C target (AVX-512, AVX2, portable, later
NEON / WASM) reads the same bytes, so an artifact's weights are valid for any of them.
"""

from __future__ import annotations

import numpy as np

from ...ir.errors import LmcError

# Must equal lmc_gemm_layout() / lmc_conv2d_layout() in templates/c/lib.
GEMM_LAYOUT = "lmc.gemm.panel16.v1"
CONV2D_LAYOUT = "lmc.conv2d.oihw.v1"
PANEL = 16  # output columns per packed panel


class PackingError(LmcError):
    """A weight that the kernel layouts cannot hold (wrong rank, dtype or group split)."""


def _f32(name: str, w: np.ndarray, rank: int) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim != rank:
        raise PackingError(f"{name}: expected a rank-{rank} weight, got shape {w.shape}")
    if w.dtype != np.float32:
        raise PackingError(f"{name}: expected float32 weights, got {w.dtype}")
    return w


def gemm_packed_bytes(n: int, k: int) -> int:
    """Bytes of a packed [N, K] GEMM weight (lmc_gemm_packed_bytes)."""
    if n <= 0 or k <= 0:
        return 0
    return -(-n // PANEL) * PANEL * k * 4


def pack_gemm(w: np.ndarray) -> bytes:
    """Pack a linear weight W [N=out, K=in] (y = x @ W^T) into layout GEMM_LAYOUT: ceil(N/16)
    panels, panel p = rows 16p..16p+15 stored k-major, packed[(p*K + k)*16 + j] = W[16p + j, k],
    zero rows past N. For a matmul right operand B [K, N] (y = x @ B) pack B.T."""
    w = _f32("pack_gemm", w, 2)
    n, k = w.shape
    if n == 0 or k == 0:
        return b""
    panels = -(-n // PANEL)
    padded = np.zeros((panels * PANEL, k), np.float32)
    padded[:n] = w
    packed = padded.reshape(panels, PANEL, k).transpose(0, 2, 1)
    return np.ascontiguousarray(packed).astype("<f4", copy=False).tobytes()


def unpack_gemm(data: bytes, n: int, k: int) -> np.ndarray:
    """The [N, K] weight back from pack_gemm's bytes (for tests and debugging)."""
    if n == 0 or k == 0:
        return np.zeros((n, k), np.float32)
    panels = -(-n // PANEL)
    a = np.frombuffer(data, "<f4", count=panels * PANEL * k).reshape(panels, k, PANEL)
    return np.ascontiguousarray(a.transpose(0, 2, 1).reshape(panels * PANEL, k)[:n])


def conv2d_packed_bytes(w_shape: tuple[int, ...], groups: int = 1) -> int:
    """Bytes of a packed conv weight [K, C/groups, R, S] (lmc_conv2d_packed_bytes)."""
    if len(w_shape) != 4:
        raise PackingError(f"conv2d_packed_bytes: expected [K, C/groups, R, S], got {w_shape}")
    return int(np.prod(w_shape)) * 4 if groups >= 1 else 0


def pack_conv2d(w: np.ndarray, groups: int = 1) -> bytes:
    """Pack a conv weight [K, C/groups, R, S] (1-D convs: R = 1) into layout CONV2D_LAYOUT,
    which is the weight itself, contiguous little-endian f32 (the kernel packs GEMM blocks
    from it at run time, cheaply, per k block)."""
    w = _f32("pack_conv2d", w, 4)
    if groups < 1 or w.shape[0] % groups:
        raise PackingError(f"pack_conv2d: {w.shape[0]} output channels, groups={groups}")
    return np.ascontiguousarray(w).astype("<f4", copy=False).tobytes()


# ---- int8 GEMM (lmc_int8.c) -------------------------------------------------------------------

GEMM_S8_LAYOUT = "lmc.gemm_s8.panel16k4.v1"  # must equal lmc_gemm_s8_layout()


def gemm_s8_packed_bytes(n: int, k: int) -> int:
    """Bytes of a packed [K, N] 8-bit matmul operand (lmc_gemm_s8_packed_bytes)."""
    if n <= 0 or k < 0:
        return 0
    cols = -(-n // PANEL) * PANEL
    return cols * (-(-k // 4) * 4) + cols * 4


def pack_gemm_s8(b: np.ndarray) -> bytes:
    """Pack a matmul right operand B [K, N] of int8 or uint8 (y = a @ B) into GEMM_S8_LAYOUT:
    B' = B (int8) or B - 128 (uint8, stored as B ^ 0x80); ceil(N/16) panels, each K/4 groups
    (K padded to a multiple of 4) of 16 columns x 4 consecutive k, packed[p*Kp*16 + (k//4)*64 +
    j*4 + k%4] = B'[k, 16p + j], zero past K and N; then int32 column sums of B' (padded to the
    panels' width)."""
    b = np.asarray(b)
    if b.ndim != 2 or b.dtype not in (np.int8, np.uint8):
        raise PackingError(f"pack_gemm_s8: expected an int8/uint8 [K, N] matrix, got {b.dtype}")
    k, n = b.shape
    if n == 0:
        return b""
    signed = b.view(np.uint8) ^ np.uint8(0x80) if b.dtype == np.uint8 else b.view(np.uint8)
    signed = signed.view(np.int8)
    panels, kp = -(-n // PANEL), -(-k // 4) * 4
    padded = np.zeros((kp, panels * PANEL), np.int8)
    padded[:k, :n] = signed
    # [kp, P*16] -> [P, kp/4, 16, 4]
    packed = padded.reshape(kp // 4, 4, panels, PANEL).transpose(2, 0, 3, 1)
    colsum = padded.astype(np.int32).sum(axis=0).astype("<i4")
    return np.ascontiguousarray(packed).tobytes() + colsum.tobytes()
