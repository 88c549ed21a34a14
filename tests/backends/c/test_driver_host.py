"""`lmc.compile(..., target="host")`: a torch model compiled, run through the built artifact at
two batch sizes against torch, saved and loaded back; the object cache it shares with `lmc build`;
target="reference" still works."""

from __future__ import annotations

import numpy as np
import pytest
from lmc.backends.driver import build_artifact, compile
from lmc.ir.errors import LmcError
from lmc.runtime.errors import ArtifactError

from tests.util import assert_close

from .hostbuild import CASES, case_graph, needs_cc, object_cache

torch = pytest.importorskip("torch")


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8), torch.nn.Softmax(-1)
    ).eval()


DYN = {"input": {0: ("batch", 1, 64)}}


@needs_cc
def test_compile_for_host_runs_saves_and_loads(tmp_path):
    from lmc.runtime.loader import load

    model = _mlp()
    x = torch.randn(4, 16)
    m = compile(model, (x,), target="host", dynamic_shapes=DYN)
    assert "fused_linear" in m.ir, m.ir
    for batch in (4, 9):
        xb = torch.randn(batch, 16)
        with torch.no_grad():
            want = model(xb).numpy()
        assert_close(m(xb), want, 1e-4, 1e-5, name=f"host mlp batch {batch}")
    saved = m.save(tmp_path / "mlp")
    with pytest.raises(ArtifactError, match="force=True"):
        m.save(tmp_path / "mlp")
    m.save(tmp_path / "mlp", force=True)
    loaded = load(saved)
    xb = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(loaded.run([xb])[0], m.run([xb])[0])


def test_reference_target_still_works():
    model = _mlp()
    x = torch.randn(2, 16)
    m = compile(model, (x,), target="reference", dynamic_shapes=DYN)
    with torch.no_grad():
        assert_close(m(x), model(x).numpy(), 1e-5, 1e-6)
    with pytest.raises(LmcError, match="builds no artifact"):
        m.save("unused")


def test_unknown_target_lists_the_available_ones():
    with pytest.raises(LmcError, match="available"):
        compile(_mlp(), (torch.randn(2, 16),), target="no-such-target")


@needs_cc
def test_build_artifact_entry_point(tmp_path):
    out = build_artifact(case_graph(CASES[0]), "host", tmp_path / "a", cache_dir=object_cache())
    assert (out / "manifest.json").is_file() and (out / "lib" / "liblmc_model.so").is_file()


@needs_cc
def test_compile_uses_the_object_cache_it_is_given(tmp_path, monkeypatch):
    """object_cache: a folder receives the runtime and kernel objects and the next compile
    reuses them; False compiles without one; True is LMC_CACHE_DIR (lmc build's cache)."""
    model, x = _mlp(), torch.randn(4, 16)
    cache = tmp_path / "objects"
    m = compile(model, (x,), target="host", dynamic_shapes=DYN, object_cache=cache)
    cached = sorted(p.name for p in cache.glob("*.o"))
    assert any(n.startswith("lmc_runtime-") for n in cached)
    assert any(n.startswith("lmc_gemm-") for n in cached)
    assert not any(n.startswith("model-") for n in cached)  # the generated code never is
    m2 = compile(model, (x,), target="host", dynamic_shapes=DYN, object_cache=cache)
    assert sorted(p.name for p in cache.glob("*.o")) == cached
    np.testing.assert_array_equal(m2(x), m(x))
    env = tmp_path / "env"
    monkeypatch.setenv("LMC_CACHE_DIR", str(env))
    compile(model, (x,), target="host", dynamic_shapes=DYN, object_cache=False)
    assert not env.exists()
    compile(model, (x,), target="host", dynamic_shapes=DYN)
    assert sorted(p.name for p in env.glob("*.o")) == cached
