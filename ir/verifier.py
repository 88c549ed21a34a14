"""The IR verifier: SSA and order, use-lists, declared symbols, and types against op rules."""

from __future__ import annotations

import numpy as np

from .errors import IRTypeError, LmcError, VerifyError
from .graph import Graph
from .ops.source import Constant, Input, Param
from .printer import format_node, value_names
from .types import TensorType


def verify(g: Graph, check_weights: bool = False) -> None:
    """Raise VerifyError naming the first broken invariant and the printed node line."""
    names = value_names(g)

    def fail(node, msg: str) -> None:
        line = format_node(node, names) if node is not None else ""
        raise VerifyError(f"@{g.name}: {msg}" + (f"\n  at: {line}" if line else ""))

    for s, (lo, hi) in g.symbols.items():
        if not s.isidentifier() or not 1 <= lo <= hi:
            fail(None, f"symbol {s} has bad bounds {lo}..{hi}")
    defined: set[int] = set()
    seen_names: dict[str, object] = {}
    input_indices: list[int] = []
    for n in g.nodes:
        if n.graph is not g:
            fail(n, "node belongs to another graph")
        for i, v in enumerate(n.inputs):
            if id(v) not in defined:
                fail(n, f"operand {i} is used before it is defined (or not in this graph)")
            if (n, i) not in v.uses:
                fail(n, f"use-list of operand {i} misses this node")
        lo, hi = n.op.arity()
        if len(n.inputs) < lo or (hi is not None and len(n.inputs) > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{'n' if hi is None else hi}"
            fail(n, f"{n.op.name} takes {want} operands, got {len(n.inputs)}")
        for v in n.outputs:
            undeclared = v.type.symbols() - set(g.symbols)
            if undeclared:
                fail(n, f"type {v.type} uses undeclared symbol(s) {sorted(undeclared)}")
            if v.name is not None and n.op.declares_type:
                if v.name in seen_names:
                    fail(n, f"name %{v.name} is defined twice")
                seen_names[v.name] = v
            for u, j in v.uses:
                if u.inputs[j] is not v:
                    fail(n, "stale entry in a use-list")
        undeclared = n.op.symbols() - set(g.symbols)
        if undeclared:
            fail(n, f"attributes use undeclared symbol(s) {sorted(undeclared)}")
        _check_types(g, n, fail)
        if isinstance(n.op, Input):
            input_indices.append(n.op.index)
        if check_weights and isinstance(n.op, Param):
            _check_weight(g, n, fail)
        defined.update(id(v) for v in n.outputs)
    if sorted(input_indices) != list(range(len(input_indices))):
        fail(None, f"input indices {sorted(input_indices)} are not 0..{len(input_indices) - 1}")
    if not g.outputs:
        fail(None, "graph has no outputs")
    for v in g.outputs:
        if id(v) not in defined:
            fail(None, "an output is not defined in the graph")


def _check_types(g: Graph, n, fail) -> None:
    if n.op.declares_type:
        if len(n.outputs) != 1:
            fail(n, f"{n.op.name} has exactly one result")
        if isinstance(n.op, Constant):
            try:
                n.op.check_type(n.outputs[0].type)
            except IRTypeError as e:
                fail(n, str(e))
        return
    try:
        inferred = n.op.infer(*(v.type for v in n.inputs))
    except IRTypeError as e:
        fail(n, f"type rule rejects the operands: {e}")
    except LmcError as e:
        fail(n, str(e))
    want: tuple[TensorType, ...] = inferred if isinstance(inferred, tuple) else (inferred,)
    if len(want) != len(n.outputs):
        fail(n, f"{n.op.name} produces {len(want)} results, the node declares {len(n.outputs)}")
    for i, (w, v) in enumerate(zip(want, n.outputs)):
        if not w.same_as(v.type):
            fail(n, f"result {i} is declared {v.type} but the op's rule gives {w}")


def _check_weight(g: Graph, n, fail) -> None:
    key, t = n.op.key, n.outputs[0].type
    if key not in g.weights:
        fail(n, f"weights store has no key {key!r}")
    arr = g.weights[key]
    if not isinstance(arr, np.ndarray):
        fail(n, f"weight {key!r} is not a numpy array")
    if t.dtype.np != arr.dtype or tuple(arr.shape) != t.shape:
        fail(n, f"weight {key!r} is {arr.dtype}{list(arr.shape)}, the node declares {t}")
