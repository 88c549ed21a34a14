"""The ONNX converter table: (op_type, since_version) -> converter, assembled from data rows.

A converter takes a `NodeCtx` and returns the node's outputs (`OT`s, in order). This module
holds the table, the shared helpers and the elementwise/activation converters; the other
families live in `onnx_ops_*.py`. Versions are listed explicitly: an ONNX version not listed
here is reported as unsupported until someone checks its semantics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import sympy

from ..ir.dtypes import DType
from ..ir.op import OPS, Op
from ..ir.shapes import dim_eq, dim_max, dim_min, dim_ne, floor_div, norm
from .onnx_ops_ctx import OT, NodeCtx, dtype_of_onnx

Converter = Callable[[NodeCtx], Any]
Row = tuple[str, tuple[int, ...], Converter]

# ONNX's float defaults (single precision) for Selu.
SELU_ALPHA_F32 = 1.67326319217681884765625
SELU_GAMMA_F32 = 1.05070102214813232421875


def mk(name: str, **attrs: Any) -> Op:
    """An IR op by registry name (frontends depend on op names, not on module layout)."""
    return OPS[name](**attrs)


def cast(c: NodeCtx, x: OT, dtype: DType) -> OT:
    return x if x.dtype == dtype else c.emit(mk("cast", dtype=dtype), x)


def onnx_dtype(c: NodeCtx, elem_type: int) -> DType:
    from .onnx import NodeUnsupported

    try:
        return dtype_of_onnx(elem_type, "result")
    except NodeUnsupported as e:
        c.fail(str(e))


class _NoFold(Exception):
    """A symbolic fold whose result is not provable (e.g. s0 == 4)."""


def fold_symbolic(
    c: NodeCtx,
    fn: Callable[..., Any],
    xs: Iterable[OT],
    dtype: DType | None = None,
) -> OT | None:
    """fn applied elementwise (numpy broadcasting) to operand contents when every operand is
    known and one holds symbolic dims; None when not applicable or not provable."""
    ots = list(xs)
    if not ots or any(o.const is None for o in ots) or not any(o.symbolic for o in ots):
        return None
    if fn in (_s_div, _s_mod) and not all(o.dtype.is_int for o in ots):
        return None  # float division of dims is not integer division
    arrays = []
    for o in ots:
        a = o.const
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                return None  # dims mixed with non-integral floats: compute at run time
            a = a.astype(np.int64)
        arrays.append(a.astype(object))
    try:
        res = np.frompyfunc(fn, len(ots), 1)(*arrays)
    except _NoFold:
        return None
    res = np.asarray(res, dtype=object)
    flat = res.reshape(-1).tolist()
    if flat and all(isinstance(v, (bool, np.bool_)) for v in flat):
        return c.const_ot(res.astype(np.bool_), DType.bool)
    return c.const_ot(res, dtype or ots[0].dtype)


# -- symbolic integer arithmetic (shape computations) ---------------------------------------
def _s_add(a: Any, b: Any) -> Any:
    return norm(a + b)


def _s_sub(a: Any, b: Any) -> Any:
    return norm(a - b)


def _s_mul(a: Any, b: Any) -> Any:
    return norm(a * b)


def _s_div(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b) if b else 0
        return q if (a < 0) == (b < 0) else -q
    return floor_div(a, b)  # dims are positive: truncation is floor


def _s_mod(a: Any, b: Any) -> Any:
    return a % b if isinstance(a, int) and isinstance(b, int) else norm(sympy.Mod(a, b))


def _s_max(a: Any, b: Any) -> Any:
    return dim_max(norm(a), norm(b))


def _s_min(a: Any, b: Any) -> Any:
    return dim_min(norm(a), norm(b))


def _s_eq(a: Any, b: Any) -> bool:
    a, b = norm(a), norm(b)
    if dim_eq(a, b):
        return True
    if dim_ne(a, b):
        return False
    raise _NoFold


def _s_neg(a: Any) -> Any:
    return norm(-a)


SYMBOLIC_BINARY = {
    "Add": _s_add,
    "Sub": _s_sub,
    "Mul": _s_mul,
    "Div": _s_div,
    "Mod": _s_mod,
    "Max": _s_max,
    "Min": _s_min,
    "Equal": _s_eq,
}


# -- elementwise converters -------------------------------------------------------------------
def unary(name: str, **fixed: Any) -> Converter:
    """A converter for an ONNX op that is one IR unary op with fixed attributes."""

    def convert_unary(c: NodeCtx) -> OT:
        if name == "neg":
            folded = fold_symbolic(c, _s_neg, [c.x(0)])
            if folded is not None:
                return folded
        return c.emit(mk(name, **fixed), c.x(0))

    convert_unary.__name__ = f"convert_{name}"
    return convert_unary


def unary_attrs(name: str, **attrs: tuple[str, Any]) -> Converter:
    """A converter for an ONNX op that is one IR unary op whose IR attributes come from ONNX
    attributes: `ir_attr=("onnx_attr", default)`."""

    def convert_unary_attrs(c: NodeCtx) -> OT:
        kw = {k: type(d)(c.attr(a, d)) for k, (a, d) in attrs.items()}
        return c.emit(mk(name, **kw), c.x(0))

    convert_unary_attrs.__name__ = f"convert_{name}"
    return convert_unary_attrs


def binary(name: str, onnx_name: str, **fixed: Any) -> Converter:
    """A converter for an ONNX broadcasting binary op that is one IR binary op."""
    sym_fn = SYMBOLIC_BINARY.get(onnx_name)

    def convert_binary(c: NodeCtx) -> OT:
        a, b = c.x(0), c.x(1)
        if sym_fn is not None:
            folded = fold_symbolic(c, sym_fn, [a, b])
            if folded is not None:
                return folded
        return c.emit(mk(name, **fixed), a, b)

    convert_binary.__name__ = f"convert_{name}"
    return convert_binary


def convert_mod(c: NodeCtx) -> OT:
    a, b = c.x(0), c.x(1)
    fmod = bool(c.attr("fmod", 0))
    if not fmod:
        folded = fold_symbolic(c, _s_mod, [a, b])
        if folded is not None:
            return folded
    if a.dtype.is_float and not fmod and c.since < 28:
        c.fail("Mod with fmod=0 on floats is not defined before Mod-28")
    return c.emit(mk("mod", fmod=fmod), a, b)


def convert_pow(c: NodeCtx) -> OT:
    x, y = c.x(0), c.x(1)
    if x.dtype.is_float:
        return c.emit(mk("pow"), x, cast(c, y, x.dtype))
    wide = c.emit(mk("pow"), cast(c, x, DType.f64), cast(c, y, DType.f64))
    return cast(c, wide, x.dtype)


def variadic(name: str, onnx_name: str) -> Converter:
    """Max/Min/Sum: a left fold of the IR binary op over every operand."""
    sym_fn = SYMBOLIC_BINARY.get(onnx_name)

    def convert_variadic(c: NodeCtx) -> OT:
        xs = [c.x(i) for i in range(len(c.ins))]
        acc = xs[0]
        if len(xs) == 1:
            return c.emit(mk("identity"), acc)
        for x in xs[1:]:
            folded = fold_symbolic(c, sym_fn, [acc, x]) if sym_fn else None
            acc = folded if folded is not None else c.emit(mk(name), acc, x)
        return acc

    convert_variadic.__name__ = f"convert_{name}"
    return convert_variadic


def convert_mean(c: NodeCtx) -> OT:
    xs = [c.x(i) for i in range(len(c.ins))]
    acc = xs[0]
    for x in xs[1:]:
        acc = c.emit(mk("add"), acc, x)
    return c.emit(mk("div"), acc, c.scalar(len(xs), acc.dtype))


def convert_where(c: NodeCtx) -> OT:
    cond, a, b = c.x(0), c.x(1), c.x(2)
    if (
        cond.const is not None
        and a.const is not None
        and b.const is not None
        and (a.symbolic or b.symbolic)
    ):
        res = np.where(cond.const, a.const.astype(object), b.const.astype(object))
        return c.const_ot(res, a.dtype)
    return c.emit(mk("where"), cond, a, b)


def convert_clip(c: NodeCtx) -> OT:
    x = c.x(0)
    if c.since < 11:
        lo, hi = c.attr("min"), c.attr("max")
        return c.emit(mk("clip", min=lo, max=hi), x)
    out = x
    for i, name, attr in ((1, "maximum", "min"), (2, "minimum", "max")):
        if not c.has(i):
            continue
        bound = c.x(i)
        v = (
            bound.const.reshape(-1)[0].item()
            if bound.const is not None and (not bound.symbolic and bound.const.size == 1)
            else None
        )
        # A known bound becomes a clip attribute, unless a float cannot hold it exactly
        # (NaN bounds, integers beyond 2**53): then it stays an elementwise max/min.
        exact = (
            v is not None
            and not (x.dtype.is_float and math.isnan(float(v)))
            and (x.dtype.is_float or abs(int(v)) < 2**53)
        )
        out = c.emit(mk("clip", **{attr: float(v)}), out) if exact else c.emit(mk(name), out, bound)
    return out if out is not x else c.emit(mk("identity"), x)


def convert_selu(c: NodeCtx) -> OT:
    alpha = float(c.attr("alpha", SELU_ALPHA_F32))
    gamma = float(c.attr("gamma", SELU_GAMMA_F32))
    x = c.x(0)
    if alpha == SELU_ALPHA_F32 and gamma == SELU_GAMMA_F32:
        return c.emit(mk("selu"), x)
    return c.emit(mk("mul"), c.emit(mk("elu", alpha=alpha), x), c.scalar(gamma, x.dtype))


def convert_softplus(c: NodeCtx) -> OT:
    return c.emit(mk("softplus", beta=1.0, threshold=math.inf), c.x(0))


def convert_thresholded_relu(c: NodeCtx) -> OT:
    x = c.x(0)
    alpha = float(c.attr("alpha", 1.0))
    keep = c.emit(mk("greater"), x, c.scalar(alpha, x.dtype))
    return c.emit(mk("where"), keep, x, c.scalar(0, x.dtype))


def convert_shrink(c: NodeCtx) -> OT:
    x = c.x(0)
    lambd, bias = float(c.attr("lambd", 0.5)), float(c.attr("bias", 0.0))
    lo = c.emit(mk("less"), x, c.scalar(-lambd, x.dtype))
    hi = c.emit(mk("greater"), x, c.scalar(lambd, x.dtype))
    wide = cast(c, x, DType.f64) if not x.dtype.is_float else x
    plus = cast(c, c.emit(mk("add"), wide, c.scalar(bias, wide.dtype)), x.dtype)
    minus = cast(c, c.emit(mk("sub"), wide, c.scalar(bias, wide.dtype)), x.dtype)
    zero = c.scalar(0, x.dtype)
    return c.emit(mk("where"), hi, minus, c.emit(mk("where"), lo, plus, zero))


def convert_swish(c: NodeCtx) -> OT:
    x = c.x(0)
    alpha = float(c.attr("alpha", 1.0))
    if alpha == 1.0:
        return c.emit(mk("silu"), x)
    gate = c.emit(mk("sigmoid"), c.emit(mk("mul"), x, c.scalar(alpha, x.dtype)))
    return c.emit(mk("mul"), x, gate)


def convert_prelu(c: NodeCtx) -> OT:
    return c.emit(mk("prelu"), c.x(0), c.x(1))


def convert_isinf(c: NodeCtx) -> OT:
    pos, neg = bool(c.attr("detect_positive", 1)), bool(c.attr("detect_negative", 1))
    return c.emit(mk("isinf", detect_positive=pos, detect_negative=neg), c.x(0))


def convert_bitwise_not(c: NodeCtx) -> OT:
    x = c.x(0)
    if x.dtype == DType.bool:
        return c.emit(mk("logical_not"), x)
    ones = (
        np.array(-1).astype(np.int64).astype(x.dtype.np)
        if x.dtype.is_signed
        else np.array(np.iinfo(x.dtype.np).max, dtype=x.dtype.np)
    )
    return c.emit(mk("bitwise_xor"), x, c.const_ot(ones, x.dtype))


def convert_bitshift(c: NodeCtx) -> OT:
    """x << y or x >> y (arithmetic for signed x); a shift amount outside 0..bits-1 gives 0,
    or -1 for a right shift of a negative value (BitShift-28)."""
    x, y = c.x(0), c.x(1)
    if x.dtype == DType.bool or not x.dtype.is_int:
        c.fail(f"BitShift on {x.dtype}")
    oob = c.emit(mk("greater_equal"), y, c.scalar(x.dtype.bits, y.dtype))
    if y.dtype.is_signed:
        oob = c.emit(mk("logical_or"), oob, c.emit(mk("less"), y, c.scalar(0, y.dtype)))
    zero, one = c.scalar(0, DType.i64), c.scalar(1, DType.i64)
    shift = cast(c, c.emit(mk("where"), oob, c.scalar(0, y.dtype), y), DType.f64)
    factor = cast(c, c.emit(mk("pow"), c.scalar(2.0, DType.f64), shift), DType.i64)
    wide = cast(c, x, DType.i64)
    if c.attr("direction", "") == "LEFT":
        out = c.emit(mk("where"), oob, zero, c.emit(mk("mul"), wide, factor))
    else:
        neg = c.emit(mk("less"), wide, zero)
        floor_num = c.emit(mk("sub"), wide, c.emit(mk("sub"), factor, one))
        q = c.emit(mk("div"), c.emit(mk("where"), neg, floor_num, wide), factor)
        fill = c.emit(mk("where"), neg, c.scalar(-1, DType.i64), zero)
        out = c.emit(mk("where"), oob, fill, q)
    return cast(c, out, x.dtype)


ELEMENTWISE_ROWS: list[Row] = [
    ("Abs", (6, 13), unary("abs")),
    ("Neg", (6, 13), unary("neg")),
    ("Exp", (6, 13), unary("exp")),
    ("Log", (6, 13), unary("log")),
    ("Sqrt", (6, 13), unary("sqrt")),
    ("Reciprocal", (6, 13), unary("reciprocal")),
    ("Sin", (7, 22), unary("sin")),
    ("Cos", (7, 22), unary("cos")),
    ("Tan", (7, 22), unary("tan")),
    ("Asin", (7, 22), unary("asin")),
    ("Acos", (7, 22), unary("acos")),
    ("Atan", (7, 22), unary("atan")),
    ("Sinh", (9, 22), unary("sinh")),
    ("Cosh", (9, 22), unary("cosh")),
    ("Tanh", (6, 13), unary("tanh")),
    ("Asinh", (9, 22), unary("asinh")),
    ("Acosh", (9, 22), unary("acosh")),
    ("Atanh", (9, 22), unary("atanh")),
    ("Erf", (9, 13), unary("erf")),
    ("Floor", (6, 13), unary("floor")),
    ("Ceil", (6, 13), unary("ceil")),
    ("Round", (11, 22), unary("round")),
    ("Sign", (9, 13), unary("sign")),
    ("Sigmoid", (6, 13), unary("sigmoid")),
    ("Relu", (6, 13, 14), unary("relu")),
    ("Softsign", (1, 22), unary("softsign")),
    ("HardSwish", (14, 22), unary("hardswish")),
    ("Mish", (18, 22), unary("mish")),
    ("IsNaN", (9, 13, 20), unary("isnan")),
    ("Not", (1,), unary("logical_not")),
    ("IsInf", (10, 20), convert_isinf),
    ("Elu", (6, 22), unary_attrs("elu", alpha=("alpha", 1.0))),
    ("Celu", (12, 28), unary_attrs("celu", alpha=("alpha", 1.0))),
    ("LeakyRelu", (6, 16), unary_attrs("leaky_relu", alpha=("alpha", 0.01))),
    ("HardSigmoid", (6, 22), unary_attrs("hardsigmoid", alpha=("alpha", 0.2), beta=("beta", 0.5))),
    ("Gelu", (20,), unary_attrs("gelu", approximate=("approximate", "none"))),
    ("Selu", (6, 22), convert_selu),
    ("Softplus", (1, 22), convert_softplus),
    ("ThresholdedRelu", (10, 22), convert_thresholded_relu),
    ("Shrink", (9,), convert_shrink),
    ("Swish", (24,), convert_swish),
    ("PRelu", (9, 16), convert_prelu),
    ("Clip", (6, 11, 12, 13), convert_clip),
    ("Add", (7, 13, 14), binary("add", "Add")),
    ("Sub", (7, 13, 14), binary("sub", "Sub")),
    ("Mul", (7, 13, 14), binary("mul", "Mul")),
    ("Div", (7, 13, 14), binary("div", "Div")),
    ("Mod", (10, 13, 28), convert_mod),
    ("Pow", (7, 12, 13, 15), convert_pow),
    ("Equal", (7, 11, 13, 19), binary("equal", "Equal")),
    ("Less", (7, 9, 13), binary("less", "Less")),
    ("Greater", (7, 9, 13), binary("greater", "Greater")),
    ("LessOrEqual", (12, 16), binary("less_equal", "LessOrEqual")),
    ("GreaterOrEqual", (12, 16), binary("greater_equal", "GreaterOrEqual")),
    ("And", (7,), binary("logical_and", "And")),
    ("Or", (7,), binary("logical_or", "Or")),
    ("Xor", (7,), binary("logical_xor", "Xor")),
    ("BitwiseAnd", (18,), binary("bitwise_and", "BitwiseAnd")),
    ("BitwiseOr", (18,), binary("bitwise_or", "BitwiseOr")),
    ("BitwiseXor", (18,), binary("bitwise_xor", "BitwiseXor")),
    ("BitwiseNot", (18,), convert_bitwise_not),
    ("BitShift", (11, 28), convert_bitshift),
    ("Where", (9, 16), convert_where),
    ("Max", (8, 12, 13), variadic("maximum", "Max")),
    ("Min", (8, 12, 13), variadic("minimum", "Min")),
    ("Sum", (8, 13), variadic("add", "Add")),
    ("Mean", (8, 13), convert_mean),
]


def build_table(*groups: Iterable[Row]) -> dict[tuple[str, int], Converter]:
    table: dict[tuple[str, int], Converter] = {}
    for rows in groups:
        for op_type, versions, fn in rows:
            for v in versions:
                if (op_type, v) in table:
                    raise ValueError(f"converter for {op_type} v{v} listed twice")
                table[(op_type, v)] = fn
    return table


def _all_rows() -> list[list[Row]]:
    from . import (
        onnx_ops_attention,
        onnx_ops_index,
        onnx_ops_misc,
        onnx_ops_nn,
        onnx_ops_pool,
        onnx_ops_quant,
        onnx_ops_reduce,
        onnx_ops_resize,
        onnx_ops_shape,
    )

    return [
        ELEMENTWISE_ROWS,
        onnx_ops_shape.ROWS,
        onnx_ops_nn.ROWS,
        onnx_ops_reduce.ROWS,
        onnx_ops_quant.ROWS,
        onnx_ops_index.ROWS,
        onnx_ops_attention.ROWS,
        onnx_ops_misc.ROWS,
        onnx_ops_pool.ROWS,
        onnx_ops_resize.ROWS,
    ]


CONVERTERS: dict[tuple[str, int], Converter] = build_table(*_all_rows())
