"""Helpers for the arm64 tests: skip marks naming what is missing, artifacts built once per
session for arm64 targets (runtime and kernel library objects shared through one object cache,
so each build compiles only model.c), runs of several input sets in one qemu process, and the
NEON kernel test driver (a static aarch64 program that runs kernel calls from a request file).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lmc.backends.c.build import build_artifact
from lmc.backends.c.toolchain import BASE_CFLAGS, arm64_flags
from lmc.backends.targets import parse_target
from lmc.ir import print_graph
from lmc.ir.graph import Graph
from lmc.runtime.arm64 import QEMU, Arm64Runner, qemu_cpu
from lmc.runtime.artifact import read_manifest

from tests.backends.c.hostbuild import host_runs
from tests.util import assert_close, tolerance

ROOT = Path(__file__).resolve().parents[3]
LIB = ROOT / "templates" / "c" / "lib"
RUNTIME = ROOT / "runtime"
DRIVER = Path(__file__).resolve().parent / "fixtures" / "kernel_driver.c"
CC = "aarch64-linux-gnu-gcc"


def missing_tools() -> str | None:
    """Why arm64 artifacts cannot be built and run here (naming the Debian packages), or None."""
    missing = []
    if shutil.which(CC) is None:
        missing.append(f"{CC} (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU} (apt-get install qemu-user)")
    return "missing " + ", ".join(missing) if missing else None


needs_arm64 = pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools()))


@functools.cache
def session_dir() -> Path:
    d = tempfile.TemporaryDirectory(prefix="lmc_arm64_tests_")
    atexit.register(d.cleanup)
    return Path(d.name)


def object_cache() -> Path:
    return session_dir() / "objects"


_BUILT: dict[str, Path] = {}


def build(g: Graph, target: str = "arm64", options: dict[str, Any] | None = None) -> Path:
    """The artifact folder of g for an arm64 target, built once per session."""
    opts = dict(options or {})
    h = hashlib.sha256(f"{target}\n{sorted(opts.items())!r}\n{print_graph(g)}".encode())
    for k in sorted(g.weights):
        h.update(k.encode() + np.ascontiguousarray(g.weights[k]).tobytes())
    key = h.hexdigest()[:20]
    if key not in _BUILT:
        out = session_dir() / f"{g.name if g.name.isidentifier() else 'g'}-{key}"
        build_artifact(g, target, out, cache_dir=object_cache(), options=opts)
        _BUILT[key] = out
    return _BUILT[key]


def runner(directory: Path, cpu: str | None = None, threads: int = 2) -> Arm64Runner:
    return Arm64Runner(directory, read_manifest(directory), threads, cpu=cpu)


def check_arm64(
    g: Graph,
    target: str = "arm64",
    options: dict[str, Any] | None = None,
    label: str = "",
    n_envs: int = 2,
) -> Path:
    """Build g for `target` and compare every output with the reference interpreter at
    `n_envs` symbol bindings (>= 2 values per symbol when the bounds allow), all in one qemu
    process."""
    runs = host_runs(g, n_envs)
    assert runs is not None, f"{label}: the reference cannot run this graph on random inputs"
    out = build(g, target, options)
    got_all = runner(out).run_many([inputs for _, inputs, _ in runs])
    for (env, _, want), got in zip(runs, got_all):
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype, f"{label} output {i}: dtype {a.dtype} vs {b.dtype}"
            rtol, atol = tolerance("arm64", g.outputs[i].type.dtype)
            assert_close(a, b, rtol, atol, name=f"{label} output {i} at {env}")
    return out


# ---- the kernel test driver ------------------------------------------------------------------

# variant (a target string) -> its flags come from the toolchain, its CPU from the runner
VARIANTS = ("arm64", "arm64+dotprod", "arm64-nosimd")


@functools.cache
def driver(variant: str) -> Path:
    """The static kernel driver built with the library for `variant`."""
    out = session_dir() / f"kernel_driver-{variant.replace('+', '_')}"
    srcs = [*sorted(str(p) for p in LIB.glob("*.c")), str(RUNTIME / "src" / "lmc_threads.c")]
    flags = [*BASE_CFLAGS, *arm64_flags(parse_target(variant)), "-Wall", "-Wextra", "-static"]
    cmd = [CC, *flags, f"-I{LIB}", f"-I{RUNTIME / 'include'}", *srcs, str(DRIVER)]
    r = subprocess.run([*cmd, "-lm", "-lpthread", "-o", str(out)], capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise AssertionError(f"building the kernel driver ({variant}):\n{r.stderr}")
    return out


class Requests:
    """Kernel calls collected for one driver run: `add(...)` returns the index whose arrays
    `run()` yields."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.count = 0

    def add(self, op: int, threads: int, ints: list[int], arrays: list[np.ndarray]) -> int:
        self.data += struct.pack(f"<3q{len(ints)}q", op, threads, len(ints), *ints)
        self.data += struct.pack("<q", len(arrays))
        for a in arrays:
            raw = np.ascontiguousarray(a).tobytes()
            self.data += struct.pack("<q", len(raw)) + raw
        self.count += 1
        return self.count - 1

    def run(self, variant: str) -> list[list[bytes]]:
        return run_records(bytes(self.data), self.count, driver(variant), variant, "kernel driver")


def run_records(data: bytes, count: int, exe: Path, variant: str, label: str) -> list[list[bytes]]:
    """Run a test driver under qemu on a request file (Requests' format: `count` records) and
    split its result file into each record's output arrays (raw bytes)."""
    d = Path(tempfile.mkdtemp(dir=session_dir()))
    (d / "req").write_bytes(data)
    cpu = qemu_cpu(parse_target(variant).features)
    cmd = [QEMU, "-cpu", cpu, str(exe), str(d / "req"), str(d / "res")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{label} ({variant}, -cpu {cpu}): {r.stderr}"
    res, pos, out = (d / "res").read_bytes(), 0, []
    for _ in range(count):
        (n,) = struct.unpack_from("<q", res, pos)
        pos += 8
        arrays = []
        for _ in range(n):
            (nb,) = struct.unpack_from("<q", res, pos)
            arrays.append(res[pos + 8 : pos + 8 + nb])
            pos += 8 + nb
        out.append(arrays)
    shutil.rmtree(d, ignore_errors=True)
    return out
