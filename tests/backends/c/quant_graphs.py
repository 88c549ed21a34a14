"""Graphs of the quantization ops for the C targets' tests (host, arm64, wasm32): every op on a
symbolic batch (checked at batch 3, 5 and 1), weight-only linears over in-dims that are not a
multiple of the group or of the int4 code block, odd out-dims, group 0, symmetric and
asymmetric codes, f16 scales, biases; W8A8 and W4A8 per token and static; quantize /
dequantize per tensor, per axis and blocked, to every storage type."""

from __future__ import annotations

import numpy as np
from lmc.ir import DType, Graph, TensorType, sym
from lmc.ir.ops.quant import (
    Dequantize,
    LinearW4,
    LinearW4a8,
    LinearW8,
    LinearW8a8,
    Quantize,
    group_count,
    pack_int4,
)

BATCH = (1, 5)  # bounds of the batch symbol: symbol_values picks 3, 5 and 1
N_ENVS = 3
# (out, in, group): in not a multiple of the group / of 8, odd outs, group 0, one column
WQ_SHAPES = [(6, 20, 8), (17, 33, 8), (33, 130, 128), (16, 64, 0), (5, 7, 6), (40, 300, 64),
             (3, 1, 0)]  # fmt: skip
A8_SHAPES = [(6, 20), (17, 33), (48, 384), (5, 1), (70, 130)]


def _scales(rng, n: int, groups: int, f16: bool) -> np.ndarray:
    s = (rng.random((n, groups)) * 0.05 + 0.01).astype(np.float32)
    return s.astype(np.float16) if f16 else s


def weight_only_graph(seed: int = 0, rank3: bool = False) -> Graph:
    """One linear_w4 / linear_w8 output per (shape, variant): int4 sym / asym, int8 i8 / u8,
    f16 scales on some, biases on some. rank3: x is [b, 2, in] instead of [b, in]."""
    rng = np.random.default_rng(seed)
    b = sym("b")
    g = Graph("wq", {"b": BATCH})
    outs = []
    for si, (n, k, group) in enumerate(WQ_SHAPES):
        lead = [b, 2] if rank3 else [b]
        x = g.input(f"x{si}", TensorType(DType.f32, lead + [k]))
        groups = int(group_count(k, group))
        for variant in ("w4sym", "w4asym", "w8sym", "w8asym"):
            name = f"s{si}.{variant}"
            f16 = (si + len(variant)) % 3 == 0
            ops = [g.param(f"{name}.scales", _scales(rng, n, groups, f16))]
            if variant.startswith("w4"):
                codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
                cv = g.param(f"{name}.codes", pack_int4(codes))
                if variant == "w4asym":
                    ops.append(
                        g.param(f"{name}.zeros", rng.integers(0, 16, (n, groups)).astype(np.uint8))
                    )
                op = LinearW4(group=group)
            else:
                asym = variant == "w8asym"
                dt = np.uint8 if asym else np.int8
                info = np.iinfo(dt)
                cv = g.param(
                    f"{name}.codes", rng.integers(info.min, info.max + 1, (n, k)).astype(dt)
                )
                if asym:
                    ops.append(
                        g.param(f"{name}.zeros", rng.integers(0, 256, (n, groups)).astype(np.uint8))
                    )
                op = LinearW8(group=group)
            if (si + len(variant)) % 2:
                ops.append(g.param(f"{name}.bias", rng.standard_normal(n).astype(np.float32)))
            outs.append(g.apply(op, x, cv, *ops))
    g.set_outputs(outs)
    return g


def w8a8_graph(seed: int = 0) -> Graph:
    """linear_w8a8 per token (with and without bias) and static (a scale that saturates some
    codes to -128, and one from the data) on every A8 shape."""
    rng = np.random.default_rng(seed)
    b = sym("b")
    g = Graph("w8a8", {"b": BATCH})
    outs = []
    for si, (n, k) in enumerate(A8_SHAPES):
        x = g.input(f"x{si}", TensorType(DType.f32, [b, k]))
        codes = g.param(f"s{si}.codes", rng.integers(-128, 128, (n, k)).astype(np.int8))
        sw = g.param(f"s{si}.w_scales", (rng.random(n) * 0.01 + 0.001).astype(np.float32))
        bias = g.param(f"s{si}.bias", rng.standard_normal(n).astype(np.float32))
        outs.append(g.apply(LinearW8a8(), x, codes, sw, bias))
        outs.append(g.apply(LinearW8a8(), x, codes, sw))
        for j, scale in enumerate((0.004, 0.03)):
            xs = g.param(f"s{si}.x_scale{j}", np.array(scale, np.float32))
            outs.append(g.apply(LinearW8a8(per_token=False), x, codes, sw, bias, xs))
    g.set_outputs(outs)
    return g


def w4a8_graph(seed: int = 0) -> Graph:
    """linear_w4a8 on every weight-only shape: symmetric and asymmetric codes, with and
    without bias, per token and static (one scale that saturates codes to -128)."""
    rng = np.random.default_rng(seed)
    b = sym("b")
    g = Graph("w4a8", {"b": BATCH})
    outs = []
    for si, (n, k, group) in enumerate(WQ_SHAPES):
        x = g.input(f"x{si}", TensorType(DType.f32, [b, k]))
        groups = int(group_count(k, group))
        codes = g.param(f"s{si}.codes", pack_int4(rng.integers(0, 16, (n, k)).astype(np.uint8)))
        scales = g.param(f"s{si}.scales", _scales(rng, n, groups, False))
        zeros = g.param(f"s{si}.zeros", rng.integers(0, 16, (n, groups)).astype(np.uint8))
        bias = g.param(f"s{si}.bias", rng.standard_normal(n).astype(np.float32))
        xs = g.param(f"s{si}.x_scale", np.array(0.004 if si % 2 else 0.03, np.float32))
        op = LinearW4a8(group=group)
        outs.append(g.apply(op, x, codes, scales, zeros, bias))
        outs.append(g.apply(op, x, codes, scales))
        static = LinearW4a8(group=group, per_token=False)
        outs.append(g.apply(static, x, codes, scales, *([zeros] if si % 2 else []), bias, xs))
    g.set_outputs(outs)
    return g


def quantize_graph(seed: int = 0) -> Graph:
    """quantize -> every storage type and dequantize back, per tensor and per axis (with and
    without zero points) on a symbolic batch, blocked (blocks not dividing the axis) on a
    static weight; an f16 input with an f16 scale; i32 codes dequantized."""
    rng = np.random.default_rng(seed)
    b = sym("b")
    g = Graph("qdq", {"b": BATCH})
    x = g.input("x", TensorType(DType.f32, [b, 6, 10]))
    xh = g.input("xh", TensorType(DType.f16, [b, 10]))
    q32 = g.input("q32", TensorType(DType.i32, [b, 10]))
    outs = []
    ranges = {DType.i4: (-8, 8), DType.u4: (0, 16), DType.i8: (-128, 128), DType.u8: (0, 256),
              DType.i16: (-3000, 3000), DType.u16: (0, 6000)}  # fmt: skip
    for di, (dt, (lo, hi)) in enumerate(ranges.items()):
        for axis, pshape in ((None, ()), (1, (6,)), (-1, (10,))):
            scale = (rng.random(pshape) * 0.05 + 0.01).astype(np.float32)
            s = g.param(f"q{di}.{axis}.scale", scale)
            zero = rng.integers(lo, hi, pshape).astype(dt.np)
            zp = g.param(f"q{di}.{axis}.zero", zero, TensorType(dt, pshape))
            for extra in ([zp], []):
                q = g.apply(Quantize(axis=axis, dtype=dt), x, s, *extra)
                outs += [q, g.apply(Dequantize(axis=axis), q, s, *extra)]
    w = g.param("w", rng.standard_normal((6, 10)).astype(np.float32))
    for axis, block in ((0, 4), (1, 3), (-1, 10)):
        pshape = (-(-6 // block), 10) if axis == 0 else (6, -(-10 // block))
        s = g.param(f"wb{axis}{block}.scale", (rng.random(pshape) * 0.05 + 0.01).astype(np.float32))
        for dt in (DType.i4, DType.u8):
            q = g.apply(Quantize(axis=axis, dtype=dt, block=block), w, s)
            outs += [q, g.apply(Dequantize(axis=axis, block=block), q, s)]
    sh = g.param("sh", np.array(0.03, np.float16))
    qh = g.apply(Quantize(dtype=DType.i8), xh, sh)
    outs += [qh, g.apply(Dequantize(), qh, sh)]
    s32 = g.param("s32", (rng.random(10) * 0.01).astype(np.float32))
    outs.append(g.apply(Dequantize(axis=1), q32, s32))
    g.set_outputs(outs)
    return g


def f16_linear_graph(seed: int = 0) -> Graph:
    """The quantized linears on f16 activations and biases (legalized through f32)."""
    rng = np.random.default_rng(seed)
    b = sym("b")
    g = Graph("f16lin", {"b": BATCH})
    x = g.input("x", TensorType(DType.f16, [b, 40]))
    codes4 = g.param("c4", pack_int4(rng.integers(0, 16, (9, 40)).astype(np.uint8)))
    s4 = g.param("s4", _scales(rng, 9, 5, True))
    bias = g.param("bias", rng.standard_normal(9).astype(np.float16))
    codes8 = g.param("c8", rng.integers(-128, 128, (9, 40)).astype(np.int8))
    sw = g.param("sw", (rng.random(9) * 0.01).astype(np.float32))
    g.set_outputs([
        g.apply(LinearW4(group=8), x, codes4, s4, bias),
        g.apply(LinearW8(), x, codes8, g.param("s8", _scales(rng, 9, 1, False))),
        g.apply(LinearW8a8(), x, codes8, sw, bias),
        g.apply(LinearW4a8(group=8), x, codes4, g.param("s4f", _scales(rng, 9, 5, False)), bias),
    ])  # fmt: skip
    return g


def all_graphs() -> dict[str, Graph]:
    return {
        "weight_only": weight_only_graph(),
        "weight_only_rank3": weight_only_graph(1, rank3=True),
        "w8a8": w8a8_graph(),
        "w4a8": w4a8_graph(),
        "qdq": quantize_graph(),
        "f16_linear": f16_linear_graph(),
    }
