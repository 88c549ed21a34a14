"""Compile-time weight packing for the C kernel library: the exact byte layouts that
templates/c/lib reads (see lmc_kernels.h), named so the weights metadata can record them.

The layouts do not depend on the SIMD flavour: every C target (AVX-512, AVX2, portable, later
NEON / WASM) reads the same bytes, so an artifact's weights are valid for any of them. The one
exception is the Winograd convolution weight, stored in the micro-kernel's row panels (whose
height MICRO_ROWS differs per SIMD path) and named with it.
"""

from __future__ import annotations

import numpy as np

from ...ir.errors import LmcError

# Must equal lmc_gemm_layout() / lmc_conv2d_layout() in templates/c/lib.
GEMM_LAYOUT = "lmc.gemm.panel16.v1"
CONV2D_LAYOUT = "lmc.conv2d.panel16.v2"
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


def conv2d_direct(w_shape: tuple[int, ...], groups: int = 1) -> bool:
    """Whether lmc_conv2d_f32 runs a conv with weight [K, C/groups, R, S] on its direct
    (depthwise) path, which reads the weight as given: one input channel per group and at
    most 4 output channels per group."""
    return w_shape[1] == 1 and w_shape[0] // groups <= 4


def conv2d_packed_bytes(w_shape: tuple[int, ...], groups: int = 1) -> int:
    """Bytes of a packed conv weight [K, C/groups, R, S] (lmc_conv2d_packed_bytes)."""
    if len(w_shape) != 4:
        raise PackingError(f"conv2d_packed_bytes: expected [K, C/groups, R, S], got {w_shape}")
    k, cg, r, s = (int(d) for d in w_shape)
    if groups < 1 or min(k, cg, r, s) <= 0:
        return 0
    if conv2d_direct(w_shape, groups):
        return k * cg * r * s * 4
    return groups * gemm_packed_bytes(k // groups, cg * r * s)


def pack_conv2d(w: np.ndarray, groups: int = 1) -> bytes:
    """Pack a conv weight [K, C/groups, R, S] (1-D convs: R = 1) into layout CONV2D_LAYOUT:
    per group g, the GEMM layout (pack_gemm) of W_g = w[g*K/groups : (g+1)*K/groups] viewed
    as [K/groups, C/groups*R*S] (reduction index (c*R + r)*S + s), groups one after another:
    16-output-channel panels stored reduction-major, zero channels past K/groups. Shapes on
    the direct path (conv2d_direct: depthwise) keep the weight itself, contiguous f32."""
    w = _f32("pack_conv2d", w, 4)
    if groups < 1 or w.shape[0] % groups:
        raise PackingError(f"pack_conv2d: {w.shape[0]} output channels, groups={groups}")
    if conv2d_packed_bytes(w.shape, groups) == 0:
        return b""
    if conv2d_direct(w.shape, groups):
        return np.ascontiguousarray(w).astype("<f4", copy=False).tobytes()
    kg = w.shape[0] // groups
    flat = w.reshape(groups, kg, -1)
    return b"".join(pack_gemm(np.ascontiguousarray(flat[g])) for g in range(groups))


# ---- Winograd F(2x2, 3x3) convolution (lmc_winograd.c) ----------------------------------------

# Rows of the GEMM micro-tile (LMC_MR) per kernel library SIMD path (toolchain.kernel_path).
MICRO_ROWS = {"avx512": 8, "avx2": 6, "neon": 6, "wasm": 4, "portable": 4}
# G of F(2x2, 3x3): U = G g G^T turns a 3x3 filter into the 4x4 one the tiles multiply.
WINO_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)


def winograd_layout(path: str) -> str:
    """The layout name of a Winograd weight for kernel path `path` (lmc_conv2d_wino_layout)."""
    return f"lmc.conv2d.wino2x3.mr{MICRO_ROWS[path]}.v1"


def winograd_packed_bytes(w_shape: tuple[int, ...], path: str) -> int:
    """Bytes of a packed Winograd weight [K, C, 3, 3] (lmc_conv2d_wino_packed_bytes)."""
    mr = MICRO_ROWS[path]
    return 16 * (-(-int(w_shape[0]) // mr) * mr) * int(w_shape[1]) * 4


def pack_conv2d_winograd(w: np.ndarray, path: str) -> bytes:
    """Pack a 3x3 conv weight [K, C, 3, 3] (one group) for lmc_conv2d_wino_f32: U[xi] =
    G g G^T (computed in float64, rounded once) for xi = 4a + b < 16, each stored as the
    micro-kernel's row panels of MR = MICRO_ROWS[path] output channels, [ceil(K/MR)][C][MR]
    (panel[c * MR + k % MR] = U[xi][k][c]), zero rows past K; the 16 one after another."""
    w = _f32("pack_conv2d_winograd", w, 4)
    if w.shape[2:] != (3, 3):
        raise PackingError(f"pack_conv2d_winograd: expected a [K, C, 3, 3] weight, got {w.shape}")
    mr = MICRO_ROWS[path]
    k, c = w.shape[:2]
    if k == 0 or c == 0:
        return b""
    u = np.einsum("ai,kcij,bj->abkc", WINO_G, w.astype(np.float64), WINO_G).reshape(16, k, c)
    rows = -(-k // mr) * mr
    padded = np.zeros((16, rows, c), np.float64)
    padded[:, :k] = u
    panels = padded.reshape(16, rows // mr, mr, c).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(panels).astype("<f4").tobytes()


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


# ---- weight-only int4 / int8 linears (lmc_quant.c) -----------------------------------------------

WQ_LAYOUT = "lmc.wq.panel16.v2"  # must equal lmc_wq_layout()


def _wq_geometry(k: int, bits: int, group: int, has_zeros: bool) -> tuple[int, int, int, int]:
    """(zero-prefix bytes, group length, groups, bytes of a panel) of layout WQ_LAYOUT, as
    lmc__wq_geometry in lmc_kern.h: each group is a 64-byte header of scales, then its codes."""
    kb, blk = (8, 64) if bits == 4 else (1, 16)
    gl = group if group > 0 else k
    ng = -(-k // gl) if k > 0 else 0
    zpre = -(-16 * ng // 64) * 64 if has_zeros else 0
    last = k - (ng - 1) * gl
    pstride = zpre + (ng - 1) * (64 + -(-gl // kb) * blk) + 64 + -(-last // kb) * blk
    return zpre, gl, ng, pstride


def wq_packed_bytes(n: int, k: int, bits: int, group: int, has_zeros: bool) -> int:
    """Bytes of a packed weight-only linear (lmc_wq_packed_bytes)."""
    if n <= 0 or k <= 0:
        return 0
    return -(-n // PANEL) * _wq_geometry(k, bits, group, has_zeros)[3]


def pack_wq(
    codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None, bits: int, group: int
) -> bytes:
    """Pack a weight-only linear (W[n, k] = (codes[n, k] - zero[n, g]) * scales[n, g], g = k //
    group, group 0: one group per row) into WQ_LAYOUT. `codes` are unpacked: [N, K] values 0..15
    for bits 4 (zero 8 when `zeros` is None), i8 (no zeros) or u8 (with zeros) for bits 8.

    ceil(N/16) panels of 16 rows; panel p holds, with zeros, every group's 16 int8 zero bytes
    (int4: z; int8: z - 128) padded to a multiple of 64 bytes, then per group (the last may be
    shorter): 16 f32 scales (0 past N) and the codes: int4, ceil(len/8) blocks of 16
    little-endian u32 words, word j = row 16p + j, nibble t = the code of the block's k t (0 past
    the group or N); int8, len blocks of 16 bytes, byte j = row 16p + j (u8 codes stored as
    c - 128)."""
    c = np.asarray(codes)
    if c.ndim != 2 or bits not in (4, 8):
        raise PackingError(f"pack_wq: expected [N, K] codes and bits 4 or 8, got {c.shape}, {bits}")
    n, k = c.shape
    has_zeros = zeros is not None
    if n == 0 or k == 0:
        return b""
    zpre, gl, ng, _ = _wq_geometry(k, bits, group, has_zeros)
    s = np.asarray(scales, np.float32).reshape(n, -1)
    if s.shape[1] != ng:
        raise PackingError(f"pack_wq: {s.shape[1]} scale groups, {ng} needed (group={group})")
    panels = -(-n // PANEL)
    rows = panels * PANEL
    sp = np.zeros((rows, ng), "<f4")
    sp[:n] = s
    if bits == 4:
        cv = np.zeros((rows, k), np.uint32)
        cv[:n] = c.astype(np.uint32) & 15
    else:
        cv = np.zeros((rows, k), np.int8)
        cv[:n] = c.view(np.uint8) ^ np.uint8(0x80) if c.dtype == np.uint8 else c.view(np.int8)
    if has_zeros:
        z = np.asarray(zeros).reshape(n, -1).astype(np.int16)
        zp = np.zeros((rows, ng), np.int8)
        zp[:n] = (z if bits == 4 else z - 128).astype(np.int8)
    parts = []
    for p in range(panels):
        r0 = p * PANEL
        if has_zeros:  # every group's zero bytes, padded so the groups start 64-byte aligned
            parts.append(np.ascontiguousarray(zp[r0 : r0 + PANEL].T).tobytes())
            parts.append(bytes(zpre - 16 * ng))
        for gi in range(ng):
            k0, k1 = gi * gl, min(k, (gi + 1) * gl)
            parts.append(sp[r0 : r0 + PANEL, gi].tobytes())
            block = cv[r0 : r0 + PANEL, k0:k1]  # [16, len]
            if bits == 4:
                nb = -(-(k1 - k0) // 8)
                padded = np.zeros((PANEL, nb * 8), np.uint32)
                padded[:, : k1 - k0] = block
                nib = padded.reshape(PANEL, nb, 8) << (4 * np.arange(8, dtype=np.uint32))
                words = np.bitwise_or.reduce(nib, axis=2).T  # [nb, 16]
                parts.append(np.ascontiguousarray(words).astype("<u4").tobytes())
            else:
                parts.append(np.ascontiguousarray(block.T).tobytes())
    return b"".join(parts)
