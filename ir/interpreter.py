"""The reference interpreter: runs a graph on numpy arrays with each op's `ref`. It is the spec."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .dtypes import DType, round_to_bf16
from .errors import InterpreterError, LmcError
from .graph import Graph, Value
from .ops.source import Constant, Input, Param
from .printer import node_line
from .shapes import evaluate
from .types import TensorType


def bind_symbols(g: Graph, arrays: Sequence[np.ndarray]) -> dict[str, int]:
    """Bind shape symbols from the input arrays; check ranks, dims, bounds and consistency."""
    ins = g.inputs
    if len(arrays) != len(ins):
        raise InterpreterError(f"@{g.name} takes {len(ins)} inputs, got {len(arrays)}")
    env: dict[str, int] = {}
    for v, a in zip(ins, arrays):
        label = f"input {v.node.op.index} (%{v.name})"
        if a.ndim != v.type.rank:
            raise InterpreterError(
                f"{label}: expected rank {v.type.rank} ({v.type}), got shape {list(a.shape)}"
            )
        if a.dtype != v.type.dtype.np:
            raise InterpreterError(
                f"{label}: expected dtype {v.type.dtype} ({v.type.dtype.np}), got {a.dtype}"
            )
        for axis, (d, n) in enumerate(zip(v.type.shape, a.shape)):
            if not isinstance(d, int) and d.is_Symbol and d.name not in env:
                lo, hi = g.symbols[d.name]
                if not lo <= n <= hi:
                    raise InterpreterError(
                        f"{label}: dim {axis} = {n} is outside {d.name} in {lo}..{hi}"
                    )
                env[d.name] = n
    for v, a in zip(ins, arrays):
        for axis, (d, n) in enumerate(zip(v.type.shape, a.shape)):
            try:
                want = evaluate(d, env)
            except KeyError as e:
                raise InterpreterError(
                    f"input %{v.name}: symbol {e.args[0]} cannot be bound from the input shapes"
                ) from None
            if want != n:
                raise InterpreterError(
                    f"input %{v.name}: dim {axis} is {n}, expected {d} = "
                    f"{want} (shape {list(a.shape)} vs {v.type})"
                )
    return env


def run(
    g: Graph,
    inputs: Sequence[Any] | Mapping[str, Any],
    weights: Mapping[str, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Interpret `g`; inputs by position or by input name. Returns the outputs in order."""
    arrays = _order_inputs(g, inputs)
    env = bind_symbols(g, arrays)
    store = g.weights if weights is None else weights
    vals: dict[int, np.ndarray] = {}
    for v, a in zip(g.inputs, arrays):
        vals[id(v)] = a
    for n in g.nodes:
        if isinstance(n.op, Input):
            continue
        try:
            results = _eval(n, [vals[id(v)] for v in n.inputs], env, store)
            for v, r in zip(n.outputs, results):
                _check_result(v, r, env)
                vals[id(v)] = r
        except InterpreterError as e:
            raise InterpreterError(f"{e}\n  at: {node_line(n)}") from None
        except (
            LmcError,
            ValueError,
            TypeError,
            IndexError,
            KeyError,
            FloatingPointError,
            ZeroDivisionError,
        ) as e:
            raise InterpreterError(
                f"{n.op.name} failed: {type(e).__name__}: {e}\n  at: {node_line(n)}"
            ) from e
    return [vals[id(v)] for v in g.outputs]


def _order_inputs(g: Graph, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
    if isinstance(inputs, Mapping):
        names = [v.name for v in g.inputs]
        unknown = set(inputs) - set(names)
        if unknown:
            raise InterpreterError(f"unknown input name(s) {sorted(unknown)}; inputs: {names}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InterpreterError(f"missing input(s) {missing}")
        inputs = [inputs[n] for n in names]
    return [np.asarray(a) for a in inputs]


def _eval(
    n, args: list[np.ndarray], env: dict[str, int], store: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    op = n.op
    if isinstance(op, Param):
        if op.key not in store:
            raise InterpreterError(f"weights store has no key {op.key!r}")
        return (np.asarray(store[op.key]),)
    if isinstance(op, Constant):
        return (op.materialize(n.outputs[0].type, env),)
    with np.errstate(all="ignore"):
        out = op.bind(env).ref(*args)
    return out if isinstance(out, tuple) else (out,)


def _check_result(v: Value, r: np.ndarray, env: dict[str, int]) -> None:
    t: TensorType = v.type
    if not isinstance(r, np.ndarray):
        raise InterpreterError(f"reference returned {type(r).__name__}, not an array")
    want = t.concrete(env)
    if tuple(r.shape) != want:
        raise InterpreterError(
            f"result {v.index} has shape {list(r.shape)}, type says {t} = {list(want)}"
        )
    if r.dtype != t.dtype.np:
        raise InterpreterError(f"result {v.index} has dtype {r.dtype}, type says {t.dtype}")


def to_storage(a: np.ndarray, dtype: DType) -> np.ndarray:
    """Convert an array to the interpreter's storage for `dtype` (bf16 rounding included)."""
    out = np.asarray(a).astype(dtype.np)
    return round_to_bf16(out) if dtype == DType.bf16 else out
