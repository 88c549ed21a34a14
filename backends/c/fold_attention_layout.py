"""fold_attention_layout: let attention read its operands and write its result as [..., S, H, D]
views (fused_attention's *_t flags; the kernel takes per-tensor strides) instead of copying
them through transposes, move rotary embeddings ahead of those transposes, drop the GQA
repeat of k / v (the kernel maps query heads to kv heads itself), and turn transposes that only
move size-1 axes into reshapes (views in the C backend)."""

from __future__ import annotations

import dataclasses

from ...ir.graph import Graph, Node, Value
from ...ir.ops.lowered import FusedAttention
from ...ir.ops.nn import Attention, RotaryEmbedding
from ...ir.ops.shape import Reshape, Transpose
from ...ir.shapes import dim_eq, is_static
from ...passes.canonical_rules import made_by
from ...passes.manager import PassContext, graph_pass
from ...passes.rewrite import RuleSet, apply_rules

RULES = RuleSet("fold_attention_layout")
ATTENTION = ("attention", "fused_attention")


def _swaps_heads(op: Transpose, rank: int) -> bool:
    """perm exchanges axes -3 and -2 and keeps every other axis."""
    if rank < 3:
        return False
    want = list(range(rank))
    want[-3], want[-2] = want[-2], want[-3]
    return list(op.perm) == want


def _fused(n: Node) -> FusedAttention:
    op = n.op
    if isinstance(op, FusedAttention):
        return op
    assert isinstance(op, Attention)
    return FusedAttention(scale=op.scale, causal=op.causal)


def _only_use(g: Graph, v: Value) -> bool:
    return len(v.uses) == 1 and not g.is_output(v)


@RULES.rule(*ATTENTION)
def attention_reads_transposed(g: Graph, n: Node) -> Value | None:
    """attention(..., transpose(t, swap(-3, -2)), ...) -> fused_attention reading t with its
    heads / sequence strides exchanged (q, k and v each)."""
    op = _fused(n)
    flags = {"q_t": op.q_t, "k_t": op.k_t, "v_t": op.v_t}
    ins = list(n.inputs)
    changed = False
    for i, name in enumerate(flags):
        v = ins[i]
        if made_by(v, "transpose") and _swaps_heads(v.node.op, v.type.rank):  # type: ignore[arg-type]
            ins[i] = v.node.inputs[0]
            flags[name] = not flags[name]
            changed = True
    if not changed:
        return None
    return g.apply(dataclasses.replace(op, **flags), *ins, before=n)


@RULES.rule("transpose")
def transposed_attention_result(g: Graph, n: Node) -> Value | None:
    """transpose(attention(...), swap(-3, -2)) with the attention read by nothing else ->
    fused_attention writing [..., Sq, Hq, Dv] directly."""
    (a,) = n.inputs
    if not made_by(a, *ATTENTION) or not _swaps_heads(n.op, a.type.rank):  # type: ignore[arg-type]
        return None
    if not _only_use(g, a):
        return None
    op = _fused(a.node)
    return g.apply(dataclasses.replace(op, out_t=not op.out_t), *a.node.inputs, before=n)


@RULES.rule("rotary_embedding")
def rotary_before_transpose(g: Graph, n: Node) -> Value | None:
    """rotary_embedding(transpose(t, p), cos, sin) with p keeping the last axis (and the
    transpose read by nothing else) -> transpose(rotary_embedding(t, cos', sin'), p), cos' and
    sin' cos / sin with their broadcast axes permuted back: the same products, and the
    transpose can then fold into an attention that reads the result."""
    x, cos, sin = n.inputs
    if not made_by(x, "transpose") or not _only_use(g, x):
        return None
    perm = tuple(x.node.op.perm)  # type: ignore[attr-defined]
    r = x.type.rank
    if perm[-1] != r - 1:
        return None
    inv = tuple(perm.index(a) for a in range(r))
    cs = [_permute_broadcast(g, c, r, inv, n) for c in (cos, sin)]
    y = g.apply(n.op, x.node.inputs[0], *cs, before=n)
    return g.apply(Transpose(perm=perm), y, before=n)


def _permute_broadcast(g: Graph, c: Value, rank: int, perm: tuple[int, ...], n: Node) -> Value:
    """c (broadcast against a rank-`rank` tensor) padded with leading 1s and transposed."""
    if c.type.rank < rank:
        shape = (1,) * (rank - c.type.rank) + tuple(c.type.shape)
        c = g.apply(Reshape(shape=shape), c, before=n)
    if perm == tuple(range(rank)):
        return c
    return g.apply(Transpose(perm=perm), c, before=n)


def _repeated_kv(v: Value) -> tuple[Value, int] | None:
    """(x, rep) when v = reshape(expand(unsqueeze(x, -3), [..., H, rep, S, D]), [..., H*rep, S,
    D]) for x [..., H, S, D]: HF's repeat_kv (each kv head repeated rep times in a row)."""
    if not made_by(v, "reshape"):
        return None
    e = v.node.inputs[0]
    if not made_by(e, "expand"):
        return None
    u = e.node.inputs[0]
    if not made_by(u, "unsqueeze") or len(u.node.op.axes) != 1:  # type: ignore[attr-defined]
        return None
    x = u.node.inputs[0]
    r = x.type.rank
    if r < 3 or u.node.op.axes[0] % (r + 1) != r - 2:  # type: ignore[attr-defined]
        return None
    rep = e.type.shape[r - 2]
    xs, es, vs = x.type.shape, e.type.shape, v.type.shape
    if not is_static(rep) or len(es) != r + 1 or len(vs) != r:
        return None
    same = all(dim_eq(a, b) for a, b in zip(es[: r - 2], xs[: r - 2]))
    same = same and all(dim_eq(a, b) for a, b in zip(es[r - 1 :], xs[r - 2 :]))
    ok = same and all(dim_eq(a, b) for a, b in zip(vs[: r - 3], xs[: r - 3]))
    ok = ok and dim_eq(vs[r - 3], xs[r - 3] * rep) and dim_eq(vs[-2], xs[-2])
    return (x, int(rep)) if ok and dim_eq(vs[-1], xs[-1]) else None  # type: ignore[arg-type]


@RULES.rule(*ATTENTION)
def attention_drops_repeated_kv(g: Graph, n: Node) -> Value | None:
    """attention(q, repeat_kv(k, r), repeat_kv(v, r), ...) -> attention(q, k, v, ...): the op
    serves query head h from kv head h // (Hq / Hkv), which is what repeat_kv spells out."""
    op = _fused(n)
    if op.k_t or op.v_t:
        return None
    q, k, v = n.inputs[:3]
    rk, rv = _repeated_kv(k), _repeated_kv(v)
    if rk is None or rv is None or rk[1] != rv[1] or rk[1] < 1:
        return None
    if not dim_eq(rk[0].type.shape[-3], rv[0].type.shape[-3]):
        return None
    return g.apply(n.op, q, rk[0], rv[0], *n.inputs[3:], before=n)


@RULES.rule("transpose")
def transpose_of_unit_axes(g: Graph, n: Node) -> Value | None:
    """A transpose that only moves size-1 axes (the other axes keep their order) keeps the
    row-major element order: -> reshape (a view in the C backend)."""
    (x,) = n.inputs
    kept = [a for a in n.op.perm if not (is_static(x.type.shape[a]) and x.type.shape[a] == 1)]  # type: ignore[attr-defined]
    if kept != sorted(kept) or list(n.op.perm) == sorted(n.op.perm):  # type: ignore[attr-defined]
        return None
    return g.apply(Reshape(shape=tuple(n.outputs[0].type.shape)), x, before=n)


@graph_pass()
def fold_attention_layout(g: Graph, ctx: PassContext) -> Graph:
    """Fold the transposes around attention into its operand strides: attention over
    transpose(x, swap(-3, -2)) operands, or whose result is transposed back, becomes
    fused_attention with the matching *_t flags (the C kernel takes per-tensor batch / head /
    row strides, so [B, S, H, D] projections are read and the result written in place, no
    copies); rotary_embedding moves ahead of such a transpose (its cos / sin broadcast axes
    permuted the same way) so the transpose reaches the attention; HF's repeat_kv of k and v
    (unsqueeze, expand, reshape) is dropped in favour of the op's own GQA head mapping; a
    transpose that only moves size-1 axes becomes a reshape.

    Safe (exact): fused_attention's reference is attention's on the transposed operands, the
    rotary embedding computes the same products per element in either layout, repeat_kv's
    head h is kv head h // rep exactly as attention maps GQA heads, and a transpose of size-1
    axes does not reorder elements. Nodes left unread are deleted."""
    for rule, count in sorted(apply_rules(g, RULES).items()):
        ctx.stat(rule, count)
    return g


_ = RotaryEmbedding  # the op the rotary rule rewrites (matched by name)
