"""Calibration as a pipeline step: record the linear inputs' statistics on the samples."""

from __future__ import annotations

from ..ir.graph import Graph
from .calibration import record
from .manager import PassContext, graph_pass
from .quant_spec import spec_option


@graph_pass()
def collect_calibration(g: Graph, ctx: PassContext) -> Graph:
    """Run ctx.calibration's samples through the reference interpreter and record, for every
    linear input, ranges, a |x| histogram, per-channel abs-max, a row sample and (for GPTQ
    and weight-only specs in options["quantize"]) the Hessian XᵀX. The graph is unchanged."""
    spec = spec_option(ctx.options, "w8a8")
    cal = record(
        g, ctx, hessians=spec.method == "gptq" or not spec.act_bits, what="collect_calibration"
    )
    ctx.stat("samples", len(cal.samples), add=False)
    ctx.stat("linear_inputs", len({id(v) for v in cal.inputs.values()}), add=False)
    return g
