"""Norms, softmax, attention, rotary embedding, embedding: refs vs torch, shapes, rejections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, Graph, run, sym
from lmc.ir.errors import InterpreterError, IRTypeError
from lmc.ir.ops.nn import (
    Attention,
    BatchNorm,
    Embedding,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    LogSoftmax,
    RmsNorm,
    RotaryEmbedding,
    Softmax,
)
from lmc.ir.types import TensorType

from tests.ir.ops.test_linalg import check_case, check_torch
from tests.util import assert_close, tolerance

RNG = np.random.default_rng(2)
F32, F16, B = DType.f32, DType.f16, DType.bool
s0, s1 = sym("s0"), sym("s1")


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def tt(*arrays: np.ndarray | None) -> list[torch.Tensor | None]:
    return [None if a is None else torch.from_numpy(a) for a in arrays]


# -- normalizations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xs,axis", [((2, 3, 8), -1), ((4, 5), -2), ((2, 3, 4, 5), 1), ((3, 1), -1), ((1, 6), 0)]
)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_and_rms_norm_match_torch(xs, axis, affine):
    x = rand(*xs) * 3 + 1
    nshape = xs[axis % len(xs) :]
    w, b = (rand(*nshape), rand(*nshape)) if affine else (None, None)
    ops = [LayerNorm(axis=axis, eps=1e-5), RmsNorm(axis=axis, eps=1e-6)]
    want = F.layer_norm(*tt(x), nshape, *tt(w, b), eps=1e-5)
    check_torch(ops[0], [x, w, b] if affine else [x], want)
    want = F.rms_norm(*tt(x), nshape, *tt(w), eps=1e-6)
    check_torch(ops[1], [x, w] if affine else [x], want)


def test_layer_norm_broadcast_weight_and_f16():
    x, w = rand(2, 3, 4), rand(4)
    want = F.layer_norm(*tt(x), (3, 4), torch.from_numpy(w).expand(3, 4))
    check_torch(LayerNorm(axis=-2), [x, w], want)
    xh = rand(3, 16, dtype=np.float16)
    got = RmsNorm().ref(xh)
    assert got.dtype == np.float16
    want = F.rms_norm(torch.from_numpy(xh).float(), (16,), eps=1e-6).half()
    assert_close(got, want.numpy(), *tolerance("torch", F16))


@pytest.mark.parametrize(
    "xs,groups",
    [((2, 6, 5), 3), ((1, 4, 3, 3), 2), ((3, 2, 1), 1), ((2, 4, 2, 3, 2), 4), ((2, 4), 2)],
)
def test_group_norm_matches_torch(xs, groups):
    x, w, b = rand(*xs), rand(xs[1]), rand(xs[1])
    check_torch(
        GroupNorm(groups=groups, eps=1e-5),
        [x, w, b],
        F.group_norm(*tt(x), groups, *tt(w, b), eps=1e-5),
    )


@pytest.mark.parametrize("xs", [(2, 3, 5), (1, 4, 3, 3), (2, 1, 2, 3, 2), (3, 2, 7)])
def test_instance_and_batch_norm_match_torch(xs):
    x, w, b = rand(*xs), rand(xs[1]), rand(xs[1])
    mean, var = rand(xs[1]), np.abs(rand(xs[1])) + 0.1
    check_torch(
        InstanceNorm(eps=1e-4),
        [x, w, b],
        F.instance_norm(*tt(x), weight=torch.from_numpy(w), bias=torch.from_numpy(b), eps=1e-4),
    )
    check_torch(
        BatchNorm(eps=1e-3),
        [x, w, b, mean, var],
        F.batch_norm(*tt(x, mean, var, w, b), training=False, eps=1e-3),
    )


def test_batch_norm_rank2():
    x, w, b, mean, var = rand(4, 3), rand(3), rand(3), rand(3), np.abs(rand(3))
    check_torch(
        BatchNorm(), [x, w, b, mean, var], F.batch_norm(*tt(x, mean, var, w, b), training=False)
    )


def test_norm_symbolic_shapes_and_rejects():
    x = TensorType(F32, (s0, 4, s1))
    assert LayerNorm(axis=-2).infer(x, TensorType(F32, (4, s1))) == x
    assert RmsNorm().infer(x, TensorType(F32, (s1,))) == x
    assert GroupNorm(groups=2).infer(x, TensorType(F32, (4,)), TensorType(F32, (4,))) == x
    c = TensorType(F32, (4,))
    assert BatchNorm().infer(x, c, c, c, c) == x
    bad = [
        (LayerNorm(), (x, TensorType(F32, (4,)))),
        (LayerNorm(axis=3), (x,)),
        (LayerNorm(axis=-4), (x,)),
        (LayerNorm(axis=-2), (x, TensorType(F32, (s1,)), TensorType(F32, (5, s1)))),
        (LayerNorm(), (x, TensorType(F32, (1, s1)))),
        (LayerNorm(), (x, TensorType(F16, (s1,)))),
        (LayerNorm(), (TensorType(DType.i32, (2, 3)),)),
        (RmsNorm(), (x, TensorType(F32, (s0,)))),
        (GroupNorm(groups=3), (x, c, c)),
        (
            GroupNorm(groups=2),
            (TensorType(F32, (2, s0, 3)), TensorType(F32, (s0,)), TensorType(F32, (s0,))),
        ),
        (GroupNorm(), (x, TensorType(F32, (5,)), c)),
        (InstanceNorm(), (TensorType(F32, (2, 4)), c, c)),
        (BatchNorm(), (x, c, c, c, TensorType(F32, (3,)))),
        (BatchNorm(), (x, c, c, c, TensorType(F16, (4,)))),
    ]
    for op, args in bad:
        with pytest.raises(IRTypeError, match=f"^{op.name}"):
            op.infer(*args)


def test_norm_case():
    check_case("norm.lmc", ({"s0": 2, "s1": 7},))


# -- softmax --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xs,axis",
    [
        ((3, 5), -1),
        ((2, 3, 4), 1),
        ((4, 1), 0),
        ((2, 3, 4), -3),
        ((1,), 0),
        ((0, 3), -1),
        ((3, 0), 0),
    ],
)
def test_softmax_matches_torch(xs, axis):
    x = rand(*xs) * 10
    check_torch(Softmax(axis=axis), [x], torch.softmax(*tt(x), axis))
    check_torch(LogSoftmax(axis=axis), [x], torch.log_softmax(*tt(x), axis))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # assert_close on -inf
def test_softmax_is_stable_and_handles_inf():
    x = np.array([[1000.0, 1001.0, -np.inf], [-1e4, 0.0, 1e4]], np.float32)
    check_torch(Softmax(), [x], torch.softmax(*tt(x), -1))
    check_torch(LogSoftmax(), [x], torch.log_softmax(*tt(x), -1))
    xh = (rand(2, 7) * 20).astype(np.float16)
    got = Softmax().ref(xh)
    assert got.dtype == np.float16
    assert_close(
        got,
        torch.softmax(torch.from_numpy(xh).float(), -1).half().numpy(),
        *tolerance("torch", F16),
    )


def test_softmax_rejects():
    for op in (Softmax(axis=2), LogSoftmax(axis=-3)):
        with pytest.raises(IRTypeError, match=f"^{op.name}"):
            op.infer(TensorType(F32, (s0, 3)))
    with pytest.raises(IRTypeError, match="^softmax"):
        Softmax().infer(TensorType(DType.i64, (3,)))


# -- attention ------------------------------------------------------------------------------


def sdpa(q, k, v, mask=None, causal=False, scale=None, gqa=False) -> torch.Tensor:
    return F.scaled_dot_product_attention(
        *tt(q, k, v), attn_mask=tt(mask)[0], is_causal=causal, scale=scale, enable_gqa=gqa
    )


# (q shape, k shape, Dv, mask shape or None, mask kind, causal, scale)
ATTENTIONS = [
    ((2, 3, 5, 8), (2, 3, 5, 8), 8, None, None, False, None),
    ((2, 3, 5, 8), (2, 3, 7, 8), 4, None, None, True, None),
    ((1, 2, 6, 4), (1, 2, 3, 4), 4, None, None, True, 0.3),
    ((2, 4, 5, 8), (2, 2, 6, 8), 8, None, None, False, None),
    ((2, 6, 4, 8), (2, 2, 4, 8), 3, None, None, True, None),
    ((1, 4, 3, 8), (1, 1, 5, 8), 8, (3, 5), "bool", False, None),
    ((2, 2, 4, 8), (2, 2, 5, 8), 6, (2, 1, 4, 5), "bool", False, 1.0),
    ((2, 2, 4, 8), (2, 2, 5, 8), 6, (2, 1, 1, 5), "float", False, None),
    ((2, 4, 4, 8), (2, 2, 5, 8), 8, (4, 4, 5), "float", False, None),
    ((3, 5, 8), (3, 6, 8), 2, (5, 6), "bool", False, None),
    ((2, 2, 3, 5, 4), (2, 2, 3, 5, 4), 4, None, None, True, None),
    ((1, 1, 1, 1), (1, 1, 1, 1), 1, None, None, False, None),
]


@pytest.mark.parametrize("qs,ks,dv,ms,kind,causal,scale", ATTENTIONS)
def test_attention_matches_torch(qs, ks, dv, ms, kind, causal, scale):
    q, k, v = rand(*qs), rand(*ks), rand(*ks[:-1], dv)
    mask = None
    if kind == "bool":
        mask = RNG.random(ms) < 0.7
    elif kind == "float":
        mask = rand(*ms)
    gqa = len(qs) >= 3 and qs[-3] != ks[-3]
    arrays = [q, k, v] if mask is None else [q, k, v, mask]
    check_torch(
        Attention(scale=scale, causal=causal), arrays, sdpa(q, k, v, mask, causal, scale, gqa)
    )


def test_attention_fully_masked_rows_are_zero_like_torch():
    q, k, v = rand(1, 2, 3, 4), rand(1, 2, 3, 4), rand(1, 2, 3, 4)
    bmask = np.ones((3, 3), bool)
    bmask[1] = False
    fmask = np.where(bmask, 0.0, -np.inf).astype(np.float32)
    for mask in (bmask, fmask):
        got = Attention().ref(q, k, v, mask)
        assert_close(got, sdpa(q, k, v, mask).numpy(), *tolerance("torch", F32))
        assert not got[:, :, 1].any()


def test_attention_causal_combines_with_mask():
    q, k, v = rand(2, 2, 4, 4), rand(2, 2, 6, 4), rand(2, 2, 6, 3)
    mask = RNG.random((4, 6)) < 0.8
    keep = mask & np.tril(np.ones((4, 6), bool))
    got = Attention(causal=True).ref(q, k, v, mask)
    assert_close(got, sdpa(q, k, v, keep).numpy(), *tolerance("torch", F32))


def test_attention_symbolic_shapes():
    q = TensorType(F32, (s0, 8, s1, 64))
    k = TensorType(F32, (s0, 2, s1 + 3, 64))
    v = TensorType(F32, (s0, 2, s1 + 3, 32))
    assert Attention().infer(q, k, v).shape == (s0, 8, s1, 32)
    m = TensorType(B, (s1, s1 + 3))
    assert Attention(causal=True).infer(q, k, v, m).shape == (s0, 8, s1, 32)
    q1 = TensorType(F32, (1, s0, s1, 16))
    k1 = TensorType(F32, (3, 1, 5, 16))
    assert Attention().infer(q1, k1, k1).shape == (3, s0, s1, 16)


def test_attention_rejects():
    q = TensorType(F32, (2, 8, 5, 16))
    k = TensorType(F32, (2, 2, 6, 16))
    bad = [
        (q, TensorType(F32, (2, 2, 6, 8)), k, None),
        (q, k, TensorType(F32, (2, 2, 7, 16)), None),
        (q, TensorType(F32, (2, 3, 6, 16)), TensorType(F32, (2, 3, 6, 16)), None),
        (q, k, TensorType(F32, (2, 4, 6, 16)), None),
        (q, TensorType(F16, (2, 2, 6, 16)), k, None),
        (q, k, k, TensorType(DType.i32, (5, 6))),
        (q, k, k, TensorType(B, (5, 5))),
        (q, k, k, TensorType(B, (1, 2, 8, 5, 6))),
        (q, k, k, TensorType(F16, (5, 6))),
        (TensorType(F32, (3, 8, 5, 16)), k, k, None),
        (TensorType(F32, (16,)), TensorType(F32, (16,)), TensorType(F32, (16,)), None),
        (TensorType(F32, (5, 16)), k, k, None),
        (
            TensorType(F32, (2, s0, 5, 16)),
            TensorType(F32, (2, s1, 6, 16)),
            TensorType(F32, (2, s1, 6, 16)),
            None,
        ),
        (
            TensorType(DType.i32, (2, 5, 4)),
            TensorType(DType.i32, (2, 5, 4)),
            TensorType(DType.i32, (2, 5, 4)),
            None,
        ),
    ]
    for args in bad:
        with pytest.raises(IRTypeError, match="^attention"):
            Attention().infer(*args)


def test_attention_case():
    check_case("attention.lmc", ({"s0": 4, "s1": 7}, {"s0": 6, "s1": 2}))


# -- rotary embedding -----------------------------------------------------------------------


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def hf_rotary(x, cos, sin) -> torch.Tensor:
    """HF LLaMA apply_rotary_pos_emb on the first 2*cos.shape[-1] features (partial rotary)."""
    r = 2 * cos.shape[-1]
    c, s = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    rot, rest = x[..., :r], x[..., r:]
    return torch.cat((rot * c + rotate_half(rot) * s, rest), dim=-1)


def meta_rotary(x, cos, sin) -> torch.Tensor:
    """Meta LLaMA's complex form: consecutive pairs (2i, 2i+1) times exp(i theta)."""
    r = 2 * cos.shape[-1]
    rot = torch.view_as_complex(x[..., :r].reshape(*x.shape[:-1], -1, 2).contiguous())
    out = torch.view_as_real(rot * torch.complex(cos, sin)).flatten(-2)
    return torch.cat((out, x[..., r:]), dim=-1)


@pytest.mark.parametrize(
    "xs,cs",
    [
        ((2, 3, 5, 8), (5, 4)),
        ((2, 3, 5, 8), (2, 1, 5, 4)),
        ((4, 6), (4, 2)),
        ((1, 2, 1, 10), (1, 4)),
        ((2, 2, 3, 4), (2, 1, 3, 2)),
    ],
)
@pytest.mark.parametrize("interleaved", [False, True])
def test_rotary_matches_torch(xs, cs, interleaved):
    x = rand(*xs)
    theta = RNG.uniform(-3, 3, cs).astype(np.float32)
    cos, sin = np.cos(theta), np.sin(theta)
    ref = meta_rotary if interleaved else hf_rotary
    check_torch(RotaryEmbedding(interleaved=interleaved), [x, cos, sin], ref(*tt(x, cos, sin)))


def test_rotary_symbolic_and_rejects():
    x = TensorType(F32, (s0, 4, s1, 64))
    c = TensorType(F32, (s1, 16))
    assert RotaryEmbedding().infer(x, c, c) == x
    bad = [
        (x, TensorType(F32, (s1, 33)), TensorType(F32, (s1, 33))),
        (x, c, TensorType(F32, (s1, 8))),
        (x, TensorType(F32, (s0, 16)), TensorType(F32, (s0, 16))),
        (x, TensorType(F32, (2, s0, 4, s1, 16)), TensorType(F32, (2, s0, 4, s1, 16))),
        (x, TensorType(F16, (s1, 16)), TensorType(F16, (s1, 16))),
        (TensorType(F32, (64,)), TensorType(F32, (16,)), TensorType(F32, (16,))),
    ]
    for args in bad:
        with pytest.raises(IRTypeError, match="^rotary_embedding"):
            RotaryEmbedding().infer(*args)


# -- embedding ------------------------------------------------------------------------------


@pytest.mark.parametrize("ids_shape", [(5,), (2, 3), (1, 1, 4), (0,)])
@pytest.mark.parametrize("np_dtype", [np.int32, np.int64])
def test_embedding_matches_torch(ids_shape, np_dtype):
    table = rand(10, 6)
    ids = RNG.integers(0, 10, ids_shape).astype(np_dtype)
    want = F.embedding(torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(table))
    check_torch(Embedding(), [table, ids], want)


def test_embedding_out_of_range_is_a_clear_error():
    table = rand(10, 6)
    for bad in (10, -1):
        ids = np.array([[1, 2], [bad, 3]], np.int64)
        with pytest.raises(InterpreterError, match=f"embedding: id {bad} at index \\(1, 0\\)"):
            Embedding().ref(table, ids)
    g = Graph("emb", {"s0": (1, 8)})
    t = g.input("table", TensorType(F32, (10, 6)))
    i = g.input("ids", TensorType(DType.i32, (s0,)))
    g.set_outputs([g.apply(Embedding(), t, i)])
    with pytest.raises(InterpreterError, match="outside 0..9"):
        run(g, [table, np.array([0, 12], np.int32)])


def test_embedding_symbolic_and_rejects():
    t = Embedding().infer(TensorType(F16, (s1, 32)), TensorType(DType.i64, (s0, 3)))
    assert t == TensorType(F16, (s0, 3, 32))
    for table, ids in [((10,), (DType.i64, (3,))), ((10, 4), (F32, (3,))), ((10, 4), (B, (3,)))]:
        with pytest.raises(IRTypeError, match="^embedding"):
            Embedding().infer(TensorType(F32, table), TensorType(*ids))
