"""Structural equality of graphs (same ops, attributes, wiring, types, names and symbols)."""

from __future__ import annotations

import math
from typing import Any

from .graph import Graph


def _same_attr(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same_attr(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (
        type(a) is type(b)
        and a == b
        or (not isinstance(a, (bool, str)) and not isinstance(b, (bool, str)) and a == b)
    )


def structurally_equal(g1: Graph, g2: Graph) -> str | None:
    """None when equal, else a sentence naming the first difference."""
    if g1.name != g2.name:
        return f"graph names differ: {g1.name} vs {g2.name}"
    if g1.symbols != g2.symbols:
        return f"symbols differ: {g1.symbols} vs {g2.symbols}"
    if len(g1.nodes) != len(g2.nodes):
        return f"node counts differ: {len(g1.nodes)} vs {len(g2.nodes)}"
    pos1 = {id(v): (i, v.index) for i, n in enumerate(g1.nodes) for v in n.outputs}
    pos2 = {id(v): (i, v.index) for i, n in enumerate(g2.nodes) for v in n.outputs}
    for i, (a, b) in enumerate(zip(g1.nodes, g2.nodes)):
        if type(a.op) is not type(b.op):
            return f"node {i}: {a.op.name} vs {b.op.name}"
        for k, va in a.op.attrs().items():
            if not _same_attr(va, getattr(b.op, k)):
                return f"node {i} ({a.op.name}): attribute {k}: {va!r} vs {getattr(b.op, k)!r}"
        if [pos1[id(v)] for v in a.inputs] != [pos2[id(v)] for v in b.inputs]:
            return f"node {i} ({a.op.name}): operands differ"
        if len(a.outputs) != len(b.outputs):
            return f"node {i} ({a.op.name}): result counts differ"
        for va, vb in zip(a.outputs, b.outputs):
            if va.type.dtype != vb.type.dtype or not va.type.same_as(vb.type):
                return f"node {i} ({a.op.name}): types differ: {va.type} vs {vb.type}"
            if va.name != vb.name and a.op.declares_type:
                return f"node {i} ({a.op.name}): names differ: {va.name} vs {vb.name}"
    if [pos1[id(v)] for v in g1.outputs] != [pos2[id(v)] for v in g2.outputs]:
        return "outputs differ"
    return None
