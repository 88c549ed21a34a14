"""Legalization for the C targets: decompose ops the C emitter has no kernel for into ones it
has, and reject (all at once, naming every node) what no C path covers.

Rules (named functions in a rewrite rule set, applied to a fixpoint):
- f16 compute ops run in f32 between casts: their references widen f16 to f32 and round once at
  the end, so cast -> op -> cast is the same computation;
- einsum with one or two plain terms -> reduce_sum / transpose / reshape / matmul;
- layer_norm / rms_norm over several trailing dims, or with broadcast weights -> a 2-D
  normalization over the flattened trailing dims with full-length weights;
- batch_norm -> per-channel elementwise ops (so kernel grouping can fuse it into a conv).
"""

from __future__ import annotations

import dataclasses

from ...ir.dtypes import DType
from ...ir.errors import LmcError
from ...ir.graph import Graph, Node, Value
from ...ir.op import Op
from ...ir.ops.conv import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    Conv,
    ConvTranspose,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
)
from ...ir.ops.elementwise import Add, Cast, Div, Mul, Sub
from ...ir.ops.fused import FusedConv, FusedElementwise, FusedLinear, FusedMatmul
from ...ir.ops.linalg import Einsum, Linear, Matmul, parse_einsum
from ...ir.ops.lowered import FusedAttention, LinearSplit
from ...ir.ops.misc import Resize, Topk
from ...ir.ops.nn import (
    Attention,
    BatchNorm,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    LogSoftmax,
    RmsNorm,
    RotaryEmbedding,
    Softmax,
)
from ...ir.ops.reduce import ArgReduce, Cumsum, Reduce
from ...ir.ops.shape import Expand, Reshape, Transpose
from ...ir.ops.source import Constant, Input, Param
from ...ir.ops.unary import Sqrt
from ...ir.printer import node_line
from ...ir.shapes import Dim, numel, shape_eq
from ...ir.types import TensorType
from ...passes.manager import PassContext, graph_pass
from ...passes.rewrite import RuleSet, apply_rules


class LegalizeError(LmcError):
    """Some nodes have no C implementation; the message lists every one of them."""


# Ops no C path covers, with the reason (the registry test checks op x backend coverage).
UNSUPPORTED: dict[type[Op], str] = {}

# Ops whose reference computes f16 in f32 and rounds once at the end (compute_dtype / opmath):
# the C kernels implement them for f32 and f64 only.
F16_IN_F32: tuple[type[Op], ...] = (
    Matmul,
    Linear,
    Einsum,
    Conv,
    ConvTranspose,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    LayerNorm,
    RmsNorm,
    GroupNorm,
    InstanceNorm,
    BatchNorm,
    Softmax,
    LogSoftmax,
    Attention,
    FusedAttention,
    LinearSplit,
    RotaryEmbedding,
    Reduce,
    ArgReduce,
    Cumsum,
    Resize,
    Topk,
)

RULES = RuleSet("legalize_c")


@RULES.rule()
def f16_via_f32(g: Graph, node: Node) -> list[Value] | None:
    """Run an f16 compute op in f32: cast its f16 operands up and its f16 results down."""
    if not isinstance(node.op, F16_IN_F32):
        return None
    if not any(v.type.dtype == DType.f16 for v in (*node.inputs, *node.outputs)):
        return None
    ins = [
        g.apply(Cast(DType.f32), v, before=node) if v.type.dtype == DType.f16 else v
        for v in node.inputs
    ]
    new = g.add_node(node.op, ins, before=node)
    return [
        g.apply(Cast(DType.f16), v, before=node) if old.type.dtype == DType.f16 else v
        for v, old in zip(new.outputs, node.outputs)
    ]


@RULES.rule(FusedLinear, FusedMatmul, FusedConv)
def split_f16_epilogue(g: Graph, node: Node) -> Value | None:
    """An f16 fused producer -> the producer (run in f32 by f16_via_f32) and its epilogue as
    a fused_elementwise in f16: the reference rounds the producer's result to f16 first."""
    if node.outputs[0].type.dtype != DType.f16:
        return None
    op = node.op
    n_base = 2 + (1 if getattr(op, "bias", False) else 0)
    base_ops = {FusedLinear: Linear(), FusedMatmul: Matmul()}
    if isinstance(op, FusedConv):
        producer: Op = op.conv()
    else:
        producer = base_ops[type(op)]
    if isinstance(op, FusedMatmul):
        n_base = 2
    y = g.apply(producer, *node.inputs[:n_base], before=node)
    if op.epilogue == "x0":  # type: ignore[attr-defined]
        return y
    expr = FusedElementwise(op.epilogue)  # type: ignore[attr-defined]
    return g.apply(expr, y, *node.inputs[n_base:], before=node)


@RULES.rule(Einsum)
def einsum_to_matmul(g: Graph, node: Node) -> Value | None:
    """One or two plain terms (no '...', no label twice in a term) -> reduce_sum, transpose,
    reshape and a batched matmul."""
    from ...ir.ops.reduce import ReduceSum

    op: Einsum = node.op  # type: ignore[assignment]
    if len(node.inputs) > 2:
        return None
    terms, out = parse_einsum(op.equation, len(node.inputs))
    if any("..." in t or len(set(t)) != len(t) for t in terms) or "..." in out:
        return None
    size: dict[str, Dim] = {}
    for t, v in zip(terms, node.inputs):
        size.update({lab: d for lab, d in zip(t, v.type.shape) if lab not in size})
    # Sum away labels that appear in one operand only and not in the output.
    vals, labs = list(node.inputs), [list(t) for t in terms]
    for i, (v, t) in enumerate(zip(vals, labs)):
        others = [x for j, term in enumerate(labs) if j != i for x in term]
        gone = [a for a, lab in enumerate(t) if lab not in out and lab not in others]
        if gone:
            vals[i] = g.apply(ReduceSum(tuple(gone), False), v, before=node)
            labs[i] = [lab for lab in t if lab not in [t[a] for a in gone]]
    if len(vals) == 1:
        return _permute(g, node, vals[0], labs[0], out)
    la, lb = labs
    batch = [x for x in out if x in la and x in lb]
    contract = [x for x in la if x in lb and x not in out]
    keep_a = [x for x in la if x not in lb]
    keep_b = [x for x in lb if x not in la]
    bdims = [size[x] for x in batch]
    a = _permute(g, node, vals[0], la, batch + keep_a + contract)
    a = _reshape(g, node, a, bdims + [_prod(size, keep_a), _prod(size, contract)])
    b = _permute(g, node, vals[1], lb, batch + contract + keep_b)
    b = _reshape(g, node, b, bdims + [_prod(size, contract), _prod(size, keep_b)])
    y = g.apply(Matmul(), a, b, before=node)
    y = _reshape(g, node, y, bdims + [size[x] for x in keep_a + keep_b])
    return _permute(g, node, y, batch + keep_a + keep_b, out)


def _prod(size: dict[str, Dim], labels: list[str]) -> Dim:
    return numel([size[x] for x in labels])


def _permute(g: Graph, node: Node, v: Value, have: list[str], want: list[str]) -> Value:
    if have == want:
        return v
    return g.apply(Transpose(tuple(have.index(x) for x in want)), v, before=node)


def _reshape(g: Graph, node: Node, v: Value, shape: list[Dim]) -> Value:
    if shape_eq(v.type.shape, shape):
        return v
    return g.apply(Reshape(tuple(shape)), v, before=node)


@RULES.rule(LayerNorm, RmsNorm)
def norm_over_last_axis(g: Graph, node: Node) -> Value | None:
    """Normalize [rows, cols] with weights of exactly [cols] (what the row kernels take)."""
    x = node.inputs[0]
    ax = node.op.axis % x.type.rank  # type: ignore[attr-defined]
    tail = x.type.shape[ax:]
    cols = numel(tail)
    params = node.inputs[1:]
    if ax == x.type.rank - 1 and all(shape_eq(p.type.shape, (cols,)) for p in params):
        return None
    flat = [_reshape(g, node, x, list(x.type.shape[:ax]) + [cols])]
    for p in params:
        if not shape_eq(p.type.shape, tail):
            p = g.apply(Expand(tuple(tail)), p, before=node)
        flat.append(_reshape(g, node, p, [cols]))
    y = g.apply(dataclasses.replace(node.op, axis=-1), *flat, before=node)
    return _reshape(g, node, y, list(x.type.shape))


@RULES.rule(BatchNorm)
def batch_norm_to_elementwise(g: Graph, node: Node) -> Value | None:
    """y = (x - mean) * (w / sqrt(var + eps)) + b with [C, 1, ...] operands (the reference's
    own order of operations, in the same dtype)."""
    x, w, b, mean, var = node.inputs
    if x.type.dtype == DType.f16:
        return None  # f16_via_f32 first
    per_channel = [x.type.shape[1]] + [1] * (x.type.rank - 2)
    w, b, mean, var = (_reshape(g, node, p, per_channel) for p in (w, b, mean, var))
    eps = g.constant((node.op.eps,), TensorType(x.type.dtype, (1,)), before=node)  # type: ignore[attr-defined]
    inv = g.apply(
        Div(), w, g.apply(Sqrt(), g.apply(Add(), var, eps, before=node), before=node), before=node
    )
    centered = g.apply(Sub(), x, mean, before=node)
    return g.apply(Add(), g.apply(Mul(), centered, inv, before=node), b, before=node)


def unsupported_nodes(g: Graph) -> list[tuple[Node, str]]:
    """Nodes the C emitter cannot take, with the reason."""
    from .emit import C

    out = []
    for n in g.nodes:
        if isinstance(n.op, (Input, Param, Constant)):
            continue
        reason = UNSUPPORTED.get(type(n.op))
        if reason is None and not C.has(type(n.op)):
            reason = "no C emitter"
        if reason is None:
            reason = C.unsupported_reason(n)
        if reason:
            out.append((n, reason))
    return out


@graph_pass(tolerance=(1e-5, 1e-6))
def legalize(g: Graph, ctx: PassContext) -> Graph:
    """Rewrite ops the C backend lacks into ones it has (f16 compute via f32, einsum via
    matmul, multi-axis norms over a flattened axis, batch_norm as elementwise ops); then fail
    listing every node that still has no C implementation.

    Safe: each rule computes what the reference computes, in the same dtype; einsum -> matmul
    only reorders the sums (hence the tolerance).
    """
    counts = apply_rules(g, RULES)
    for rule, n in sorted(counts.items()):
        ctx.stat(rule, n)
    bad = unsupported_nodes(g)
    if bad:
        lines = [f"legalization for C failed: {len(bad)} node(s) have no C implementation:"]
        lines += [f"  {node_line(n)}\n    reason: {reason}" for n, reason in bad]
        raise LegalizeError("\n".join(lines))
    return g


from . import legalize_int8, legalize_quant  # noqa: E402, F401  (register their rules in RULES)
