"""Grouped-kernel ops made by kernel grouping: a fused elementwise chain, and linear / matmul /
conv whose result goes through an elementwise epilogue before it is stored.

An expression (`expr`, `epilogue`) is text in prefix form over registered elementwise op names
and operands x0..xn: `gelu(add(x0, x1))`, `leaky_relu{alpha=0.2}(x0)`. Attributes that differ
from the op's defaults are written in braces, in the IR's attribute syntax. Shape rules and
references are the component ops' own (`infer` and `ref` applied node by node), so a grouped
graph interprets exactly like the graph it came from.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import numpy as np

from ..dtypes import DTYPE_NAMES, DType
from ..errors import IRTypeError, require
from ..op import OPS, Op, register
from ..shapes import shape_eq
from ..types import TensorType
from .conv import Conv, IntTuple
from .elementwise import Binary, Cast, Unary, Where
from .linalg import Linear, Matmul

MAX_EXPR_NODES = 64  # a grouped expression stays small enough to read and to compile


@dataclass(frozen=True)
class Operand:
    """Leaf of an expression: the fused op's operand `index` (written x<index>)."""

    index: int


@dataclass(frozen=True)
class Apply:
    """An elementwise op applied to sub-expressions."""

    op: Op
    args: tuple[Expr, ...]


Expr = Union[Operand, Apply]


def elementwise_ops() -> dict[str, type[Op]]:
    """The ops an expression may use: unary and binary elementwise ops, where and cast."""
    return {
        name: cls
        for name, cls in OPS.items()
        if issubclass(cls, (Unary, Binary)) or cls in (Where, Cast)
    }


def is_elementwise(op: Op) -> bool:
    return type(op).name in elementwise_ops() and type(op) is OPS[type(op).name]


# -- text form -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\\n]|\\.)*")
    | (?P<num>-?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|inf))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[(){}\[\],=])
    )""",
    re.VERBOSE,
)
_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None, "nan": float("nan")}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise IRTypeError(f"expression {text!r}: unexpected text at {pos}: {text[pos:][:20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    out.append(("eof", ""))
    return out


class _ExprParser:
    def __init__(self, text: str) -> None:
        self.text, self.toks, self.i = text, _tokens(text), 0

    def fail(self, msg: str) -> IRTypeError:
        return IRTypeError(f"expression {self.text!r}: {msg}")

    def take(self, want: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if want is not None and tok[1] != want:
            raise self.fail(f"expected {want!r}, got {tok[1] or 'end'!r}")
        self.i += 1
        return tok

    def peek(self) -> str:
        return self.toks[self.i][1]

    def expr(self) -> Expr:
        kind, word = self.take()
        if kind != "ident":
            raise self.fail(f"expected an op name or operand, got {word or 'end'!r}")
        if re.fullmatch(r"x\d+", word):
            return Operand(int(word[1:]))
        cls = elementwise_ops().get(word)
        if cls is None:
            raise self.fail(f"{word!r} is not an elementwise op")
        attrs = self.attrs(cls) if self.peek() == "{" else {}
        try:
            op = cls(**attrs)
        except (TypeError, ValueError) as e:
            raise self.fail(f"{word}: {e}") from None
        self.take("(")
        args = [self.expr()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.expr())
        self.take(")")
        return Apply(op, tuple(args))

    def attrs(self, cls: type[Op]) -> dict[str, Any]:
        from ..parser import coerce

        ann, out = cls.attr_types(), {}
        self.take("{")
        while self.peek() != "}":
            _, key = self.take()
            if key not in ann or key in out:
                raise self.fail(f"{cls.name} has no attribute {key!r} (or it is repeated)")
            self.take("=")
            try:
                out[key] = coerce(self.value(), ann[key])
            except (TypeError, ValueError) as e:
                raise self.fail(f"{cls.name}.{key}: {e}") from None
            if self.peek() != ",":
                break
            self.take(",")
        self.take("}")
        return out

    def value(self) -> Any:
        kind, word = self.take()
        if kind == "str":
            return json.loads(word)
        if kind == "num":
            body = word.lstrip("-")
            v = (
                float("inf")
                if body == "inf"
                else float(body)
                if re.search(r"[.eE]", body)
                else int(body)
            )
            return -v if word.startswith("-") else v
        if kind == "ident" and word in _WORDS:
            return _WORDS[word]
        if kind == "ident" and word in DTYPE_NAMES:
            return DType(word)
        if word == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() != ",":
                    break
                self.take(",")
            self.take("]")
            return tuple(items)
        raise self.fail(f"bad attribute value {word!r}")


@functools.lru_cache(maxsize=4096)
def parse_expr(text: str) -> Expr:
    """The expression tree of `text`; IRTypeError when malformed."""
    if not isinstance(text, str):
        raise IRTypeError(f"expression must be a string, got {text!r}")
    p = _ExprParser(text)
    e = p.expr()
    if p.toks[p.i][0] != "eof":
        raise p.fail(f"trailing text {p.toks[p.i][1]!r}")
    require(count_nodes(e) <= MAX_EXPR_NODES, f"expression {text!r} has over {MAX_EXPR_NODES} ops")
    return e


def format_expr(e: Expr) -> str:
    """Canonical text: attributes that differ from the op's defaults, in declaration order."""
    from ..printer import format_attr

    if isinstance(e, Operand):
        return f"x{e.index}"
    default = type(e.op)()
    changed = [
        f"{f.name}={format_attr(getattr(e.op, f.name))}"
        for f in dataclasses.fields(e.op)
        if not _same(getattr(e.op, f.name), getattr(default, f.name))
    ]
    attrs = "{" + ", ".join(changed) + "}" if changed else ""
    return f"{type(e.op).name}{attrs}(" + ", ".join(format_expr(a) for a in e.args) + ")"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def count_nodes(e: Expr) -> int:
    return 0 if isinstance(e, Operand) else 1 + sum(count_nodes(a) for a in e.args)


def operands_used(e: Expr) -> set[int]:
    if isinstance(e, Operand):
        return {e.index}
    return set().union(*(operands_used(a) for a in e.args))


def substitute(e: Expr, leaves: dict[int, Expr]) -> Expr:
    """`e` with operand i replaced by leaves[i] (operands not in `leaves` stay)."""
    if isinstance(e, Operand):
        return leaves.get(e.index, e)
    return Apply(e.op, tuple(substitute(a, leaves) for a in e.args))


# -- shape rule and reference --------------------------------------------------------------


def infer_expr(e: Expr, types: tuple[TensorType, ...], what: str) -> TensorType:
    """The type of `e` over operand types (each component op's own rule)."""
    if isinstance(e, Operand):
        require(
            e.index < len(types), f"{what}: x{e.index} used but only {len(types)} operands given"
        )
        return types[e.index]
    arity = type(e.op).arity()
    require(
        arity[0] <= len(e.args) and (arity[1] is None or len(e.args) <= arity[1]),
        f"{what}: {e.op.name} takes {arity[0]} to {arity[1]} operands, got {len(e.args)}",
    )
    out = e.op.infer(*(infer_expr(a, types, what) for a in e.args))
    require(isinstance(out, TensorType), f"{what}: {e.op.name} has several results")
    return out  # type: ignore[return-value]


def eval_expr(e: Expr, arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    """Evaluate `e` with each component op's reference (the interpreter's semantics)."""
    if isinstance(e, Operand):
        return arrays[e.index]
    with np.errstate(all="ignore"):
        return e.op.ref(*(eval_expr(a, arrays) for a in e.args))  # type: ignore[return-value]


def _epilogue_type(op: Op, base: TensorType, extras: tuple[TensorType, ...]) -> TensorType:
    e = parse_expr(op.epilogue)  # type: ignore[attr-defined]
    out = infer_expr(e, (base, *extras), f"{op.name} epilogue")
    require(
        shape_eq(out.shape, base.shape),
        f"{op.name}: epilogue result {out} must keep the shape of {base}",
    )
    return out


@register
@dataclass(frozen=True)
class FusedElementwise(Op):
    """y = expr(x0, ..., xn): one elementwise kernel for a chain of elementwise ops; `expr` in
    prefix form (see the module docstring), each component with its own semantics."""

    name: ClassVar[str] = "fused_elementwise"
    expr: str = "identity(x0)"

    def infer(self, *xs: TensorType) -> TensorType:
        require(len(xs) >= 1, "fused_elementwise: needs at least one operand")
        return infer_expr(parse_expr(self.expr), xs, "fused_elementwise")

    def ref(self, *xs: np.ndarray) -> np.ndarray:
        return eval_expr(parse_expr(self.expr), xs)


@register
@dataclass(frozen=True)
class FusedLinear(Op):
    """y = epilogue(linear(x, w, b), e1, ..., en): x0 in the epilogue is the linear result
    (bias included when `bias`, then the operands are x, w, b, e1...), x1.. the extras."""

    name: ClassVar[str] = "fused_linear"
    bias: bool = False
    epilogue: str = "x0"

    def _split(self, rest: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        require(not self.bias or len(rest) >= 1, "fused_linear: bias=true but no bias operand")
        return (rest[0], rest[1:]) if self.bias else (None, rest)

    def infer(self, x: TensorType, w: TensorType, *rest: TensorType) -> TensorType:
        b, extras = self._split(rest)
        return _epilogue_type(self, Linear().infer(x, w, b), extras)

    def ref(self, x: np.ndarray, w: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        b, extras = self._split(rest)
        return eval_expr(parse_expr(self.epilogue), (Linear().ref(x, w, b), *extras))


@register
@dataclass(frozen=True)
class FusedMatmul(Op):
    """y = epilogue(matmul(a, b), e1, ..., en): x0 in the epilogue is the matmul result."""

    name: ClassVar[str] = "fused_matmul"
    epilogue: str = "x0"

    def infer(self, a: TensorType, b: TensorType, *extras: TensorType) -> TensorType:
        return _epilogue_type(self, Matmul().infer(a, b), extras)

    def ref(self, a: np.ndarray, b: np.ndarray, *extras: np.ndarray) -> np.ndarray:
        return eval_expr(parse_expr(self.epilogue), (Matmul().ref(a, b), *extras))


CONV_ALGOS = ("gemm", "winograd")


@register
@dataclass(frozen=True)
class FusedConv(Op):
    """y = epilogue(conv(x, w, b), e1, ..., en) with conv's attributes; x0 in the epilogue is
    the conv result (bias included when `bias`: operands x, w, b, e1...). `algo` is how a
    backend computes the conv: "gemm" (im2col / direct) or "winograd" (F(2x2, 3x3): 2-D, 3x3
    kernel, stride 1, dilation 1, one group); the value is the same up to rounding."""

    name: ClassVar[str] = "fused_conv"
    stride: IntTuple = ()
    padding: IntTuple = ()
    dilation: IntTuple = ()
    groups: int = 1
    bias: bool = False
    epilogue: str = "x0"
    algo: str = "gemm"

    def conv(self) -> Conv:
        return Conv(self.stride, self.padding, self.dilation, self.groups)

    def _split(self, rest: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        require(not self.bias or len(rest) >= 1, "fused_conv: bias=true but no bias operand")
        return (rest[0], rest[1:]) if self.bias else (None, rest)

    def infer(self, x: TensorType, w: TensorType, *rest: TensorType) -> TensorType:
        b, extras = self._split(rest)
        require(
            self.algo in CONV_ALGOS, f"fused_conv: algo {self.algo!r} is not one of {CONV_ALGOS}"
        )
        if self.algo == "winograd":
            ones = all(v == 1 for v in (*self.stride, *self.dilation))
            require(
                w.rank == 4 and shape_eq(w.shape[2:], (3, 3)) and ones and self.groups == 1,
                f'fused_conv: algo="winograd" needs a 2-D 3x3 conv with stride 1, dilation 1 '
                f"and one group, got weight {w} stride {list(self.stride)} dilation "
                f"{list(self.dilation)} groups {self.groups}",
            )
        return _epilogue_type(self, self.conv().infer(x, w, b), extras)

    def ref(self, x: np.ndarray, w: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        b, extras = self._split(rest)
        return eval_expr(parse_expr(self.epilogue), (self.conv().ref(x, w, b), *extras))
