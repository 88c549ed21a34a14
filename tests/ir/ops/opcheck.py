"""Helpers for the shape/index/misc op tests: apply an op to arrays with its shape rule checked,
run one ONNX node through onnx's reference evaluator, and check a `.lmc` case file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lmc.ir import parse_ir, print_graph, run, verify
from lmc.ir.dtypes import from_numpy
from lmc.ir.types import TensorType

from tests.util import random_inputs, symbol_values

CASES = Path(__file__).resolve().parents[2] / "cases"


def apply_op(op, *arrays: np.ndarray):
    """op.ref(*arrays), after checking that op.infer on the arrays' types predicts every
    result's shape and dtype exactly."""
    want = op.infer(*(TensorType(from_numpy(a.dtype), a.shape) for a in arrays))
    out = op.ref(*arrays)
    wants = want if isinstance(want, tuple) else (want,)
    outs = out if isinstance(out, tuple) else (out,)
    assert len(wants) == len(outs), f"{op}: {len(outs)} results, infer says {len(wants)}"
    for w, o in zip(wants, outs):
        assert isinstance(o, np.ndarray), f"{op}: result is {type(o).__name__}"
        assert o.shape == w.concrete({}), f"{op}: shape {o.shape}, infer says {w}"
        assert o.dtype == w.dtype.np, f"{op}: dtype {o.dtype}, infer says {w}"
    return out


def onnx_run(
    op_type: str, inputs: list[np.ndarray | None], n_out: int = 1, opset: int = 21, **attrs
) -> list[np.ndarray]:
    """Run a one-node ONNX model with onnx.reference.ReferenceEvaluator (None = omitted input)."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    names = ["" if a is None else f"in{i}" for i, a in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_out)]
    node = helper.make_node(op_type, names, outs, **attrs)
    vin = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in zip(names, inputs)
        if a is not None
    ]
    vout = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs]
    graph = helper.make_graph([node], "one_node", vin, vout)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, inputs) if a is not None}
    return ReferenceEvaluator(model).run(None, feeds)


def check_case(name: str) -> list[dict[str, int]]:
    """A case file parses, verifies, prints back identically and interprets at >= 2 envs."""
    text = (CASES / name).read_text()
    g = parse_ir(text)
    verify(g)
    assert print_graph(g) == text
    envs = symbol_values(g)
    assert len(envs) >= 2
    for env in envs:
        outs = run(g, random_inputs(g, env))
        for v, o in zip(g.outputs, outs):
            assert o.shape == v.type.concrete(env)
    return envs
