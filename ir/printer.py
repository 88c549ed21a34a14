"""Canonical text printer: one node per line, every attribute printed, values renumbered."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .dtypes import DType
from .graph import Graph, Node, Value
from .shapes import dim_str

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")


def quote_name(name: str) -> str:
    """A name as it appears after `%` or `@`: bare when an identifier, else a quoted string."""
    return name if _BARE.match(name) else json.dumps(name)


def format_attr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, DType):
        return v.value
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(format_attr(x) for x in v) + "]"
    return dim_str(v)


def value_names(g: Graph) -> dict[int, str]:
    """id(Value) -> printed name (without `%`): kept names for sources, numbers otherwise."""
    names: dict[int, str] = {}
    counter = 0
    for n in g.nodes:
        for v in n.outputs:
            if v.name is not None and n.op.declares_type:
                names[id(v)] = quote_name(v.name)
            else:
                names[id(v)] = str(counter)
                counter += 1
    return names


def format_node(n: Node, names: dict[int, str]) -> str:
    def ref(v: Value) -> str:
        return "%" + names.get(id(v), "<undefined>")

    lhs = ", ".join(ref(v) for v in n.outputs)
    args = ", ".join(ref(v) for v in n.inputs)
    attrs = n.op.attrs()
    attr_text = (
        " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items()) + "}" if attrs else ""
    )
    types = ", ".join(str(v.type) for v in n.outputs)
    return f"{lhs} = {n.op.name}({args}){attr_text} : {types}"


def print_graph(g: Graph) -> str:
    names = value_names(g)
    syms = ", ".join(f"{s} in {lo}..{hi}" for s, (lo, hi) in g.symbols.items())
    head = f"graph @{quote_name(g.name)}" + (f" [{syms}]" if syms else "") + " {"
    lines = [head]
    lines += ["  " + format_node(n, names) for n in g.nodes]
    lines.append("  return " + ", ".join("%" + names.get(id(v), "<undefined>") for v in g.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def node_line(n: Node) -> str:
    """The printed IR line of one node (for error messages)."""
    return format_node(n, value_names(n.graph))
