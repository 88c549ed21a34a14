"""Shape variants the case files do not reach, on host with the kernel library and with plain
loops: matmul ranks and broadcast batches, attention ranks / GQA / masks / causal with
Sq != Skv, convs (1-D, grouped, depthwise, strided, dilated), and empty tensors."""

from __future__ import annotations

import pytest
from lmc.ir import OPS, DType, Graph, TensorType, sym

from .hostbuild import check_host, needs_cc

F32 = DType.f32
KERNELS = pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "plain"])


def _t(*shape, dt=F32) -> TensorType:
    return TensorType(dt, shape)


def matmul_graph() -> Graph:
    s = sym("s0")
    g = Graph("matmuls", {"s0": (1, 9)})
    v = g.input("v", _t(5))
    m = g.input("m", _t(5, s))
    a = g.input("a", _t(2, 1, s, 5))
    b = g.input("b", _t(3, 5, 4))
    i = g.input("i", _t(s, 5, dt=DType.i32))
    j = g.input("j", _t(5, 3, dt=DType.i32))
    mm = OPS["matmul"]()
    outs = [
        g.apply(mm, v, m),
        g.apply(mm, g.apply(OPS["transpose"](perm=(1, 0)), m), v),
        g.apply(mm, a, b),
        g.apply(mm, i, j),
        g.apply(mm, a, v),
    ]
    g.set_outputs(outs)
    return g


def attention_graph() -> Graph:
    s, t = sym("s0"), sym("s1")
    g = Graph("attentions", {"s0": (1, 7), "s1": (1, 9)})
    q2, k2, v2 = g.input("q2", _t(s, 8)), g.input("k2", _t(t, 8)), g.input("v2", _t(t, 3))
    q5 = g.input("q5", _t(2, 2, 4, s, 8))
    k5 = g.input("k5", _t(1, 2, 2, t, 8))
    v5 = g.input("v5", _t(1, 2, 2, t, 6))
    mask = g.input("mask", _t(2, 1, 1, s, t, dt=DType.bool))
    fmask = g.input("fmask", _t(4, 1, t))
    att = OPS["attention"]
    g.set_outputs(
        [
            g.apply(att(causal=True), q2, k2, v2),
            g.apply(att(scale=0.3), q5, k5, v5, mask),
            g.apply(att(causal=True), q5, k5, v5, fmask),
            g.apply(
                att(),
                g.apply(OPS["reshape"](shape=(4, 4, s, 8)), q5),
                *(g.apply(OPS["reshape"](shape=(1, 4, t, d)), x) for x, d in ((k5, 8), (v5, 6))),
            ),
        ]
    )
    return g


def conv_graph() -> Graph:
    s = sym("s0")
    g = Graph("convs", {"s0": (5, 12)})
    x1 = g.input("x1", _t(2, 4, s))
    x2 = g.input("x2", _t(1, 4, s, 7))
    w1 = g.input("w1", _t(6, 2, 3))
    wd = g.input("wd", _t(4, 1, 3, 3))
    wg = g.input("wg", _t(8, 2, 2, 3))
    b8 = g.input("b8", _t(8))
    conv = OPS["conv"]
    g.set_outputs(
        [
            g.apply(conv(stride=(2,), padding=(1, 2), dilation=(2,), groups=2), x1, w1),
            g.apply(conv(padding=(1, 1, 1, 1), groups=4), x2, wd),
            g.apply(
                conv(stride=(2, 1), padding=(0, 1, 1, 0), dilation=(1, 2), groups=2), x2, wg, b8
            ),
            g.apply(OPS["relu"](), g.apply(conv(), x2, g.input("w11", _t(3, 4, 1, 1)))),
        ]
    )
    return g


def empty_graph() -> Graph:
    s = sym("s0")
    g = Graph("empty", {"s0": (1, 4)})
    x = g.input("x", _t(s, 3))
    w = g.input("w", _t(5, 3))
    e = g.apply(OPS["slice"](axes=(0,), starts=(1,), ends=(s,), steps=(1,)), x)  # [s0 - 1, 3]
    k = g.apply(OPS["slice"](axes=(1,), starts=(0,), ends=(s - 1,), steps=(1,)), x)
    g.set_outputs(
        [
            g.apply(OPS["reduce_sum"](axes=(0,)), e),
            g.apply(OPS["reduce_max"](axes=(0,)), e),
            g.apply(OPS["reduce_mean"](axes=(0,)), e),
            g.apply(OPS["linear"](), e, w),
            g.apply(OPS["matmul"](), k, g.apply(OPS["transpose"](perm=(1, 0)), k)),
            g.apply(OPS["softmax"](), e),
            g.apply(OPS["layer_norm"](), e),
            g.apply(OPS["concat"](axis=0), e, x),
            g.apply(OPS["cumsum"](axis=0), e),
        ]
    )
    return g


@needs_cc
@KERNELS
@pytest.mark.parametrize(
    "make", [matmul_graph, attention_graph, conv_graph, empty_graph], ids=lambda f: f.__name__
)
def test_variants_on_host(make, kernels):
    g = make()
    check_host(g, {"kernels": kernels}, label=f"{g.name} kernels={kernels}", n_envs=3)
