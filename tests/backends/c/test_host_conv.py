"""Convolutions whose weights are params on the host target: the weights file holds them
pre-packed (layout packing.CONV2D_LAYOUT, one blob per groups value a param is used with, the
raw weight only where something else reads it), and the built model matches the reference
interpreter, including max pools on the kernel path."""

from __future__ import annotations

import numpy as np
from lmc.backends.c.build import weight_blobs
from lmc.backends.c.packing import CONV2D_LAYOUT, pack_conv2d
from lmc.ir import DType, Graph, TensorType, sym
from lmc.ir.ops.conv import Conv, MaxPool
from lmc.ir.ops.elementwise import Add

from .hostbuild import check_host, needs_cc


def conv_graph() -> Graph:
    rng = np.random.default_rng(3)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    g = Graph("convs", {"s0": (5, 24)})
    x = g.input("x", TensorType(DType.f32, [1, 8, sym("s0"), 11]))
    x4 = g.input("x4", TensorType(DType.f32, [2, 4, sym("s0"), 9]))
    x1 = g.input("x1", TensorType(DType.f32, [1, 3, sym("s0")]))
    shared = g.param("shared", w(8, 4, 3, 3))  # groups=2 on x, groups=1 on x4
    a = g.apply(Conv(padding=(1, 1, 1, 1), groups=2), x, shared, g.param("b", w(8)))
    b = g.apply(Conv(stride=(2, 2), padding=(1, 1, 1, 1)), x4, shared)
    dw = g.apply(Conv(padding=(1, 1, 1, 1), groups=8), a, g.param("dw", w(8, 1, 3, 3)))
    head = g.param("head", w(6, 8, 1, 1))  # also an output: stored raw as well
    c = g.apply(Conv(), dw, head)
    p = g.apply(MaxPool(kernel=(3, 3), stride=(2, 2), padding=(1, 1, 1, 1)), c)
    mixed = g.param("mixed", w(5, 3, 3))  # a 1-D conv weight also read by an add
    d = g.apply(Conv(padding=(1, 1)), x1, mixed)
    e = g.apply(Add(), mixed, mixed)
    g.set_outputs([p, b, d, e, head])
    return g


def test_conv_weights_are_pre_packed() -> None:
    g = conv_graph()
    blobs = weight_blobs(g)
    assert sorted(blobs) == [
        "b",
        "dw#conv.g8",
        "head",
        "head#conv",
        "mixed",
        "mixed#conv",
        "shared#conv",
        "shared#conv.g2",
    ]
    for key, groups in (("shared#conv.g2", 2), ("shared#conv", 1), ("dw#conv.g8", 8)):
        data, meta = blobs[key]
        assert meta["layout"] == CONV2D_LAYOUT
        assert data == pack_conv2d(g.weights[key.split("#")[0]], groups)
    data, meta = blobs["mixed#conv"]
    assert meta["shape"] == [5, 3, 3]
    assert data == pack_conv2d(g.weights["mixed"].reshape(5, 3, 1, 3))
    assert not any(k.endswith("#conv") for k in weight_blobs(g, kernels=False))


@needs_cc
def test_conv_params_on_host() -> None:
    check_host(conv_graph(), label="convs with param weights")


@needs_cc
def test_conv_params_on_host_plain_loops() -> None:
    check_host(conv_graph(), {"kernels": False}, label="convs (plain loops)")
