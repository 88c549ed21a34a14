"""Helpers for the C backend tests: build graphs for the host target (compiled objects of the
runtime and kernel library shared through one session cache, each artifact built once per
session), run them through the runtime's host runner and compare with the reference."""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lmc.backends.c.build import build_artifact
from lmc.backends.targets import parse_target
from lmc.ir import parse_ir, print_graph
from lmc.ir.dtypes import DType
from lmc.ir.graph import Graph
from lmc.runtime.artifact import read_manifest
from lmc.runtime.host import HostRunner, host_runner

from tests.passes.harness import reference_runs, with_random_weights
from tests.util import assert_close, tolerance

ROOT = Path(__file__).resolve().parents[3]


def _has_c_path(path: Path) -> bool:
    """Cases using an op listed in legalize.UNSUPPORTED have no C path yet (the op x backend
    registry test names those ops with their reasons)."""
    from lmc.backends.c.legalize import UNSUPPORTED

    g = parse_ir(path.read_text(encoding="utf-8"))
    return not any(type(n.op) in UNSUPPORTED for n in g.nodes)


CASES = [p for p in sorted((ROOT / "tests" / "cases").glob("*.lmc")) if _has_c_path(p)]
CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(
    CC is None or not parse_target("host").can_run()[0],
    reason="no C compiler (cc) on PATH, or this machine cannot run the host target",
)


@functools.cache
def session_dir() -> Path:
    d = tempfile.TemporaryDirectory(prefix="lmc_c_backend_tests_")
    atexit.register(d.cleanup)
    return Path(d.name)


def object_cache() -> Path:
    return session_dir() / "objects"


_BUILT: dict[str, tuple[Path, Any]] = {}


def _key(g: Graph, options: dict[str, Any]) -> str:
    h = hashlib.sha256(print_graph(g).encode())
    for k in sorted(g.weights):
        h.update(k.encode() + np.ascontiguousarray(g.weights[k]).tobytes())
    h.update(repr(sorted(options.items())).encode())
    return h.hexdigest()[:20]


def build(g: Graph, options: dict[str, Any] | None = None) -> tuple[Path, Any]:
    """(artifact folder, BuildResult) of g for host, built once per session."""
    opts = dict(options or {})
    key = _key(g, opts)
    if key not in _BUILT:
        out = session_dir() / f"{g.name if g.name.isidentifier() else 'g'}-{key}"
        res = build_artifact(g, "host", out, cache_dir=object_cache(), options=opts)
        _BUILT[key] = (out, res)
    return _BUILT[key]


def runner(directory: Path) -> HostRunner:
    return host_runner(directory, read_manifest(directory))


def case_graph(path: Path) -> Graph:
    g = with_random_weights(parse_ir(path.read_text(encoding="utf-8")))
    assert g is not None
    return g


def host_tolerance(dt: DType) -> tuple[float, float]:
    return tolerance("host", dt)


def check_host(
    g: Graph, options: dict[str, Any] | None = None, label: str = "", n_envs: int = 2
) -> Path:
    """Build g for host and compare every output with the reference interpreter at `n_envs`
    symbol bindings (>= 2 values per symbol when the bounds allow)."""
    runs = host_runs(g, n_envs)
    assert runs is not None, f"{label}: the reference cannot run this graph on random inputs"
    out, _ = build(g, options)
    r = runner(out)
    try:
        for env, inputs, want in runs:
            got = r.run(inputs)
            assert len(got) == len(want)
            for i, (a, b) in enumerate(zip(got, want)):
                assert a.dtype == b.dtype, f"{label} output {i}: dtype {a.dtype} vs {b.dtype}"
                dt = g.outputs[i].type.dtype
                rtol, atol = host_tolerance(dt)
                assert_close(a, b, rtol, atol, name=f"{label} output {i} at {env}")
    finally:
        r.close()
    return out


def host_runs(g: Graph, n_envs: int = 2) -> list[tuple[dict, list, list]] | None:
    """reference_runs with bf16 inputs rounded to bf16 (the host API carries 16 bits)."""
    from lmc.ir.dtypes import round_to_bf16
    from lmc.ir.interpreter import run

    runs = reference_runs(g, n_envs)
    if runs is None or not any(v.type.dtype == DType.bf16 for v in g.inputs):
        return runs
    out = []
    for env, inputs, _ in runs:
        ins = [
            round_to_bf16(a) if v.type.dtype == DType.bf16 else a for v, a in zip(g.inputs, inputs)
        ]
        out.append((env, ins, run(g, ins)))
    return out


def retype(g: Graph, old: DType, new: DType) -> Graph:
    """g with its `old` inputs, params, constants and dtype attributes made `new`; nodes whose
    shape rule rejects the new dtypes are dropped, with every node that reads them."""
    import dataclasses

    from lmc.ir.errors import IRTypeError
    from lmc.ir.interpreter import to_storage
    from lmc.ir.ops.source import Input, Param

    h = Graph(f"{g.name}_{new.value}", g.symbols)
    vmap: dict[int, Any] = {}
    n_in = 0
    for n in g.nodes:
        if any(id(v) not in vmap for v in n.inputs):
            continue
        op = n.op
        if op.declares_type:
            types = [
                t.with_dtype(new) if t.dtype == old else t for t in (v.type for v in n.outputs)
            ]
            if isinstance(op, Input):
                op = Input(index=n_in)
                n_in += 1
            if isinstance(op, Param):
                h.weights[op.key] = to_storage(g.weights[op.key], types[0].dtype)
            node = h.add_node(op, [], types, [v.name for v in n.outputs])
        else:
            changes = {k: new for k, v in op.attrs().items() if v == old and isinstance(v, DType)}
            op = dataclasses.replace(op, **changes) if changes else op
            try:
                node = h.add_node(op, [vmap[id(v)] for v in n.inputs])
            except IRTypeError:
                continue
        for a, b in zip(n.outputs, node.outputs):
            vmap[id(a)] = b
    h.set_outputs([vmap[id(v)] for v in g.outputs if id(v) in vmap])
    return h
