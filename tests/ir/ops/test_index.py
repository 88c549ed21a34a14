"""Index ops: gather*, scatter*, one_hot against torch and onnx's reference evaluator, negative
and out-of-range indices, symbolic shape rules, rejections, and the index.lmc case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, Graph, run, sym
from lmc.ir.errors import InterpreterError, IRTypeError
from lmc.ir.ops.index import (
    Gather,
    GatherElements,
    GatherNd,
    OneHot,
    ScatterElements,
    ScatterNd,
)
from lmc.ir.types import TensorType

from tests.ir.ops.opcheck import apply_op, check_case, onnx_run
from tests.util import assert_close

RNG = np.random.default_rng(1)
F32, I32, I64 = DType.f32, DType.i32, DType.i64
s0, s1 = sym("s0"), sym("s1")


def rand(*shape: int) -> np.ndarray:
    return np.asarray(RNG.standard_normal(shape), dtype=np.float32)


def ints(lo: int, hi: int, shape, dtype=np.int64) -> np.ndarray:
    return np.asarray(RNG.integers(lo, hi, size=shape), dtype=dtype)


def tt(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))


def f32(*shape) -> TensorType:
    return TensorType(F32, shape)


def i64(*shape) -> TensorType:
    return TensorType(I64, shape)


# -- gather ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,ishape,axis",
    [
        ((5, 3), (4,), 0),
        ((2, 6, 3), (2, 2), 1),
        ((4, 5), (), -1),
        ((3, 1), (0,), 1),
        ((2, 0, 3), (3,), -1),
    ],
)
def test_gather_matches_torch_indexing(shape, ishape, axis):
    x = rand(*shape)
    n = x.shape[axis]
    idx = ints(-n, n, ishape) if n else np.zeros(ishape, np.int64)
    got = apply_op(Gather(axis=axis), x, idx)
    ax = axis % x.ndim
    want = tt(x)[(slice(None),) * ax + (tt(idx),)]  # torch indexing wraps negatives too
    assert_close(got, want.numpy())
    (want_onnx,) = onnx_run("Gather", [x, idx], axis=axis)
    assert_close(got, want_onnx)


def test_gather_i32_indices_and_out_of_range():
    x = rand(4, 3)
    assert_close(apply_op(Gather(axis=0), x, np.array([3, -4], np.int32)), x[[3, 0]])
    with pytest.raises(InterpreterError, match=r"gather: index 4 out of range -4..3"):
        Gather(axis=0).ref(x, np.array([0, 4]))
    with pytest.raises(InterpreterError, match="gather"):
        Gather(axis=1).ref(x, np.array([-4]))


def test_gather_symbolic_and_rejections():
    assert Gather(axis=0).infer(f32(s0, 5), i64(s1, 2)).shape == (s1, 2, 5)
    assert Gather(axis=-1).infer(f32(s0, 5), i64()).shape == (s0,)
    bad = [(f32(3, 4), TensorType(F32, (2,)), 0), (f32(3, 4), i64(2), 2), (f32(), i64(1), 0)]
    for x, idx, axis in bad:
        with pytest.raises(IRTypeError, match="gather"):
            Gather(axis=axis).infer(x, idx)


# -- gather_elements ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,ishape,axis",
    [((4, 5), (4, 3), 1), ((3, 4, 2), (2, 4, 1), 0), ((1, 6), (1, 0), -1), ((5,), (7,), 0)],
)
def test_gather_elements_matches_torch_gather(shape, ishape, axis):
    x = rand(*shape)
    idx = ints(0, x.shape[axis], ishape)
    got = apply_op(GatherElements(axis=axis), x, idx)
    assert_close(got, torch.gather(tt(x), axis, tt(idx)).numpy())
    if ishape == shape or len(shape) == 1:
        assert_close(got, torch.take_along_dim(tt(x), tt(idx), axis).numpy())


def test_gather_elements_negative_indices_match_onnx():
    x, idx = rand(3, 4), ints(-4, 4, (3, 4))
    (want,) = onnx_run("GatherElements", [x, idx], axis=1)
    assert_close(apply_op(GatherElements(axis=-1), x, idx), want)
    with pytest.raises(InterpreterError, match="gather_elements"):
        GatherElements(axis=1).ref(x, np.full((3, 4), 4))


def test_gather_elements_symbolic_and_rejections():
    assert GatherElements(axis=1).infer(f32(s0, 5), i64(s0, 9)).shape == (s0, 9)
    bad = [
        (f32(3, 4), i64(4, 4)),
        (f32(3, 4), i64(3)),
        (f32(s0, 4), i64(s1, 4)),
        (f32(3, 4), TensorType(DType.i16, (3, 4))),
    ]
    for x, idx in bad:
        with pytest.raises(IRTypeError, match="gather_elements"):
            GatherElements(axis=1).infer(x, idx)


# -- gather_nd ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,ishape,b",
    [
        ((4, 5), (3, 2), 0),
        ((4, 5, 2), (3, 1), 0),
        ((2, 3, 4), (2, 5, 1), 1),
        ((2, 3, 4, 5), (2, 3, 2), 2),
        ((3, 4), (0, 1), 0),
        ((1, 2), (1, 2), 0),
    ],
)
def test_gather_nd_matches_onnx_reference(shape, ishape, b):
    x = rand(*shape)
    m = ishape[-1]
    cols = [ints(-x.shape[b + j], x.shape[b + j], ishape[:-1]) for j in range(m)]
    idx = np.stack(cols, axis=-1).reshape(ishape)
    (want,) = onnx_run("GatherND", [x, idx], batch_dims=b)
    assert_close(apply_op(GatherNd(batch_dims=b), x, idx), want)


def test_gather_nd_matches_torch_advanced_indexing():
    x, idx = rand(4, 5, 3), ints(0, 4, (6, 2))
    want = tt(x)[tt(idx[:, 0]), tt(idx[:, 1])]
    assert_close(apply_op(GatherNd(), x, idx), want.numpy())
    with pytest.raises(InterpreterError, match="gather_nd"):
        GatherNd().ref(x, np.array([[0, 5]]))


def test_gather_nd_symbolic_and_rejections():
    assert GatherNd().infer(f32(s0, 5, 3), i64(s1, 2)).shape == (s1, 3)
    assert GatherNd(batch_dims=1).infer(f32(s0, 5, 3), i64(s0, 4, 1)).shape == (s0, 4, 3)
    bad = [
        (GatherNd(), f32(3, 4), i64(2, 3)),  # m > rank
        (GatherNd(), f32(3, 4), i64(2, s0)),  # m not static
        (GatherNd(batch_dims=1), f32(s0, 4), i64(s1, 1)),  # batch dims differ
        (GatherNd(batch_dims=2), f32(3, 4), i64(3, 1)),
        (GatherNd(), f32(3, 4), i64()),
    ]
    for op, x, idx in bad:
        with pytest.raises(IRTypeError, match="gather_nd"):
            op.infer(x, idx)


# -- scatter_elements -----------------------------------------------------------------------------
TORCH_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize(
    "shape,ishape,axis",
    [((4, 5), (4, 3), 1), ((3, 2, 4), (5, 2, 1), 0), ((6,), (6,), -1), ((2, 3), (2, 0), 1)],
)
def test_scatter_elements_matches_torch(reduction, shape, ishape, axis):
    x = rand(*shape)
    n, ax = x.shape[axis], axis % x.ndim
    if reduction == "none":  # unique targets: torch and ONNX leave duplicates unspecified
        ishape = ishape[:ax] + (min(n, ishape[ax]),) + ishape[ax + 1 :]
        perm = np.argsort(RNG.random(ishape[:ax] + (n,) + ishape[ax + 1 :]), axis=ax)
        idx = np.take(perm, np.arange(ishape[ax]), axis=ax)
    else:
        idx = ints(0, n, ishape)
    upd = rand(*ishape)
    got = apply_op(ScatterElements(axis=axis, reduction=reduction), x, idx, upd)
    if reduction == "none":
        want = torch.scatter(tt(x), axis, tt(idx), tt(upd))
    else:
        want = torch.scatter_reduce(tt(x), axis, tt(idx), tt(upd), TORCH_REDUCE[reduction])
    assert_close(got, want.numpy(), 1e-5, 1e-6)


def test_scatter_elements_negative_indices_match_onnx():
    x, idx, upd = rand(3, 4), ints(-4, 4, (3, 2)), rand(3, 2)
    (want,) = onnx_run("ScatterElements", [x, idx, upd], axis=1, reduction="add")
    assert_close(apply_op(ScatterElements(axis=-1, reduction="add"), x, idx, upd), want)
    with pytest.raises(InterpreterError, match="scatter_elements"):
        ScatterElements(axis=0).ref(x, np.full((1, 4), -4), rand(1, 4))


def test_scatter_elements_symbolic_and_rejections():
    t = ScatterElements(axis=1).infer(f32(s0, 5), i64(s0, 2), f32(s0, 2))
    assert t.shape == (s0, 5)
    bad = [
        (ScatterElements(reduction="sum"), f32(3, 4), i64(3, 4), f32(3, 4)),
        (ScatterElements(), f32(3, 4), i64(3, 4), f32(3, 3)),
        (ScatterElements(), f32(3, 4), i64(3, 4), TensorType(DType.f16, (3, 4))),
        (ScatterElements(axis=0), f32(3, 4), i64(3, 5), f32(3, 5)),
        (ScatterElements(axis=2), f32(3, 4), i64(3, 4), f32(3, 4)),
    ]
    for op, x, idx, upd in bad:
        with pytest.raises(IRTypeError, match="scatter_elements"):
            op.infer(x, idx, upd)


# -- scatter_nd -----------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize(
    "shape,ishape",
    [((4, 5), (3, 2)), ((4, 5, 2), (2, 1)), ((3, 4), (0, 1)), ((2, 2, 3), (2, 3, 2))],
)
def test_scatter_nd_matches_onnx_reference(reduction, shape, ishape):
    x = rand(*shape)
    m = ishape[-1]
    k = int(np.prod(ishape[:-1]))
    if reduction == "none":  # distinct targets
        k = min(k, int(np.prod(shape[:m])))
        ishape = (k, m)
        flat = RNG.permutation(int(np.prod(shape[:m])))[:k]
        idx = np.stack(np.unravel_index(flat, shape[:m]), axis=-1).reshape(ishape)
    else:
        cols = [ints(0, shape[j], ishape[:-1]) for j in range(m)]
        idx = np.stack(cols, axis=-1).reshape(ishape)
    upd = rand(*ishape[:-1], *shape[m:])
    (want,) = onnx_run("ScatterND", [x, idx, upd], reduction=reduction)
    got = apply_op(ScatterNd(reduction=reduction), x, idx, upd)
    assert_close(got, want)
    if reduction in ("none", "add"):
        ref = tt(x).index_put(
            tuple(tt(idx[..., j]) for j in range(m)), tt(upd), accumulate=reduction == "add"
        )
        assert_close(got, ref.numpy(), 1e-5, 1e-6)


def test_scatter_nd_symbolic_and_rejections():
    assert ScatterNd().infer(f32(s0, 5, 3), i64(s1, 2), f32(s1, 3)).shape == (s0, 5, 3)
    bad = [
        (f32(3, 4), i64(2, 3), f32(2)),
        (f32(3, 4), i64(2, 1), f32(2, 5)),
        (f32(3, 4), i64(2, s0), f32(2)),
        (f32(3, 4), TensorType(F32, (2, 2)), f32(2)),
    ]
    for x, idx, upd in bad:
        with pytest.raises(IRTypeError, match="scatter_nd"):
            ScatterNd().infer(x, idx, upd)
    with pytest.raises(IRTypeError, match="scatter_nd"):
        ScatterNd(reduction="prod").infer(f32(3, 4), i64(2, 2), f32(2))


# -- one_hot --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ishape,depth", [((5,), 4), ((2, 3), 6), ((), 3), ((0, 2), 2)])
def test_one_hot_matches_torch(ishape, depth):
    idx = ints(0, depth, ishape)
    got = apply_op(OneHot(depth=depth, dtype=I64), idx)
    assert_close(got, F.one_hot(tt(idx), depth).numpy())


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_one_hot_axes_and_negative_indices_match_onnx(axis):
    idx = np.array([[0, -1, 2], [5, -4, 1]], dtype=np.int64)  # 5 and -4: all off
    op = OneHot(depth=4, axis=axis, on_value=3.0, off_value=-1.0)
    (want,) = onnx_run(
        "OneHot", [idx, np.array(4, np.int64), np.array([-1.0, 3.0], np.float32)], axis=axis
    )
    assert_close(apply_op(op, idx), want)


def test_one_hot_symbolic_and_rejections():
    assert OneHot(depth=7, axis=0).infer(i64(s0, 2)) == TensorType(F32, (7, s0, 2))
    bad = [
        (OneHot(depth=0), i64(2)),
        (OneHot(axis=2), i64(2)),
        (OneHot(), f32(2)),
        (OneHot(on_value=0.5, dtype=I32), i64(2)),
    ]
    for op, t in bad:
        with pytest.raises(IRTypeError, match="one_hot"):
            op.infer(t)


# -- graphs ---------------------------------------------------------------------------------------
def test_out_of_range_index_is_an_interpreter_error_naming_the_node():
    g = Graph("g", {"s0": (1, 8)})
    x = g.input("x", f32(s0, 3))
    i = g.input("i", i64(2))
    g.set_outputs([g.apply(Gather(axis=0), x, i)])
    assert_close(run(g, [rand(3, 3), np.array([2, -3])])[0].shape, np.array([2, 3]))
    with pytest.raises(InterpreterError, match=r"(?s)index 3 out of range.*at: %0 = gather"):
        run(g, [rand(3, 3), np.array([0, 3])])


def test_index_case_file():
    check_case("index.lmc")
