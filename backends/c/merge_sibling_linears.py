"""merge_sibling_linears: linears that read the same input (q / k / v projections) -> one
`linear_split` over their weights concatenated at compile time (a new weights-store key), run as
one multi-piece GEMM call whose pieces write their own contiguous results (no split copy)."""

from __future__ import annotations

import numpy as np

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.ops.fused import is_elementwise
from ...ir.ops.linalg import Linear
from ...ir.ops.lowered import LinearSplit
from ...ir.ops.source import Param
from ...ir.shapes import is_static
from ...passes.eliminate_dead_nodes import drop_unused_weights, unused_weights
from ...passes.manager import PassContext, graph_pass
from ...passes.rewrite import remove_dead
from .packing import PANEL

MAX_PIECES = 8  # lmc_gemm_f32_packed_multi's plan size (more would be split into calls)


def _param_array(g: Graph, v: Value) -> np.ndarray | None:
    if not isinstance(v.node.op, Param) or not all(is_static(d) for d in v.type.shape):
        return None
    return g.weights.get(v.node.op.key)


def _candidate(g: Graph, n: Node) -> bool:
    """An f32 linear whose weight (and bias) are stored params and whose result no
    elementwise op reads (that one would be fused into the linear's epilogue by kernel
    grouping, which a merged GEMM cannot take)."""
    if type(n.op) is not Linear or n.outputs[0].type.dtype != DType.f32:
        return False
    if any(_param_array(g, v) is None for v in n.inputs[1:]):
        return False
    return not any(is_elementwise(u.op) for u, _ in n.outputs[0].uses)


def _groups(g: Graph) -> list[list[Node]]:
    """Sibling groups (>= 2 linears over one input, same bias-ness), in graph order; every
    piece but the last starts on a packed-panel boundary (sizes multiple of 16 first)."""
    by_input: dict[tuple[int, int], list[Node]] = {}
    for n in g.nodes:
        if _candidate(g, n):
            by_input.setdefault((id(n.inputs[0]), len(n.inputs)), []).append(n)
    out = []
    for nodes in by_input.values():
        aligned = [n for n in nodes if int(n.inputs[1].type.shape[0]) % PANEL == 0]
        other = [n for n in nodes if int(n.inputs[1].type.shape[0]) % PANEL != 0]
        group = aligned + other[:1]
        for i in range(0, len(group), MAX_PIECES):
            chunk = group[i : i + MAX_PIECES]
            if len(chunk) >= 2 and all(m in aligned for m in chunk[:-1]):
                out.append(chunk)
    return sorted(out, key=lambda grp: min(g.position(n) for n in grp))


def _merged_param(g: Graph, values: list[Value], ctx: PassContext) -> Value:
    keys = [v.node.op.key for v in values]  # type: ignore[attr-defined]
    key = "+".join(keys)
    while key in g.weights:
        key += "+"
    arrays = [np.asarray(g.weights[k]) for k in keys]
    ctx.stat("bytes_concatenated", int(sum(a.nbytes for a in arrays)))
    return g.param(key, np.ascontiguousarray(np.concatenate(arrays, axis=0)))


@graph_pass(tolerance=(1e-5, 1e-6))
def merge_sibling_linears(g: Graph, ctx: PassContext) -> Graph:
    """Replace f32 linears that read the same input (weights and biases stored params, results
    read by no elementwise op) by one linear_split over the weights (and biases) concatenated
    along the output axis under a new weights key (the old keys joined by '+'); its results
    are the old ones. Only with the kernel library (option kernels, default true; option
    merge_linears=false turns the pass off): there the pieces of the one pre-packed weight run
    as a single multi-piece GEMM call (one parallel region; each piece's result contiguous, so
    the split needs no copy). Every piece but the last starts on a 16-row panel boundary.
    Linears whose result feeds an elementwise op are left alone: kernel grouping fuses that op
    into their GEMM epilogue (gate / up projections), which is worth more than the merge.

    Safe: each result element is the same dot product over the same weights row and bias; the
    C kernels compute it in the same order whatever the matrix width (exact there), but the
    reference interpreter's BLAS may block a wider matrix differently: hence the tolerance."""
    if not ctx.options.get("kernels", True) or not ctx.options.get("merge_linears", True):
        return g
    unused_before = unused_weights(g)
    for group in _groups(g):
        x = group[0].inputs[0]
        w = _merged_param(g, [n.inputs[1] for n in group], ctx)
        operands = [x, w]
        if len(group[0].inputs) > 2:
            operands.append(_merged_param(g, [n.inputs[2] for n in group], ctx))
        sizes = tuple(int(n.inputs[1].type.shape[0]) for n in group)
        first = min(group, key=g.position)
        new = g.add_node(LinearSplit(sizes=sizes), operands, before=first)
        for old, res in zip(group, new.outputs):
            g.replace_all_uses(old.outputs[0], res)
        remove_dead(g, group, force=True)
        ctx.stat("groups")
        ctx.stat("linears_merged", len(group))
    drop_unused_weights(g, keep=unused_before)  # the concatenated copies replace them
    return g
