"""Shape ops: references against torch and onnx's reference evaluator, symbolic shape rules
(slice clamping, range lengths, concat/split sums), rejections, and the shape.lmc case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lmc.ir import DType, Graph, run, sym, verify
from lmc.ir.errors import IRTypeError
from lmc.ir.ops.shape import (
    Concat,
    Expand,
    Flatten,
    Full,
    Pad,
    Range,
    Reshape,
    Shape,
    Slice,
    Split,
    Squeeze,
    Tile,
    Transpose,
    Unsqueeze,
)
from lmc.ir.shapes import dim_eq, evaluate
from lmc.ir.types import TensorType

from tests.ir.ops.opcheck import apply_op, check_case, onnx_run
from tests.util import assert_close

RNG = np.random.default_rng(0)
F32, I64 = DType.f32, DType.i64
s0, s1 = sym("s0"), sym("s1")
BIG = 9223372036854775807


def rand(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.asarray(RNG.standard_normal(shape), dtype=dtype)


def tt(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a))  # a copy (0-d stays 0-d)


def f32(*shape) -> TensorType:
    return TensorType(F32, shape)


# -- reshape, transpose, concat, split -----------------------------------------------------------
@pytest.mark.parametrize(
    "src,dst", [((2, 3, 4), (4, 6)), ((1,), ()), ((0, 5), (5, 0, 1)), ((6,), (1, 2, 1, 3))]
)
def test_reshape_matches_torch(src, dst):
    x = rand(*src)
    assert_close(apply_op(Reshape(shape=dst), x), tt(x).reshape(dst).numpy())


def test_reshape_symbolic_and_rejections():
    assert Reshape(shape=(s0, 12, 64)).infer(f32(s0, 768)).shape == (s0, 12, 64)
    assert Reshape(shape=(2 * s0, s1)).infer(f32(s0, 2, s1)).shape == (2 * s0, s1)
    for bad in [(s0, 10), (-1, 768), (s0, 768, 0), (s1, 768)]:
        with pytest.raises(IRTypeError, match="reshape"):
            Reshape(shape=bad).infer(f32(s0, 768))


@pytest.mark.parametrize(
    "shape,perm", [((), ()), ((5,), (0,)), ((2, 3, 4), (2, 0, 1)), ((1, 0, 3, 2), (3, 1, 0, 2))]
)
def test_transpose_matches_torch(shape, perm):
    x = rand(*shape)
    assert_close(apply_op(Transpose(perm=perm), x), tt(x).permute(perm).numpy())


def test_transpose_rejects_non_permutations():
    assert Transpose(perm=(1, 0)).infer(f32(s0, 3)).shape == (3, s0)
    for perm in [(0, 0, 1), (0, 1), (-1, 0, 1), (0, 1, 3)]:
        with pytest.raises(IRTypeError, match="transpose"):
            Transpose(perm=perm).infer(f32(2, 3, 4))


@pytest.mark.parametrize(
    "shapes,axis",
    [
        ([(2, 3), (4, 3)], 0),
        ([(2, 3), (2, 1), (2, 0)], -1),
        ([(1, 2, 3)], 1),
        ([(0, 4), (3, 4)], -2),
    ],
)
def test_concat_matches_torch(shapes, axis):
    xs = [rand(*s) for s in shapes]
    assert_close(apply_op(Concat(axis=axis), *xs), torch.cat([tt(x) for x in xs], axis).numpy())


def test_concat_symbolic_sum_and_rejections():
    out = Concat(axis=0).infer(f32(s0, 4), f32(s1, 4), f32(2, 4))
    assert dim_eq(out.shape[0], s0 + s1 + 2)
    assert Concat(axis=-1).infer(f32(s0, 1), f32(s0, s0)).shape == (s0, s0 + 1)
    bad = [
        (f32(2, 3), TensorType(I64, (2, 3))),
        (f32(2, 3), f32(2, 3, 1)),
        (f32(s0, 3), f32(s1, 4)),
        (f32(), f32()),
    ]
    for a, b in bad:
        with pytest.raises(IRTypeError, match="concat"):
            Concat(axis=0).infer(a, b)
    with pytest.raises(IRTypeError, match="concat"):
        Concat(axis=2).infer(f32(2, 3))


@pytest.mark.parametrize(
    "shape,axis,sizes", [((5, 3), 0, (2, 3)), ((2, 6), -1, (1, 0, 5)), ((1, 4), 1, (4,))]
)
def test_split_matches_torch(shape, axis, sizes):
    x = rand(*shape)
    got = apply_op(Split(axis=axis, sizes=sizes), x)
    want = torch.split(tt(x), list(sizes), dim=axis)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert_close(a, b.numpy())


def test_split_symbolic_and_rejections():
    a, b = Split(axis=1, sizes=(s0, s0)).infer(f32(3, 2 * s0))
    assert a.shape == b.shape == (3, s0)
    assert Split(axis=0, sizes=(s0, 1)).infer(f32(s0 + 1))[1].shape == (1,)
    for sizes in [(), (s0, 1), (2, -1, 3)]:
        with pytest.raises(IRTypeError, match="split"):
            Split(axis=1, sizes=sizes).infer(f32(3, 2 * s0 if sizes == (s0, 1) else 4))


# -- slice ----------------------------------------------------------------------------------------
def _py_slice(n: int, start: int, end: int, step: int) -> int:
    return len(range(n)[slice(start, end, step)])


SLICES = [  # (start, end, step) on one axis; ONNX's clamping equals Python's slice semantics
    (1, -1, 1),
    (0, BIG, 2),
    (-1, -BIG, -1),
    (-2, 0, -1),
    (3, 1, 1),
    (-100, 100, 3),
    (5, -7, -2),
    (0, 0, 1),
    (2, BIG, -1),
    (-BIG, 2, 1),
    (1, -1, -1),
]


@pytest.mark.parametrize("start,end,step", SLICES)
def test_slice_matches_python_slicing(start, end, step):
    for n in (0, 1, 2, 5, 8):
        x = rand(n, 3)
        got = apply_op(Slice(axes=(0,), starts=(start,), ends=(end,), steps=(step,)), x)
        assert_close(got, x[start:end:step], name=f"n={n} {start}:{end}:{step}")


def test_slice_matches_torch_narrow_and_indexing():
    x = rand(4, 6, 5)
    op = Slice(axes=(0, 1, -1), starts=(1, 0, -4), ends=(-1, BIG, 4), steps=(1, 2, 1))
    assert_close(apply_op(op, x), tt(x)[1:-1, ::2, -4:4].numpy())
    narrow = Slice(axes=(1,), starts=(2,), ends=(5,), steps=(1,))
    assert_close(apply_op(narrow, x), tt(x).narrow(1, 2, 3).numpy())


@pytest.mark.parametrize(
    "shape,axes,starts,ends,steps",
    [
        ((6, 4), (0,), (-1,), (-BIG,), (-1,)),
        ((6, 4), (0, 1), (4, -1), (0, -5), (-2, -1)),
        ((3, 7), (-1,), (BIG,), (1,), (-3,)),
        ((1, 5), (0, 1), (0, -10), (1, 10), (1, 2)),
        ((4, 0), (1,), (0,), (BIG,), (-1,)),
    ],
)
def test_slice_matches_onnx_reference(shape, axes, starts, ends, steps):
    x = rand(*shape)
    (want,) = onnx_run(
        "Slice", [x, *(np.array(v, dtype=np.int64) for v in (starts, ends, axes, steps))]
    )
    assert_close(apply_op(Slice(axes=axes, starts=starts, ends=ends, steps=steps), x), want)


def test_slice_symbolic_lengths_follow_onnx_clamping():
    """The rule's length at every s0 equals Python's (= ONNX's) clamped slice length."""
    bounds = SLICES + [(s0 - 1, 0, -1), (-s0, s0, 1), (1, s0 + 3, 2), (s0, BIG, 1)]
    for d in (s0, 2 * s0 + 1):
        for start, end, step in bounds:
            op = Slice(axes=(0,), starts=(start,), ends=(end,), steps=(step,))
            length = op.infer(f32(d, 2)).shape[0]
            for v in range(1, 10):
                env = {"s0": v}
                want = _py_slice(evaluate(d, env), evaluate(start, env), evaluate(end, env), step)
                assert evaluate(length, env) == want, (d, start, end, step, v, length)
    inner = Slice(axes=(0,), starts=(1,), ends=(-1,), steps=(1,)).infer(f32(s0 + 2, 3))
    assert inner.shape == (s0, 3)
    assert str(Slice(axes=(0,), starts=(1,), ends=(-1,), steps=(1,)).infer(f32(s0))) == (
        "f32[Max(0, s0 - 2)]"
    )


def test_slice_rejections():
    x = f32(s0, 4)
    bad = [
        Slice(axes=(0,), starts=(s0 - 5,), ends=(BIG,), steps=(1,)),  # sign unknown
        Slice(axes=(1,), starts=(0,), ends=(2,), steps=(0,)),
        Slice(axes=(0, 1), starts=(0,), ends=(1, 2), steps=(1, 1)),
        Slice(axes=(1, -1), starts=(0, 0), ends=(1, 1), steps=(1, 1)),
        Slice(axes=(2,), starts=(0,), ends=(1,), steps=(1,)),
    ]
    for op in bad:
        with pytest.raises(IRTypeError, match="slice"):
            op.infer(x)


# -- pad ------------------------------------------------------------------------------------------
TORCH_PAD_MODE = {
    "constant": "constant",
    "reflect": "reflect",
    "edge": "replicate",
    "wrap": "circular",
}


def _torch_pads(pads: tuple[int, ...], rank: int) -> tuple[int, ...]:
    """lmc (all begins, then all ends) -> torch (last axis first, begin/end pairs)."""
    out: list[int] = []
    for i in reversed(range(rank)):
        out += [pads[i], pads[rank + i]]
    while out[-2:] == [0, 0]:  # torch's reflect/replicate/circular take only the padded axes
        out = out[:-2]
    return tuple(out)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize(
    "shape,pads",
    [
        ((1, 2, 5), (0, 0, 2, 0, 0, 3)),
        ((2, 3, 4, 5), (0, 0, 1, -1, 0, 0, 2, 3)),
        ((1, 1, 6), (0, 0, -2, 0, 0, 1)),
        ((1, 2, 3, 4), (0, 0, 0, 0, 0, 0, -1, -2)),
    ],
)
def test_pad_matches_torch(mode, shape, pads):
    x = rand(*shape)
    kw = {"value": 1.5} if mode == "constant" else {}
    want = F.pad(tt(x), _torch_pads(pads, x.ndim), mode=TORCH_PAD_MODE[mode], **kw)
    assert_close(apply_op(Pad(pads=pads, mode=mode, value=1.5), x), want.numpy())


def test_pad_constant_any_rank_empty_and_ints():
    x = rand(0, 3)
    assert_close(
        apply_op(Pad(pads=(1, 0, 2, -1), value=-2.0), x),
        F.pad(tt(x), (0, -1, 1, 2), value=-2.0).numpy(),
    )
    xi = RNG.integers(-5, 5, (2, 3)).astype(np.int32)
    assert_close(
        apply_op(Pad(pads=(1, 1, 0, 2), value=7.0), xi),
        F.pad(tt(xi), (1, 2, 1, 0), value=7).numpy(),
    )
    (want,) = onnx_run("Pad", [rand(2, 3), np.array([1, 0, 0, 2], dtype=np.int64)], mode="wrap")
    assert want.shape == (3, 5)


def test_pad_symbolic_and_rejections():
    assert Pad(pads=(1, 0, s0, -1)).infer(f32(s0, 4)).shape == (2 * s0 + 1, 3)
    assert Pad(pads=(0, -1, 0, 0), mode="reflect").infer(f32(2, s0 + 1)).shape == (2, s0)
    assert Pad(pads=(-1, 0, 0, 0)).infer(f32(s0, 3)).shape == (s0 - 1, 3)  # may be empty
    bad = [
        (Pad(pads=(1, 0)), f32(2, 3)),
        (Pad(pads=(0, 0, 0, 0), mode="symmetric"), f32(2, 3)),
        (Pad(pads=(-3, 0, 0, 0)), f32(2, 3)),
        (Pad(pads=(-2, 0, 0, 0)), f32(s0, 3)),  # s0 - 2 may be negative
        (Pad(pads=(1, 0, 0, 0), mode="reflect"), f32(0, 3)),
        (Pad(pads=(1, 0, -1, 0), mode="edge"), f32(1, 3)),  # nothing left to repeat
        (Pad(pads=(0, 0, 0, 0), value=0.5), TensorType(DType.i32, (2, 3))),
    ]
    for op, t in bad:
        with pytest.raises(IRTypeError, match="pad"):
            op.infer(t)


# -- expand, squeeze, unsqueeze, flatten, tile ----------------------------------------------------
@pytest.mark.parametrize(
    "src,dst", [((3, 1), (2, 3, 4)), ((1,), (0,)), ((), (2, 2)), ((2, 1, 3), (2, 5, 3))]
)
def test_expand_matches_torch(src, dst):
    x = rand(*src)
    got = apply_op(Expand(shape=dst), x)
    assert_close(got, tt(x).expand(dst).numpy())
    assert got.flags.writeable


def test_expand_symbolic_and_rejections():
    assert Expand(shape=(4, 3, s0)).infer(f32(1, s0)).shape == (4, 3, s0)
    assert Expand(shape=(s1, s0)).infer(f32(1, s0)).shape == (s1, s0)
    bad = [(f32(2, s0), (3, s0)), (f32(2, 3), (3,)), (f32(s0), (4,)), (f32(1), (-1,))]
    for t, shape in bad:
        with pytest.raises(IRTypeError, match="expand"):
            Expand(shape=shape).infer(t)


@pytest.mark.parametrize(
    "shape,axes", [((1, 3, 1), (0,)), ((1, 3, 1), (-1, 0)), ((2, 1, 0), (1,)), ((1, 1), ())]
)
def test_squeeze_matches_torch(shape, axes):
    x = rand(*shape)
    want = tt(x).squeeze(axes) if axes else tt(x).squeeze()
    assert_close(apply_op(Squeeze(axes=axes), x), want.numpy())


def test_squeeze_symbolic_and_rejections():
    assert Squeeze(axes=()).infer(f32(s0 + 1, 1, 3)).shape == (s0 + 1, 3)
    assert Squeeze(axes=(-1,)).infer(f32(s0, 1)).shape == (s0,)
    for axes, t in [((0,), f32(2, 1)), ((0,), f32(s0, 1)), ((), f32(s0, 1)), ((1, -1), f32(2, 1))]:
        with pytest.raises(IRTypeError, match="squeeze"):
            Squeeze(axes=axes).infer(t)


@pytest.mark.parametrize(
    "shape,axes", [((3,), (0,)), ((2, 3), (-1, 1)), ((), (0, 1)), ((0, 2), (2,))]
)
def test_unsqueeze_matches_numpy_and_torch(shape, axes):
    x = rand(*shape)
    got = apply_op(Unsqueeze(axes=axes), x)
    want = tt(x)
    for a in sorted(a + got.ndim if a < 0 else a for a in axes):
        want = want.unsqueeze(a)
    assert_close(got, want.numpy())


def test_unsqueeze_rejections():
    assert Unsqueeze(axes=(0, -1)).infer(f32(s0)).shape == (1, s0, 1)
    for axes in [(0, 0), (3,), (-4,), (1, -2)]:
        with pytest.raises(IRTypeError, match="unsqueeze"):
            Unsqueeze(axes=axes).infer(f32(2))


@pytest.mark.parametrize(
    "shape,axis",
    [((2, 3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4), 3), ((2, 3, 4), -1), ((5,), -1), ((3, 0), 1)],
)
def test_flatten_matches_onnx_reference(shape, axis):
    x = rand(*shape)
    (want,) = onnx_run("Flatten", [x], axis=axis)
    assert_close(apply_op(Flatten(axis=axis), x), want)
    if axis == 1:
        assert_close(apply_op(Flatten(axis=axis), x), tt(x).flatten(1).numpy())


def test_flatten_of_empty_leading_dims():
    x = rand(0, 3, 2)
    assert apply_op(Flatten(axis=2), x).shape == (0, 2)


def test_flatten_symbolic_and_rejections():
    x = f32(s0, 3, 4)
    assert Flatten(axis=1).infer(x).shape == (s0, 12)
    assert Flatten(axis=-1).infer(x).shape == (3 * s0, 4)
    assert Flatten(axis=0).infer(x).shape == (1, 12 * s0)
    assert Flatten(axis=3).infer(x).shape == (12 * s0, 1)
    for axis in (4, -4):
        with pytest.raises(IRTypeError, match="flatten"):
            Flatten(axis=axis).infer(x)


@pytest.mark.parametrize("shape,reps", [((2, 3), (2, 1)), ((1,), (4,)), ((2, 0), (3, 2)), ((), ())])
def test_tile_matches_torch(shape, reps):
    x = rand(*shape)
    assert_close(apply_op(Tile(repeats=reps), x), tt(x).tile(reps).numpy())


def test_tile_symbolic_and_rejections():
    assert Tile(repeats=(s1, 2)).infer(f32(s0, 3)).shape == (s0 * s1, 6)
    for reps in [(2,), (2, -1), (1, 1, 1)]:
        with pytest.raises(IRTypeError, match="tile"):
            Tile(repeats=reps).infer(f32(2, 3))


# -- shape, full, range ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "start,end", [(0, None), (1, None), (-1, None), (0, -1), (-10, 10), (2, 1)]
)
def test_shape_matches_onnx_reference(start, end):
    x = rand(2, 3, 0, 5)
    kw = {"start": start} | ({} if end is None else {"end": end})
    (want,) = onnx_run("Shape", [x], **kw)
    assert_close(apply_op(Shape(start=start, end=end), x), want)
    assert Shape(start=start, end=end).infer(f32(s0, 3, s1, 5)).shape == want.shape


@pytest.mark.parametrize(
    "shape,value,dtype,tdtype",
    [
        ((2, 3), 1.5, DType.f32, torch.float32),
        ((0, 2), 0.0, DType.f32, torch.float32),
        ((4,), -3.0, DType.i64, torch.int64),
        ((), 1.0, DType.bool, torch.bool),
        ((2, 1), 0.1, DType.f16, torch.float16),
    ],
)
def test_full_matches_torch(shape, value, dtype, tdtype):
    got = apply_op(Full(shape=shape, value=value, dtype=dtype))
    assert_close(got, torch.full(shape, value, dtype=tdtype).numpy())


def test_full_rejections():
    assert Full(shape=(s0, 2), dtype=DType.i8).infer() == TensorType(DType.i8, (s0, 2))
    for op in [
        Full(shape=(2,), value=0.5, dtype=DType.i32),
        Full(shape=(2,), value=300.0, dtype=DType.u8),
        Full(shape=(-1,)),
        Full(shape=(2,), value=float("inf"), dtype=DType.i64),
    ]:
        with pytest.raises(IRTypeError, match="full"):
            op.infer()


@pytest.mark.parametrize(
    "start,limit,delta,dtype,tdtype",
    [
        (0, 5, 1, DType.i64, torch.int64),
        (5, 0, -2, DType.i64, torch.int64),
        (3, 3, 1, DType.i32, torch.int32),
        (0.0, 1.0, 0.1, DType.f32, torch.float32),
        (-1.5, 2.0, 0.5, DType.f64, torch.float64),
        (2.0, -1.0, -0.7, DType.f32, torch.float32),
    ],
)
def test_range_matches_torch_arange(start, limit, delta, dtype, tdtype):
    got = apply_op(Range(start=start, limit=limit, delta=delta, dtype=dtype))
    assert_close(got, torch.arange(start, limit, delta, dtype=tdtype).numpy())


def test_range_against_the_direction_is_empty():
    assert apply_op(Range(start=4, limit=1, delta=1)).shape == (0,)
    assert apply_op(Range(start=0.0, limit=1.0, delta=-0.5, dtype=F32)).shape == (0,)


def test_range_symbolic_lengths_and_rejections():
    cases = [(0, s0, 1), (s0, 0, -1), (0, s0, 2), (1.0, s0, 1.0), (s0, 2 * s0 + 3, 3), (2, s0, 1)]
    for start, limit, delta in cases:
        (n,) = Range(start=start, limit=limit, delta=delta).infer().shape
        for v in range(1, 8):
            env = {"s0": v}
            lo = int(start) if isinstance(start, float) else evaluate(start, env)
            want = len(range(lo, evaluate(limit, env), int(delta)))
            assert evaluate(n, env) == want, (start, limit, delta, v, n)
    assert Range(start=0, limit=s0, delta=1).infer().shape == (s0,)
    bad = [
        Range(start=0, limit=4, delta=0),
        Range(start=0, limit=2.5, delta=1, dtype=I64),
        Range(start=0.5, limit=s0, delta=1, dtype=F32),
        Range(limit=3, dtype=DType.bool),
        Range(start=0, limit=float("inf"), delta=1.0, dtype=F32),
    ]
    for op in bad:
        with pytest.raises(IRTypeError, match="range"):
            op.infer()


# -- graphs ---------------------------------------------------------------------------------------
def test_shape_ops_in_a_graph_at_two_symbol_values():
    g = Graph("g", {"s0": (1, 16)})
    x = g.input("x", f32(s0, 4))
    y = g.apply(Slice(axes=(0,), starts=(1,), ends=(-1,), steps=(1,)), x)
    z = g.apply(Pad(pads=(0, 1, 0, 0), mode="wrap"), y)
    r = g.apply(Range(start=0, limit=s0, delta=1, dtype=F32))
    g.set_outputs([z, r])
    verify(g)
    for n in (1, 5):
        xs = rand(n, 4)
        got_z, got_r = run(g, [xs])
        assert_close(got_z, np.pad(xs[1:-1], [(0, 0), (1, 0)], mode="wrap"))
        assert_close(got_r, np.arange(n, dtype=np.float32))


def test_shape_case_file():
    check_case("shape.lmc")
