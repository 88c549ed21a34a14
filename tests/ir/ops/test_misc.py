"""Misc ops: trilu, depth_to_space / space_to_depth, resize and topk against torch and onnx's
reference evaluator, symbolic shape rules, rejections, and the misc.lmc case."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, sym
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.misc import (
    COORD_MODES,
    NEAREST_MODES,
    DepthToSpace,
    Resize,
    SpaceToDepth,
    Topk,
    Trilu,
)
from lmc.ir.types import TensorType

from tests.ir.ops.opcheck import apply_op, check_case, onnx_run
from tests.util import assert_close

RNG = np.random.default_rng(2)
F32, I64 = DType.f32, DType.i64
s0, s1 = sym("s0"), sym("s1")


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.asarray(RNG.standard_normal(shape), dtype=dtype)


def tt(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def f32(*shape) -> TensorType:
    return TensorType(F32, shape)


# -- trilu ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("k", [-1, 0, 2])
@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 3), (1, 1), (0, 3), (2, 3, 0)])
def test_trilu_matches_torch(upper, k, shape):
    x = rand(*shape)
    want = torch.triu(tt(x), k) if upper else torch.tril(tt(x), k)
    assert_close(apply_op(Trilu(upper=upper, k=k), x), want.numpy())


def test_trilu_ints_symbolic_and_rejections():
    xi = RNG.integers(-3, 3, (3, 3)).astype(np.int32)
    assert_close(apply_op(Trilu(upper=False), xi), np.tril(xi))
    assert Trilu().infer(f32(s0, s1)).shape == (s0, s1)
    with pytest.raises(IRTypeError, match="trilu"):
        Trilu().infer(f32(4))


# -- depth_to_space / space_to_depth --------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,b", [((1, 8, 2, 3), 2), ((2, 9, 1, 1), 3), ((1, 4, 0, 2), 2), ((3, 1, 2, 2), 1)]
)
def test_depth_to_space_crd_matches_pixel_shuffle(shape, b):
    x = rand(*shape)
    got = apply_op(DepthToSpace(blocksize=b, mode="CRD"), x)
    assert_close(got, F.pixel_shuffle(tt(x), b).numpy())
    (want,) = onnx_run("DepthToSpace", [x], blocksize=b, mode="CRD")
    assert_close(got, want)


@pytest.mark.parametrize("shape,b", [((1, 8, 2, 3), 2), ((2, 18, 2, 1), 3), ((1, 4, 1, 1), 2)])
def test_depth_to_space_dcr_and_space_to_depth_match_onnx(shape, b):
    x = rand(*shape)
    (want,) = onnx_run("DepthToSpace", [x], blocksize=b, mode="DCR")
    y = apply_op(DepthToSpace(blocksize=b, mode="DCR"), x)
    assert_close(y, want)
    (want_back,) = onnx_run("SpaceToDepth", [y], blocksize=b)
    back = apply_op(SpaceToDepth(blocksize=b), y)
    assert_close(back, want_back)
    assert_close(back, x)  # space_to_depth inverts DCR depth_to_space


def test_space_to_depth_of_pixel_shuffle_layout():
    x = rand(2, 3, 4, 6)
    got = apply_op(SpaceToDepth(blocksize=2), x)
    # pixel_unshuffle orders channels c*b*b + (b*i + j); ONNX orders (b*i + j)*C + c.
    want = F.pixel_unshuffle(tt(x), 2).reshape(2, 3, 4, 2, 3).permute(0, 2, 1, 3, 4)
    assert_close(got, want.reshape(2, 12, 2, 3).numpy())


def test_depth_space_symbolic_and_rejections():
    t = DepthToSpace(blocksize=2).infer(f32(1, 4 * s0, s1, 3))
    assert t.shape == (1, s0, 2 * s1, 6)
    assert SpaceToDepth(blocksize=2).infer(f32(1, s0, 2 * s1, 6)).shape == (1, 4 * s0, s1, 3)
    bad = [
        (DepthToSpace(blocksize=2), f32(1, s0, 2, 2)),
        (DepthToSpace(blocksize=2), f32(1, 6, 2, 2)),
        (DepthToSpace(blocksize=2, mode="RDC"), f32(1, 4, 2, 2)),
        (DepthToSpace(blocksize=2), f32(4, 2, 2)),
        (DepthToSpace(blocksize=0), f32(1, 4, 2, 2)),
        (SpaceToDepth(blocksize=2), f32(1, 4, s0, 2)),
        (SpaceToDepth(blocksize=3), f32(1, 4, 3, 4)),
        (SpaceToDepth(blocksize=2), f32(1, 4, 2)),
    ]
    for op, t in bad:
        with pytest.raises(IRTypeError, match=op.name):
            op.infer(t)


# -- resize ---------------------------------------------------------------------------------------
RESIZE_SHAPES = [
    ((1, 2, 4, 5), (7, 3)),
    ((2, 1, 3, 3), (6, 6)),
    ((1, 1, 1, 4), (3, 8)),
    ((1, 3, 8, 6), (3, 4)),
    ((1, 1, 5, 2), (1, 1)),
]
# torch mode, align_corners -> lmc attributes. torch's bilinear align_corners=False is ONNX's
# half_pixel (ONNX's "pytorch_half_pixel" maps a length-1 output to -0.5, torch does not).
TORCH_EQUIVALENT = {
    ("nearest", None): dict(
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"
    ),
    ("nearest-exact", None): dict(mode="nearest", nearest_mode="round_prefer_ceil"),
    ("bilinear", False): dict(mode="linear"),
    ("bilinear", True): dict(mode="linear", coordinate_transformation_mode="align_corners"),
    ("bicubic", False): dict(mode="cubic"),
    ("bicubic", True): dict(mode="cubic", coordinate_transformation_mode="align_corners"),
}


@pytest.mark.parametrize("tmode,align", list(TORCH_EQUIVALENT))
@pytest.mark.parametrize("shape,out", RESIZE_SHAPES)
def test_resize_matches_torch_interpolate_sizes(tmode, align, shape, out):
    x = rand(*shape)
    op = Resize(sizes=shape[:2] + out, **TORCH_EQUIVALENT[tmode, align])
    want = F.interpolate(tt(x), size=out, mode=tmode, align_corners=align)
    assert_close(apply_op(op, x), want.numpy(), 1e-4, 1e-5, name=f"{tmode} {align}")


@pytest.mark.parametrize(
    "tmode,align",
    [("nearest", None), ("bilinear", False), ("bicubic", False), ("nearest-exact", None)],
)
@pytest.mark.parametrize("scale", [1.7, 0.6, 2.0])
def test_resize_matches_torch_interpolate_scale_factor(tmode, align, scale):
    x = rand(1, 2, 5, 4)
    want = F.interpolate(tt(x), scale_factor=scale, mode=tmode, align_corners=align)
    sizes = (1, 2) + tuple(int(np.floor(d * scale)) for d in x.shape[2:])
    op = Resize(sizes=sizes, scales=(1.0, 1.0, scale, scale), **TORCH_EQUIVALENT[tmode, align])
    assert_close(apply_op(op, x), want.numpy(), 1e-4, 1e-5, name=f"{tmode} x{scale}")


def test_resize_linear_1d_and_trilinear_match_torch():
    x = rand(2, 3, 5)
    want = F.interpolate(tt(x), size=9, mode="linear", align_corners=False)
    assert_close(apply_op(Resize(sizes=(2, 3, 9), mode="linear"), x), want.numpy(), 1e-4, 1e-5)
    x = rand(1, 1, 3, 4, 2)
    want = F.interpolate(tt(x), size=(2, 5, 3), mode="trilinear", align_corners=True)
    op = Resize(
        sizes=(1, 1, 2, 5, 3), mode="linear", coordinate_transformation_mode="align_corners"
    )
    assert_close(apply_op(op, x), want.numpy(), 1e-4, 1e-5)


ONNX_COMBOS = [
    ("nearest", ctm, nm) for ctm, nm in itertools.product(COORD_MODES, NEAREST_MODES)
] + [
    (m, ctm, "round_prefer_floor") for m, ctm in itertools.product(("linear", "cubic"), COORD_MODES)
]


@pytest.mark.parametrize("mode,ctm,nearest", ONNX_COMBOS)
def test_resize_matches_onnx_reference(mode, ctm, nearest):
    attrs = dict(mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nearest)
    for shape, out in [
        ((1, 2, 3, 4), (1, 2, 5, 3)),
        ((2, 1, 4, 1), (2, 1, 7, 2)),
        ((1, 1, 5, 3), (1, 1, 1, 2)),
    ]:
        x = rand(*shape)
        (want,) = onnx_run("Resize", [x, None, None, np.array(out, np.int64)], **attrs)
        assert_close(apply_op(Resize(sizes=out, **attrs), x), want, 1e-5, 1e-6, name=str(out))
    x = rand(1, 1, 4, 3)
    scales = np.array([1.0, 1.0, 1.7, 0.8], np.float32)
    (want,) = onnx_run("Resize", [x, None, scales], **attrs)
    op = Resize(sizes=want.shape, scales=tuple(float(s) for s in scales), **attrs)
    assert_close(apply_op(op, x), want, 1e-5, 1e-6, name="scales")


@pytest.mark.parametrize("mode,a", [("cubic", -0.5), ("cubic", -0.75), ("linear", -0.75)])
def test_resize_exclude_outside_and_cubic_a_match_onnx(mode, a):
    x = rand(1, 2, 4, 5)
    for ctm in ("half_pixel", "asymmetric", "align_corners"):
        attrs = dict(
            mode=mode, coordinate_transformation_mode=ctm, cubic_coeff_a=a, exclude_outside=1
        )
        out = (1, 2, 7, 3)
        (want,) = onnx_run("Resize", [x, None, None, np.array(out, np.int64)], **attrs)
        op = Resize(sizes=out, **(attrs | {"exclude_outside": True}))
        assert_close(apply_op(op, x), want, 1e-5, 1e-6, name=ctm)


def test_resize_nearest_ints_and_empty_output():
    x = RNG.integers(0, 100, (1, 3, 4)).astype(np.uint8)
    (want,) = onnx_run("Resize", [x, None, None, np.array([2, 5, 2], np.int64)], mode="nearest")
    assert_close(apply_op(Resize(sizes=(2, 5, 2)), x), want)
    assert apply_op(Resize(sizes=(1, 0, 2), mode="linear"), rand(1, 3, 4)).shape == (1, 0, 2)
    assert apply_op(Resize(sizes=(0, 5), mode="cubic"), rand(0, 3)).shape == (0, 5)
    op = Resize(sizes=(0, 2), scales=(2.0, 0.7), mode="linear")
    assert apply_op(op, rand(0, 3)).shape == (0, 2)


def test_resize_symbolic_and_rejections():
    assert Resize(sizes=(1, 3, 2 * s0, s1 + 1)).infer(f32(1, 3, s0, s1)).shape == (
        1,
        3,
        2 * s0,
        s1 + 1,
    )
    x = f32(1, 3, 4, 4)
    bad = [
        Resize(sizes=(1, 3, 8)),
        Resize(sizes=(1, 3, 8, 8), mode="bilinear"),
        Resize(sizes=(1, 3, 8, 8), coordinate_transformation_mode="tf_crop_and_resize"),
        Resize(sizes=(1, 3, 8, 8), nearest_mode="round"),
        Resize(sizes=(1, 3, 8, 8), antialias=True),
        Resize(sizes=(1, 3, 8, 8), scales=(2.0, 2.0)),
        Resize(sizes=(1, 3, 8, 8), scales=(1.0, 1.0, 0.0, 2.0)),
        Resize(sizes=(1, 3, 8, -1)),
    ]
    for op in bad:
        with pytest.raises(IRTypeError, match="resize"):
            op.infer(x)
    with pytest.raises(IRTypeError, match="resize: linear interpolation needs a float"):
        Resize(sizes=(2, 2), mode="linear").infer(TensorType(I64, (1, 1)))
    with pytest.raises(IRTypeError, match="resize"):
        Resize(sizes=(2, 2)).infer(f32(0, 1))


# -- topk -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(
    "shape,k,axis",
    [
        ((5,), 3, 0),
        ((3, 6), 2, -1),
        ((4, 2, 3), 4, 0),
        ((2, 3), 0, 1),
        ((1, 4), 4, -1),
        ((0, 4), 2, 1),
    ],
)
def test_topk_matches_torch(largest, shape, k, axis):
    x = rand(*shape)  # distinct values: torch leaves the order of ties open
    values, indices = apply_op(Topk(k=k, axis=axis, largest=largest), x)
    tv, ti = torch.topk(tt(x), k, dim=axis, largest=largest, sorted=True)
    assert_close(values, tv.numpy())
    assert_close(indices, ti.numpy())


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_topk_ties_match_onnx(largest, axis):
    x = RNG.integers(0, 3, (4, 6)).astype(np.float32)  # many ties: lower index first
    k = 3
    want = onnx_run("TopK", [x, np.array([k], np.int64)], n_out=2, axis=axis, largest=int(largest))
    got = apply_op(Topk(k=k, axis=axis, largest=largest), x)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    xi = RNG.integers(0, 250, (3, 7)).astype(np.uint8)
    vi, ii = apply_op(Topk(k=2, largest=largest), xi)
    order = np.argsort(-xi.astype(int) if largest else xi, axis=-1, kind="stable")[:, :2]
    assert_close(ii, order)


def test_topk_symbolic_and_rejections():
    v, i = Topk(k=s0, axis=0).infer(f32(s0, 3))
    assert v.shape == i.shape == (s0, 3) and i.dtype == I64
    assert Topk(k=2).infer(f32(s0, s1 + 1))[0].shape == (s0, 2)
    bad = [
        (Topk(k=5), f32(2, 4)),
        (Topk(k=2), f32(3, s0)),
        (Topk(k=s1), f32(s0)),
        (Topk(k=-1), f32(3)),
        (Topk(axis=2), f32(3, 3)),
        (Topk(), f32()),
    ]
    for op, t in bad:
        with pytest.raises(IRTypeError, match="topk"):
            op.infer(t)


def test_misc_case_file():
    check_case("misc.lmc")
