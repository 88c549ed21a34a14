"""Real models through the ONNX path: every model of the zoo (tests/models.py) is exported
with `torch.onnx.export` (the dynamo exporter, dynamic dims kept), imported with lmc's ONNX
frontend and interpreted, then compared with PyTorch at two or more values of each dynamic dim:
max abs error <= 1e-4 of the output's scale. MiniLM runs with its real weights."""

from __future__ import annotations

import inspect
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the ONNX frontend needs onnx")
torch = pytest.importorskip("torch", reason="the zoo models are PyTorch modules")
pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")

from lmc.frontend.onnx import import_onnx  # noqa: E402
from lmc.ir.interpreter import run  # noqa: E402

from tests.models import ZOO  # noqa: E402

REL_TOL = 1e-4  # of max |reference output|


def export(name: str):
    """(module, ONNX ModelProto, lmc dynamic_shapes) for a zoo model."""
    z = ZOO[name].build()
    params = list(inspect.signature(z.module.forward).parameters)[: len(z.example_inputs)]
    axes = {p: {ax: spec[0] for ax, spec in z.dynamic_shapes.get(p, {}).items()} for p in params}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            z.module,
            z.example_inputs,
            buf,
            dynamo=True,
            input_names=params,
            dynamic_axes=axes,
            opset_version=18,
            verbose=False,
        )
    return z.module, onnx.load_from_string(buf.getvalue()), z.dynamic_shapes


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_via_onnx_matches_pytorch(name: str) -> None:
    module, model, dynamic = export(name)
    g, report = import_onnx(model, dynamic_shapes=dynamic)
    symbols = {spec[0] for dims in dynamic.values() for spec in dims.values()}
    assert symbols <= set(g.symbols), (symbols, g.symbols)
    assert report.num_params > 0
    entry = ZOO[name]
    assert len(entry.dim_values) >= 2
    for dims in entry.dim_values:
        inputs = entry.inputs(**dims)
        with torch.no_grad():
            ref = module(*inputs)
        refs = ref if isinstance(ref, tuple) else (ref,)
        outs = run(g, [t.numpy() for t in inputs])
        assert len(outs) == len(refs)
        for i, (got, want) in enumerate(zip(outs, refs)):
            want = want.numpy()
            assert got.shape == want.shape, (name, dims, i, got.shape, want.shape)
            scale = max(float(np.abs(want).max()), 1e-12)
            err = float(np.abs(got.astype(np.float64) - want).max()) / scale
            assert err <= REL_TOL, f"{name} {dims} output {i}: max abs error {err:.2e} of scale"
