"""Legalization rule for the C targets: quantized linears with f16 activations run in f32
between casts (the kernels read f32). Exact: the references widen f16 activations and biases to
f32, compute in f32 and round once to f16 at the end; f16 scales stay (the kernels and the
weight packing read them), so packed weights still come from params."""

from __future__ import annotations

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.elementwise import Cast
from ...ir.ops.quant import LinearW4, LinearW4a8, LinearW8, LinearW8a8
from .legalize import RULES


@RULES.rule(LinearW4, LinearW4a8, LinearW8, LinearW8a8)
def quant_linear_f16_via_f32(g: Graph, node: Node) -> Value | None:
    """linear_w*(x f16, ..., bias f16) -> cast<f16>(linear_w*(cast<f32>(x), ..., cast<f32>(b)))."""
    x = node.inputs[0]
    if x.type.dtype != DType.f16:
        return None
    ins = [g.apply(Cast(DType.f32), x, before=node)]
    for v in node.inputs[1:]:  # the bias is the one rank-1 f16 operand (scales are rank 2)
        bias = v.type.dtype == DType.f16 and v.type.rank == 1
        ins.append(g.apply(Cast(DType.f32), v, before=node) if bias else v)
    y = g.apply(node.op, *ins, before=node)
    return g.apply(Cast(DType.f16), y, before=node)
