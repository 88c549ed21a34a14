"""Helpers for the wasm32 tests: skip markers (clang for wasm32-wasi, wasmtime, node, chromium),
builds for wasm32 / wasm32-nosimd sharing one session object cache (each artifact built once
per session), checks through `lmc.load` (wasmtime) against the reference interpreter, and a
runner for small node scripts."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lmc.backends.c.build import build_artifact
from lmc.backends.c.toolchain import ToolchainError, find_toolchain
from lmc.backends.targets import parse_target
from lmc.ir import print_graph
from lmc.ir.dtypes import DType
from lmc.ir.graph import Graph
from lmc.runtime.loader import load

from tests.backends.c.hostbuild import host_runs
from tests.util import assert_close, tolerance

TARGETS = ("wasm32", "wasm32-nosimd")
HERE = Path(__file__).resolve().parent
NODE_DRIVER = HERE / "fixtures" / "run_model.mjs"


@functools.cache
def toolchain_problem() -> str | None:
    try:
        find_toolchain(parse_target("wasm32"))
    except ToolchainError as e:
        return str(e).splitlines()[0]
    return None


def _wasmtime_missing() -> bool:
    try:
        import wasmtime  # noqa: F401
    except ImportError:
        return True
    return False


needs_wasm = pytest.mark.skipif(
    toolchain_problem() is not None or _wasmtime_missing(),
    reason=f"no wasm32 toolchain ({toolchain_problem()}) or no Python wasmtime package",
)
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH")


@functools.cache
def session_dir() -> Path:
    d = tempfile.TemporaryDirectory(prefix="lmc_wasm32_tests_")
    atexit.register(d.cleanup)
    return Path(d.name)


_BUILT: dict[str, Path] = {}


def _key(g: Graph, target: str, options: dict[str, Any]) -> str:
    h = hashlib.sha256(print_graph(g).encode() + target.encode())
    for k in sorted(g.weights):
        h.update(k.encode() + np.ascontiguousarray(g.weights[k]).tobytes())
    h.update(repr(sorted(options.items())).encode())
    return h.hexdigest()[:20]


def build(g: Graph, target: str = "wasm32", options: dict[str, Any] | None = None) -> Path:
    """The artifact folder of g for `target`, built once per session."""
    opts = dict(options or {})
    key = _key(g, target, opts)
    if key not in _BUILT:
        name = g.name if g.name.isidentifier() else "g"
        out = session_dir() / f"{name}-{target}-{key}"
        build_artifact(g, target, out, cache_dir=session_dir() / "objects", options=opts)
        _BUILT[key] = out
    return _BUILT[key]


def wasm_tolerance(dt: DType) -> tuple[float, float]:
    return tolerance("wasm32", dt)


def check_wasm(
    g: Graph,
    target: str = "wasm32",
    options: dict[str, Any] | None = None,
    label: str = "",
    n_envs: int = 2,
) -> Path:
    """Build g for `target`, load it with lmc.load (wasmtime) and compare every output with
    the reference interpreter at `n_envs` symbol bindings."""
    runs = host_runs(g, n_envs)
    assert runs is not None, f"{label}: the reference cannot run this graph on random inputs"
    out = build(g, target, options)
    with load(out) as m:
        for env, inputs, want in runs:
            got = m.run(inputs)
            assert len(got) == len(want)
            for i, (a, b) in enumerate(zip(got, want)):
                assert a.dtype == b.dtype, f"{label} output {i}: dtype {a.dtype} vs {b.dtype}"
                rtol, atol = wasm_tolerance(g.outputs[i].type.dtype)
                assert_close(a, b, rtol, atol, name=f"{label} [{target}] output {i} at {env}")
    return out


# ---- node --------------------------------------------------------------------------------


def to_json_tensor(a: np.ndarray, dtype: DType | None = None) -> dict[str, Any]:
    """An input for the ES module as JSON: f16 / bf16 as their raw bits (its Uint16Array)."""
    if dtype is DType.bf16:
        a = (np.asarray(a, np.float32).view(np.uint32) >> 16).astype(np.uint16)
    elif a.dtype == np.float16:
        a = a.view(np.uint16)
    data = a.reshape(-1)
    values = data.astype(np.float64).tolist() if data.dtype.kind == "f" else data.tolist()
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": values}


def from_json_tensor(t: dict[str, Any], dtype: DType) -> np.ndarray:
    """An output the ES module printed, as the numpy array lmc.load would return."""
    if dtype in (DType.f16, DType.bf16):
        bits = np.asarray(t["data"], np.uint16)
        a = (
            bits.view(np.float16)
            if dtype is DType.f16
            else (bits.astype(np.uint32) << 16).view(np.float32)
        )
    else:
        a = np.asarray(t["data"], np.float64 if dtype.np.kind == "f" else dtype.np)
        a = a.astype(dtype.np)
    return a.reshape(t["shape"])


def node(script: Path, *args: str, timeout: float = 120) -> Any:
    """Run `node script args...` and parse the JSON it prints (its last line)."""
    assert NODE is not None
    res = subprocess.run(
        [NODE, str(script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, f"node {script.name} failed:\n{res.stderr[-3000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])
