"""Real models on arm64 under qemu against PyTorch: all-MiniLM-L6-v2 with its real weights
(seq <= 16) and the LLaMA-architecture prefill (tiny config) from tests/models.py, compiled
with `lmc.compile(..., target="arm64")` (runtime and kernel objects from the arm64 tests'
object cache) at two values of each dynamic dim, all runs of a model in one qemu process."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest

from tests.backends.arm64.arm64build import needs_arm64, object_cache

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lmc.backends.c import build as c_build  # noqa: E402
from lmc.backends.driver import CompiledModel, compile  # noqa: E402
from lmc.runtime.arm64 import Arm64Runner  # noqa: E402

from tests.backends.c.zoohost import REL_TOL, scale_error, torch_outputs  # noqa: E402
from tests.models import ZOO  # noqa: E402

pytestmark = needs_arm64
# model -> dim values (MiniLM: seq <= 16 keeps qemu time small)
DIMS = {
    "minilm": ({"batch": 2, "seq": 16}, {"batch": 1, "seq": 7}),
    "llama_prefill": ({"batch": 1, "seq": 8}, {"batch": 2, "seq": 13}),
}


@functools.cache
def compiled(name: str) -> tuple[Any, CompiledModel]:
    module, example, dynamic = ZOO[name].build()

    def cached_build(*args: Any, **kwargs: Any) -> Any:
        kwargs["cache_dir"] = object_cache()
        return build_artifact(*args, **kwargs)

    build_artifact = c_build.build_artifact
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.filterwarnings("error", message="lmc:")  # the fx fallback must not be taken
        mp.setattr(c_build, "build_artifact", cached_build)
        model = compile(module, example, target="arm64", dynamic_shapes=dynamic)
    return module, model


@pytest.mark.parametrize("name", list(DIMS))
def test_arm64_matches_pytorch(name: str) -> None:
    module, model = compiled(name)
    assert model.target == "arm64" and isinstance(model._runner, Arm64Runner)
    batches = [ZOO[name].inputs(seed=1, **dims) for dims in DIMS[name]]
    got_all = model._runner.run_many([[t.numpy() for t in b] for b in batches])
    for dims, inputs, got in zip(DIMS[name], batches, got_all):
        want = torch_outputs(module, inputs)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape and a.dtype == b.dtype, (name, dims, i, a.shape, b.shape)
            assert np.isfinite(a).all(), f"{name} {dims} output {i}: non-finite values"
            err = scale_error(a, b)
            assert err <= REL_TOL, f"{name} {dims} output {i}: max abs error {err:.2e} of scale"


def test_compiled_model_call_runs_on_arm64() -> None:
    """The CompiledModel API itself (one input set, torch tensors in, numpy out)."""
    module, model = compiled("llama_prefill")
    inputs = ZOO["llama_prefill"].inputs(seed=2, batch=1, seq=5)
    got = model(*inputs)
    (want,) = torch_outputs(module, inputs)
    assert scale_error(got, want) <= REL_TOL
