"""Every zoo model (tests/models.py) compiled for host with the default passes and run through
its built artifact: against PyTorch (fp32, max abs error <= 1e-4 of the output scale) and
against the reference interpreter of the same final (grouped) graph, at two or more values of
each dynamic dim; the same artifact at 1 and 2 threads agrees. MiniLM runs with real weights."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lmc.ir.interpreter import run as interpret
from lmc.runtime.artifact import read_manifest
from lmc.runtime.host import host_runner

from .hostbuild import needs_cc
from .zoohost import REL_TOL, ZOO, ZooHost, compiled, scale_error, torch_outputs

pytestmark = needs_cc


@pytest.fixture(scope="module", params=list(ZOO))
def zoo(request: pytest.FixtureRequest) -> ZooHost:
    return compiled(request.param)


def _numpy(inputs: tuple) -> list[np.ndarray]:
    return [t.numpy() for t in inputs]


def test_dim_values_cover_every_dynamic_dim_twice(zoo: ZooHost) -> None:
    g = zoo.model.graph
    assert g.symbols, f"{zoo.name}: the compiled graph has no dynamic dims"
    for s in g.symbols:
        seen = {dims[s] for dims in zoo.entry.dim_values}
        assert len(seen) >= 2, f"{zoo.name}: symbol {s} takes only {sorted(seen)}"
    assert zoo.model.artifact is not None and zoo.model.target == "host"


def test_host_matches_pytorch(zoo: ZooHost) -> None:
    errors, seconds = [], []
    for dims in zoo.entry.dim_values:
        inputs = zoo.entry.inputs(seed=1, **dims)
        want = torch_outputs(zoo.module, inputs)
        t0 = time.perf_counter()
        got = zoo.model.run(_numpy(inputs))
        seconds.append(time.perf_counter() - t0)
        assert len(got) == len(want), f"{zoo.name} {dims}: {len(got)} outputs, want {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape, (zoo.name, dims, i, a.shape, b.shape)
            assert a.dtype == b.dtype, (zoo.name, dims, i, a.dtype, b.dtype)
            assert np.isfinite(a).all(), f"{zoo.name} {dims} output {i}: non-finite values"
            err = scale_error(a, b)
            errors.append(err)
            assert err <= REL_TOL, f"{zoo.name} {dims} output {i}: max abs error {err:.2e} of scale"
    runs = ", ".join(f"{s * 1e3:.1f} ms" for s in seconds)
    print(f"{zoo.name}: host vs torch max error {max(errors):.2e} of scale; runs {runs}")


def test_host_matches_reference_interpreter(zoo: ZooHost) -> None:
    """The artifact and the numpy reference of the graph it was generated from agree."""
    errors = []
    for dims in zoo.entry.dim_values:
        inputs = _numpy(zoo.entry.inputs(seed=2, **dims))
        want = interpret(zoo.model.graph, inputs)
        got = zoo.model.run(inputs)
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape and a.dtype == b.dtype, (zoo.name, dims, i)
            err = scale_error(a, b)
            errors.append(err)
            assert err <= REL_TOL, (
                f"{zoo.name} {dims} output {i}: host vs reference {err:.2e} of scale"
            )
    print(f"{zoo.name}: host vs reference interpreter max error {max(errors):.2e} of scale")


def test_one_and_two_threads_agree(zoo: ZooHost) -> None:
    art = zoo.model.artifact
    assert art is not None
    manifest = read_manifest(art)
    dims = max(zoo.entry.dim_values, key=lambda d: np.prod(list(d.values())))  # most work
    inputs = _numpy(zoo.entry.inputs(seed=3, **dims))
    outs = {}
    for n in (1, 2):
        with host_runner(art, manifest, num_threads=n) as r:
            assert r.num_threads == n, f"{zoo.name}: asked for {n} threads, got {r.num_threads}"
            outs[n] = r.run(inputs)
    for i, (a, b) in enumerate(zip(outs[1], outs[2])):
        assert a.shape == b.shape and a.dtype == b.dtype
        err = scale_error(b, a)
        assert err <= REL_TOL, f"{zoo.name} {dims} output {i}: 2 vs 1 threads {err:.2e} of scale"
