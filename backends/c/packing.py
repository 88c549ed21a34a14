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
