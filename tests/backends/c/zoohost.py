"""The model zoo (tests/models.py) compiled for the host C target, once per test session:
`lmc.compile(module, example, target="host", dynamic_shapes=...)` with the default passes. The
kernel library and runtime objects come from the C tests' session object cache (hostbuild.py):
the same compiler, flags and bytes give the same objects, and only model.c is compiled each
time."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from .hostbuild import object_cache

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lmc.backends.c import build as c_build  # noqa: E402
from lmc.backends.driver import CompiledModel, compile  # noqa: E402

from tests.models import ZOO, ZooEntry  # noqa: E402

REL_TOL = 1e-4  # max abs error, as a fraction of the output's scale (max |reference|)


@dataclass
class ZooHost:
    name: str
    entry: ZooEntry
    module: Any  # the torch module
    model: CompiledModel


def _with_object_cache(build_artifact):
    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["cache_dir"] = object_cache()
        return build_artifact(*args, **kwargs)

    return build


@functools.cache
def compiled(name: str) -> ZooHost:
    """ZOO[name] compiled for host (default passes), built once per session."""
    entry = ZOO[name]
    module, example, dynamic = entry.build()
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.filterwarnings("error", message="lmc:")  # the fx fallback must not be taken
        mp.setattr(c_build, "build_artifact", _with_object_cache(c_build.build_artifact))
        model = compile(module, example, target="host", dynamic_shapes=dynamic)
    return ZooHost(name, entry, module, model)


def torch_outputs(module: Any, inputs: tuple[Any, ...]) -> list[np.ndarray]:
    with torch.no_grad():
        out = module(*inputs)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def scale_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (float64)."""
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-12)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0)) / scale
