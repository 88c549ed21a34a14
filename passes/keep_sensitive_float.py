"""Mixed precision: measure every quantized linear on calibration data and put the layers
whose output error exceeds a budget back to float — reported, never silent."""

from __future__ import annotations

import warnings

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.ops.source import Param
from .calibration import QUANT_LINEARS, linear_nodes, record
from .manager import PassContext, Prop, graph_pass
from .quant_layers import record_layer, restore_float, sample_error
from .quant_spec import spec_option


def measure(g: Graph, n: Node, rows: np.ndarray, w: np.ndarray) -> dict | None:
    """Output error of a quantized linear on `rows` against the float weight `w` (bias on
    both sides), through the op's reference; None when an operand is not a stored param."""
    if not all(isinstance(v.node.op, Param) for v in n.inputs[1:]):
        return None
    args = [np.asarray(g.weights[v.node.op.key]) for v in n.inputs[1:]]
    bias = [
        a
        for v, a in zip(n.inputs[1:], args)
        if v.type.dtype.is_float and v.type.rank == 1 and v is not n.inputs[2]
    ]
    y = rows @ w.T + (bias[0].astype(np.float32) if bias else 0.0)
    return sample_error(y, n.op.ref(rows.astype(n.inputs[0].type.dtype.np), *args))


@graph_pass(ensures={Prop.TYPED}, tolerance=(0.25, 0.25))
def keep_sensitive_float(g: Graph, ctx: PassContext) -> Graph:
    """Run each quantized linear (linear_w4 / linear_w8 / linear_w8a8) on the calibration
    rows recorded at its input and compare with its float weight; a layer whose relative
    output error ‖ŷ - y‖ / ‖y‖ exceeds the budget (options["quantize"] `budget=`, default
    0.25) is replaced by a float `linear` again. Every reverted layer is named in the stats
    (`reverted`), in the per-layer numbers and in a warning. Only moves the graph closer to
    the float model."""
    spec = spec_option(ctx.options, "w8a8")
    if spec.budget is None:
        return g
    cal = record(g, ctx, what="keep_sensitive_float")
    reverted, checked = [], 0
    for name, n in linear_nodes(g).items():
        if n.op.name not in QUANT_LINEARS:
            continue
        original = cal.originals.get(name)
        if original is None or name not in cal.inputs:
            record_layer(ctx, name, {"checked": False, "reason": "no float weight recorded"})
            continue
        err = measure(g, n, cal.inputs[name].sample, original["weight"])
        if err is None:
            continue
        checked += 1
        numbers = {"checked_rel_err": err["output_rel_err"], "budget": spec.budget}
        if err["output_rel_err"] > spec.budget:
            restore_float(g, n, original)
            reverted.append(name)
            numbers.update(kind="float", reverted=True)
        record_layer(ctx, name, numbers)
    ctx.stat("checked", checked)
    ctx.stat("reverted", reverted, add=False)
    if reverted:
        msg = (
            f"keep_sensitive_float: {len(reverted)} layer(s) kept in float, relative "
            f"output error over the budget {spec.budget}: {', '.join(reverted)}"
        )
        cal.say(msg)
        warnings.warn(msg, stacklevel=2)
    return g
