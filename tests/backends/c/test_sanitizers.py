"""The runtime, kernel library and generated model code under AddressSanitizer + UBSan: an
artifact's sources are rebuilt with `-fsanitize=address,undefined -fno-omit-frame-pointer -O1`
(the toolchain's flags otherwise, SIMD path included) and linked into a small C driver
(fixtures/run_model.c: no Python in the process, so leak checking can stay on). The driver loads
the weights from an exact-size heap copy (a read past them is a heap overflow), runs each input
set, runs the first again on the model loaded from the file (mmap), walks the API's error
paths, and frees everything. Any sanitizer report fails the test; the outputs must also match
the reference. Skipped only when the compiler cannot build and run a sanitized program."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lmc.backends.c.toolchain import Toolchain, compile_objects, find_toolchain
from lmc.backends.targets import parse_target
from lmc.ir.dtypes import DType, round_to_bf16
from lmc.ir.graph import Graph
from lmc.ir.interpreter import run as interpret
from lmc.runtime.artifact import read_manifest
from lmc.runtime.host import CODE_DTYPES, DTYPE_CODES, c_storage

from tests.util import assert_close, random_inputs

from .hostbuild import CASES, build, case_graph, host_runs, host_tolerance, needs_cc, session_dir

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "fixtures" / "run_model.c"
SAN_FLAGS = (
    "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
)  # fmt: skip
REPORT_MARKERS = ("Sanitizer", "runtime error:")  # ASan/LSan/UBSan headers; UBSan's one-liner
THREADS = 2  # the pool's workers run the kernels too


@functools.cache
def sanitizer_support() -> tuple[str | None, bool]:
    """(why sanitized programs cannot be built or run here, or None; whether LeakSanitizer
    works here -- it needs ptrace-like access that some containers deny)."""
    tc = find_toolchain(parse_target("host"))
    d = session_dir() / "sanitizer-probe"
    d.mkdir(parents=True, exist_ok=True)
    src = d / "probe.c"
    src.write_text("#include <stdlib.h>\nint main(void) { free(malloc(8)); return 0; }\n")
    res = subprocess.run(
        [tc.cc, *SAN_FLAGS, str(src), "-o", str(d / "probe")], capture_output=True, text=True
    )
    if res.returncode != 0:
        return f"{tc.cc} cannot build with -fsanitize=address,undefined: {res.stderr[-300:]}", False
    runs = {}
    for leaks in (1, 0):
        env = {**os.environ, "ASAN_OPTIONS": f"detect_leaks={leaks}"}
        runs[leaks] = subprocess.run([str(d / "probe")], capture_output=True, text=True, env=env)
    if runs[0].returncode != 0:
        return f"a sanitized program does not run here: {runs[0].stderr[-300:]}", False
    return None, runs[1].returncode == 0 and not runs[1].stderr


def sanitized_toolchain() -> Toolchain:
    tc = find_toolchain(parse_target("host"))
    flags = tuple(f for f in tc.cflags if not f.startswith("-O")) + SAN_FLAGS
    return dataclasses.replace(
        tc, cflags=flags, ldlibs=(*tc.ldlibs, "-fsanitize=address,undefined")
    )


def sanitized_driver(artifact: Path) -> Path:
    """The artifact's sources (the library objects cached across artifacts) plus the driver,
    built with the sanitizers into one executable."""
    tc = sanitized_toolchain()
    manifest = read_manifest(artifact)
    out = session_dir() / "sanitized" / f"{artifact.parent.name}-{artifact.name}"
    objs = compile_objects(
        tc,
        artifact / "src",
        manifest["build"]["sources"],
        out / "obj",
        cache_dir=session_dir() / "sanitized-objects",
        cacheable=lambda s: s != "model.c",
    )
    exe = out / "run_model"
    cmd = [tc.cc, *tc.cflags, f"-I{artifact / 'include'}", str(DRIVER), *map(str, objs)]
    res = subprocess.run([*cmd, "-o", str(exe), *tc.ldlibs], capture_output=True, text=True)
    assert res.returncode == 0, f"linking the sanitized driver failed:\n{res.stderr[-3000:]}"
    return exe


def write_case(d: Path, inputs: list[np.ndarray], dtypes: list[DType]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (a, dt) in enumerate(zip(inputs, dtypes)):
        if dt is DType.bf16:  # the C API takes bf16's raw 16 bits
            a = (round_to_bf16(np.asarray(a, np.float32)).view(np.uint32) >> 16).astype(np.uint16)
        a = np.ascontiguousarray(a, dtype=c_storage(dt))
        (d / f"input{i}.bin").write_bytes(a.tobytes())
        lines.append(" ".join(map(str, [DTYPE_CODES[dt], a.ndim, *a.shape])))
    (d / "inputs.txt").write_text("\n".join(lines) + "\n")


def read_outputs(d: Path, prefix: str = "") -> list[np.ndarray]:
    outs = []
    for i, line in enumerate((d / "outputs.txt").read_text().split("\n")[:-1]):
        code, rank, *shape = map(int, line.split())
        assert len(shape) == rank
        dt = CODE_DTYPES[code]
        raw = np.fromfile(d / f"{prefix}output{i}.bin", dtype=c_storage(dt)).reshape(shape)
        outs.append((raw.astype(np.uint32) << 16).view(np.float32) if dt is DType.bf16 else raw)
    return outs


def sanitizer_env() -> dict[str, str]:
    _, leaks = sanitizer_support()
    return {
        **os.environ,
        "ASAN_OPTIONS": f"detect_leaks={int(leaks)}:halt_on_error=1:abort_on_error=0",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }


def assert_clean(res: subprocess.CompletedProcess, label: str) -> None:
    """A sanitized process exited 0 and printed no sanitizer report."""
    text = res.stderr + res.stdout
    report = text[-6000:]
    assert res.returncode == 0, f"{label}: the sanitized run failed ({res.returncode}):\n{report}"
    assert not any(m in text for m in REPORT_MARKERS), f"{label}: sanitizer report:\n{report}"


def run_sanitized(artifact: Path, graph: Graph, runs: list[list[np.ndarray]], label: str):
    """Run every input set through the sanitized driver; fail on any sanitizer report.
    Returns the outputs of each run (and checks the file-loaded model's against the first)."""
    reason, _ = sanitizer_support()
    if reason:
        pytest.skip(reason)
    exe = sanitized_driver(artifact)
    cases = [exe.parent / label / f"run{k}" for k in range(len(runs))]
    dtypes = [v.type.dtype for v in graph.inputs]
    for d, inputs in zip(cases, runs):
        write_case(d, inputs, dtypes)
    weights = artifact / read_manifest(artifact)["weights"]["file"]
    res = subprocess.run(
        [str(exe), str(weights), str(THREADS), *map(str, cases)],
        capture_output=True,
        text=True,
        env=sanitizer_env(),
        timeout=300,
    )
    assert_clean(res, label)
    outs = [read_outputs(d) for d in cases]
    for a, b in zip(read_outputs(cases[0], "file_"), outs[0]):
        np.testing.assert_array_equal(a, b, err_msg=f"{label}: mmap-loaded vs memory-loaded")
    return outs


def zoo_runs(name: str, dim_values: list[dict[str, int]]) -> tuple[Any, list, list]:
    from .zoohost import compiled, torch_outputs

    zoo = compiled(name)
    inputs = [zoo.entry.inputs(seed=4, **dims) for dims in dim_values]
    want = [torch_outputs(zoo.module, x) for x in inputs]
    return zoo, [[t.numpy() for t in x] for x in inputs], want


pytestmark = needs_cc


@pytest.mark.parametrize(
    ("name", "dim_values"),
    [
        ("minilm", [{"batch": 2, "seq": 8}, {"batch": 1, "seq": 5}]),
        (
            "resnet",
            [{"batch": 1, "height": 17, "width": 17}, {"batch": 2, "height": 20, "width": 24}],
        ),
    ],
)
def test_zoo_model_runs_clean_under_sanitizers(name: str, dim_values: list[dict[str, int]]):
    from .zoohost import REL_TOL, scale_error

    zoo, runs, want = zoo_runs(name, dim_values)
    assert zoo.model.artifact is not None
    outs = run_sanitized(zoo.model.artifact, zoo.model.graph, runs, name)
    for dims, got, ref in zip(dim_values, outs, want):
        for i, (a, b) in enumerate(zip(got, ref)):
            assert a.shape == b.shape, (name, dims, i, a.shape, b.shape)
            err = scale_error(a, b)
            assert err <= REL_TOL, f"{name} {dims} output {i} (sanitized): {err:.2e} of scale"


@pytest.mark.parametrize("case", ["attention", "conv"])
def test_case_graph_runs_clean_under_sanitizers(case: str):
    g = case_graph(next(p for p in CASES if p.stem == case))
    artifact, _ = build(g)
    runs = host_runs(g, 2)
    assert runs is not None
    top = {s: hi for s, (lo, hi) in g.symbols.items()}  # every buffer at its full size
    inputs = [np.abs(a) if a.dtype.kind == "i" else a for a in random_inputs(g, top, seed=7)]
    runs.append((top, inputs, interpret(g, inputs)))
    outs = run_sanitized(artifact, g, [inputs for _, inputs, _ in runs], case)
    for (env, _, want), got in zip(runs, outs):
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            rtol, atol = host_tolerance(g.outputs[i].type.dtype)
            assert_close(a, b, rtol, atol, name=f"{case} (sanitized) output {i} at {env}")


BAD_PROGRAMS = {  # kind -> (main's body, what the report says)
    "heap overflow": (
        "int *p = malloc(16 * sizeof *p); p[15] = argc;\n  int r = p[argc + 15]; free(p);\n"
        "  return r == 12345;",
        r"heap-buffer-overflow|insufficient space for an object",
    ),
    "bad shift": ("return (1 << (argc + 31)) == 12345;", r"shift exponent 32 is too large"),
    "leak": (
        "static void *volatile p; p = malloc(64); p = 0; return argc == 5;",
        r"detected memory leaks",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_PROGRAMS))
def test_a_sanitizer_report_fails_the_check(tmp_path: Path, kind: str):
    """The checks are live: the sanitized toolchain and environment catch a heap overflow, an
    undefined shift (and a leak, where LeakSanitizer works here), and assert_clean fails."""
    reason, leaks = sanitizer_support()
    if reason:
        pytest.skip(reason)
    if kind == "leak" and not leaks:
        pytest.skip("LeakSanitizer does not work in this environment")
    tc = sanitized_toolchain()
    src = tmp_path / "bad.c"
    body, says = BAD_PROGRAMS[kind]
    src.write_text(
        f"#include <stdlib.h>\nint main(int argc, char **argv) {{\n  (void)argv; {body}\n}}\n"
    )
    exe = tmp_path / "bad"
    res = subprocess.run(
        [tc.cc, *tc.cflags, str(src), "-o", str(exe), *tc.ldlibs], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(exe)], capture_output=True, text=True, env=sanitizer_env())
    assert re.search(says, res.stderr), res.stderr[-2000:]
    with pytest.raises(AssertionError, match="sanitized run failed"):
        assert_clean(res, kind)
