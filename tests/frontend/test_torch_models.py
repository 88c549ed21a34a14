"""Real models through torch.export: every zoo model (tests/models.py) is compiled with
`lmc.backends.driver.compile(..., target="reference")` (import + default pass pipeline) and
compared with PyTorch at two or more values of each dynamic dim: fp32, max abs error
<= 1e-4 of the output's scale (max |ref|). MiniLM runs with its real weights."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lmc.backends.driver import compile  # noqa: E402
from lmc.ir.parser import parse_ir  # noqa: E402
from lmc.ir.printer import print_graph  # noqa: E402

from tests.models import ZOO  # noqa: E402

REL_TOL = 1e-4  # of max |reference output|


@functools.cache
def compiled(name: str):
    """(module, dynamic_shapes, compiled model) of a zoo model, built once per session."""
    module, example, dynamic = ZOO[name].build()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="lmc:")  # the fx fallback must not be taken
        model = compile(module, example, target="reference", dynamic_shapes=dynamic)
    return module, dynamic, model


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_matches_pytorch(name: str) -> None:
    entry = ZOO[name]
    module, dynamic, model = compiled(name)
    g = model.graph
    assert model.report.path.startswith("torch.export"), model.report.path
    declared = {spec[0] for axes in dynamic.values() for spec in axes.values()}
    assert declared == set(g.symbols), (declared, g.symbols)
    for s, (lo, hi) in g.symbols.items():  # the bounds given in the zoo spec
        spec = next(v for axes in dynamic.values() for v in axes.values() if v[0] == s)
        assert (lo, hi) == (spec[1], spec[2]), (s, lo, hi, spec)
    state = set(module.state_dict())
    keys = {n.op.key for n in g.nodes if n.op.name == "param"}
    assert keys and keys <= state | set(g.weights), sorted(keys - state)[:5]
    assert print_graph(parse_ir(model.ir)) == model.ir  # the final IR round-trips
    assert len(entry.dim_values) >= 2
    errors = []
    for dims in entry.dim_values:
        inputs = entry.inputs(seed=1, **dims)
        with torch.no_grad():
            ref = module(*inputs)
        refs = ref if isinstance(ref, tuple) else (ref,)
        outs = model.run(list(inputs))
        assert len(outs) == len(refs)
        for i, (got, want) in enumerate(zip(outs, refs)):
            want = want.numpy()
            assert got.shape == want.shape, (name, dims, i, got.shape, want.shape)
            assert got.dtype == want.dtype, (name, dims, i, got.dtype, want.dtype)
            scale = max(float(np.abs(want).max()), 1e-12)
            err = float(np.abs(got.astype(np.float64) - want).max()) / scale
            errors.append(err)
            assert err <= REL_TOL, f"{name} {dims} output {i}: max abs error {err:.2e} of scale"
    print(f"{name}: max error {max(errors):.2e} of the output scale over {entry.dim_values}")


def test_minilm_embeddings_are_unit_vectors_and_similar_sentences_agree() -> None:
    """Real weights: the sentence embedding is L2-normalised, and the same sentence padded to
    two lengths gets (nearly) the same embedding."""
    entry = ZOO["minilm"]
    _, _, model = compiled("minilm")
    short = model(*entry.inputs(seed=0, batch=2, seq=16))
    long = model(*entry.inputs(seed=0, batch=2, seq=40))
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(short, long, atol=1e-4)
