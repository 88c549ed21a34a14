"""The ATen converter table: ATen overload -> converter. Elementwise ops, reductions and linear
algebra are here; nn ops in `torch_ops_nn`; shapes, indexing and creation in `torch_ops_shape`.

A converter is `fn(cx, **schema_args) -> Value | tuple | None`: `cx` is the `Builder`, the
keyword arguments are the ATen schema's (with `self` passed as `x`). Families of one-to-one
ops are tables of op instances served by one converter each.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ..ir.dtypes import DType
from ..ir.graph import Value
from ..ir.op import Op
from ..ir.ops import activation as act
from ..ir.ops import elementwise as ew
from ..ir.ops import linalg as la
from ..ir.ops import reduce as rd
from ..ir.ops import shape as sh
from ..ir.ops import unary as un
from ..ir.shapes import norm
from .torch_build import NotConvertible
from .torch_ops_nn import NN_CONVERTERS
from .torch_ops_shape import SHAPE_CONVERTERS, axes_of, norm_dim

if TYPE_CHECKING:
    from .torch_build import Builder

aten = torch.ops.aten

# -- elementwise -----------------------------------------------------------------------------

UNARY: dict[Any, Op] = {
    aten.abs.default: un.Abs(),
    aten.neg.default: un.Neg(),
    aten.exp.default: un.Exp(),
    aten.log.default: un.Log(),
    aten.log1p.default: un.Log1p(),
    aten.expm1.default: un.Expm1(),
    aten.sqrt.default: un.Sqrt(),
    aten.rsqrt.default: un.Rsqrt(),
    aten.reciprocal.default: un.Reciprocal(),
    aten.sin.default: un.Sin(),
    aten.cos.default: un.Cos(),
    aten.tan.default: un.Tan(),
    aten.asin.default: un.Asin(),
    aten.acos.default: un.Acos(),
    aten.atan.default: un.Atan(),
    aten.sinh.default: un.Sinh(),
    aten.cosh.default: un.Cosh(),
    aten.tanh.default: un.Tanh(),
    aten.asinh.default: un.Asinh(),
    aten.acosh.default: un.Acosh(),
    aten.atanh.default: un.Atanh(),
    aten.erf.default: un.Erf(),
    aten.floor.default: un.Floor(),
    aten.ceil.default: un.Ceil(),
    aten.round.default: un.Round(),
    aten.sign.default: un.Sign(),
    aten.sigmoid.default: act.Sigmoid(),
    aten.relu.default: act.Relu(),
    aten.silu.default: act.Silu(),
    aten.mish.default: act.Mish(),
    aten.hardswish.default: act.Hardswish(),
    aten.hardsigmoid.default: act.Hardsigmoid(),
    aten.selu.default: act.Selu(),
    aten.isnan.default: ew.Isnan(),
    aten.isinf.default: ew.Isinf(),
    aten.logical_not.default: ew.LogicalNot(),
    aten.detach.default: ew.Identity(),
    aten.detach_.default: ew.Identity(),
}

BINARY: dict[Any, Op] = {
    aten.add.Tensor: ew.Add(),
    aten.add.Scalar: ew.Add(),
    aten.sub.Tensor: ew.Sub(),
    aten.sub.Scalar: ew.Sub(),
    aten.mul.Tensor: ew.Mul(),
    aten.mul.Scalar: ew.Mul(),
    aten.div.Tensor: ew.Div(),
    aten.div.Scalar: ew.Div(),
    aten.maximum.default: ew.Maximum(),
    aten.minimum.default: ew.Minimum(),
    aten.remainder.Tensor: ew.Mod(),
    aten.remainder.Scalar: ew.Mod(),
    aten.fmod.Tensor: ew.Mod(fmod=True),
    aten.fmod.Scalar: ew.Mod(fmod=True),
    aten.bitwise_and.Tensor: ew.BitwiseAnd(),
    aten.bitwise_and.Scalar: ew.BitwiseAnd(),
    aten.bitwise_or.Tensor: ew.BitwiseOr(),
    aten.bitwise_or.Scalar: ew.BitwiseOr(),
    aten.bitwise_xor.Tensor: ew.BitwiseXor(),
    aten.bitwise_xor.Scalar: ew.BitwiseXor(),
    aten.__and__.Tensor: ew.BitwiseAnd(),
    aten.__or__.Tensor: ew.BitwiseOr(),
    aten.__xor__.Tensor: ew.BitwiseXor(),
}
LOGICAL: dict[Any, Op] = {
    aten.logical_and.default: ew.LogicalAnd(),
    aten.logical_or.default: ew.LogicalOr(),
    aten.logical_xor.default: ew.LogicalXor(),
}
COMPARE: dict[Any, Op] = {
    aten.eq.Tensor: ew.Equal(),
    aten.eq.Scalar: ew.Equal(),
    aten.ne.Tensor: ew.NotEqual(),
    aten.ne.Scalar: ew.NotEqual(),
    aten.lt.Tensor: ew.Less(),
    aten.lt.Scalar: ew.Less(),
    aten.le.Tensor: ew.LessEqual(),
    aten.le.Scalar: ew.LessEqual(),
    aten.gt.Tensor: ew.Greater(),
    aten.gt.Scalar: ew.Greater(),
    aten.ge.Tensor: ew.GreaterEqual(),
    aten.ge.Scalar: ew.GreaterEqual(),
}


def unary(cx: Builder, x: Value, **_: Any) -> Value:
    op = UNARY[cx.node.target]
    if isinstance(op, ew.LogicalNot):
        x = cx.cast(x, DType.bool)
    elif type(op).out_dtype is None:
        x = cx.cast(x, cx.out.dtype)  # e.g. exp of an integer tensor computes in float
    return cx.apply(op, x)


def binary(cx: Builder, x: Any, other: Any, alpha: Any = 1, **_: Any) -> Value:
    op = BINARY[cx.node.target]
    dt = cx.out.dtype
    if dt == DType.bool and isinstance(op, (ew.BitwiseAnd, ew.BitwiseOr, ew.BitwiseXor)):
        op = {
            ew.BitwiseAnd: ew.LogicalAnd(),
            ew.BitwiseOr: ew.LogicalOr(),
            ew.BitwiseXor: ew.LogicalXor(),
        }[type(op)]
    a, b = cx.tensor(x, dt), cx.tensor(other, dt)
    if alpha != 1:
        b = cx.apply(ew.Mul(), b, cx.const(alpha, dt))
    return cx.apply(op, a, b)


def rsub(cx: Builder, x: Any, other: Any, alpha: Any = 1, **_: Any) -> Value:
    dt = cx.out.dtype
    a, b = cx.tensor(x, dt), cx.tensor(other, dt)
    if alpha != 1:
        a = cx.apply(ew.Mul(), a, cx.const(alpha, dt))
    return cx.apply(ew.Sub(), b, a)


def logical(cx: Builder, x: Value, other: Value, **_: Any) -> Value:
    return cx.apply(LOGICAL[cx.node.target], cx.cast(x, DType.bool), cx.cast(other, DType.bool))


def compare(cx: Builder, x: Any, other: Any, **_: Any) -> Value:
    dt = cx.promote(x, other)
    return cx.apply(COMPARE[cx.node.target], cx.tensor(x, dt), cx.tensor(other, dt))


def bitwise_not(cx: Builder, x: Value, **_: Any) -> Value:
    if x.type.dtype != DType.bool:
        raise NotConvertible("bitwise_not of integers")
    return cx.apply(ew.LogicalNot(), x)


def div_mode(cx: Builder, x: Any, other: Any, rounding_mode: str | None = None, **_: Any) -> Value:
    dt = cx.out.dtype
    a, b = cx.tensor(x, dt), cx.tensor(other, dt)
    if rounding_mode is None or (rounding_mode == "trunc" and dt.is_int):
        return cx.apply(ew.Div(), a, b)  # integer div truncates toward zero
    if rounding_mode == "floor" and dt.is_int:
        return floor_int_div(cx, a, b)
    q = cx.apply(ew.Div(), a, b)
    return cx.apply(un.Floor(), q) if rounding_mode == "floor" else trunc(cx, q)


def floor_divide(cx: Builder, x: Any, other: Any, **_: Any) -> Value:
    return div_mode(cx, x, other, "floor")


def floor_int_div(cx: Builder, a: Value, b: Value) -> Value:
    """floor(a / b) for integers: (a - a mod b) / b is exact (mod takes the divisor's sign)."""
    rem = cx.apply(ew.Mod(), a, b)
    return cx.apply(ew.Div(), cx.apply(ew.Sub(), a, rem), b)


def trunc(cx: Builder, x: Value, **_: Any) -> Value:
    neg = cx.apply(ew.Less(), x, cx.const(0.0, x.type.dtype))
    return cx.apply(ew.Where(), neg, cx.apply(un.Ceil(), x), cx.apply(un.Floor(), x))


def log_base(cx: Builder, x: Value, **_: Any) -> Value:
    base = 2.0 if cx.node.target == aten.log2.default else 10.0
    x = cx.cast(x, cx.out.dtype)
    return cx.apply(ew.Mul(), cx.apply(un.Log(), x), cx.const(1 / math.log(base), x.type.dtype))


def power(cx: Builder, x: Any, exponent: Any, **_: Any) -> Value:
    dt = cx.out.dtype
    work = dt if dt.is_float else DType.f64  # integer powers: exact in f64, cast back
    y = cx.apply(ew.Pow(), cx.tensor(x, work), cx.tensor(exponent, work))
    return cx.cast(y, dt)


def where(cx: Builder, condition: Value, x: Any, other: Any, **_: Any) -> Value:
    dt = cx.out.dtype
    cond = cx.cast(condition, DType.bool)
    return cx.apply(ew.Where(), cond, cx.tensor(x, dt), cx.tensor(other, dt))


def clamp(cx: Builder, x: Value, min: Any = None, max: Any = None, **_: Any) -> Value:
    dt = cx.out.dtype
    x = cx.cast(x, dt)
    if isinstance(min, Value) or isinstance(max, Value):
        if min is not None:
            x = cx.apply(ew.Maximum(), x, cx.tensor(min, dt))
        if max is not None:
            x = cx.apply(ew.Minimum(), x, cx.tensor(max, dt))
        return x
    return cx.apply(ew.Clip(min=_num(min), max=_num(max)), x)


def clamp_min(cx: Builder, x: Value, min: Any, **_: Any) -> Value:
    return clamp(cx, x, min=min)


def clamp_max(cx: Builder, x: Value, max: Any, **_: Any) -> Value:
    return clamp(cx, x, max=max)


def hardtanh(cx: Builder, x: Value, min_val: Any = -1, max_val: Any = 1, **_: Any) -> Value:
    return clamp(cx, x, min=min_val, max=max_val)


def gelu(cx: Builder, x: Value, approximate: str = "none", **_: Any) -> Value:
    return cx.apply(act.Gelu(approximate=approximate), x)


def leaky_relu(cx: Builder, x: Value, negative_slope: Any = 0.01, **_: Any) -> Value:
    return cx.apply(act.LeakyRelu(alpha=float(negative_slope)), x)


def elu(
    cx: Builder, x: Value, alpha: Any = 1, scale: Any = 1, input_scale: Any = 1, **_: Any
) -> Value:
    if scale != 1 or input_scale != 1:
        raise NotConvertible(f"elu with scale={scale}, input_scale={input_scale}")
    return cx.apply(act.Elu(alpha=float(alpha)), x)


def celu(cx: Builder, x: Value, alpha: Any = 1.0, **_: Any) -> Value:
    return cx.apply(act.Celu(alpha=float(alpha)), x)


def softplus(cx: Builder, x: Value, beta: Any = 1, threshold: Any = 20, **_: Any) -> Value:
    return cx.apply(act.Softplus(beta=float(beta), threshold=float(threshold)), x)


def prelu(cx: Builder, x: Value, weight: Value, **_: Any) -> Value:
    if x.type.rank >= 2 and weight.type.rank == 1:  # one slope per channel (dim 1)
        shape = (weight.type.shape[0],) + (1,) * (x.type.rank - 2)
        weight = cx.apply(sh.Reshape(shape=shape), weight)
    return cx.apply(act.Prelu(), x, weight)


def to_copy(cx: Builder, x: Value, **_: Any) -> Value:
    return cx.cast(x, cx.out.dtype)


def identity(cx: Builder, x: Value, **_: Any) -> Value:
    return x


def dropout(cx: Builder, input: Value, p: float = 0.5, train: Any = False, **_: Any) -> Any:
    if train:
        raise NotConvertible("dropout in training mode")
    return (input, None) if cx.node.target == aten.native_dropout.default else input


# -- reductions ------------------------------------------------------------------------------

REDUCE: dict[Any, type[rd.Reduce]] = {
    aten.sum.dim_IntList: rd.ReduceSum,
    aten.sum.default: rd.ReduceSum,
    aten.mean.dim: rd.ReduceMean,
    aten.mean.default: rd.ReduceMean,
    aten.amax.default: rd.ReduceMax,
    aten.amin.default: rd.ReduceMin,
    aten.max.default: rd.ReduceMax,
    aten.min.default: rd.ReduceMin,
    aten.prod.dim_int: rd.ReduceProd,
    aten.prod.default: rd.ReduceProd,
    aten.logsumexp.default: rd.ReduceLogSumExp,
}


def reduce(cx: Builder, x: Value, dim: Any = None, keepdim: bool = False, **_: Any) -> Value:
    x = cx.cast(x, cx.out.dtype)
    if x.type.rank == 0:
        return x
    op = REDUCE[cx.node.target](axes=axes_of(dim, x.type.rank), keepdims=bool(keepdim))
    return cx.apply(op, x)


def any_all(cx: Builder, x: Value, dim: Any = None, keepdim: bool = False, **_: Any) -> Value:
    is_any = cx.node.target in (aten.any.default, aten.any.dim, aten.any.dims)
    y = cx.cast(cx.cast(x, DType.bool), DType.i32)
    if y.type.rank:
        cls = rd.ReduceMax if is_any else rd.ReduceMin
        y = cx.apply(cls(axes=axes_of(dim, y.type.rank), keepdims=bool(keepdim)), y)
    return cx.cast(cx.cast(y, DType.bool), cx.out.dtype)


def max_min_dim(cx: Builder, x: Value, dim: int, keepdim: bool = False, **_: Any) -> tuple:
    is_max = cx.node.target == aten.max.dim
    axis = norm_dim(dim, x.type.rank)
    cls, arg = (rd.ReduceMax, rd.Argmax) if is_max else (rd.ReduceMin, rd.Argmin)
    values = cx.apply(cls(axes=(axis,), keepdims=bool(keepdim)), x)
    return values, cx.apply(arg(axis=axis, keepdims=bool(keepdim)), x)


def arg_reduce(cx: Builder, x: Value, dim: Any = None, keepdim: bool = False, **_: Any) -> Value:
    cls = rd.Argmax if cx.node.target == aten.argmax.default else rd.Argmin
    if dim is None:
        flat = cx.apply(sh.Reshape(shape=(x.type.numel,)), x)
        y = cx.apply(cls(axis=0), flat)
        return cx.apply(sh.Reshape(shape=(1,) * x.type.rank), y) if keepdim else y
    return cx.apply(cls(axis=norm_dim(dim, x.type.rank), keepdims=bool(keepdim)), x)


def var(
    cx: Builder,
    x: Value,
    dim: Any = None,
    correction: Any = None,
    keepdim: bool = False,
    unbiased: bool = True,
    **_: Any,
) -> Value:
    """var / std over `dim` with Bessel's `correction` (var.dim / std.dim: `unbiased`)."""
    axes = axes_of(dim, x.type.rank) or tuple(range(x.type.rank))
    dt = x.type.dtype
    mean = cx.apply(rd.ReduceMean(axes=axes, keepdims=True), x)
    diff = cx.apply(ew.Sub(), x, mean)
    ssq = cx.apply(rd.ReduceSum(axes=axes, keepdims=bool(keepdim)), cx.apply(ew.Mul(), diff, diff))
    n = 1
    for a in axes:
        n = n * x.type.shape[a]
    if correction is None:
        correction = 1 if unbiased else 0
    count = cx.apply(ew.Sub(), cx.tensor(norm(n), dt), cx.const(float(correction), dt))
    y = cx.apply(ew.Div(), ssq, count)
    return cx.apply(un.Sqrt(), y) if cx.node.target in (aten.std.correction, aten.std.dim) else y


def cumsum(cx: Builder, x: Value, dim: int, **_: Any) -> Value:
    x = cx.cast(x, cx.out.dtype)
    return cx.apply(rd.Cumsum(axis=norm_dim(dim, x.type.rank)), x)


def vector_norm(
    cx: Builder, x: Value, ord: Any = 2, dim: Any = None, keepdim: bool = False, **_: Any
) -> Value:
    x = cx.cast(x, cx.out.dtype)
    axes, kd = axes_of(dim, x.type.rank), bool(keepdim)
    if ord == 2:
        return cx.apply(rd.ReduceL2(axes=axes, keepdims=kd), x)
    if ord == 1:
        return cx.apply(rd.ReduceL1(axes=axes, keepdims=kd), x)
    if ord in (math.inf, -math.inf):
        cls = rd.ReduceMax if ord > 0 else rd.ReduceMin
        return cx.apply(cls(axes=axes, keepdims=kd), cx.apply(un.Abs(), x))
    raise NotConvertible(f"vector norm of order {ord}")


# -- linear algebra --------------------------------------------------------------------------


def matmul(
    cx: Builder,
    x: Value,
    other: Value | None = None,
    mat2: Value | None = None,
    vec: Value | None = None,
    tensor: Value | None = None,
    **_: Any,
) -> Value:
    rhs = next(v for v in (other, mat2, vec, tensor) if v is not None)
    return cx.apply(la.Matmul(), x, rhs)


def addmm(
    cx: Builder,
    x: Value,
    mat1: Value | None = None,
    mat2: Value | None = None,
    batch1: Value | None = None,
    batch2: Value | None = None,
    beta: Any = 1,
    alpha: Any = 1,
    **_: Any,
) -> Value:
    a, b = (mat1, mat2) if mat1 is not None else (batch1, batch2)
    y = cx.apply(la.Matmul(), a, b)
    dt = y.type.dtype
    if alpha != 1:
        y = cx.apply(ew.Mul(), y, cx.const(alpha, dt))
    if beta == 0:
        return y
    if beta != 1:
        x = cx.apply(ew.Mul(), x, cx.const(beta, dt))
    return cx.apply(ew.Add(), y, x)


def linear(cx: Builder, input: Value, weight: Value, bias: Value | None = None, **_: Any) -> Value:
    return cx.apply(la.Linear(), input, weight, *([bias] if bias is not None else []))


def einsum(cx: Builder, equation: str, tensors: list, **_: Any) -> Value:
    return cx.apply(la.Einsum(equation=equation), *tensors)


# -- helpers ---------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (bool, int, float)):
        return float(v)
    raise NotConvertible(f"symbolic clamp bound {v}")


CONVERTERS: dict[Any, Any] = {
    **{k: unary for k in UNARY},
    **{k: binary for k in BINARY},
    **{k: logical for k in LOGICAL},
    **{k: compare for k in COMPARE},
    **{k: reduce for k in REDUCE},
    aten.rsub.Scalar: rsub,
    aten.rsub.Tensor: rsub,
    aten.bitwise_not.default: bitwise_not,
    aten.div.Tensor_mode: div_mode,
    aten.div.Scalar_mode: div_mode,
    aten.floor_divide.default: floor_divide,
    aten.trunc.default: trunc,
    aten.log2.default: log_base,
    aten.log10.default: log_base,
    aten.pow.Tensor_Scalar: power,
    aten.pow.Tensor_Tensor: power,
    aten.pow.Scalar: power,
    aten.where.self: where,
    aten.where.ScalarSelf: where,
    aten.where.ScalarOther: where,
    aten.where.Scalar: where,
    aten.clamp.default: clamp,
    aten.clamp.Tensor: clamp,
    aten.clamp_min.default: clamp_min,
    aten.clamp_max.default: clamp_max,
    aten.hardtanh.default: hardtanh,
    aten.gelu.default: gelu,
    aten.leaky_relu.default: leaky_relu,
    aten.elu.default: elu,
    aten.celu.default: celu,
    aten.softplus.default: softplus,
    aten.prelu.default: prelu,
    aten._prelu_kernel.default: prelu,
    aten._to_copy.default: to_copy,
    aten.to.dtype: to_copy,
    aten.to.dtype_layout: to_copy,
    aten.to.device: to_copy,
    aten.clone.default: identity,
    aten.alias.default: identity,
    aten.lift_fresh_copy.default: identity,
    aten.contiguous.default: identity,
    aten.dropout.default: dropout,
    aten.native_dropout.default: dropout,
    aten.any.default: any_all,
    aten.any.dim: any_all,
    aten.any.dims: any_all,
    aten.all.default: any_all,
    aten.all.dim: any_all,
    aten.all.dims: any_all,
    aten.max.dim: max_min_dim,
    aten.min.dim: max_min_dim,
    aten.argmax.default: arg_reduce,
    aten.argmin.default: arg_reduce,
    aten.var.correction: var,
    aten.std.correction: var,
    aten.var.dim: var,
    aten.std.dim: var,
    aten.cumsum.default: cumsum,
    aten.linalg_vector_norm.default: vector_norm,
    aten.mm.default: matmul,
    aten.bmm.default: matmul,
    aten.matmul.default: matmul,
    aten.mv.default: matmul,
    aten.dot.default: matmul,
    aten.addmm.default: addmm,
    aten.baddbmm.default: addmm,
    aten.linear.default: linear,
    aten.einsum.default: einsum,
    **NN_CONVERTERS,
    **SHAPE_CONVERTERS,
}
