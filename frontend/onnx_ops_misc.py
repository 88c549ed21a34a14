"""ONNX converters for losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss), LpNormalization,
CumProd, the signal windows and other ops that decompose into a few IR ops."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import is_static
from .onnx_ops import Row, cast, mk, onnx_dtype
from .onnx_ops_ctx import OT, NodeCtx


# -- losses ----------------------------------------------------------------------------------------
def nll_loss(c: NodeCtx, logp: OT, target: OT, weight: OT | None) -> OT:
    """ONNX NegativeLogLikelihoodLoss on log-probabilities logp [N, C, d...]."""
    reduction = str(c.attr("reduction", "mean"))
    ignore = c.attr("ignore_index")
    t = cast(c, target, DType.i64)
    keep = None
    if ignore is not None:
        keep = c.emit(mk("not_equal"), t, c.scalar(int(ignore), DType.i64))
        t = c.emit(mk("where"), keep, t, c.scalar(0, DType.i64))
    picked = c.emit(mk("gather_elements", axis=1), logp, c.emit(mk("unsqueeze", axes=(1,)), t))
    loss = c.emit(mk("neg"), c.emit(mk("squeeze", axes=(1,)), picked))
    w = None
    if weight is not None:
        w = c.emit(mk("gather", axis=0), weight, t)
    if keep is not None:
        mask = cast(c, keep, logp.dtype)
        w = mask if w is None else c.emit(mk("mul"), w, mask)
    if w is not None:
        loss = c.emit(mk("mul"), loss, w)
    axes = tuple(range(loss.rank))
    if reduction == "none":
        return loss
    total = c.emit(mk("reduce_sum", axes=axes), loss)
    if reduction == "sum":
        return total
    if reduction != "mean":
        c.fail(f"reduction {reduction!r}")
    if w is None:
        return c.emit(mk("reduce_mean", axes=axes), loss)
    return c.emit(mk("div"), total, c.emit(mk("reduce_sum", axes=axes), w))


def convert_nll_loss(c: NodeCtx) -> OT:
    return nll_loss(c, c.x(0), c.x(1), c.opt(2))


def convert_softmax_cross_entropy(c: NodeCtx) -> Any:
    x = c.x(0)
    logp = c.emit(mk("log_softmax", axis=1), x)
    loss = nll_loss(c, logp, c.x(1), c.opt(2))
    return [loss, logp] if c.wants(1) else [loss]


# -- normalization and scans ----------------------------------------------------------------------
def convert_lp_normalization(c: NodeCtx) -> OT:
    x = c.x(0)
    axis, p = int(c.attr("axis", -1)) % x.rank, int(c.attr("p", 2))
    if p == 1:
        norm = c.emit(mk("reduce_l1", axes=(axis,), keepdims=True), x)
    elif p == 2:
        norm = c.emit(mk("reduce_l2", axes=(axis,), keepdims=True), x)
    else:
        c.fail(f"p = {p}")
    zero = c.emit(mk("equal"), norm, c.scalar(0, x.dtype))
    safe = c.emit(mk("where"), zero, c.scalar(1, x.dtype), norm)
    return c.emit(mk("where"), zero, c.scalar(0, x.dtype), c.emit(mk("div"), x, safe))


def convert_cumprod(c: NodeCtx) -> OT:
    """Unrolled over a static axis: y_i = y_{i-1} * x_i (exclusive / reverse as CumSum)."""
    x = c.x(0)
    axis = int(c.ints(1)[0]) % x.rank
    n = x.shape[axis]
    if not is_static(n):
        c.fail("CumProd over a symbolic axis")
    exclusive, reverse = bool(c.attr("exclusive", 0)), bool(c.attr("reverse", 0))
    order = list(range(int(n)))[::-1] if reverse else list(range(int(n)))

    def take(i: int) -> OT:
        return c.emit(mk("slice", axes=(axis,), starts=(i,), ends=(i + 1,), steps=(1,)), x)

    shape = list(x.shape)
    shape[axis] = 1
    ones = c.emit(mk("full", shape=tuple(shape), value=1.0, dtype=x.dtype))
    parts: dict[int, OT] = {}
    acc = ones
    for i in order:
        if exclusive:
            parts[i] = acc
            acc = c.emit(mk("mul"), acc, take(i))
        else:
            acc = c.emit(mk("mul"), acc, take(i)) if acc is not ones else take(i)
            parts[i] = acc
    if not parts:
        return c.emit(mk("identity"), x)
    return c.emit(mk("concat", axis=axis), *(parts[i] for i in range(int(n))))


# -- windows ---------------------------------------------------------------------------------------
WINDOW_COEFFS = {
    "HannWindow": (0.5, 0.5, 0.0),
    "HammingWindow": (25 / 46, 1 - 25 / 46, 0.0),
    "BlackmanWindow": (0.42, 0.5, 0.08),
}


def convert_window(c: NodeCtx) -> OT:
    """a0 - a1 cos(2 pi k / N') + a2 cos(4 pi k / N'), N' = N (periodic) or N - 1."""
    n = int(c.const(0).reshape(-1)[0])
    dt = onnx_dtype(c, int(c.attr("output_datatype", 1)))
    periodic = bool(c.attr("periodic", 1))
    a0, a1, a2 = WINDOW_COEFFS[c.op_type]
    denom = n if periodic else n - 1
    k = np.arange(n, dtype=np.float64)
    w = a0 - a1 * np.cos(2 * math.pi * k / denom) + a2 * np.cos(4 * math.pi * k / denom)
    return c.const_ot(w.astype(np.float32).astype(dt.np), dt)


# -- newer fused ops -------------------------------------------------------------------------------
def convert_swiglu(c: NodeCtx) -> OT:
    a, b = c.x(0), c.x(1)
    alpha = float(c.attr("alpha", 1.0))
    gate_in = a if alpha == 1.0 else c.emit(mk("mul"), a, c.scalar(alpha, a.dtype))
    swish = c.emit(mk("mul"), a, c.emit(mk("sigmoid"), gate_in))
    return c.emit(mk("mul"), swish, b)


def convert_causal_conv_with_state(c: NodeCtx) -> Any:
    """Depthwise causal conv1d over [past_state (or zeros), input]; the state carried on is
    the last k - 1 positions of that concatenation."""
    x, w, b, past = c.x(0), c.x(1), c.opt(2), c.opt(3)
    k, channels = int(w.shape[2]), x.shape[1]
    if past is None:
        past = c.emit(mk("full", shape=(x.shape[0], channels, k - 1), value=0.0, dtype=x.dtype))
    padded = c.emit(mk("concat", axis=2), past, x) if k > 1 else x
    if not is_static(channels):
        c.fail("symbolic channel count")
    y = c.emit(mk("conv", groups=int(channels)), padded, w, b)
    act = str(c.attr("activation", "none"))
    if act in ("silu", "swish"):
        y = cast(c, c.emit(mk("silu"), cast(c, y, DType.f32)), x.dtype)
    elif act != "none":
        c.fail(f"activation {act!r}")
    total = padded.shape[2]
    state = c.emit(
        mk("slice", axes=(2,), starts=(total - (k - 1),), ends=(total,), steps=(1,)), padded
    )
    return [y, state]


def convert_tensor_scatter(c: NodeCtx) -> OT:
    """present = past with update written along `axis` from write_indices[b] (mod the cache
    length in circular mode): a scatter_elements with computed positions."""
    past, update, write = c.x(0), c.x(1), c.opt(2)
    axis = int(c.attr("axis", -2)) % past.rank
    seq, batch = update.shape[axis], past.shape[0]
    if not (is_static(seq) and is_static(past.shape[axis])):
        c.fail("symbolic sequence dims")
    shape = [1] * past.rank
    shape[axis] = int(seq)
    pos = c.const_ot(np.arange(int(seq), dtype=np.int64).reshape(shape), DType.i64)
    if write is not None:
        start_shape = [1] * past.rank
        start_shape[0] = batch
        start = c.emit(mk("reshape", shape=tuple(start_shape)), cast(c, write, DType.i64))
        pos = c.emit(mk("add"), pos, start)
    if str(c.attr("mode", "linear")) == "circular":
        pos = c.emit(mk("mod"), pos, c.scalar(int(past.shape[axis]), DType.i64))
    pos = c.emit(mk("expand", shape=update.shape), pos)
    return c.emit(mk("scatter_elements", axis=axis), past, pos, update)


def convert_batch_norm_training(c: NodeCtx) -> Any:
    """BatchNormalization with training_mode=1: normalize by the batch statistics; the
    running statistics move by `momentum`."""
    x, scale, bias, mean, var = (c.x(i) for i in range(5))
    eps, momentum = float(c.attr("epsilon", 1e-5)), float(c.attr("momentum", 0.9))
    axes = (0,) + tuple(range(2, x.rank))
    bmean = c.emit(mk("reduce_mean", axes=axes), x)
    per_channel = (bmean.shape[0],) + (1,) * (x.rank - 2)
    centered = c.emit(mk("sub"), x, c.emit(mk("reshape", shape=per_channel), bmean))
    bvar = c.emit(mk("reduce_mean", axes=axes), c.emit(mk("mul"), centered, centered))
    y = c.emit(
        mk("batch_norm", eps=eps), x, cast(c, scale, x.dtype), cast(c, bias, x.dtype), bmean, bvar
    )
    m = c.scalar(momentum, x.dtype)
    rest = c.scalar(1.0 - momentum, x.dtype)

    def blend(run: OT, batch: OT) -> OT:
        return c.emit(
            mk("add"), c.emit(mk("mul"), cast(c, run, x.dtype), m), c.emit(mk("mul"), batch, rest)
        )

    return [y, blend(mean, bmean), blend(var, bvar)]


# -- control flow with conditions known at import -----------------------------------------------
MAX_UNROLL = 4096


def convert_if(c: NodeCtx) -> Any:
    """If with a condition known at import: the chosen branch, inlined."""
    cond = bool(c.const(0).reshape(-1)[0])
    branch = c.attrs["then_branch" if cond else "else_branch"].g
    return c.imp.run_subgraph(branch, [])


def convert_loop(c: NodeCtx) -> Any:
    """Loop with a trip count and conditions known at import, unrolled: loop-carried values
    thread through the inlined body; scan outputs are stacked along a new first axis."""
    body = c.attrs["body"].g
    trips = int(c.const(0).reshape(-1)[0]) if c.has(0) else MAX_UNROLL + 1
    cond = bool(c.const(1).reshape(-1)[0]) if c.has(1) else True
    carried = [c.x(i) for i in range(2, len(c.ins))]
    n_scan = len(body.output) - 1 - len(carried)
    scans: list[list[OT]] = [[] for _ in range(n_scan)]
    i = 0
    while cond and i < trips:
        if i >= MAX_UNROLL:
            c.fail(f"Loop runs more than {MAX_UNROLL} iterations")
        outs = c.imp.run_subgraph(
            body, [c.scalar(i, DType.i64), c.scalar(cond, DType.bool), *carried]
        )
        if outs[0].const is None:
            c.fail("the loop condition is only known at run time")
        cond = bool(outs[0].const.reshape(-1)[0])
        carried = outs[1 : 1 + len(carried)]
        for k, s in enumerate(outs[1 + len(carried) :]):
            scans[k].append(c.emit(mk("unsqueeze", axes=(0,)), s))
        i += 1
    stacked = []
    for parts in scans:
        if not parts:
            c.fail("a scan output of a loop that runs no iteration")
        stacked.append(c.emit(mk("concat", axis=0), *parts) if len(parts) > 1 else parts[0])
    return [*carried, *stacked]


ROWS: list[Row] = [
    ("NegativeLogLikelihoodLoss", (13, 22), convert_nll_loss),
    ("SoftmaxCrossEntropyLoss", (13,), convert_softmax_cross_entropy),
    ("LpNormalization", (1, 22), convert_lp_normalization),
    ("CumProd", (26,), convert_cumprod),
    ("HannWindow", (17,), convert_window),
    ("HammingWindow", (17,), convert_window),
    ("BlackmanWindow", (17,), convert_window),
    ("SwiGLU", (28,), convert_swiglu),
    ("CausalConvWithState", (27,), convert_causal_conv_with_state),
    ("TensorScatter", (24,), convert_tensor_scatter),
    ("If", (11, 13, 16, 19, 21, 23, 24, 25), convert_if),
    ("Loop", (11, 13, 16, 19, 21, 23, 24, 25), convert_loop),
]
