"""C types of IR dtypes and the scalar expressions of elementwise ops (`C_EXPR`).

Storage: f16 as uint16_t bits, bf16 in float storage (as the interpreter keeps it), i4/u4 one per
byte, bool as uint8_t 0/1. Computation: f16 and bf16 in float (f16 results rounded to f16 once
per op, like the reference), f64 in double, integers in their own type (the module is built
with -fwrapv, so they wrap like numpy). `C_EXPR[op class]` maps an operand kind -- "f" (float),
"d" (double), "i" (signed), "u" (unsigned), "b" (bool), "*" (any) -- to a one-line template
over operands {a} {b} {c}, {f} (the float suffix: "f" or ""), and the op's attributes; an entry
may instead be a named function building the line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ...ir.dtypes import DType
from ...ir.op import Op
from ...ir.ops import activation as act
from ...ir.ops import elementwise as ew
from ...ir.ops import unary as un
from ...ir.ops.fused import Apply, Expr, Operand
from ...ir.types import TensorType

CTYPE = {
    DType.f64: "double", DType.f32: "float", DType.f16: "uint16_t", DType.bf16: "float",
    DType.i64: "int64_t", DType.i32: "int32_t", DType.i16: "int16_t", DType.i8: "int8_t",
    DType.u8: "uint8_t", DType.u16: "uint16_t", DType.u32: "uint32_t", DType.u64: "uint64_t",
    DType.i4: "int8_t", DType.u4: "uint8_t", DType.bool: "uint8_t",
}  # fmt: skip
LMC_DTYPE = {
    DType.f64: "LMC_F64", DType.f32: "LMC_F32", DType.f16: "LMC_F16", DType.bf16: "LMC_BF16",
    DType.i64: "LMC_I64", DType.i32: "LMC_I32", DType.i16: "LMC_I16", DType.i8: "LMC_I8",
    DType.u8: "LMC_U8", DType.i4: "LMC_I4", DType.u4: "LMC_U4", DType.bool: "LMC_BOOL",
    DType.u16: "LMC_U16", DType.u32: "LMC_U32", DType.u64: "LMC_U64",
}  # fmt: skip


def ctype(dt: DType) -> str:
    """The C storage type of one element."""
    return CTYPE[dt]


def compute_type(dt: DType) -> str:
    """The C type arithmetic on `dt` happens in."""
    return "float" if dt in (DType.f16, DType.bf16) else CTYPE[dt]


def kind(dt: DType) -> str:
    if dt == DType.f64:
        return "d"
    if dt.is_float:
        return "f"
    if dt == DType.bool:
        return "b"
    return "i" if dt.is_signed else "u"


def load(dt: DType, access: str) -> str:
    """A stored element as its compute type."""
    return f"lmc_h2f({access})" if dt == DType.f16 else access


def store(dt: DType, value: str) -> str:
    """A compute-type value as its stored form."""
    return f"lmc_f2h({value})" if dt == DType.f16 else value


def literal(value: float | int | bool, dt: DType) -> str:
    """`value` as a C literal of dt's compute type."""
    k = kind(dt)
    if k in "fd":
        v = float(value)
        if math.isnan(v):
            return "NAN" if k == "f" else "(double)NAN"
        if math.isinf(v):
            inf = "INFINITY" if k == "f" else "(double)INFINITY"
            return inf if v > 0 else f"(-{inf})"
        text = repr(v)
        text = text if any(c in text for c in ".e") else text + ".0"
        return f"({text}f)" if k == "f" else f"({text})"
    if k == "b":
        return "1" if value else "0"
    v = int(value)
    if dt.bits == 64:
        return f"INT64_C({v})" if k == "i" else f"UINT64_C({v})"
    return f"({v})"


def storage_literal(value: float | int | bool, dt: DType) -> str:
    """`value` as a C literal of dt's storage (f16 as its bits)."""
    if dt == DType.f16:
        import numpy as np

        return f"((uint16_t){int(np.array(value, np.float16).view(np.uint16))}u)"
    if dt == DType.bf16:
        import numpy as np

        from ...ir.dtypes import round_to_bf16

        return literal(float(round_to_bf16(np.array([value], np.float32))[0]), dt)
    return literal(value, dt)


# -- expression templates -------------------------------------------------------------------

ExprFn = Callable[[Op, str, list[str], list[DType], DType], str]
C_EXPR: dict[type[Op], dict[str, str] | ExprFn] = {}


def _table(entries: dict[type[Op], dict[str, str] | str]) -> None:
    for cls, v in entries.items():
        C_EXPR[cls] = {"*": v} if isinstance(v, str) else v


_FLOAT = "fd"
_table({
    ew.Identity: "{a}",
    ew.Isnan: "({a} != {a})",
    ew.Isinf: "(({a} == INFINITY && {detect_positive}) || ({a} == -INFINITY && {detect_negative}))",
    ew.LogicalNot: "(!{a})",
    ew.Add: "({a} + {b})",
    ew.Sub: "({a} - {b})",
    ew.Mul: "({a} * {b})",
    ew.Div: {"f": "({a} / {b})", "d": "({a} / {b})", "i": "lmc_divs({a}, {b})",
             "u": "lmc_divu({a}, {b})"},
    ew.Pow: "pow{f}({a}, {b})",
    ew.Maximum: {"f": "lmc_nanmaxf({a}, {b})", "d": "lmc_nanmax({a}, {b})",
                 "*": "({a} > {b} ? {a} : {b})"},
    ew.Minimum: {"f": "lmc_nanminf({a}, {b})", "d": "lmc_nanmin({a}, {b})",
                 "*": "({a} < {b} ? {a} : {b})"},
    ew.BitwiseAnd: "({a} & {b})",
    ew.BitwiseOr: "({a} | {b})",
    ew.BitwiseXor: "({a} ^ {b})",
    ew.LogicalAnd: "({a} && {b})",
    ew.LogicalOr: "({a} || {b})",
    ew.LogicalXor: "(({a} != 0) != ({b} != 0))",
    ew.Equal: "({a} == {b})",
    ew.NotEqual: "({a} != {b})",
    ew.Less: "({a} < {b})",
    ew.LessEqual: "({a} <= {b})",
    ew.Greater: "({a} > {b})",
    ew.GreaterEqual: "({a} >= {b})",
    ew.Where: "({a} ? {b} : {c})",
    un.Neg: "(-{a})",
    un.Abs: {"f": "fabsf({a})", "d": "fabs({a})", "*": "({a} < 0 ? -{a} : {a})"},
    un.Exp: {"f": "lmc_expf({a})", "d": "exp({a})"},
    un.Log: "log{f}({a})",
    un.Log1p: "log1p{f}({a})",
    un.Expm1: "expm1{f}({a})",
    un.Sqrt: "sqrt{f}({a})",
    un.Rsqrt: "(1.0{f} / sqrt{f}({a}))",
    un.Reciprocal: "(1.0{f} / {a})",
    un.Sin: "sin{f}({a})",
    un.Cos: "cos{f}({a})",
    un.Tan: "tan{f}({a})",
    un.Asin: "asin{f}({a})",
    un.Acos: "acos{f}({a})",
    un.Atan: "atan{f}({a})",
    un.Sinh: "sinh{f}({a})",
    un.Cosh: "cosh{f}({a})",
    un.Tanh: {"f": "lmc_tanhf({a})", "d": "tanh({a})"},
    un.Asinh: "asinh{f}({a})",
    un.Acosh: "acosh{f}({a})",
    un.Atanh: "atanh{f}({a})",
    un.Erf: {"f": "lmc_erff({a})", "d": "erf({a})"},
    un.Floor: "floor{f}({a})",
    un.Ceil: "ceil{f}({a})",
    un.Round: "nearbyint{f}({a})",
    un.Sign: {"f": "({a} > 0 ? 1.0f : ({a} < 0 ? -1.0f : {a}))",
              "d": "({a} > 0 ? 1.0 : ({a} < 0 ? -1.0 : {a}))", "*": "(({a} > 0) - ({a} < 0))"},
    act.Sigmoid: {"f": "lmc_sigmoidf({a})", "d": "lmc_sigmoid({a})"},
    act.Relu: "({a} < 0 ? 0 : {a})",
    act.Silu: {"f": "({a} * lmc_sigmoidf({a}))", "d": "({a} * lmc_sigmoid({a}))"},
    act.Mish: "({a} * tanh{f}(lmc_softplus{f}({a})))",
    act.Hardswish: "({a} * lmc_clip{f}({a} + 3.0{f}, 0.0{f}, 6.0{f}) / 6.0{f})",
    act.Hardsigmoid: "lmc_clip{f}({alpha} * {a} + {beta}, 0.0{f}, 1.0{f})",
    act.LeakyRelu: "({a} >= 0 ? {a} : {alpha} * {a})",
    act.Elu: "({a} > 0 ? {a} : {alpha} * expm1{f}({a}))",
    act.Celu: ("(({a} < 0 ? 0 : {a}) + "
               "lmc_clip{f}({alpha} * expm1{f}({a} / {alpha}), -INFINITY, 0))"),
    act.Softplus: "({beta} * {a} > {threshold} ? {a} : lmc_softplus{f}({beta} * {a}) / {beta})",
    act.Softsign: "({a} / (1.0{f} + fabs{f}({a})))",
    act.Prelu: "({a} >= 0 ? {a} : {b} * {a})",
})  # fmt: skip


def _gelu(op: Op, k: str, args: list[str], ins: list[DType], out: DType) -> str:
    tanh = op.approximate == "tanh"  # type: ignore[attr-defined]
    if k == "f":
        return f"lmc_gelu_{'tanh' if tanh else 'erf'}f({args[0]})"
    return f"lmc_gelu_{'tanh' if tanh else 'erf'}({args[0]})"


def _selu(op: Op, k: str, args: list[str], ins: list[DType], out: DType) -> str:
    a, f = args[0], "f" if k == "f" else ""
    scale, alpha = literal(act.SELU_SCALE, ins[0]), literal(act.SELU_ALPHA, ins[0])
    return f"({scale} * ({a} > 0 ? {a} : {alpha} * expm1{f}({a})))"


def _mod(op: Op, k: str, args: list[str], ins: list[DType], out: DType) -> str:
    a, b = args
    fmod = op.fmod  # type: ignore[attr-defined]
    if k == "f":
        return f"fmodf({a}, {b})" if fmod else f"lmc_pymodf({a}, {b})"
    if k == "d":
        return f"fmod({a}, {b})" if fmod else f"lmc_pymod({a}, {b})"
    if k == "u":
        return f"lmc_modu({a}, {b})"
    return f"lmc_fmods({a}, {b})" if fmod else f"lmc_mods({a}, {b})"


def _clip(op: Op, k: str, args: list[str], ins: list[DType], out: DType) -> str:
    lo, hi = op.min, op.max  # type: ignore[attr-defined]
    x, dt = args[0], ins[0]
    if k not in _FLOAT:
        lo, hi = ew._int_bound(lo, True, _iinfo(dt)), ew._int_bound(hi, False, _iinfo(dt))
    if lo is not None:
        x = f"({x} < {literal(lo, dt)} ? {literal(lo, dt)} : {x})"
    if hi is not None:
        x = f"({x} > {literal(hi, dt)} ? {literal(hi, dt)} : {x})"
    return x


def _iinfo(dt: DType):
    import numpy as np

    return np.iinfo(dt.np)


def _cast(op: Op, k: str, args: list[str], ins: list[DType], out: DType) -> str:
    a, src, dst = args[0], ins[0], op.dtype  # type: ignore[attr-defined]
    if dst == DType.bool:
        return f"({a} != 0)"
    if dst.is_int:
        if src.is_float:
            if dst == DType.u64:
                return f"lmc_f2u64((double)({a}))"
            lo, hi = ew._int_range(dst)
            return f"({CTYPE[dst]})lmc_f2i((double)({a}), INT64_C({lo}), INT64_C({hi}))"
        if dst == DType.i4:
            return f"lmc_wrap_i4((int64_t)({a}))"
        if dst == DType.u4:
            return f"lmc_wrap_u4((int64_t)({a}))"
        return f"({CTYPE[dst]})({a})"
    if dst == DType.f64:
        return f"(double)({a})"
    if dst == DType.bf16:
        return f"lmc_rbf16((float)({a}))"
    return f"(float)({a})"


C_EXPR.update({
    act.Gelu: _gelu, act.Selu: _selu, ew.Mod: _mod, ew.Clip: _clip, ew.Cast: _cast,
})  # fmt: skip


def op_expr(op: Op, args: list[str], ins: list[DType], out: DType) -> str:
    """The C expression of elementwise `op` over operand expressions (compute-type values)."""
    entry = C_EXPR[type(op)]
    basis = ins[1] if isinstance(op, ew.Where) else ins[0]
    k = kind(basis)
    if callable(entry):
        return entry(op, k, args, ins, out)
    template = entry.get(k) or entry.get("*")
    if template is None:
        raise KeyError(f"{op.name}: no C expression for {basis}")
    fields = {"f": "f" if k == "f" else ""}
    for name, v in op.attrs().items():
        fields[name] = literal(v, basis) if not isinstance(v, str) else v
    fields.update(zip("abc", args))
    return template.format(**fields)


def has_expr(op: Op, ins: list[DType]) -> bool:
    entry = C_EXPR.get(type(op))
    if entry is None:
        return False
    if callable(entry):
        return True
    basis = ins[1] if isinstance(op, ew.Where) else ins[0]
    return kind(basis) in entry or "*" in entry


def expr_statements(
    e: Expr, leaves: list[str], leaf_dtypes: list[DType], prefix: str = "t"
) -> tuple[list[str], str, DType]:
    """C statements computing `e` per element: one `const T tN = ...;` per op (f16 results
    rounded to f16 as the reference does). `leaves` are compute-type operand expressions.
    Returns (statements, the final value's name, its dtype)."""
    stmts: list[str] = []
    names: dict[int, tuple[str, DType]] = {}
    done: dict[Expr, tuple[str, DType]] = {}  # equal sub-expressions are computed once

    def visit(x: Expr) -> tuple[str, DType]:
        if x in done:
            return done[x]
        done[x] = out = _visit(x)
        return out

    def _visit(x: Expr) -> tuple[str, DType]:
        if isinstance(x, Operand):
            if x.index not in names:
                dt = leaf_dtypes[x.index]
                name = f"{prefix}x{x.index}"
                stmts.append(f"const {compute_type(dt)} {name} = {leaves[x.index]};")
                names[x.index] = (name, dt)
            return names[x.index]
        assert isinstance(x, Apply)
        args = [visit(a) for a in x.args]
        ins = [dt for _, dt in args]
        out = x.op.infer(*(TensorType(dt, ()) for dt in ins)).dtype  # type: ignore[union-attr]
        value = op_expr(x.op, [n for n, _ in args], ins, out)
        if out == DType.f16 and x is not e:
            value = f"lmc_rh({value})"
        name = f"{prefix}{len(stmts)}"
        stmts.append(f"const {compute_type(out)} {name} = {value};")
        return name, out

    final, dt = visit(e)
    return stmts, final, dt
