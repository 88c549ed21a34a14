"""select_conv_algorithm: which convs take Winograd F(2x2, 3x3) (the rule, the option, the IR
attribute it writes, errors), the Winograd blobs in the weights file, and Winograd models built
for host against the reference interpreter at several batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
from lmc import parse_ir, print_ir
from lmc.backends.c import packing
from lmc.backends.c.build import lower, weight_blobs
from lmc.backends.c.select_conv_algorithm import ConvAlgorithmError
from lmc.backends.targets import parse_target
from lmc.ir import OPS, DType, Graph, TensorType, sym, verify
from lmc.ir.errors import LmcError
from lmc.ir.ops.conv import Conv
from lmc.ir.ops.fused import FusedConv

from .hostbuild import check_host, needs_cc


def net(c: int = 32, k: int = 32, hw: tuple[int, int] = (28, 28), batch=(1, 3)) -> Graph:
    """conv3x3 -> relu -> conv3x3 (+ bias) -> a stride-2 conv, with a symbolic batch."""
    rng = np.random.default_rng(c * 7 + k)

    def w(*shape: int) -> np.ndarray:
        fan_in = shape[1] * 9 if len(shape) > 1 else 1
        return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)

    g = Graph("net", {"n": batch})
    x = g.input("x", TensorType(DType.f32, [sym("n"), c, *hw]))
    a = g.apply(OPS["relu"](), g.apply(Conv(padding=(1, 1, 1, 1)), x, g.param("w1", w(k, c, 3, 3))))
    b = g.apply(Conv(padding=(1, 1, 1, 1)), a, g.param("w2", w(k, k, 3, 3)), g.param("b2", w(k)))
    s = g.apply(Conv(stride=(2, 2), padding=(1, 1, 1, 1)), b, g.param("w3", w(8, k, 3, 3)))
    g.set_outputs([b, s])
    return g


def algos(g: Graph) -> list[str]:
    return [getattr(n.op, "algo", "-") for n in g.nodes if isinstance(n.op, (Conv, FusedConv))]


def lowered(g: Graph, **options) -> Graph:
    return lower(g, parse_target("host"), {"kernels": True, **options})


def test_auto_takes_winograd_where_it_pays() -> None:
    assert algos(lowered(net())) == ["winograd", "winograd", "-"]  # stride 2 keeps im2col
    assert algos(lowered(net(16, 32))) == ["gemm", "winograd", "-"]  # 16 input channels: no
    # 14x14: 7 tiles per row fill 7 of a panel's 16 lanes
    assert algos(lowered(net(hw=(14, 14)))) == ["gemm", "-", "-"]


def test_option_forces_or_disables_it() -> None:
    assert algos(lowered(net(hw=(14, 14)), conv_algorithm="winograd")).count("winograd") == 2
    assert "winograd" not in algos(lowered(net(), conv_algorithm="gemm"))
    assert "winograd" not in algos(lowered(net(), kernels=False))
    with pytest.raises(ConvAlgorithmError, match="conv_algorithm='fast'"):
        lowered(net(), conv_algorithm="fast")


def test_choice_prints_and_parses() -> None:
    g = lowered(net())
    text = print_ir(g)
    assert text.count('algo="winograd"') == 2
    assert print_ir(parse_ir(text)) == text


WINO_SRC = "\n".join(
    [
        "graph @g {",
        "  %x = input() {index=0} : f32[1, 4, 8, 8]",
        '  %w = param() {key="w"} : f32[4, 4, 3, 3]',
        "  %0 = fused_conv(%x, %w) {stride=[1, 1], padding=[1, 1, 1, 1], dilation=[1, 1], "
        'groups=1, bias=false, epilogue="x0", algo="winograd"} : f32[1, 4, 8, 8]',
        "  return %0",
        "}",
    ]
)


def test_asking_for_winograd_where_it_cannot_run_is_an_error() -> None:
    strided = WINO_SRC.replace("stride=[1, 1]", "stride=[2, 2]").replace("8, 8]\n  r", "4, 4]\n  r")
    with pytest.raises(LmcError, match="winograd.*stride 1"):
        verify(parse_ir(strided))
    with pytest.raises(LmcError, match="algo 'fast'"):
        verify(parse_ir(WINO_SRC.replace('algo="winograd"', 'algo="fast"')))
    # a weight that is an input, not a param: the kernel cannot pre-pack it
    g = parse_ir(WINO_SRC.replace('param() {key="w"}', "input() {index=1}"))
    with pytest.raises(ConvAlgorithmError, match="cannot run this conv"):
        lowered(g)
    g = parse_ir(WINO_SRC)
    g.weights["w"] = np.ones((4, 4, 3, 3), np.float32)
    assert algos(lowered(g)) == ["winograd"]  # asked for, and possible: kept (4 channels)
    assert algos(lowered(g, conv_algorithm="gemm")) == ["gemm"]


def test_winograd_weights_in_the_blob() -> None:
    g = lowered(net())
    blobs = weight_blobs(g, True, "avx512")
    for key in ("w1", "w2"):
        data, meta = blobs[key + "#wino"]
        assert meta["layout"] == packing.winograd_layout("avx512")
        assert data == packing.pack_conv2d_winograd(g.weights[key], "avx512")
        assert key + "#conv" not in blobs and key not in blobs
    assert "w3#conv" in blobs


@needs_cc
@pytest.mark.parametrize("hw", [(28, 28), (9, 37)])
def test_winograd_net_on_host(hw) -> None:
    g = net(hw=hw)
    out = check_host(g, {"conv_algorithm": "winograd"}, label=f"winograd net {hw}")
    assert (out / "model.lmc").read_text().count('algo="winograd"') == 2


@needs_cc
def test_resnet18_takes_winograd_and_matches_pytorch() -> None:
    """ResNet-18's shape at 224x224 (random weights, non-trivial batch norms): its seven 3x3
    stride-1 convs at 56x56 and 28x28 run by Winograd, and the model matches PyTorch."""
    import torch
    from lmc import compile as lmc_compile

    from tests.models import ResNet18, randomize_batchnorm

    torch.manual_seed(0)
    model = randomize_batchnorm(ResNet18())
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    m = lmc_compile(model, (x,), target="host")
    assert m.ir.count('algo="winograd"') == 7
    with torch.inference_mode():
        want = model(x).numpy()
    got = m(x.numpy())
    got = got[0] if isinstance(got, list) else got
    err = float(np.abs(got - want).max() / np.abs(want).max())
    assert err <= 1e-4, f"ResNet-18 host (Winograd) vs PyTorch: max error {err:.2e} of scale"
