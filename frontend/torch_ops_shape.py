"""ATen converters for shapes, indexing and tensor creation (part of the table in `torch_ops`).

Result shapes come from torch's own metadata (`cx.out`), whose SymInt dims the builder has
already turned into IR dims, so view/expand/full never re-derive `-1` or broadcasting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..ir.dtypes import DType
from ..ir.graph import Value
from ..ir.ops import elementwise as ew
from ..ir.ops import index as ix
from ..ir.ops import misc
from ..ir.ops import shape as sh
from ..ir.shapes import Dim, dim_eq, is_static, norm, shape_eq
from .torch_build import NotConvertible

if TYPE_CHECKING:
    from .torch_build import Builder

aten = torch.ops.aten


def norm_dim(d: int, rank: int) -> int:
    """A torch dim index in 0..rank-1 (rank-0 tensors accept 0 and -1)."""
    r = max(rank, 1)
    if not -r <= d < r:
        raise NotConvertible(f"dim {d} out of range for rank {rank}")
    return d % r


def axes_of(dim: Any, rank: int) -> tuple[int, ...]:
    """Reduction axes from a torch `dim` argument (None or [] means all: returned as ())."""
    if dim is None:
        return ()
    dims = [dim] if isinstance(dim, int) else list(dim)
    return tuple(sorted(norm_dim(d, rank) for d in dims))


# -- views -----------------------------------------------------------------------------------


def reshape(cx: Builder, x: Value, **_: Any) -> Value:
    shape = cx.out.shape
    if shape_eq(shape, x.type.shape):
        return x
    return cx.apply(sh.Reshape(shape=shape), x)


def permute(cx: Builder, x: Value, dims: Any, **_: Any) -> Value:
    perm = tuple(norm_dim(d, x.type.rank) for d in dims)
    return x if perm == tuple(range(len(perm))) else cx.apply(sh.Transpose(perm=perm), x)


def transpose(cx: Builder, x: Value, dim0: int = 0, dim1: int = 1, **_: Any) -> Value:
    r = x.type.rank
    if r < 2:
        return x
    perm = list(range(r))
    a, b = norm_dim(dim0, r), norm_dim(dim1, r)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(cx, x, perm)


def expand(cx: Builder, x: Value, **_: Any) -> Value:
    shape = cx.out.shape
    if shape_eq(shape, x.type.shape):
        return x
    return cx.apply(sh.Expand(shape=shape), x)


def unsqueeze(cx: Builder, x: Value, dim: int, **_: Any) -> Value:
    return cx.apply(sh.Unsqueeze(axes=(norm_dim(dim, x.type.rank + 1),)), x)


def squeeze(cx: Builder, x: Value, dim: Any = None, **_: Any) -> Value:
    r = x.type.rank
    cand = (
        range(r)
        if dim is None
        else [norm_dim(d, r) for d in ([dim] if isinstance(dim, int) else dim)]
    )
    axes = tuple(sorted({a for a in cand if r and x.type.shape[a] == 1}))
    return cx.apply(sh.Squeeze(axes=axes), x) if axes else x


def cat(cx: Builder, tensors: list, dim: int = 0, **_: Any) -> Value:
    dt = cx.out.dtype
    # torch skips legacy empty 1-d tensors in cat
    parts = [cx.cast(t, dt) for t in tensors if not (t.type.rank == 1 and t.type.shape[0] == 0)]
    if len(parts) == 1:
        return parts[0]
    return cx.apply(sh.Concat(axis=norm_dim(dim, parts[0].type.rank)), *parts)


def stack(cx: Builder, tensors: list, dim: int = 0, **_: Any) -> Value:
    axis = norm_dim(dim, tensors[0].type.rank + 1)
    parts = [cx.apply(sh.Unsqueeze(axes=(axis,)), cx.cast(t, cx.out.dtype)) for t in tensors]
    return parts[0] if len(parts) == 1 else cx.apply(sh.Concat(axis=axis), *parts)


def split(cx: Builder, x: Value, dim: int = 0, **_: Any) -> tuple:
    axis = norm_dim(dim, x.type.rank)
    sizes = tuple(t.shape[axis] for t in cx.out_types())
    if len(sizes) == 1:
        return (x,)
    return cx.apply(sh.Split(axis=axis, sizes=sizes), x)


def unbind(cx: Builder, x: Value, dim: int = 0, **_: Any) -> tuple:
    axis = norm_dim(dim, x.type.rank)
    n = x.type.shape[axis]
    if not is_static(n):
        raise NotConvertible(f"unbind of a symbolic dim {n}")
    parts = (x,) if n == 1 else cx.apply(sh.Split(axis=axis, sizes=(1,) * n), x)
    return tuple(cx.apply(sh.Squeeze(axes=(axis,)), p) for p in parts)


def slice_(
    cx: Builder, x: Value, dim: int = 0, start: Any = None, end: Any = None, step: Any = 1, **_: Any
) -> Value:
    axis = norm_dim(dim, x.type.rank)
    start = 0 if start is None else start
    end = sh.HUGE if end is None else end
    if start == 0 and is_static(end) and end >= sh.HUGE and step == 1:
        return x
    if is_static(end) and end >= sh.HUGE:
        end = sh.HUGE
    op = sh.Slice(axes=(axis,), starts=(start,), ends=(end,), steps=(int(step),))
    y = cx.apply(op, x)
    length = cx.out.shape[axis]
    if step == 1 and not is_static(length) and not dim_eq(y.type.shape[axis], length):
        # torch proved from the symbol ranges that no clamping happens (e.g. x[:, :seq] of a
        # 512 buffer); the IR cannot, so take the rows by index: gather(range(start, end))
        idx = cx.apply(
            sh.Range(
                start=cx.dim(start), limit=norm(cx.dim(start) + length), delta=1, dtype=DType.i64
            )
        )
        y = cx.apply(ix.Gather(axis=axis), x, idx)
    return y


def select(cx: Builder, x: Value, dim: int, index: Any, **_: Any) -> Value:
    idx = cx.const(index, DType.i64)
    return cx.apply(ix.Gather(axis=norm_dim(dim, x.type.rank)), x, idx)


def narrow(cx: Builder, x: Value, dim: int, start: Any, length: Any, **_: Any) -> Value:
    return slice_(cx, x, dim, start, start + length, 1)


def flip(cx: Builder, x: Value, dims: Any, **_: Any) -> Value:
    axes = tuple(norm_dim(d, x.type.rank) for d in dims)
    n = len(axes)
    op = sh.Slice(axes=axes, starts=(-1,) * n, ends=(-sh.HUGE,) * n, steps=(-1,) * n)
    return cx.apply(op, x)


def roll(cx: Builder, x: Value, shifts: Any, dims: Any = (), **_: Any) -> Value:
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    y = x
    if not dims:
        y = cx.apply(sh.Reshape(shape=(x.type.numel,)), x)
        dims = [0]
    for s, d in zip(shifts, dims):
        axis = norm_dim(d, y.type.rank)
        n = y.type.shape[axis]
        if not is_static(n):
            raise NotConvertible("roll along a symbolic dim")
        k = s % n if n else 0
        if k:
            tail = cx.apply(sh.Slice(axes=(axis,), starts=(n - k,), ends=(n,), steps=(1,)), y)
            head = cx.apply(sh.Slice(axes=(axis,), starts=(0,), ends=(n - k,), steps=(1,)), y)
            y = cx.apply(sh.Concat(axis=axis), tail, head)
    return reshape(cx, y) if y.type.rank != x.type.rank else y


def repeat(cx: Builder, x: Value, repeats: Any, **_: Any) -> Value:
    reps = cx.dims(repeats)
    extra = len(reps) - x.type.rank
    if extra > 0:
        x = cx.apply(sh.Reshape(shape=(1,) * extra + x.type.shape), x)
    return cx.apply(sh.Tile(repeats=reps), x)


def pad(
    cx: Builder, x: Value, pad: Any = None, padding: Any = None, value: Any = 0, **_: Any
) -> Value:
    r = x.type.rank
    begins: list[Dim] = [0] * r
    ends: list[Dim] = [0] * r
    vals = cx.dims(pad if pad is not None else padding)
    for j in range(len(vals) // 2):
        begins[r - 1 - j], ends[r - 1 - j] = vals[2 * j], vals[2 * j + 1]
    mode = {aten.constant_pad_nd.default: "constant"}.get(cx.node.target)
    if mode is None:
        mode = "reflect" if "reflection" in str(cx.node.target) else "edge"
    return cx.apply(sh.Pad(pads=tuple(begins + ends), mode=mode, value=float(value or 0)), x)


def diff(
    cx: Builder,
    x: Value,
    n: int = 1,
    dim: int = -1,
    prepend: Value | None = None,
    append: Value | None = None,
    **_: Any,
) -> Value:
    axis = norm_dim(dim, x.type.rank)
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = cx.apply(sh.Concat(axis=axis), *[cx.cast(p, x.type.dtype) for p in parts])
    for _ in range(n):
        hi = cx.apply(sh.Slice(axes=(axis,), starts=(1,), ends=(sh.HUGE,), steps=(1,)), x)
        lo = cx.apply(sh.Slice(axes=(axis,), starts=(0,), ends=(-1,), steps=(1,)), x)
        x = cx.apply(ew.LogicalXor() if x.type.dtype == DType.bool else ew.Sub(), hi, lo)
    return x


def slice_scatter(
    cx: Builder,
    x: Value,
    src: Value,
    dim: int = 0,
    start: Any = None,
    end: Any = None,
    step: Any = 1,
    **_: Any,
) -> Value:
    """x with x[start:end] along dim replaced by src: concat(head, src, tail) (step 1)."""
    if step != 1:
        raise NotConvertible(f"slice_scatter with step {step}")
    axis = norm_dim(dim, x.type.rank)
    n = x.type.shape[axis]
    start = 0 if start is None else start
    stop = norm(start + src.type.shape[axis])  # torch checks src fits exactly
    parts = []
    if not (is_static(start) and start == 0):
        parts.append(cx.apply(sh.Slice(axes=(axis,), starts=(0,), ends=(start,), steps=(1,)), x))
    parts.append(cx.cast(src, x.type.dtype))
    if not dim_eq(stop, n):
        parts.append(
            cx.apply(sh.Slice(axes=(axis,), starts=(stop,), ends=(sh.HUGE,), steps=(1,)), x)
        )
    return parts[0] if len(parts) == 1 else cx.apply(sh.Concat(axis=axis), *parts)


def select_scatter(cx: Builder, x: Value, src: Value, dim: int, index: Any, **_: Any) -> Value:
    axis = norm_dim(dim, x.type.rank)
    if is_static(index) and index < 0:
        index = norm(index + x.type.shape[axis])
    src = cx.apply(sh.Unsqueeze(axes=(axis,)), src)
    return slice_scatter(cx, x, src, axis, index, norm(index + 1))


def pixel_shuffle(cx: Builder, x: Value, upscale_factor: int, **_: Any) -> Value:
    if x.type.rank != 4:
        raise NotConvertible(f"pixel_shuffle of rank {x.type.rank}")
    return cx.apply(misc.DepthToSpace(blocksize=int(upscale_factor), mode="CRD"), x)


def pixel_unshuffle(cx: Builder, x: Value, downscale_factor: int, **_: Any) -> Value:
    """[N, C, H, W] -> [N, C*b*b, H/b, W/b], channel c*b*b + b*i + j from (h*b + i, w*b + j)."""
    b = int(downscale_factor)
    if x.type.rank != 4:
        raise NotConvertible(f"pixel_unshuffle of rank {x.type.rank}")
    n, c, h, w = x.type.shape
    oh, ow = cx.out.shape[2], cx.out.shape[3]
    y = cx.apply(sh.Reshape(shape=(n, c, oh, b, ow, b)), x)
    y = cx.apply(sh.Transpose(perm=(0, 1, 3, 5, 2, 4)), y)
    return cx.apply(sh.Reshape(shape=cx.out.shape), y)


def copy(cx: Builder, x: Value, src: Value, **_: Any) -> Value:
    y = cx.cast(src, x.type.dtype)
    return y if shape_eq(y.type.shape, x.type.shape) else cx.apply(sh.Expand(shape=x.type.shape), y)


# -- indexing --------------------------------------------------------------------------------


def index_select(cx: Builder, x: Value, dim: int, index: Value, **_: Any) -> Value:
    return cx.apply(ix.Gather(axis=norm_dim(dim, x.type.rank)), x, _index(cx, index))


def gather(cx: Builder, x: Value, dim: int, index: Value, **_: Any) -> Value:
    return cx.apply(ix.GatherElements(axis=norm_dim(dim, x.type.rank)), x, _index(cx, index))


def index_tensor(cx: Builder, x: Value, indices: list, **_: Any) -> Value:
    """x[i0, i1, ...] with index tensors (None = full slice), torch advanced indexing."""
    pos = [i for i, t in enumerate(indices) if t is not None]
    idx = [_index(cx, indices[i]) for i in pos]
    if len(pos) == 1:
        return cx.apply(ix.Gather(axis=pos[0]), x, idx[0])
    return _gather_nd(cx, x, pos, idx)


def _gather_nd(cx: Builder, x: Value, pos: list[int], idx: list[Value]) -> Value:
    """Several index tensors: move the indexed axes first, gather_nd, and put the broadcast
    index dims where torch does (in place of adjacent indexed axes, else in front)."""
    r, m = x.type.rank, len(pos)
    out = cx.out.shape
    nb = len(out) - (r - m)
    adjacent = pos == list(range(pos[0], pos[0] + m))
    lead = pos[0] if adjacent else 0
    stacked = _stack_indices(cx, idx, out[lead : lead + nb])
    perm = tuple(pos + [a for a in range(r) if a not in pos])
    xt = x if perm == tuple(range(r)) else cx.apply(sh.Transpose(perm=perm), x)
    y = cx.apply(ix.GatherNd(batch_dims=0), xt, stacked)
    if lead:
        lead_axes = tuple(range(nb, nb + lead))
        y = cx.apply(
            sh.Transpose(perm=lead_axes + tuple(range(nb)) + tuple(range(nb + lead, y.type.rank))),
            y,
        )
    return y


def _stack_indices(cx: Builder, idx: list[Value], bshape: tuple) -> Value:
    parts = []
    for t in idx:
        if not shape_eq(t.type.shape, bshape):
            t = cx.apply(sh.Expand(shape=bshape), t)
        parts.append(cx.apply(sh.Unsqueeze(axes=(-1,)), t))
    return parts[0] if len(parts) == 1 else cx.apply(sh.Concat(axis=-1), *parts)


def index_put(
    cx: Builder, x: Value, indices: list, values: Value, accumulate: bool = False, **_: Any
) -> Value:
    pos = [i for i, t in enumerate(indices) if t is not None]
    if pos != list(range(len(pos))):
        raise NotConvertible("index_put with indices not on the leading dims")
    idx = [_index(cx, indices[i]) for i in pos]
    bshape = idx[0].type.shape
    for t in idx[1:]:
        if not shape_eq(t.type.shape, bshape):
            raise NotConvertible("index_put with broadcast index tensors")
    stacked = _stack_indices(cx, idx, bshape)
    want = tuple(bshape) + x.type.shape[len(pos) :]
    v = cx.cast(values, x.type.dtype)
    if not shape_eq(v.type.shape, want):
        v = cx.apply(sh.Expand(shape=want), v)
    op = ix.ScatterNd(reduction="add" if accumulate else "none")
    return cx.apply(op, x, stacked, v)


SCATTER_REDUCE = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min"}


def scatter(
    cx: Builder,
    x: Value,
    dim: int,
    index: Value,
    src: Any = None,
    value: Any = None,
    reduce: str | None = None,
    include_self: bool = True,
    **_: Any,
) -> Value:
    axis = norm_dim(dim, x.type.rank)
    index = _index(cx, index)
    upd = src if src is not None else value
    if isinstance(upd, Value):
        upd = cx.cast(upd, x.type.dtype)
        if not shape_eq(upd.type.shape, index.type.shape):  # torch reads src's leading part
            r = index.type.rank
            upd = cx.apply(
                sh.Slice(
                    axes=tuple(range(r)), starts=(0,) * r, ends=index.type.shape, steps=(1,) * r
                ),
                upd,
            )
    else:
        upd = cx.apply(sh.Expand(shape=index.type.shape), cx.const(upd, x.type.dtype))
    reduction = "none"
    if cx.node.target == aten.scatter_add.default:
        reduction = "add"
    elif reduce is not None:
        if not include_self or reduce not in SCATTER_REDUCE:
            raise NotConvertible(f"scatter_reduce {reduce!r} include_self={include_self}")
        reduction = SCATTER_REDUCE[reduce]
    return cx.apply(ix.ScatterElements(axis=axis, reduction=reduction), x, index, upd)


def one_hot(cx: Builder, x: Value, num_classes: int = -1, **_: Any) -> Value:
    if num_classes < 0:
        raise NotConvertible("one_hot without num_classes (data-dependent size)")
    op = ix.OneHot(depth=int(num_classes), axis=-1, dtype=cx.out.dtype)
    return cx.apply(op, _index(cx, x))


def _index(cx: Builder, t: Value) -> Value:
    if t.type.dtype == DType.bool:
        raise NotConvertible("boolean mask indexing (data-dependent shape)")
    return t if t.type.dtype in (DType.i32, DType.i64) else cx.cast(t, DType.i64)


# -- creation --------------------------------------------------------------------------------

FILL_VALUES = {
    aten.zeros.default: 0.0,
    aten.zeros_like.default: 0.0,
    aten.new_zeros.default: 0.0,
    aten.ones.default: 1.0,
    aten.ones_like.default: 1.0,
    aten.new_ones.default: 1.0,
    aten.empty.memory_format: 0.0,
    aten.empty_like.default: 0.0,
    aten.new_empty.default: 0.0,
    aten.empty_strided.default: 0.0,
    aten.empty_permuted.default: 0.0,
}


def fill(cx: Builder, fill_value: Any = None, value: Any = None, **_: Any) -> Value:
    out = cx.out
    value = FILL_VALUES.get(cx.node.target, fill_value if value is None else value)
    if isinstance(value, (bool, int, float)):
        return cx.apply(sh.Full(shape=out.shape, value=float(value), dtype=out.dtype))
    if isinstance(value, Value):  # full_like with a 0-d tensor value
        return cx.apply(sh.Expand(shape=out.shape), cx.cast(value, out.dtype))
    return cx.apply(sh.Expand(shape=out.shape), cx.const(value, out.dtype))


def scalar_tensor(cx: Builder, s: Any, **_: Any) -> Value:
    return cx.const(s, cx.out.dtype)


def arange(cx: Builder, start: Any = 0, end: Any = None, step: Any = 1, **_: Any) -> Value:
    vals = [v if isinstance(v, float) else cx.dim(v) for v in (start, end, step)]
    return cx.apply(sh.Range(start=vals[0], limit=vals[1], delta=vals[2], dtype=cx.out.dtype))


def masked_fill(cx: Builder, x: Value, mask: Value, value: Any, **_: Any) -> Value:
    dt = cx.out.dtype
    return cx.apply(ew.Where(), cx.cast(mask, DType.bool), cx.tensor(value, dt), cx.cast(x, dt))


SHAPE_CONVERTERS: dict[Any, Any] = {
    aten.view.default: reshape,
    aten._unsafe_view.default: reshape,
    aten.reshape.default: reshape,
    aten.view_copy.default: reshape,
    aten.flatten.using_ints: reshape,
    aten.unflatten.int: reshape,
    aten.permute.default: permute,
    aten.transpose.int: transpose,
    aten.t.default: transpose,
    aten.expand.default: expand,
    aten.expand_copy.default: expand,
    aten.unsqueeze.default: unsqueeze,
    aten.squeeze.dim: squeeze,
    aten.squeeze.dims: squeeze,
    aten.squeeze.default: squeeze,
    aten.cat.default: cat,
    aten.stack.default: stack,
    aten.split.Tensor: split,
    aten.split_with_sizes.default: split,
    aten.unbind.int: unbind,
    aten.slice.Tensor: slice_,
    aten.select.int: select,
    aten.narrow.default: narrow,
    aten.flip.default: flip,
    aten.roll.default: roll,
    aten.repeat.default: repeat,
    aten.constant_pad_nd.default: pad,
    aten.reflection_pad1d.default: pad,
    aten.reflection_pad2d.default: pad,
    aten.reflection_pad3d.default: pad,
    aten.replication_pad1d.default: pad,
    aten.replication_pad2d.default: pad,
    aten.replication_pad3d.default: pad,
    aten.copy.default: copy,
    aten.slice_scatter.default: slice_scatter,
    aten.select_scatter.default: select_scatter,
    aten.diff.default: diff,
    aten.pixel_shuffle.default: pixel_shuffle,
    aten.pixel_unshuffle.default: pixel_unshuffle,
    aten.chunk.default: split,
    aten.expand_as.default: expand,
    aten.index_select.default: index_select,
    aten.gather.default: gather,
    aten.index.Tensor: index_tensor,
    aten.index_put.default: index_put,
    aten.scatter.src: scatter,
    aten.scatter.value: scatter,
    aten.scatter_add.default: scatter,
    aten.scatter_reduce.two: scatter,
    aten.one_hot.default: one_hot,
    **{k: fill for k in FILL_VALUES},
    aten.full.default: fill,
    aten.fill.Scalar: fill,
    aten.full_like.default: fill,
    aten.new_full.default: fill,
    aten.scalar_tensor.default: scalar_tensor,
    aten.arange.default: arange,
    aten.arange.start: arange,
    aten.arange.start_step: arange,
    aten.masked_fill.Scalar: masked_fill,
    aten.masked_fill.Tensor: masked_fill,
}
