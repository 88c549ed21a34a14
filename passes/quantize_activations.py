"""W8A8 / W4A8: linears -> linear_w8a8 (int8 weights per output channel, int8 activations),
linear_w4 -> linear_w4a8 (the same int4 weights, int8 activations)."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Value
from ..ir.ops.quant import LinearW4a8, LinearW8a8
from ..ir.ops.source import Param
from .calibration import Calibration, linear_nodes, record
from .manager import PassContext, Prop, graph_pass
from .quant_layers import (
    Grid,
    Site,
    add_param,
    quantize_rtn,
    record_layer,
    remember_float,
    replace_site,
    sample_error,
    weight_sqnr_db,
)
from .quant_spec import QuantSpec, spec_option


def _int8_weight(g: Graph, name: str, n: Node) -> tuple[Value, np.ndarray, np.ndarray] | None:
    """(codes value, per-channel scales [out], float weight) of a layer that can run W8A8:
    a float linear (quantized here, symmetric per channel) or a per-channel i8 linear_w8."""
    key = n.inputs[1].node.op.key
    if n.op.name in ("linear", "matmul"):
        w = g.weights.get(key)
        if not isinstance(w, np.ndarray) or w.dtype.kind != "f":
            return None
        wf = (w.T if n.op.name == "matmul" else w).astype(np.float32)
        qw = quantize_rtn(wf, Grid(8, True), 0)
        codes = (qw.codes.astype(np.int16) - 128).astype(np.int8)
        return add_param(g, f"{key}.codes", codes), qw.scales[:, 0], wf
    scales = n.inputs[2]
    ok = (
        n.op.name == "linear_w8"
        and n.op.group == 0
        and n.inputs[1].type.dtype.name == "i8"
        and isinstance(scales.node.op, Param)
        and scales.type.dtype.name == "f32"
    )
    if not ok:
        return None
    s = np.asarray(g.weights[scales.node.op.key], np.float32)[:, 0]
    wf = g.weights[key].astype(np.float32) * s[:, None]
    return n.inputs[1], s, wf


def _x_scale(cal: Calibration, name: str) -> np.ndarray:
    amax = cal.inputs[name].stats.absmax
    return np.array(amax / 127.0 if amax > 0 else 1.0, np.float32)


@graph_pass(ensures={Prop.TYPED, Prop.QUANTIZED}, tolerance=(0.1, 0.1))
def quantize_activations(g: Graph, ctx: PassContext) -> Graph:
    """Replace float linears (weights rounded to int8, symmetric per output channel) and
    per-channel int8 linear_w8 nodes by linear_w8a8, which also quantizes the activations to
    int8: dynamically per token (max|x_row| / 127), or with `static` in options["quantize"]
    per tensor with the scale max|x| / 127 from the calibration ranges. With a 4-bit spec
    (w4a8) the linear_w4 nodes the weight pass made become linear_w4a8 (same codes, scales,
    zeros) instead; grouped int8 layers stay weight-only. Approximate: each activation moves
    by at most half a step."""
    spec: QuantSpec = spec_option(ctx.options, "w8a8")
    cal = None
    if spec.act_static or isinstance(ctx.calibration, Calibration):
        cal = record(g, ctx, what="quantize_activations (static scales)")
    if spec.bits == 4:
        return _w4a8(g, ctx, spec, cal)
    done = 0
    for name, n in linear_nodes(g).items():
        key = n.inputs[1].node.op.key
        if spec.skips(key.removesuffix(".codes")):
            record_layer(
                ctx,
                name,
                {
                    "kind": "float"
                    if n.op.name in ("linear", "matmul")
                    else n.op.name.removeprefix("linear_"),
                    "reason": f"skip={'|'.join(spec.skip)}",
                },
            )
            continue
        found = _int8_weight(g, name, n)
        if found is None:
            continue
        codes, sw, wf = found
        if n.op.name in ("linear", "matmul"):
            remember_float(ctx, Site(name, n, key, wf, n.op.name == "matmul"), codes.node.op.key)
        x = n.inputs[0]
        bias = [v for v in n.inputs[2:] if v.type.dtype.is_float and v.type.rank == 1]
        if n.op.name == "matmul":
            bias = []
        ops = [x, codes, add_param(g, f"{key.removesuffix('.codes')}.w_scales", sw), *bias]
        if spec.act_static:
            ops.append(add_param(g, f"{key.removesuffix('.codes')}.x_scale", _x_scale(cal, name)))
        op = LinearW8a8(per_token=not spec.act_static)
        new = replace_site(g, n, op, ops)
        numbers = {
            "kind": "w8a8",
            "activations": "static" if spec.act_static else "per_token",
        }
        if n.op.name in ("linear", "matmul"):  # an int8 layer keeps its weight pass's SQNR
            wq = g.weights[codes.node.op.key] * sw[:, None]
            numbers["weight_sqnr_db"] = weight_sqnr_db(wf, wq)
        if cal is not None and name in cal.inputs:
            rows = cal.inputs[name].sample
            y = rows @ wf.T
            args = [g.weights[v.node.op.key] for v in new.inputs[1:3]]
            if spec.act_static:
                args += [g.weights[new.inputs[-1].node.op.key]]
            numbers.update(sample_error(y, op.ref(rows, *args)))
        record_layer(ctx, name, numbers)
        done += 1
    ctx.stat("quantized", done)
    return g


def _w4a8(g: Graph, ctx: PassContext, spec: QuantSpec, cal: Calibration | None) -> Graph:
    """linear_w4 (f32 scales) -> linear_w4a8 with the same weight operands (+ x_scale)."""
    done = 0
    for name, n in linear_nodes(g).items():
        if n.op.name != "linear_w4" or n.inputs[2].type.dtype.name != "f32":
            continue
        ops = list(n.inputs)
        if spec.act_static:
            key = n.inputs[1].node.op.key.removesuffix(".codes")
            ops.append(add_param(g, f"{key}.x_scale", _x_scale(cal, name)))
        op = LinearW4a8(group=n.op.group, per_token=not spec.act_static)
        new = replace_site(g, n, op, ops)
        numbers = {"kind": "w4a8", "activations": "static" if spec.act_static else "per_token"}
        float_w = cal.originals.get(name, {}).get("weight") if cal is not None else None
        if float_w is not None and name in cal.inputs:  # both without the bias
            rows = cal.inputs[name].sample
            args = [
                g.weights[v.node.op.key]
                for v in new.inputs[1:]
                if isinstance(v.node.op, Param) and not (v.type.dtype.is_float and v.type.rank == 1)
            ]
            numbers.update(sample_error(rows @ float_w.T, op.ref(rows, *args)))
        record_layer(ctx, name, numbers)
        done += 1
    ctx.stat("quantized", done)
    return g
