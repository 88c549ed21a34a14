"""Round-to-nearest weight quantization: float linears -> linear_w4 / linear_w8."""

from __future__ import annotations

from ..ir.graph import Graph
from .calibration import Calibration, record
from .manager import PassContext, Prop, graph_pass
from .quant_layers import (
    Grid,
    emit_weight_only,
    find_sites,
    hessian_error,
    quantize_rtn,
    record_layer,
    remember_float,
    weight_sqnr_db,
)
from .quant_spec import spec_option


@graph_pass(ensures={Prop.TYPED, Prop.QUANTIZED}, tolerance=(0.25, 0.25))
def quantize_weights_rtn(g: Graph, ctx: PassContext) -> Graph:
    """Replace each float linear with a stored weight (minus the spec's skip globs) by
    linear_w4 / linear_w8 whose codes are the weight rounded to the nearest point of a
    per-group grid (options["quantize"], default w4-rtn-g128: asymmetric int4, groups of 128
    input columns). Approximate: each weight moves by at most half a grid step; the declared
    tolerance is loose because errors compound through a network. With calibration data the
    per-layer output error is measured and recorded."""
    spec = spec_option(ctx.options, "w4-rtn-g128")
    grid = Grid(spec.bits, spec.sym, spec.clip)
    sites = find_sites(g, spec, ctx)
    cal = ctx.calibration if isinstance(ctx.calibration, Calibration) else None
    if cal is not None:
        record(g, ctx, hessians=not spec.act_bits, what="quantize_weights_rtn")
    for site in sites:
        qw = quantize_rtn(site.weight, grid, spec.group)
        wq = qw.dequant()
        node = emit_weight_only(g, site, qw)
        numbers = {
            "kind": f"w{spec.bits}",
            "method": "rtn",
            "group": spec.group,
            "sym": spec.sym,
            "weight_sqnr_db": weight_sqnr_db(site.weight, wq),
        }
        if cal is not None and site.name in cal.inputs and cal.inputs[site.name].xtx is not None:
            numbers.update(hessian_error(site.weight, wq, cal.inputs[site.name]))
        record_layer(ctx, site.name, numbers)
        remember_float(ctx, site, node.inputs[1].node.op.key)
    ctx.stat("quantized", len(sites))
    return g
