"""ONNX converters for Attention (opsets 23-25) and RotaryEmbedding (23).

Attention is decomposed into IR matmul / softmax / elementwise ops exactly as ONNX's
reference computes it: q and k both scaled by sqrt(scale), optional softcap, an additive
bias built from the mask, the causal / sliding-window frontier (offset by the past length or
by nonpad_kv_seqlen) and the padding of nonpad_kv_seqlen, a softmax whose fully masked rows
become 0, and GQA by repeating each kv head.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from ..ir.shapes import is_static
from .onnx_ops import Row, cast, mk, onnx_dtype
from .onnx_ops_ctx import OT, NodeCtx


def _to_heads(c: NodeCtx, x: OT, heads: int) -> OT:
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, hidden = x.shape
    if not is_static(hidden):
        c.fail(f"symbolic hidden size in {x.type}")
    y = c.emit(mk("reshape", shape=(b, s, heads, int(hidden) // heads)), x)
    return c.emit(mk("transpose", perm=(0, 2, 1, 3)), y)


def _repeat_heads(c: NodeCtx, x: OT, reps: int) -> OT:
    """[B, H, S, D] -> [B, H*reps, S, D], each head repeated `reps` times in place."""
    if reps == 1:
        return x
    b, h, s, d = x.shape
    y = c.emit(mk("unsqueeze", axes=(2,)), x)
    y = c.emit(mk("expand", shape=(b, h, reps, s, d)), y)
    return c.emit(mk("reshape", shape=(b, h * reps, s, d)), y)


def _frontier(
    c: NodeCtx,
    q_len: int,
    kv_len: int,
    offset: Any,
    dtype: DType,
    left: int = -1,
    right: int = -1,
    causal: bool = True,
) -> OT:
    """Additive bias: 0 where key j is allowed for query i (j <= i + offset for causal; within
    the window around i + offset otherwise), -inf elsewhere. `offset` is an int or a [B] OT
    (then the result is [B, 1, q, kv])."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if isinstance(offset, int):
        diff = i + offset - j
        allowed = np.ones_like(diff, dtype=bool)
        if causal:
            allowed &= diff >= 0
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = np.where(allowed, 0.0, -np.inf).astype(dtype.np)
        return c.const_ot(bias, dtype)
    off = c.emit(mk("reshape", shape=(offset.shape[0], 1, 1)), cast(c, offset, DType.i64))
    diff = c.emit(
        mk("sub"), c.emit(mk("add"), c.const_ot(i, DType.i64), off), c.const_ot(j, DType.i64)
    )
    zero = c.scalar(0, DType.i64)
    allowed = None
    conds = []
    if causal:
        conds.append(c.emit(mk("greater_equal"), diff, zero))
    if left >= 0:
        conds.append(c.emit(mk("less_equal"), diff, c.scalar(left, DType.i64)))
    if right >= 0:
        conds.append(c.emit(mk("greater_equal"), diff, c.scalar(-right, DType.i64)))
    for cond in conds:
        allowed = cond if allowed is None else c.emit(mk("logical_and"), allowed, cond)
    assert allowed is not None
    bias = c.emit(mk("where"), allowed, c.scalar(0.0, dtype), c.scalar(-math.inf, dtype))
    return c.emit(mk("reshape", shape=(offset.shape[0], 1, q_len, kv_len)), bias)


def _mask_bias(c: NodeCtx, mask: OT, kv_len: int, dtype: DType) -> OT:
    """The attention mask as an additive bias, padded to kv_len keys (-inf / False)."""
    pad = kv_len - int(mask.shape[-1])
    if pad > 0:
        pads = [0] * (2 * mask.rank)
        pads[-1] = pad
        value = 0.0 if mask.dtype == DType.bool else -math.inf
        mask = c.emit(mk("pad", pads=tuple(pads), value=value), mask)
    if mask.dtype == DType.bool:
        return c.emit(mk("where"), mask, c.scalar(0.0, dtype), c.scalar(-math.inf, dtype))
    return cast(c, mask, dtype)


def _add(c: NodeCtx, a: OT | None, b: OT) -> OT:
    return b if a is None else c.emit(mk("add"), a, b)


def convert_attention(c: NodeCtx) -> Any:
    q, k, v = c.x(0), c.x(1), c.x(2)
    mask, past_k, past_v = c.opt(3), c.opt(4), c.opt(5)
    nonpad = c.opt(6)
    dt = q.dtype
    three_d = q.rank == 3
    if three_d:
        qh, kvh = int(c.attr("q_num_heads", 0)), int(c.attr("kv_num_heads", 0))
        if not qh or not kvh:
            c.fail("3-D Attention needs q_num_heads and kv_num_heads")
        q, k, v = _to_heads(c, q, qh), _to_heads(c, k, kvh), _to_heads(c, v, kvh)
    if not all(is_static(d) for t in (q, k, v) for d in t.shape):
        c.fail("Attention with symbolic dims")
    head = int(q.shape[3])
    scale = c.attr("scale")
    scale = 1.0 / math.sqrt(head) if scale is None else float(scale)
    s = c.scalar(float(np.asarray(math.sqrt(scale), dtype=dt.np)), dt)
    if past_k is not None:
        k = c.emit(mk("concat", axis=2), past_k, k)
    if past_v is not None:
        v = c.emit(mk("concat", axis=2), past_v, v)
    present_k, present_v = k, v
    q_len, kv_len = int(q.shape[2]), int(k.shape[2])
    past_len = int(past_k.shape[2]) if past_k is not None else 0
    left, right = int(c.attr("left_window_size", -1)), int(c.attr("right_window_size", -1))
    offset: Any = past_len
    if nonpad is not None and past_k is None:
        offset = c.emit(mk("sub"), cast(c, nonpad, DType.i64), c.scalar(q_len, DType.i64))
    bias = _mask_bias(c, mask, kv_len, dt) if mask is not None else None
    if bool(c.attr("is_causal", 0)):
        bias = _add(c, bias, _frontier(c, q_len, kv_len, offset, dt))
    if left >= 0 or right >= 0:
        bias = _add(c, bias, _frontier(c, q_len, kv_len, offset, dt, left, right, False))
    if nonpad is not None:
        keep = c.emit(
            mk("less"),
            c.const_ot(np.arange(kv_len).reshape(1, kv_len), DType.i64),
            c.emit(mk("reshape", shape=(nonpad.shape[0], 1)), cast(c, nonpad, DType.i64)),
        )
        pad_bias = c.emit(mk("where"), keep, c.scalar(0.0, dt), c.scalar(-math.inf, dt))
        bias = _add(c, bias, c.emit(mk("reshape", shape=(nonpad.shape[0], 1, 1, kv_len)), pad_bias))
    hq, hk = int(q.shape[1]), int(k.shape[1])
    if hq != hk and hq % hk == 0:
        k, v = _repeat_heads(c, k, hq // hk), _repeat_heads(c, v, hq // hk)
    kt = c.emit(mk("transpose", perm=(0, 1, 3, 2)), c.emit(mk("mul"), k, s))
    qk = c.emit(mk("matmul"), c.emit(mk("mul"), q, s), kt)
    softcap = float(c.attr("softcap", 0.0))
    if softcap > 0:
        capped = c.emit(mk("tanh"), c.emit(mk("div"), qk, c.scalar(softcap, dt)))
        qk = c.emit(mk("mul"), capped, c.scalar(softcap, dt))
    scores = _add(c, bias, qk) if bias is not None else qk
    mode = int(c.attr("qk_matmul_output_mode", 0))
    qk_out = scores if mode == 2 else qk
    precision = c.attr("softmax_precision")
    work = onnx_dtype(c, int(precision)) if precision else dt
    probs = c.emit(mk("softmax", axis=-1), cast(c, scores, work))
    if bias is not None:
        row_max = c.emit(mk("reduce_max", axes=(bias.rank - 1,), keepdims=True), bias)
        dead = c.emit(mk("isinf", detect_positive=False), row_max)
        probs = c.emit(mk("where"), dead, c.scalar(0.0, work), probs)
    if mode == 3:
        qk_out = probs
    y = c.emit(mk("matmul"), cast(c, probs, dt), v)
    if three_d:
        y = c.emit(mk("transpose", perm=(0, 2, 1, 3)), y)
        hidden = int(y.shape[2]) * int(y.shape[3])
        y = c.emit(mk("reshape", shape=(y.shape[0], y.shape[1], hidden)), y)
    return [y, present_k, present_v, cast(c, qk_out, dt)]


def convert_rotary_embedding(c: NodeCtx) -> OT:
    x, cos, sin, pos = c.x(0), c.x(1), c.x(2), c.opt(3)
    interleaved = bool(c.attr("interleaved", 0))
    if pos is not None:
        cos = c.emit(mk("gather", axis=0), cos, pos)
        sin = c.emit(mk("gather", axis=0), sin, pos)
    three_d = x.rank == 3
    work = x
    if three_d:
        heads = int(c.attr("num_heads", 0))
        if not heads:
            c.fail("3-D RotaryEmbedding needs num_heads")
        work = _to_heads(c, x, heads)
    rot = int(c.attr("rotary_embedding_dim", 0))
    if rot and int(cos.shape[-1]) * 2 != rot:
        c.fail(f"rotary_embedding_dim {rot} vs cos cache {cos.type}")
    cos = c.emit(mk("unsqueeze", axes=(cos.rank - 2,)), cos)
    sin = c.emit(mk("unsqueeze", axes=(sin.rank - 2,)), sin)
    y = c.emit(mk("rotary_embedding", interleaved=interleaved), work, cos, sin)
    if three_d:
        y = c.emit(mk("transpose", perm=(0, 2, 1, 3)), y)
        y = c.emit(mk("reshape", shape=x.shape), y)
    return y


ROWS: list[Row] = [
    ("Attention", (23, 24, 25), convert_attention),
    ("RotaryEmbedding", (23,), convert_rotary_embedding),
]
