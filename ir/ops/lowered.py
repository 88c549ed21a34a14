"""Ops that backend lowering passes make from standard ones (backends/c: fold_attention_layout,
merge_sibling_linears): attention reading and writing [..., S, H, D] views in place of the
transposes around it, and sibling linears over one input computed as one GEMM. Shape rules
and references are the standard ops' own, applied to the transposed / split operands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import require
from ..op import Op, register
from ..shapes import dim_eq
from ..types import TensorType
from .linalg import Linear
from .nn import Attention


def swap_heads(t: TensorType) -> TensorType:
    """t with axes -3 and -2 exchanged ([..., H, S, D] <-> [..., S, H, D])."""
    s = list(t.shape)
    s[-3], s[-2] = s[-2], s[-3]
    return t.with_shape(tuple(s))


@register
@dataclass(frozen=True)
class FusedAttention(Op):
    """attention(q, k, v, mask) {scale, causal} where an operand flagged `q_t` / `k_t` / `v_t`
    is given as [..., S, H, D] (swapaxes(-3, -2) of attention's [..., H, S, D]) and `out_t`
    returns the result as [..., Sq, Hq, Dv]: y = T_out(attention(T_q(q), T_k(k), T_v(v),
    mask)), T = swapaxes(-3, -2) where flagged, else identity. The mask keeps attention's
    [..., Hq, Sq, Skv] broadcast form."""

    name: ClassVar[str] = "fused_attention"
    scale: float | None = None
    causal: bool = False
    q_t: bool = False
    k_t: bool = False
    v_t: bool = False
    out_t: bool = False

    def attention(self) -> Attention:
        return Attention(scale=self.scale, causal=self.causal)

    def infer(
        self, q: TensorType, k: TensorType, v: TensorType, mask: TensorType | None = None
    ) -> TensorType:
        flags = (self.q_t, self.k_t, self.v_t, self.out_t)
        require(
            not any(flags) or min(q.rank, k.rank, v.rank) >= 3,
            f"fused_attention: transposed operands need rank >= 3, got {q}, {k}, {v}",
        )
        ts = [swap_heads(t) if f else t for t, f in zip((q, k, v), flags)]
        y = self.attention().infer(*ts, mask)
        return swap_heads(y) if self.out_t else y

    def ref(
        self, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        flags = (self.q_t, self.k_t, self.v_t)
        qkv = [np.swapaxes(a, -3, -2) if f else a for a, f in zip((q, k, v), flags)]
        y = self.attention().ref(*qkv, mask)
        return np.ascontiguousarray(np.swapaxes(y, -3, -2)) if self.out_t else y


@register
@dataclass(frozen=True)
class LinearSplit(Op):
    """Sibling linears over one input as one: y = x @ w.T + b (w [sum(sizes), in], b
    [sum(sizes)]), returned in pieces along the last axis: result k is
    y[..., o_k : o_k + sizes[k]], o_k = sizes[0] + ... + sizes[k-1]."""

    name: ClassVar[str] = "linear_split"
    sizes: tuple[int, ...] = ()

    def infer(
        self, x: TensorType, w: TensorType, b: TensorType | None = None
    ) -> tuple[TensorType, ...]:
        y = Linear().infer(x, w, b)
        require(
            len(self.sizes) >= 1 and all(s >= 0 for s in self.sizes),
            f"linear_split: sizes must be one or more non-negative ints, got {self.sizes}",
        )
        require(
            dim_eq(sum(self.sizes), y.shape[-1]),
            f"linear_split: sizes {list(self.sizes)} sum to {sum(self.sizes)}, the weight "
            f"{w} has {y.shape[-1]} outputs",
        )
        return tuple(y.with_shape(y.shape[:-1] + (s,)) for s in self.sizes)

    def ref(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        y = Linear().ref(x, w, b)
        cuts = np.cumsum(self.sizes[:-1], dtype=np.int64) if len(self.sizes) > 1 else []
        return tuple(np.ascontiguousarray(p) for p in np.split(y, cuts, axis=-1))
