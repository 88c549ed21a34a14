"""ATen converters for nn ops (part of the table in `torch_ops`): normalizations, softmax,
attention, embedding, convolution, pooling, resize, trilu and topk. These ops are kept out of
torch's decomposition table so they arrive whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..ir.dtypes import DType
from ..ir.graph import Value
from ..ir.op import Op
from ..ir.ops import conv as cv
from ..ir.ops import misc, nn
from ..ir.ops import shape as sh
from .torch_build import NotConvertible
from .torch_ops_shape import norm_dim

if TYPE_CHECKING:
    from .torch_build import Builder

aten = torch.ops.aten

# -- nn --------------------------------------------------------------------------------------


def layer_norm(
    cx: Builder,
    input: Value,
    normalized_shape: Any,
    weight: Value | None = None,
    bias: Value | None = None,
    eps: float = 1e-5,
    **_: Any,
) -> Any:
    op = nn.LayerNorm(axis=-len(normalized_shape), eps=float(eps))
    if weight is None and bias is not None:
        shape = input.type.shape[input.type.rank - len(normalized_shape) :]
        weight = cx.apply(sh.Full(shape=shape, value=1.0, dtype=input.type.dtype))
    y = cx.apply(op, input, *[v for v in (weight, bias) if v is not None])
    return (y, None, None) if cx.node.target == aten.native_layer_norm.default else y


def rms_norm(
    cx: Builder,
    input: Value,
    normalized_shape: Any,
    weight: Value | None = None,
    eps: float | None = None,
    **_: Any,
) -> Value:
    if eps is None:
        eps = torch.finfo(
            torch.float32 if input.type.dtype == DType.bf16 else _torch_float(input.type.dtype)
        ).eps
    op = nn.RmsNorm(axis=-len(normalized_shape), eps=float(eps))
    return cx.apply(op, input, *([weight] if weight is not None else []))


def group_norm(
    cx: Builder,
    input: Value,
    weight: Value | None = None,
    bias: Value | None = None,
    num_groups: int | None = None,
    group: int | None = None,
    eps: float = 1e-5,
    **_: Any,
) -> Any:
    c = input.type.shape[1]
    w, b = _affine(cx, weight, bias, c, input.type.dtype)
    y = cx.apply(nn.GroupNorm(groups=int(num_groups or group), eps=float(eps)), input, w, b)
    return (y, None, None) if cx.node.target == aten.native_group_norm.default else y


def batch_norm(
    cx: Builder,
    input: Value,
    weight: Value | None,
    bias: Value | None,
    running_mean: Value | None,
    running_var: Value | None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    **_: Any,
) -> Any:
    if training or running_mean is None or running_var is None:
        raise NotConvertible("batch norm with batch statistics (training mode)")
    w, b = _affine(cx, weight, bias, input.type.shape[1], input.type.dtype)
    y = cx.apply(nn.BatchNorm(eps=float(eps)), input, w, b, running_mean, running_var)
    return y if cx.node.target == aten.batch_norm.default else (y, None, None)


def instance_norm(
    cx: Builder,
    input: Value,
    weight: Value | None = None,
    bias: Value | None = None,
    use_input_stats: bool = True,
    eps: float = 1e-5,
    **_: Any,
) -> Value:
    if not use_input_stats:
        raise NotConvertible("instance_norm with running statistics")
    w, b = _affine(cx, weight, bias, input.type.shape[1], input.type.dtype)
    return cx.apply(nn.InstanceNorm(eps=float(eps)), input, w, b)


def softmax(cx: Builder, x: Value, dim: int, **_: Any) -> Value:
    log = cx.node.target in (aten._log_softmax.default, aten.log_softmax.int)
    x = cx.cast(x, cx.out.dtype)
    cls = nn.LogSoftmax if log else nn.Softmax
    return cx.apply(cls(axis=norm_dim(dim, x.type.rank)), x)


def sdpa(
    cx: Builder,
    query: Value,
    key: Value,
    value: Value,
    attn_mask: Value | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    **_: Any,
) -> Value:
    if dropout_p:
        raise NotConvertible(f"attention dropout p={dropout_p}")
    op = nn.Attention(scale=None if scale is None else float(scale), causal=bool(is_causal))
    if attn_mask is None:
        return cx.apply(op, query, key, value)
    if attn_mask.type.dtype != DType.bool:
        attn_mask = cx.cast(attn_mask, query.type.dtype)
    return cx.apply(op, query, key, value, attn_mask)


def embedding(cx: Builder, weight: Value, indices: Value, **_: Any) -> Value:
    return cx.apply(nn.Embedding(), weight, indices)


def convolution(
    cx: Builder,
    input: Value,
    weight: Value,
    bias: Value | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
    **_: Any,
) -> Value:
    nd = input.type.rank - 2
    pads = _spatial(padding, nd)
    kw = dict(
        stride=_spatial(stride, nd),
        padding=pads + pads,
        dilation=_spatial(dilation, nd),
        groups=int(groups),
    )
    if transposed:
        op: Op = cv.ConvTranspose(output_padding=_spatial(output_padding, nd), **kw)
    else:
        op = cv.Conv(**kw)
    return cx.apply(op, input, weight, *([bias] if bias is not None else []))


def conv_nd(
    cx: Builder,
    input: Value,
    weight: Value,
    bias: Value | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    output_padding: Any = 0,
    **_: Any,
) -> Value:
    """conv1d/2d/3d and conv_transpose1d/2d/3d (padding may be "same" or "valid")."""
    nd = input.type.rank - 2
    dil = _spatial(dilation, nd)
    if padding == "valid":
        padding = 0
    elif padding == "same":
        k = weight.type.shape[2:]
        if not all(isinstance(d, int) for d in k):
            raise NotConvertible("padding='same' with a symbolic kernel")
        total = [d * (kk - 1) for d, kk in zip(dil, k)]
        begins = tuple(t // 2 for t in total)
        op = cv.Conv(
            stride=_spatial(stride, nd),
            dilation=dil,
            groups=int(groups),
            padding=begins + tuple(t - b for t, b in zip(total, begins)),
        )
        return cx.apply(op, input, weight, *([bias] if bias is not None else []))
    transposed = "transpose" in str(cx.node.target)
    return convolution(
        cx, input, weight, bias, stride, padding, dilation, transposed, output_padding, groups
    )


def max_pool(
    cx: Builder,
    x: Value,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    **_: Any,
) -> Any:
    nd = len(_spatial(kernel_size, None))
    kernel = _spatial(kernel_size, nd)
    pads = _spatial(padding, nd)
    op = cv.MaxPool(
        kernel=kernel,
        stride=_spatial(stride, nd) or kernel,
        padding=pads + pads,
        dilation=_spatial(dilation, nd),
        ceil_mode=bool(ceil_mode),
    )
    y = cx.apply(op, x)
    return (y, None) if "with_indices" in str(cx.node.target) else y


def avg_pool(
    cx: Builder,
    x: Value,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Any = None,
    **_: Any,
) -> Value:
    if divisor_override is not None:
        raise NotConvertible("avg_pool with divisor_override")
    nd = len(_spatial(kernel_size, None))
    kernel = _spatial(kernel_size, nd)
    pads = _spatial(padding, nd)
    op = cv.AvgPool(
        kernel=kernel,
        stride=_spatial(stride, nd) or kernel,
        padding=pads + pads,
        ceil_mode=bool(ceil_mode),
        count_include_pad=bool(count_include_pad),
    )
    return cx.apply(op, x)


def adaptive_pool(cx: Builder, x: Value, output_size: Any, **_: Any) -> Any:
    size = tuple(int(s) for s in output_size)
    if "max" in str(cx.node.target):
        return cx.apply(cv.AdaptiveMaxPool(output_size=size), x), None
    return cx.apply(cv.AdaptiveAvgPool(output_size=size), x)


def upsample(
    cx: Builder,
    input: Value,
    output_size: Any = None,
    align_corners: bool = False,
    scale_factors: Any = None,
    scales: Any = None,
    **_: Any,
) -> Value:
    out = cx.out.shape
    nd = input.type.rank - 2
    sf = scale_factors
    scale_attr: tuple[float, ...] = ()
    if sf and not output_size:
        scale_attr = (1.0, 1.0) + tuple(float(s) for s in _spatial(sf, nd, float))
    if "nearest" in str(cx.node.target):
        op = misc.Resize(
            sizes=out,
            scales=scale_attr,
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    else:
        ctm = "align_corners" if align_corners else "pytorch_half_pixel"
        op = misc.Resize(
            sizes=out,
            scales=() if align_corners else scale_attr,
            mode="linear",
            coordinate_transformation_mode=ctm,
        )
    return cx.apply(op, input)


def trilu(cx: Builder, x: Value, diagonal: int = 0, **_: Any) -> Value:
    return cx.apply(misc.Trilu(upper=cx.node.target == aten.triu.default, k=int(diagonal)), x)


def topk(
    cx: Builder,
    x: Value,
    k: Any,
    dim: int = -1,
    largest: bool = True,
    sorted: bool = True,
    **_: Any,
) -> tuple:
    op = misc.Topk(k=cx.dim(k), axis=norm_dim(dim, x.type.rank), largest=bool(largest), sorted=True)
    return cx.apply(op, x)


# -- helpers ---------------------------------------------------------------------------------


def _affine(
    cx: Builder, w: Value | None, b: Value | None, c: Any, dt: DType
) -> tuple[Value, Value]:
    w = w if w is not None else cx.apply(sh.Full(shape=(c,), value=1.0, dtype=dt))
    b = b if b is not None else cx.apply(sh.Full(shape=(c,), value=0.0, dtype=dt))
    return w, b


def _spatial(v: Any, nd: int | None, kind: type = int) -> tuple:
    """A per-spatial-dim tuple from an int or a list (one value repeats; None nd: as is)."""
    if v is None:
        return ()
    vals = [kind(x) for x in v] if isinstance(v, (list, tuple)) else [kind(v)]
    if nd is None or len(vals) == nd or not vals:
        return tuple(vals)
    if len(vals) == 1:
        return tuple(vals) * nd
    raise NotConvertible(f"{len(vals)} values for {nd} spatial dims")


def _torch_float(dt: DType) -> torch.dtype:
    return {DType.f64: torch.float64, DType.f16: torch.float16}.get(dt, torch.float32)


NN_CONVERTERS: dict[Any, Any] = {
    aten.layer_norm.default: layer_norm,
    aten.native_layer_norm.default: layer_norm,
    aten.rms_norm.default: rms_norm,
    aten.group_norm.default: group_norm,
    aten.native_group_norm.default: group_norm,
    aten.batch_norm.default: batch_norm,
    aten._native_batch_norm_legit_no_training.default: batch_norm,
    aten.native_batch_norm.default: batch_norm,
    aten.instance_norm.default: instance_norm,
    aten._softmax.default: softmax,
    aten.softmax.int: softmax,
    aten._log_softmax.default: softmax,
    aten.log_softmax.int: softmax,
    aten.scaled_dot_product_attention.default: sdpa,
    aten.embedding.default: embedding,
    aten.convolution.default: convolution,
    aten.conv1d.default: conv_nd,
    aten.conv2d.default: conv_nd,
    aten.conv3d.default: conv_nd,
    aten.conv1d.padding: conv_nd,
    aten.conv2d.padding: conv_nd,
    aten.conv3d.padding: conv_nd,
    aten.conv_transpose1d.default: conv_nd,
    aten.conv_transpose2d.input: conv_nd,
    aten.conv_transpose3d.input: conv_nd,
    aten.max_pool1d.default: max_pool,
    aten.max_pool2d.default: max_pool,
    aten.max_pool3d.default: max_pool,
    aten.max_pool2d_with_indices.default: max_pool,
    aten.max_pool3d_with_indices.default: max_pool,
    aten.avg_pool1d.default: avg_pool,
    aten.avg_pool2d.default: avg_pool,
    aten.avg_pool3d.default: avg_pool,
    aten.adaptive_avg_pool1d.default: adaptive_pool,
    aten.adaptive_avg_pool2d.default: adaptive_pool,
    aten._adaptive_avg_pool2d.default: adaptive_pool,
    aten._adaptive_avg_pool3d.default: adaptive_pool,
    aten.adaptive_max_pool2d.default: adaptive_pool,
    aten.upsample_nearest2d.vec: upsample,
    aten.upsample_bilinear2d.vec: upsample,
    aten.tril.default: trilu,
    aten.triu.default: trilu,
    aten.topk.default: topk,
}
