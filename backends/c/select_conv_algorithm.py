"""select_conv_algorithm: per f32 2-D convolution, im2col/GEMM or Winograd F(2x2, 3x3)
(lmc_winograd.c), chosen from the conv's shape and written into the IR as fused_conv's `algo`
(a plain conv becomes a fused_conv with the identity epilogue), so the choice prints."""

from __future__ import annotations

import dataclasses

from ...ir.errors import LmcError
from ...ir.graph import Graph, Node
from ...ir.ops.conv import Conv
from ...ir.ops.fused import FusedConv
from ...ir.printer import node_line
from ...ir.shapes import is_static
from ...passes.manager import PassContext, graph_pass
from .emit_conv import _conv_dims, _kernel_conv, conv_packed_key
from .packing import PANEL

CHOICES = ("auto", "gemm", "winograd")
# "auto" takes Winograd where it measured faster than im2col (Ice Lake, AVX-512, one thread:
# 64 channels at 56x56 1.55x, 128 at 28x28 1.8x; 256 at 14x14, whose 7-tile rows fill 7 of a
# panel's 16 lanes, 0.87x; 3 -> 20 channels 0.6x): enough channels on both sides, and tile rows
# that fill most of their 16-tile panels.
MIN_CHANNELS = 32
MIN_PANEL_FILL = 0.75
# lmc_conv2d_wino_applies holds for these (a block of one panel fits the per-thread scratch).
MAX_IN_CHANNELS = 512
MAX_WIDTH = 4096


class ConvAlgorithmError(LmcError):
    """The conv_algorithm option names no algorithm, or a conv asks for one the kernels cannot
    run it with."""


def winograd_possible(n: Node) -> bool:
    """Whether the C kernels can run conv node `n` by Winograd: an f32 2-D conv on the kernel
    path with a pre-packed 3x3 weight, stride 1, dilation 1, one group, static channel counts
    and width within what the kernel's scratch holds."""
    if not isinstance(n.op, (Conv, FusedConv)) or not _kernel_conv(n) or n.inputs[0].type.rank != 4:
        return False
    if conv_packed_key(n) is None or n.op.groups != 1:
        return False
    x, w = n.inputs[:2]
    (_, r, _, sh, _, _, dh), (_, s, ow, sw, _, _, dw) = _conv_dims(n.op, x, w, n.outputs[0])
    if (r, s, sh, sw, dh, dw) != (3, 3, 1, 1, 1, 1):
        return False
    c, k = w.type.shape[1], w.type.shape[0]
    if not (is_static(c) and is_static(k) and is_static(ow)):
        return False
    return 0 < int(c) <= MAX_IN_CHANNELS and 0 < int(k) and 0 < int(ow) <= MAX_WIDTH


def winograd_pays(n: Node) -> bool:
    """The "auto" rule (see MIN_CHANNELS, MIN_PANEL_FILL)."""
    w, y = n.inputs[1], n.outputs[0]
    tiles = -(-int(y.type.shape[3]) // 2)
    fill = tiles / (-(-tiles // PANEL) * PANEL)
    return (
        min(int(w.type.shape[0]), int(w.type.shape[1])) >= MIN_CHANNELS and fill >= MIN_PANEL_FILL
    )


@graph_pass()
def select_conv_algorithm(g: Graph, ctx: PassContext) -> Graph:
    """Set `algo="winograd"` on the convs where the Winograd kernel applies and (option
    conv_algorithm, default "auto") pays; "winograd" takes it wherever it applies, "gemm"
    nowhere (resetting convs that asked for it). Only with the kernel library (option kernels);
    a conv that asks for Winograd where the kernels cannot run it is an error.

    Safe: Winograd computes the same convolution; its transforms add and subtract in f32, so
    results differ from the direct sums by rounding (a few ulps of the output scale)."""
    choice = ctx.options.get("conv_algorithm", "auto")
    if choice not in CHOICES:
        raise ConvAlgorithmError(f"conv_algorithm={choice!r}: expected one of {', '.join(CHOICES)}")
    if not ctx.options.get("kernels", True):
        return g
    for n in list(g.nodes):
        asked = isinstance(n.op, FusedConv) and n.op.algo == "winograd"
        possible = winograd_possible(n)
        if asked and not possible:
            raise ConvAlgorithmError(
                "select_conv_algorithm: the Winograd kernel cannot run this conv (it needs an f32 "
                "2-D 3x3 conv, stride 1, dilation 1, one group, a weight param only it reads, "
                f"static channels <= {MAX_IN_CHANNELS} and width <= {MAX_WIDTH}):\n  "
                f"{node_line(n)}"
            )
        want = possible and (
            choice == "winograd" or (choice == "auto" and (asked or winograd_pays(n)))
        )
        if want == asked:
            continue
        if isinstance(n.op, FusedConv):
            op = dataclasses.replace(n.op, algo="winograd" if want else "gemm")
        else:
            o = n.op
            op = FusedConv(o.stride, o.padding, o.dilation, o.groups, len(n.inputs) == 3, "x0")
            op = dataclasses.replace(op, algo="winograd")
        g.replace_node(n, op, list(n.inputs))
        ctx.stat("winograd" if want else "gemm")
    return g
