"""Pre-quantized models: `dequantize` of stored integer weights feeding a linear / matmul
(ONNX DequantizeLinear -> MatMul / Gemm) becomes linear_w8 / linear_w4, and with a
quantize -> dequantize pair on the activations (static QDQ) linear_w8a8."""

from __future__ import annotations

import numpy as np

from ..ir.dtypes import DType
from ..ir.graph import Graph, Node, Value
from ..ir.op import Op
from ..ir.ops.quant import LINEAR_X_DTYPES, LinearW4, LinearW8, LinearW8a8, pack_int4
from ..ir.ops.source import Param
from .manager import PassContext, Prop, graph_pass
from .quant_layers import add_param, replace_site


def _stored(g: Graph, v: Value | None) -> np.ndarray | None:
    if v is None or not isinstance(v.node.op, Param):
        return None
    a = g.weights.get(v.node.op.key)
    return np.asarray(a) if isinstance(a, np.ndarray) else None


def _weight_dequantize(g: Graph, n: Node) -> tuple[Node, bool] | None:
    """The dequantize node producing the weight operand of `linear(x, W)` / `matmul(x, W)`,
    and whether W is transposed ([in, out], matmul)."""
    if n.op.name not in ("linear", "matmul") or len(n.inputs) < 2:
        return None
    w = n.inputs[1]
    if w.node.op.name != "dequantize" or w.type.rank != 2 or n.inputs[0].type.rank < 2:
        return None
    return w.node, n.op.name == "matmul"


def _per_out_group(
    g: Graph, dq: Node, transposed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Codes [out, in], scales [out, groups], zero points [out, groups] (codes' dtype, as
    int) and the group size, from a dequantize of stored weights; None if its layout has no
    quantized-linear form (per input channel, or operands not stored)."""
    q, s = _stored(g, dq.inputs[0]), _stored(g, dq.inputs[1])
    z = _stored(g, dq.inputs[2]) if len(dq.inputs) > 2 else np.zeros((), np.int64)
    if q is None or s is None or z is None or s.dtype not in (np.float32, np.float16):
        return None
    axis, block = dq.op.axis, dq.op.block
    out_axis = 1 if transposed else 0
    if axis is None:
        n_out = q.shape[out_axis]
        s, z, group = np.full((n_out, 1), s, s.dtype), np.full((n_out, 1), z, np.int64), 0
    elif axis % 2 == out_axis and block == 0:
        s, z, group = s[:, None], np.broadcast_to(z, s.shape[:1])[:, None], 0
    elif axis % 2 != out_axis and block > 0:
        s, z, group = (s.T, z.T, block) if transposed else (s, z, block)
        z = np.broadcast_to(z, s.shape)
    else:
        return None
    codes = q.T if transposed else q
    return codes.astype(np.int64), np.ascontiguousarray(s), z.astype(np.int64), group


def _weight_only(
    g: Graph, codes: np.ndarray, s: np.ndarray, z: np.ndarray, group: int, dtype: DType, base: str
) -> tuple[Op, list[Value]] | None:
    """The quantized-linear op and its weight operands for codes of storage type `dtype`."""
    scales = add_param(g, f"{base}.scales", s)
    if dtype in (DType.i4, DType.u4):
        shift = 8 if dtype == DType.i4 else 0
        packed = add_param(g, f"{base}.codes", pack_int4((codes + shift).astype(np.uint8)))
        if shift and not z.any():
            return LinearW4(group=group), [packed, scales]
        zeros = add_param(g, f"{base}.zeros", (z + shift).astype(np.uint8))
        return LinearW4(group=group), [packed, scales, zeros]
    if dtype == DType.i8 and not z.any():
        return LinearW8(group=group), [add_param(g, f"{base}.codes", codes.astype(np.int8)), scales]
    if dtype in (DType.i8, DType.u8):
        shift = 128 if dtype == DType.i8 else 0
        c = add_param(g, f"{base}.codes", (codes + shift).astype(np.uint8))
        return LinearW8(group=group), [
            c,
            scales,
            add_param(g, f"{base}.zeros", (z + shift).astype(np.uint8)),
        ]
    return None


def _static_activation(g: Graph, x: Value) -> tuple[Value, np.ndarray] | None:
    """(float input, scale) when x = dequantize(quantize(x0, s), s) per tensor to i8 with a
    zero point of 0: linear_w8a8's static activation quantization, exactly."""
    dq = x.node
    if dq.op.name != "dequantize" or dq.op.axis is not None or len(x.uses) != 1:
        return None
    q = dq.inputs[0].node
    if q.op.name != "quantize" or q.op.axis is not None or q.op.dtype != DType.i8:
        return None
    s1, s2 = _stored(g, q.inputs[1]), _stored(g, dq.inputs[1])
    zs = [_stored(g, v) for v in (*q.inputs[2:], *dq.inputs[2:])]
    if s1 is None or s2 is None or s1.dtype != np.float32 or not np.array_equal(s1, s2):
        return None
    if any(z is None or z.any() for z in zs) or q.inputs[0].type.dtype != DType.f32:
        return None
    return q.inputs[0], s1


def _fuse(g: Graph, n: Node, ctx: PassContext) -> bool:
    found = _weight_dequantize(g, n)
    if found is None:
        return False
    dq, transposed = found
    layout = _per_out_group(g, dq, transposed)
    x = n.inputs[0]
    if (
        layout is None
        or x.type.dtype not in LINEAR_X_DTYPES
        or x.type.dtype != dq.outputs[0].type.dtype
    ):
        return False
    codes, s, z, group = layout
    bias = [n.inputs[2]] if n.op.name == "linear" and len(n.inputs) > 2 else []
    base = dq.inputs[0].node.op.key
    qtype = dq.inputs[0].type.dtype
    act = _static_activation(g, x)
    if act is not None and qtype == DType.i8 and group == 0 and not z.any():
        x0, sx = act
        op: Op = LinearW8a8(per_token=False)
        operands = [
            x0,
            add_param(g, f"{base}.codes", codes.astype(np.int8)),
            add_param(g, f"{base}.w_scales", s[:, 0].astype(np.float32)),
            *bias,
            add_param(g, f"{base}.x_scale", np.asarray(sx, np.float32).reshape(())),
        ]
        ctx.stat("linear_w8a8", 1)
    else:
        made = _weight_only(g, codes, s, z, group, qtype, base)
        if made is None:
            return False
        op, weights = made
        operands = [x, *weights, *bias]
        ctx.stat(op.name, 1)
    replace_site(g, n, op, operands)
    for v in list(dq.inputs) + [dq.outputs[0]]:
        _drop_dead(g, v.node)
    return True


def _drop_dead(g: Graph, n: Node) -> None:
    """Remove a node (and then its params) once nothing reads it."""
    if n in g.nodes and not any(v.uses or g.is_output(v) for v in n.outputs):
        inputs = list(n.inputs)
        g.remove_node(n)
        if isinstance(n.op, Param):
            if not any(isinstance(m.op, Param) and m.op.key == n.op.key for m in g.nodes):
                g.weights.pop(n.op.key, None)
        for v in inputs:
            _drop_dead(g, v.node)


@graph_pass(ensures={Prop.TYPED, Prop.QUANTIZED}, tolerance=(1e-4, 1e-5))
def fuse_quantized_linear(g: Graph, ctx: PassContext) -> Graph:
    """Turn `linear(x, dequantize(Q, s[, z]), b)` and `matmul(x, dequantize(Q[in, out]))`
    over stored weights into linear_w8 (i8 / u8 codes) or linear_w4 (i4 / u4, packed), per
    output channel or in blocks along the input (ONNX's blocked DequantizeLinear); and,
    when x itself is dequantize(quantize(x0, sx), sx) per tensor to i8 with zero points 0
    and the weights are i8 symmetric per channel, into linear_w8a8 with the static scale sx.
    Same arithmetic (the quantized ops dequantize in f32 exactly as `dequantize` does); only
    the accumulation order may differ."""
    for n in list(g.nodes):
        if n in g.nodes:
            _fuse(g, n, ctx)
    return g
