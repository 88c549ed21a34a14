"""Hand-written tokenizer and recursive-descent parser for the text IR."""

from __future__ import annotations

import json
import re
import types as pytypes
import typing
from dataclasses import dataclass
from typing import Any

import sympy

from .dtypes import DTYPE_NAMES, DType
from .errors import LmcError, ParseError
from .graph import Graph, Value
from .op import OPS, Op
from .shapes import DIM_FUNCS, norm, sym
from .types import TensorType

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|//[^\n]*)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<local>%(?:[A-Za-z_][A-Za-z0-9_.]*|\d+|"(?:[^"\\\n]|\\.)*"))
  | (?P<global>@(?:[A-Za-z_][A-Za-z0-9_.]*|"(?:[^"\\\n]|\\.)*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>\.\.|\*\*|[(){}\[\],=:+\-*/])
    """,
    re.VERBOSE,
)


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = self._tokenize(text)
        self.i = 0
        self.symbols: dict[str, tuple[int, int]] = {}
        self.env: dict[tuple[bool, str], Value] = {}

    # -- tokens ----------------------------------------------------------------------------
    def _tokenize(self, text: str) -> list[Tok]:
        toks, pos = [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self._fail(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                toks.append(Tok(m.lastgroup or "", m.group(), pos))
            pos = m.end()
        toks.append(Tok("eof", "", len(text)))
        return toks

    def _fail(self, msg: str, pos: int | None = None) -> typing.NoReturn:
        if pos is None:
            pos = self.toks[self.i].pos
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        raise ParseError(msg, self.text, line, col)

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("punct", "ident")

    def expect(self, text: str) -> Tok:
        if not self.at(text):
            got = self.tok.text or "end of input"
            self._fail(f"expected {text!r}, got {got!r}")
        return self.next()

    def expect_kind(self, kind: str, what: str) -> Tok:
        if self.tok.kind != kind:
            self._fail(f"expected {what}, got {self.tok.text or 'end of input'!r}")
        return self.next()

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    # -- grammar ---------------------------------------------------------------------------
    def graph(self) -> Graph:
        self.expect("graph")
        name = _unquote(self.expect_kind("global", "a graph name like @main").text[1:])
        if self.accept("["):
            while True:
                t = self.expect_kind("ident", "a symbol name")
                if not t.text.isidentifier():
                    self._fail(f"symbol name {t.text!r} is not an identifier", t.pos)
                if t.text in self.symbols:
                    self._fail(f"symbol {t.text} declared twice", t.pos)
                if t.text in DTYPE_NAMES or t.text in _RESERVED:
                    self._fail(f"{t.text!r} cannot name a symbol", t.pos)
                self.expect("in")
                lo = self._int()
                self.expect("..")
                hi = self._int()
                if not 1 <= lo <= hi:
                    self._fail(f"symbol {t.text}: bounds {lo}..{hi} need 1 <= lo <= hi", t.pos)
                self.symbols[t.text] = (lo, hi)
                if not self.accept(","):
                    break
            self.expect("]")
        g = Graph(name, self.symbols)
        self.expect("{")
        while not self.at("return"):
            self.statement(g)
        self.next()
        outs = [self.use()]
        while self.accept(","):
            outs.append(self.use())
        g.set_outputs(outs)
        self.expect("}")
        self.expect_kind("eof", "end of input after '}'")
        return g

    def _int(self) -> int:
        t = self.expect_kind("num", "an integer")
        if not t.text.isdigit():
            self._fail(f"expected an integer, got {t.text!r}", t.pos)
        return int(t.text)

    def define(self) -> Tok:
        return self.expect_kind("local", "a value name like %0")

    def use(self) -> Value:
        t = self.expect_kind("local", "a value name like %0")
        key = _value_key(t.text)
        if key not in self.env:
            self._fail(f"use of undefined value {t.text}", t.pos)
        return self.env[key]

    def statement(self, g: Graph) -> None:
        lhs = [self.define()]
        while self.accept(","):
            lhs.append(self.define())
        self.expect("=")
        op_tok = self.expect_kind("ident", "an op name")
        cls = OPS.get(op_tok.text)
        if cls is None:
            self._fail(f"unknown op {op_tok.text!r}", op_tok.pos)
        self.expect("(")
        args: list[Value] = []
        if not self.at(")"):
            args.append(self.use())
            while self.accept(","):
                args.append(self.use())
        self.expect(")")
        attrs: dict[str, Any] = {}
        ann = cls.attr_types()
        if self.accept("{"):
            while not self.at("}"):
                k = self.expect_kind("ident", "an attribute name")
                if k.text not in ann:
                    self._fail(
                        f"{cls.name} has no attribute {k.text!r} "
                        f"(it has: {', '.join(ann) or 'none'})",
                        k.pos,
                    )
                if k.text in attrs:
                    self._fail(f"attribute {k.text!r} given twice", k.pos)
                self.expect("=")
                vpos = self.tok.pos
                raw = self.value()
                try:
                    attrs[k.text] = coerce(raw, ann[k.text])
                except (TypeError, ValueError) as e:
                    self._fail(f"{cls.name}.{k.text}: {e}", vpos)
                if not self.accept(","):
                    break
            self.expect("}")
        self.expect(":")
        types = [self.type()]
        while self.accept(","):
            types.append(self.type())
        if len(types) != len(lhs):
            self._fail(f"{len(lhs)} results but {len(types)} types", op_tok.pos)
        try:
            op: Op = cls(**attrs)
        except (TypeError, ValueError, LmcError) as e:
            self._fail(f"{cls.name}: {e}", op_tok.pos)
        names = []
        keys = []
        for t in lhs:
            key = _value_key(t.text)
            if key in self.env or key in keys:
                self._fail(f"value {t.text} defined twice", t.pos)
            keys.append(key)
            names.append(None if t.text[1:].isdigit() else _unquote(t.text[1:]))
        node = g.add_node(op, args, types, names)
        for key, v in zip(keys, node.outputs):
            self.env[key] = v

    def type(self) -> TensorType:
        t = self.expect_kind("ident", "a tensor type like f32[2, s0]")
        if t.text not in DTYPE_NAMES:
            self._fail(f"unknown dtype {t.text!r}", t.pos)
        self.expect("[")
        dims = []
        if not self.at("]"):
            dims.append(self._dim())
            while self.accept(","):
                dims.append(self._dim())
        self.expect("]")
        return TensorType(DType(t.text), dims)

    def _dim(self) -> Any:
        pos = self.tok.pos
        d = self.expr()
        if isinstance(d, float) or isinstance(d, bool) or d is None or isinstance(d, DType):
            self._fail("a dim must be an integer expression", pos)
        if isinstance(d, sympy.Basic) and not (d.is_integer or d.is_Integer):
            self._fail(f"dim {d} is not an integer expression", pos)
        return d

    # -- attribute values ------------------------------------------------------------------
    def value(self) -> Any:
        t = self.tok
        if t.kind == "str":
            self.next()
            return json.loads(t.text)
        if self.accept("["):
            items = []
            if not self.at("]"):
                items.append(self.value())
                while self.accept(","):
                    items.append(self.value())
            self.expect("]")
            return tuple(items)
        return self.expr()

    def expr(self) -> Any:
        left = self.term()
        while self.at("+") or self.at("-"):
            op = self.next()
            right = self.term()
            left = self._arith(op, left, right)
        return left

    def term(self) -> Any:
        left = self.unary()
        while self.at("*") or self.at("/"):
            op = self.next()
            right = self.unary()
            left = self._arith(op, left, right)
        return left

    def unary(self) -> Any:
        if self.at("-"):
            op = self.next()
            v = self.unary()
            if isinstance(v, bool) or not isinstance(v, (int, float, sympy.Basic)):
                self._fail("cannot negate this value", op.pos)
            return norm(-v) if isinstance(v, sympy.Basic) else -v
        base = self.atom()
        if self.at("**"):
            op = self.next()
            base = self._arith(op, base, self.unary())
        return base

    def atom(self) -> Any:
        t = self.tok
        if t.kind == "num":
            self.next()
            return int(t.text) if t.text.isdigit() else float(t.text)
        if self.accept("("):
            v = self.expr()
            self.expect(")")
            return v
        if t.kind == "ident":
            self.next()
            if t.text in _LITERALS:
                return _LITERALS[t.text]
            if t.text in DTYPE_NAMES:
                return DType(t.text)
            if t.text in DIM_FUNCS and self.at("("):
                self.next()
                args = [self.expr()]
                while self.accept(","):
                    args.append(self.expr())
                self.expect(")")
                for a in args:
                    if not isinstance(a, (int, sympy.Basic)) or isinstance(a, bool):
                        self._fail(f"{t.text}() takes integer expressions", t.pos)
                return _sympy_result(DIM_FUNCS[t.text](*args))  # type: ignore[operator]
            if t.text not in self.symbols:
                self._fail(f"undeclared symbol {t.text!r} (declare it in the graph header)", t.pos)
            return sym(t.text)
        self._fail(f"expected a value, got {t.text or 'end of input'!r}")

    def _arith(self, op: Tok, a: Any, b: Any) -> Any:
        for v in (a, b):
            if isinstance(v, (bool, float, str, DType, tuple)) or v is None:
                self._fail(f"operator {op.text!r} only applies to integer expressions", op.pos)
        a, b = sympy.sympify(a), sympy.sympify(b)
        if op.text == "/" and b == 0:
            self._fail("division by zero in a dim expression", op.pos)
        r = {"+": sympy.Add, "-": _sub, "*": sympy.Mul, "/": _div, "**": sympy.Pow}[op.text](a, b)
        return _sympy_result(r)


_LITERALS: dict[str, Any] = {
    "true": True,
    "false": False,
    "none": None,
    "inf": float("inf"),
    "nan": float("nan"),
}
_RESERVED = frozenset(_LITERALS) | frozenset(DIM_FUNCS) | {"in", "graph", "return"}


def _sub(a: Any, b: Any) -> Any:
    return a - b


def _div(a: Any, b: Any) -> Any:
    return a / b


def _sympy_result(r: Any) -> Any:
    return int(r) if isinstance(r, sympy.Basic) and r.is_Integer else r


def _unquote(name: str) -> str:
    return json.loads(name) if name.startswith('"') else name


def _value_key(tok_text: str) -> tuple[bool, str]:
    """Environment key of a `%` token: `%0` (numbered) and `%"0"` (a name) are different."""
    body = tok_text[1:]
    return (True, body) if body.isdigit() else (False, _unquote(body))


def coerce(v: Any, ann: Any) -> Any:
    """Convert a parsed attribute value to the field's annotated type, or raise TypeError."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, pytypes.UnionType):
        members = typing.get_args(ann)
        for m in members:  # exact kinds first (so 3 stays an int in `Dim | float`)
            if _is_kind(v, m):
                return coerce(v, m)
        for m in members:
            try:
                return coerce(v, m)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"expected {_ann_name(ann)}, got {v!r}")
    if origin is tuple:
        if not isinstance(v, tuple):
            raise TypeError(f"expected a list, got {v!r}")
        args = typing.get_args(ann)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(x, args[0]) for x in v)
        if len(args) != len(v):
            raise TypeError(f"expected {len(args)} items, got {len(v)}")
        return tuple(coerce(x, a) for x, a in zip(v, args))
    if ann is type(None):
        if v is None:
            return None
        raise TypeError(f"expected none, got {v!r}")
    if ann is bool:
        if isinstance(v, bool):
            return v
        raise TypeError(f"expected true or false, got {v!r}")
    if ann is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise TypeError(f"expected an integer, got {v!r}")
    if ann is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise TypeError(f"expected a number, got {v!r}")
    if ann is str:
        if isinstance(v, str):
            return v
        raise TypeError(f"expected a string, got {v!r}")
    if ann is DType:
        if isinstance(v, DType):
            return v
        raise TypeError(f"expected a dtype, got {v!r}")
    if ann is sympy.Expr:
        if isinstance(v, sympy.Expr):
            return v
        raise TypeError(f"expected a dim expression, got {v!r}")
    raise TypeError(f"unsupported attribute type {ann!r}")


def _is_kind(v: Any, ann: Any) -> bool:
    if ann is type(None):
        return v is None
    if ann is bool:
        return isinstance(v, bool)
    if ann is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if ann is float:
        return isinstance(v, float)
    if ann in (str, DType, sympy.Expr):
        return isinstance(v, ann)
    if typing.get_origin(ann) is tuple:
        return isinstance(v, tuple)
    return False


def _ann_name(ann: Any) -> str:
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def parse_ir(text: str) -> Graph:
    """Parse text IR into a Graph (types as declared; run the verifier to check them)."""
    return _Parser(text).graph()
