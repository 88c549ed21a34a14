"""The ATen converter table, one small torch function per converter family: exported with
torch.export (symbolic dims where meaningful), imported, interpreted by the reference
interpreter and compared with PyTorch eager at every listed input set."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from lmc.frontend.torch_export import import_torch  # noqa: E402
from lmc.ir.interpreter import run  # noqa: E402
from lmc.ir.parser import parse_ir  # noqa: E402
from lmc.ir.printer import print_graph  # noqa: E402

from tests.util import assert_close  # noqa: E402

ARG_NAMES = ("x", "y", "z", "w")


def r(*shape: int, seed: int = 0, scale: float = 1.0) -> Any:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def ri(*shape: int, lo: int = -5, hi: int = 6, seed: int = 0) -> Any:
    return torch.randint(lo, hi, shape, generator=torch.Generator().manual_seed(seed))


def pos(*shape: int, seed: int = 0) -> Any:
    return r(*shape, seed=seed).abs() + 0.1


def b(*shape: int, seed: int = 0) -> Any:
    return r(*shape, seed=seed) > 0


class Fn(torch.nn.Module):
    """Wraps a function of 1-4 tensors as a module whose inputs are named x, y, z, w."""

    def __init__(self, fn: Callable[..., Any], arity: int) -> None:
        super().__init__()
        self.fn = fn
        self.arity = arity

    def forward(self, x: Any, y: Any = None, z: Any = None, w: Any = None) -> Any:
        return self.fn(*(x, y, z, w)[: self.arity])


@dataclass
class Case:
    """inputs[0] is the export example; every input set is compared with eager."""

    name: str
    fn: Callable[..., Any] | torch.nn.Module
    inputs: list[tuple]
    dyn: dict | None = None
    expect: str | None = None  # an IR op the conversion must produce (the op arrived whole)
    tol: tuple[float, float] = (1e-5, 1e-5)
    extra: dict = field(default_factory=dict)


B = {0: ("b", 1, 16)}  # a dynamic leading dim
BS = {0: ("b", 1, 16), 1: ("s", 1, 64)}


def case_list() -> list[Case]:
    c: list[Case] = []
    # -- elementwise arithmetic, promotion, comparisons, logic
    c += [
        Case(
            "add_broadcast",
            lambda x, y: x + y,
            [(r(2, 3), r(3)), (r(5, 3, seed=1), r(3))],
            {"x": B},
            "add",
        ),
        Case("add_alpha", lambda x, y: torch.add(x, y, alpha=2.5), [(r(2, 3), r(2, 3, seed=1))]),
        Case(
            "sub_rsub_scalar",
            lambda x: (x - 1.5) * (2 - x),
            [(r(3, 4),), (r(6, 4),)],
            {"x": B},
            "sub",
        ),
        Case("mul_div", lambda x, y: x * y / (y.abs() + 1), [(r(4, 3), r(4, 1, seed=1))]),
        Case("int_plus_float", lambda x: x + 1.5, [(ri(3, 4),)], expect="cast"),
        Case("int_true_div", lambda x, y: x / y, [(ri(3, 4), ri(3, 4, lo=1, hi=4))]),
        Case("float_times_int_tensor", lambda x, y: x * y, [(r(3, 4), ri(3, 4))]),
        Case("pow", lambda x: torch.pow(x.abs(), 1.7) + x**2 + 2**x, [(r(3, 5),)], expect="pow"),
        Case("pow_int", lambda x: x**2, [(ri(3, 5),)]),
        Case(
            "floor_divide_int",
            lambda x, y: torch.div(x, y, rounding_mode="floor"),
            [
                (
                    ri(4, 5, lo=-9, hi=9),
                    ri(4, 5, lo=1, hi=4, seed=1) * torch.tensor([1, -1, 1, -1, 1]),
                )
            ],
        ),
        Case(
            "trunc_divide",
            lambda x, y: torch.div(x, y, rounding_mode="trunc"),
            [(r(4, 5, scale=5), pos(4, 5, seed=1))],
        ),
        Case(
            "remainder_fmod",
            lambda x: torch.remainder(x, 3) + torch.fmod(x, 3),
            [(ri(4, 5, lo=-9, hi=9),)],
        ),
        Case(
            "maximum_minimum",
            lambda x, y: torch.maximum(x, y) - torch.minimum(x, y),
            [(r(3, 4), r(3, 4, seed=1))],
        ),
        Case(
            "compare_where",
            lambda x, y: torch.where(x > y, x, y * 2) + (x <= 0).float(),
            [(r(3, 4), r(3, 4, seed=1)), (r(7, 4), r(7, 4, seed=2))],
            {"x": B, "y": B},
            "where",
        ),
        Case("compare_scalar", lambda x: (x == 0) | (x != 1) & (x >= -1), [(ri(3, 4),)]),
        Case(
            "logical",
            lambda x, y: torch.logical_xor(torch.logical_and(x, y), torch.logical_not(x)),
            [(b(3, 4), b(3, 4, seed=1))],
        ),
        Case(
            "clamp_scalar",
            lambda x: torch.clamp(x, -0.5, 0.7) + x.clamp(min=0.1),
            [(r(3, 4),)],
            expect="clip",
        ),
        Case(
            "clamp_tensor",
            lambda x, y, z: torch.clamp(x, y, z),
            [(r(3, 4), r(3, 4, seed=1) - 1, r(3, 4, seed=2) + 1)],
        ),
        Case("masked_fill", lambda x, y: x.masked_fill(y, -1e4), [(r(3, 4), b(3, 4, seed=1))]),
        Case(
            "isnan_isinf",
            lambda x: torch.isnan(x / x) | torch.isinf(1 / x),
            [(torch.tensor([[0.0, 1.0, -2.0]]),)],
        ),
    ]
    # -- unary math and activations
    unary = {
        "exp": torch.exp,
        "log": lambda x: torch.log(x.abs() + 0.5),
        "sqrt": lambda x: x.abs().sqrt(),
        "rsqrt": lambda x: torch.rsqrt(x.abs() + 0.5),
        "sin": torch.sin,
        "cos": torch.cos,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "erf": torch.erf,
        "floor_ceil_round": lambda x: x.floor() + x.ceil() + (x * 3).round(),
        "sign_abs_neg": lambda x: x.sign() * x.abs() - x.neg(),
        "reciprocal": lambda x: 1 / (x.abs() + 1),
        "log1p_expm1": lambda x: x.abs().log1p() + x.expm1(),
        "atan": torch.atan,
        "trunc": torch.trunc,
        "log2_log10": lambda x: torch.log2(x.abs() + 1) + torch.log10(x.abs() + 1),
        "relu": torch.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu,
        "mish": F.mish,
        "hardswish": F.hardswish,
        "hardsigmoid": F.hardsigmoid,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
        "elu": lambda x: F.elu(x, 0.7),
        "selu": F.selu,
        "celu": lambda x: F.celu(x, 1.3),
        "softplus": lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        "hardtanh_relu6": lambda x: F.hardtanh(x, -0.3, 0.4) + F.relu6(x * 4),
    }
    c += [
        Case(f"unary_{k}", fn, [(r(3, 5, scale=2),), (r(6, 5, seed=1, scale=2),)], {"x": B})
        for k, fn in unary.items()
    ]
    c += [
        Case("prelu", torch.nn.PReLU(4, init=0.1), [(r(2, 4, 3, 3),)], expect="prelu"),
        Case(
            "cast_chain",
            lambda x: x.to(torch.int32).to(torch.float32) + x.half().float(),
            [(r(3, 4, scale=10),)],
            expect="cast",
        ),
        Case("bool_to_float", lambda x: (x > 0).to(torch.float32) * x, [(r(3, 4),)]),
        Case("grad_regions", _GradRegions(), [(r(3, 4),), (r(5, 4),)], {"x": B}, "sin"),
        Case("autocast_bf16", _Autocast(), [(r(4, 4),)], None, "matmul", (2e-2, 2e-2)),
        Case("dropout_eval", torch.nn.Dropout(0.5), [(r(3, 4),)]),
    ]
    # -- reductions
    c += [
        Case(
            "sum_dims",
            lambda x: x.sum(dim=(0, 2)) + x.sum(-1, keepdim=True).sum(),
            [(r(2, 3, 4),), (r(5, 3, 4, seed=1),)],
            {"x": B},
            "reduce_sum",
        ),
        Case("sum_int_bool", lambda x, y: x.sum(1) + y.sum(1), [(ri(3, 4), b(3, 4))]),
        Case(
            "mean",
            lambda x: x.mean(dim=-1) + x.mean(),
            [(r(2, 3, 4),), (r(4, 3, 4),)],
            {"x": B},
            "reduce_mean",
        ),
        Case("amax_amin", lambda x: x.amax(1) - x.amin(dim=(0, 1)), [(r(3, 4, 5),)]),
        Case(
            "max_min_dim",
            lambda x: x.max(1).values + x.min(0, keepdim=True).values + x.max(1).indices,
            [(r(4, 4),)],
            expect="argmax",
        ),
        Case("max_all", lambda x: x.max() - x.min(), [(r(3, 4),)]),
        Case(
            "argmax_argmin",
            lambda x: x.argmax() + x.argmin(dim=1, keepdim=True) + x.argmax(0),
            [(r(4, 4),)],
        ),
        Case("prod", lambda x: x.prod(1) + x.prod(), [(r(2, 3) * 0.5 + 1,)]),
        Case(
            "var_std",
            lambda x: (
                x.var(1)
                + x.std(dim=(0, 1), correction=0)
                + x.var(1, unbiased=False, keepdim=True).sum()
            ),
            [(r(3, 6),), (r(5, 6, seed=1),)],
            {"x": B},
        ),
        Case("any_all", lambda x: x.any(1) & (x.all(0).any()), [(b(3, 4),)]),
        Case(
            "cumsum",
            lambda x: torch.cumsum(x, 1),
            [(r(3, 5),), (r(3, 9, seed=1),)],
            {"x": {1: ("n", 1, 32)}},
            "cumsum",
        ),
        Case("logsumexp", lambda x: torch.logsumexp(x, 1), [(r(3, 5),)]),
        Case(
            "normalize",
            lambda x: (
                F.normalize(x, dim=-1)
                + x.norm(dim=0, p=1)
                + torch.linalg.vector_norm(x, float("inf"), dim=-1, keepdim=True)
            ),
            [(r(3, 5),), (r(6, 5),)],
            {"x": B},
        ),
    ]
    # -- linear algebra
    c += [
        Case(
            "matmul_batched",
            lambda x, y: x @ y,
            [(r(2, 3, 4), r(4, 5, seed=1)), (r(6, 3, 4), r(4, 5, seed=1))],
            {"x": B},
            "matmul",
        ),
        Case(
            "matmul_broadcast",
            lambda x, y: torch.matmul(x, y),
            [(r(2, 1, 3, 4), r(5, 4, 2, seed=1))],
        ),
        Case(
            "mm_bmm",
            lambda x, y: torch.bmm(x, y) + torch.mm(x[0], y[0]),
            [(r(2, 3, 4), r(2, 4, 3, seed=1))],
        ),
        Case("matvec_dot", lambda x, y: (x @ y).sum() + y @ y, [(r(3, 4), r(4, seed=1))]),
        Case(
            "linear",
            torch.nn.Linear(4, 6),
            [(r(2, 5, 4),), (r(3, 2, 4),)],
            {"x": {0: ("b", 1, 16), 1: ("s", 1, 16)}},
            "linear",
        ),
        Case("linear_no_bias", torch.nn.Linear(4, 3, bias=False), [(r(5, 4),)]),
        Case(
            "addmm_baddbmm",
            lambda x, y, z: (
                torch.addmm(x, y, z, beta=0.5, alpha=2.0)
                + torch.baddbmm(x, y[None], z[None]).sum(0)
            ),
            [(r(3, 5), r(3, 4, seed=1), r(4, 5, seed=2))],
        ),
        Case(
            "einsum",
            lambda x, y: torch.einsum("bij,bjk->bik", x, y),
            [(r(2, 3, 4), r(2, 4, 5, seed=1)), (r(5, 3, 4), r(5, 4, 5, seed=1))],
            {"x": B, "y": B},
            "einsum",
        ),
    ]
    # -- nn
    c += [
        Case(
            "layer_norm",
            torch.nn.LayerNorm(8),
            [(r(2, 5, 8),), (r(3, 7, 8, seed=1),)],
            {"x": BS},
            "layer_norm",
        ),
        Case("layer_norm_2d_noaffine", lambda x: F.layer_norm(x, (4, 5)), [(r(3, 4, 5),)]),
        Case(
            "rms_norm",
            torch.nn.RMSNorm(8, eps=1e-6),
            [(r(2, 5, 8),), (r(1, 3, 8),)],
            {"x": BS},
            "rms_norm",
        ),
        Case(
            "group_norm",
            torch.nn.GroupNorm(2, 6),
            [(r(2, 6, 5, 5),), (r(3, 6, 7, 4),)],
            {"x": {0: ("b", 1, 8), 2: ("h", 2, 32), 3: ("w", 2, 32)}},
            "group_norm",
        ),
        Case("batch_norm", _bn(), [(r(2, 4, 3, 3),), (r(5, 4, 3, 3),)], {"x": B}, "batch_norm"),
        Case("instance_norm", lambda x: F.instance_norm(x), [(r(2, 3, 5, 5),)]),
        Case(
            "softmax",
            lambda x: F.softmax(x, -1) + F.log_softmax(x, dim=1),
            [(r(2, 3, 5),), (r(4, 3, 5),)],
            {"x": B},
            "softmax",
        ),
        Case(
            "sdpa_causal",
            lambda x, y, z: F.scaled_dot_product_attention(x, y, z, is_causal=True),
            [
                (r(1, 2, 5, 8), r(1, 2, 5, 8, seed=1), r(1, 2, 5, 8, seed=2)),
                (r(1, 2, 9, 8), r(1, 2, 9, 8, seed=1), r(1, 2, 9, 8, seed=2)),
            ],
            {k: {2: ("s", 2, 64)} for k in "xyz"},
            "attention",
        ),
        Case(
            "sdpa_masks",
            lambda x, y, z, w: (
                F.scaled_dot_product_attention(x, y, z, w > 0)
                + F.scaled_dot_product_attention(x, y, z, w, scale=0.3)
            ),
            [
                (
                    r(2, 2, 4, 8),
                    r(2, 2, 6, 8, seed=1),
                    r(2, 2, 6, 8, seed=2),
                    r(2, 1, 4, 6, seed=3).abs() - 0.1,
                )
            ],
            None,
            "attention",
        ),
        Case(
            "sdpa_gqa",
            lambda x, y, z: F.scaled_dot_product_attention(x, y, z, enable_gqa=True),
            [(r(1, 4, 5, 8), r(1, 2, 5, 8, seed=1), r(1, 2, 5, 8, seed=2))],
            None,
            "attention",
        ),
        Case(
            "embedding",
            torch.nn.Embedding(10, 4),
            [(ri(2, 5, lo=0, hi=10),), (ri(3, 2, lo=0, hi=10, seed=1),)],
            {"x": BS},
            "embedding",
        ),
        Case(
            "conv2d",
            torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
            [(r(2, 4, 9, 9),), (r(1, 4, 12, 7, seed=1),)],
            {"x": {0: ("b", 1, 8), 2: ("h", 3, 64), 3: ("w", 3, 64)}},
            "conv",
        ),
        Case(
            "conv1d_dilated",
            torch.nn.Conv1d(3, 4, 3, dilation=2, padding=2),
            [(r(2, 3, 10),), (r(2, 3, 17, seed=1),)],
            {"x": {2: ("n", 5, 64)}},
            "conv",
        ),
        Case("conv2d_same", torch.nn.Conv2d(2, 3, (3, 4), padding="same"), [(r(1, 2, 6, 7),)]),
        Case(
            "conv_transpose2d",
            torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
            [(r(1, 4, 5, 5),)],
            None,
            "conv_transpose",
        ),
        Case(
            "max_pool2d",
            torch.nn.MaxPool2d(3, 2, 1),
            [(r(2, 3, 8, 8),), (r(1, 3, 11, 9),)],
            {"x": {0: ("b", 1, 8), 2: ("h", 4, 64), 3: ("w", 4, 64)}},
            "max_pool",
        ),
        Case("max_pool_ceil", lambda x: F.max_pool2d(x, 2, ceil_mode=True), [(r(1, 2, 5, 7),)]),
        Case(
            "avg_pool2d",
            lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) + F.avg_pool2d(x, 3, 2, 1),
            [(r(2, 3, 8, 8),)],
            None,
            "avg_pool",
        ),
        Case(
            "adaptive_avg_pool",
            lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
            [(r(1, 2, 5, 7),)],
            None,
            "adaptive_avg_pool",
        ),
        Case(
            "adaptive_avg_pool_global",
            torch.nn.AdaptiveAvgPool2d(1),
            [(r(2, 3, 6, 6),), (r(1, 3, 9, 5),)],
            {"x": {0: ("b", 1, 8), 2: ("h", 2, 64), 3: ("w", 2, 64)}},
        ),
        Case("adaptive_max_pool", lambda x: F.adaptive_max_pool2d(x, 2), [(r(1, 2, 5, 6),)]),
        Case(
            "upsample_nearest",
            lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
            [(r(2, 2, 3, 4),), (r(1, 2, 5, 3),)],
            {"x": {0: ("b", 1, 8), 2: ("h", 2, 32), 3: ("w", 2, 32)}},
            "resize",
        ),
        Case(
            "upsample_bilinear",
            lambda x: (
                F.interpolate(x, size=(5, 7), mode="bilinear")
                + F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True)
            ),
            [(r(1, 2, 3, 4),)],
            None,
            "resize",
        ),
        Case(
            "pixel_shuffle",
            lambda x: F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2) + F.pixel_shuffle(x, 2).mean(),
            [(r(1, 8, 3, 4),)],
            None,
            "depth_to_space",
        ),
        Case(
            "tril_triu",
            lambda x: torch.tril(x, -1) + torch.triu(x, 1) * 2,
            [(r(2, 4, 5),)],
            None,
            "trilu",
        ),
        Case(
            "topk",
            lambda x: torch.topk(x, 3, dim=-1).values + torch.topk(x, 3, largest=False).indices,
            [(r(3, 6),)],
            None,
            "topk",
        ),
    ]
    # -- shapes
    c += [
        Case(
            "view_symbolic",
            lambda x: x.view(x.shape[0], -1, 2).transpose(1, 2).reshape(x.shape[0], -1),
            [(r(2, 3, 4),), (r(5, 3, 4),)],
            {"x": B},
            "reshape",
        ),
        Case(
            "view_seq",
            lambda x: x.reshape(x.shape[0] * x.shape[1], 4).flatten() * 2,
            [(r(2, 3, 4),), (r(3, 5, 4),)],
            {"x": BS},
        ),
        Case("permute", lambda x: x.permute(2, 0, 1) + 1, [(r(2, 3, 4),)], None, "transpose"),
        Case(
            "flatten_unflatten",
            lambda x: torch.flatten(x, 1).unflatten(1, (4, 3)),
            [(r(2, 3, 4),), (r(3, 3, 4),)],
            {"x": B},
        ),
        Case(
            "expand",
            lambda x, y: x.expand(y.shape[0], -1, 4) + y,
            [(r(1, 3, 1), r(2, 3, 4, seed=1)), (r(1, 3, 1), r(5, 3, 4, seed=1))],
            {"y": B},
            "expand",
        ),
        Case(
            "squeeze_unsqueeze",
            lambda x: x.unsqueeze(1).squeeze(-1).unsqueeze(-1).squeeze(),
            [(r(3, 1, 4, 1),)],
        ),
        Case(
            "cat_stack",
            lambda x, y: (
                torch.cat([x, y.to(torch.int32).float()], 1)
                + torch.stack([x, x], -1).sum(-1).repeat(1, 2)
            ),
            [(r(2, 3), r(2, 3, seed=1)), (r(4, 3), r(4, 3, seed=1))],
            {"x": B, "y": B},
            "concat",
        ),
        Case(
            "split_chunk",
            lambda x: sum(p.sum(1) for p in x.split(2, dim=1)) + x.chunk(3, dim=1)[1].mean(1),
            [(r(3, 7),)],
        ),
        Case(
            "split_sizes_symbolic",
            lambda x: torch.cat(x.split([1, 2, 1], 1)[::-1], 1),
            [(r(2, 4),), (r(6, 4),)],
            {"x": B},
            "split",
        ),
        Case("unbind", lambda x: x.unbind(1)[0] * x.unbind(1)[2], [(r(2, 3, 4),)]),
        Case(
            "slice",
            lambda x: x[:, 1:] + x[:, :-1] + x[:, ::2].sum(1, keepdim=True),
            [(r(2, 6),), (r(5, 6),)],
            {"x": B},
            "slice",
        ),
        Case(
            "slice_symbolic",
            lambda x: x[:, 1:] * 2 + x[:, : x.shape[1] - 1],
            [(r(2, 6),), (r(2, 9),)],
            {"x": {1: ("n", 3, 32)}},
            "slice",
        ),
        Case(
            "select_narrow",
            lambda x: x[:, -1] + x[1] + x.narrow(1, 1, 3).sum(1),
            [(r(5, 5),)],
            None,
            "gather",
        ),
        Case(
            "flip_roll",
            lambda x: torch.flip(x, [0, 1]) + torch.roll(x, 2, 1) + torch.roll(x, 1),
            [(r(3, 5),)],
        ),
        Case(
            "pad",
            lambda x: (
                F.pad(x, (1, 2, 0, 1), value=0.5)
                + F.pad(x, (1, 2, 0, 1), mode="reflect")
                + F.pad(x, (1, 2, 0, 1), mode="replicate")
            ),
            [(r(1, 2, 4, 5),)],
            None,
            "pad",
        ),
        Case("pad_crop", lambda x: F.pad(x, (-1, 2)), [(r(2, 5),)]),
        Case(
            "index_tensor",
            lambda x, y: x[y] + x[:, y].sum(1, keepdim=True).sum(),
            [(r(5, 5), ri(3, lo=-5, hi=5))],
            None,
            "gather",
        ),
        Case(
            "index_multi",
            lambda x, y, z: x[y, z].sum(1) + x[:, y, z].sum(0) + x[y, :, z].sum(1),
            [(r(4, 5, 6), ri(3, lo=0, hi=4), ri(3, lo=0, hi=4, seed=1))],
            None,
            "gather_nd",
        ),
        Case(
            "index_select_gather",
            lambda x, y: torch.index_select(x, 1, y) + torch.gather(x, 1, y.expand(3, -1)),
            [(r(3, 5), ri(4, lo=0, hi=5))],
        ),
        Case(
            "scatter",
            lambda x, y, z: x.scatter(1, y, z) + x.scatter_add(1, y, z) + x.scatter(1, y, 2.0),
            [(r(3, 5), ri(3, 2, lo=0, hi=5), r(3, 2, seed=1))],
            None,
            "scatter_elements",
        ),
        Case(
            "index_put",
            _IndexPut(),
            [(r(5, 3), ri(2, lo=0, hi=5), r(2, 3, seed=1))],
            None,
            "scatter_nd",
        ),
        Case(
            "slice_select_scatter",
            _SliceAssign(),
            [(r(3, 6), r(3, 2, seed=1)), (r(5, 6), r(5, 2, seed=1))],
            {"x": B, "y": B},
            "concat",
        ),
        Case("one_hot", lambda x: F.one_hot(x, 6) * 2, [(ri(2, 3, lo=0, hi=6),)], None, "one_hot"),
        Case(
            "diff",
            lambda x: torch.diff(x, dim=1) + torch.diff(x, n=2, dim=1, append=x[:, :1]),
            [(r(3, 6),)],
        ),
    ]
    # -- tensor creation (symbolic sizes and ranges)
    c += [
        Case(
            "arange_symbolic",
            lambda x: (
                x + torch.arange(x.shape[1]) * 0.5 + torch.arange(2, 2 + 2 * x.shape[1], 2).float()
            ),
            [(r(2, 4),), (r(2, 7),)],
            {"x": {1: ("n", 1, 64)}},
            "range",
        ),
        Case("arange_float", lambda x: x + torch.arange(0.0, 1.0, 0.25), [(r(3, 4),)]),
        Case(
            "full_zeros_ones",
            lambda x: (
                x
                + torch.zeros(x.shape[0], 4)
                + torch.ones_like(x)
                + torch.full((x.shape[0], 1), 2.5)
                + x.new_ones(4)
                + torch.full_like(x, 3)
            ),
            [(r(2, 4),), (r(6, 4),)],
            {"x": B},
            "full",
        ),
        Case(
            "size_arithmetic",
            lambda x: (
                (x.view(-1)[None] + torch.zeros(1, x.shape[0] * x.shape[1])).view(
                    x.shape[0], x.shape[1]
                )
                * x.shape[1]
                + torch.ones(x.shape[0] + 1, 1)[1:]
            ),
            [(r(4, 3),), (r(7, 5),)],
            {"x": {0: ("b", 2, 64), 1: ("n", 2, 64)}},
        ),
        Case("lifted_constant", lambda x: x * torch.tensor([1.0, -2.0, 3.0]), [(r(2, 3),)]),
    ]
    return c


class _SliceAssign(torch.nn.Module):
    """In-place writes, functionalized by torch into slice_scatter / select_scatter / fill."""

    def forward(self, x: Any, y: Any) -> Any:
        x = x.clone()
        x[:, 1:3] = y
        x[:, -1] = y[:, 0] * 2
        z = torch.empty_like(y).fill_(0.25)
        return x, z


class _GradRegions(torch.nn.Module):
    """no_grad and disabled-autocast regions become higher-order ops that are inlined."""

    def forward(self, x: Any) -> Any:
        with torch.no_grad():
            y = x * 2
        with torch.autocast("cpu", enabled=False):
            z = y + 1
        return z.sin()


class _Autocast(torch.nn.Module):
    """An enabled autocast region: torch's decomposition applies its bf16 casts."""

    def forward(self, x: Any) -> Any:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = x @ x
        return y.float() + 1


class _IndexPut(torch.nn.Module):
    def forward(self, x: Any, y: Any, z: Any) -> Any:
        x = x.clone()
        x[y] = z
        return x


def _bn() -> torch.nn.Module:
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    return bn.eval()


CASES = case_list()


def _module(case: Case) -> torch.nn.Module:
    if isinstance(case.fn, torch.nn.Module) and not isinstance(case.fn, Fn):
        return case.fn.eval()
    return Fn(case.fn, len(case.inputs[0]))


def _forward_names(module: torch.nn.Module) -> list[str]:
    import inspect

    return list(inspect.signature(module.forward).parameters)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_converter_matches_torch(case: Case) -> None:
    module = _module(case)
    dyn = case.dyn
    names = _forward_names(module)
    if dyn is not None and not set(dyn) <= set(names):  # nn modules name their input `input`
        dyn = {names[0]: dyn["x"]}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lmc:")  # the fx fallback must not be taken
        g, report = import_torch(module, case.inputs[0], dyn)
    assert report.path.startswith("torch.export"), report.path
    text = print_graph(g)
    assert print_graph(parse_ir(text)) == text, f"{case.name}: IR does not round-trip"
    ops = {n.op.name for n in g.nodes}
    if case.expect:
        assert case.expect in ops, f"{case.name}: expected a {case.expect} node in\n{g}"
    if dyn:
        names = {spec[0] for axes in dyn.values() for spec in axes.values()}
        assert names <= set(g.symbols), (names, g.symbols)
    for i, inputs in enumerate(case.inputs):
        with torch.no_grad():
            want = module(*inputs)
        wants = want if isinstance(want, tuple) else (want,)
        got = run(g, [t.numpy() for t in inputs])
        for k, (a, w) in enumerate(zip(got, wants)):
            w = w.numpy()
            assert a.dtype == w.dtype, f"{case.name}: dtype {a.dtype} vs torch {w.dtype}"
            assert_close(a, w, *case.tol, name=f"{case.name} input set {i} output {k}")


def test_table_covers_families() -> None:
    """Every family of the table is exercised above (a guard against silent shrinkage)."""
    assert len(CASES) >= 100
    from lmc.frontend.torch_ops import CONVERTERS

    assert len(CONVERTERS) >= 200
