"""Real models on wasm32 (SIMD128) through `lmc.load` (wasmtime) against PyTorch: all-MiniLM-L6-v2
with its real weights (sequences up to 16 tokens) and the LLaMA-architecture prefill of the
test zoo (tests/models.py), each at two values of every dynamic dim; and the same artifact's
web package under node gives the same numbers."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from .wasmbuild import NODE, build, needs_node, needs_wasm, node, session_dir, to_json_tensor

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lmc.backends.driver import compile as lmc_compile  # noqa: E402
from lmc.runtime.loader import load  # noqa: E402

from tests.models import ZOO  # noqa: E402

pytestmark = needs_wasm
REL_TOL = 1e-4  # max abs error as a fraction of the output's scale, as on host
DIMS = {
    "minilm": ({"batch": 2, "seq": 16}, {"batch": 1, "seq": 7}),
    "llama_prefill": ({"batch": 1, "seq": 8}, {"batch": 2, "seq": 13}),
}
HERE = Path(__file__).resolve().parent


@functools.cache
def artifact(name: str) -> tuple[object, Path]:
    """(the torch module, the wasm32 artifact of the model after the default passes)."""
    module, example, dynamic = ZOO[name].build()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lmc:")
        graph = lmc_compile(module, example, target="reference", dynamic_shapes=dynamic).graph
    return module, build(graph, "wasm32")


def scale_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-12)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0)) / scale


@pytest.mark.parametrize("name", DIMS)
def test_wasm32_matches_pytorch(name: str) -> None:
    module, out = artifact(name)
    with load(out) as m:
        for dims in DIMS[name]:
            inputs = ZOO[name].inputs(seed=1, **dims)
            with torch.no_grad():
                want = module(*inputs)
            want = [t.numpy() for t in (want if isinstance(want, tuple) else (want,))]
            got = m.run([t.numpy() for t in inputs])
            assert len(got) == len(want)
            for i, (a, b) in enumerate(zip(got, want)):
                assert a.shape == b.shape and a.dtype == b.dtype, (name, dims, i)
                err = scale_error(a, b)
                assert err <= REL_TOL, f"{name} {dims} output {i}: {err:.2e} of scale"


@needs_node
def test_web_package_under_node_matches_wasmtime() -> None:
    """The ES module (web/lmc_model.js) on the MiniLM artifact's files, in node."""
    assert NODE
    _, out = artifact("minilm")
    inputs = [t.numpy() for t in ZOO["minilm"].inputs(seed=2, batch=1, seq=9)]
    spec = session_dir() / "minilm_inputs.json"
    spec.write_text(json.dumps({"inputs": [to_json_tensor(a) for a in inputs]}))
    res = node(HERE / "fixtures" / "run_model.mjs", str(out / "web"), str(spec))
    with load(out) as m:
        want = m.run(inputs)[0]
    got = np.asarray(res["outputs"][0]["data"], np.float32).reshape(res["outputs"][0]["shape"])
    assert got.shape == want.shape
    assert np.array_equal(got, want), "node and wasmtime ran the same module differently"
