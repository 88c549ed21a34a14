"""Helpers for the runtime tests: compile C drivers and the hand-written model_add fixture, and
put the fixture into an artifact folder the way the code generator will."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmc.runtime import artifact as af

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
INCLUDE = ROOT / "runtime" / "include"
RUNTIME_SRC = [ROOT / "runtime" / "src" / n for n in af.RUNTIME_SOURCES]
CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH")

BIAS = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
SCALE = 2.0
MODEL_LMC = """graph @model_add [s0 in 1..16] {
  %x = input() {index=0} : f32[s0, 4]
  %y = input() {index=1} : f32[s0, 4]
  %bias = param() {key="bias"} : f32[4]
  %scale = param() {key="scale"} : f32[1]
  %0 = add(%x, %y) : f32[s0, 4]
  %1 = mul(%0, %scale) : f32[s0, 4]
  %2 = add(%1, %bias) : f32[s0, 4]
  %3 = concat(%x, %y) {axis=0} : f32[2*s0, 4]
  return %2, %3
}
"""


def cc(args: list[str], what: str) -> None:
    """Run the C compiler; a failure fails the test with the compiler's output."""
    r = subprocess.run([CC or "cc", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"compiling {what} failed:\n{' '.join(args)}\n{r.stdout}{r.stderr}")


def run(exe: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300)


def sanitizer_flags_work(flags: list[str], tmp: Path) -> str | None:
    """None when cc builds and runs a program with `flags`, else the reason it does not."""
    if CC is None:
        return "no C compiler (cc) on PATH"
    src, exe = tmp / "probe.c", tmp / "probe"
    src.write_text("int main(void) { return 0; }\n")
    r = subprocess.run([CC, *flags, str(src), "-o", str(exe)], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cc {' '.join(flags)} is not supported here: {r.stderr.strip()[:200]}"
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    if r.returncode != 0:
        return f"programs built with {' '.join(flags)} do not run here: {r.stderr.strip()[:200]}"
    return None


def build_driver(
    out: Path,
    driver: str,
    digest: int | None,
    flags: list[str],
    with_model: bool = True,
    y_expr: bool = False,
) -> Path:
    """A C test driver linked with the runtime sources and the model fixture (without a model:
    with lmc_digest.c and lmc_threads.c only)."""
    srcs = [FIXTURES / driver, *(s for s in RUNTIME_SRC if with_model or "runtime" not in s.name)]
    defs = []
    if with_model:
        srcs.append(FIXTURES / "model_add.c")
        defs.append(f"-DWEIGHTS_DIGEST={digest:#x}ULL")
        if y_expr:
            defs.append("-DMODEL_ADD_Y_EXPR")
    cc(
        [
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            *flags,
            *defs,
            f"-I{INCLUDE}",
            *map(str, srcs),
            "-o",
            str(out),
            "-lpthread",
        ],
        driver,
    )
    return out


def write_add_weights(
    path: Path, bias: np.ndarray = BIAS, scale: float = SCALE
) -> af.WrittenWeights:
    w = af.write_weights(
        path,
        {
            "bias": af.blob(bias, "f32"),
            "scale": af.blob(np.array([scale], dtype=np.float32), "f32"),
        },
    )
    # model_add.c hard-codes this weights table
    assert w.offsets == {"bias": (0, 16), "scale": (64, 4)} and w.data_bytes == 128
    return w


def build_add_artifact(dest: Path, *, y_expr: bool = False, force: bool = False) -> Path:
    """An artifact folder holding model_add built for this machine (lib/, src/, include/,
    weights, manifest, model.lmc), laid out as backends/c/build.py lays out real ones."""
    af.prepare_output_dir(dest, force=force)
    w = write_add_weights(dest / af.WEIGHTS)
    src = dest / "src"
    af.copy_runtime(src, dest / "include")
    shutil.copyfile(FIXTURES / "model_add.c", src / "model_add.c")
    (dest / "lib").mkdir()
    defs = [f"-DWEIGHTS_DIGEST={w.digest64:#x}ULL"] + (["-DMODEL_ADD_Y_EXPR"] if y_expr else [])
    sources = [str(src / n) for n in (*af.RUNTIME_SOURCES, "model_add.c")]
    cc(
        [
            "-std=c11",
            "-O2",
            "-fPIC",
            "-shared",
            "-fvisibility=hidden",
            "-Wall",
            "-Wextra",
            "-Werror",
            *defs,
            f"-I{src}",
            *sources,
            "-o",
            str(dest / af.LIBRARY),
            "-lpthread",
        ],
        "model_add.so",
    )
    af.write_text(dest / af.IR_FILE, MODEL_LMC)
    y_shape = ["2*s0", 4] if y_expr else ["s0", 4]
    af.write_manifest(
        dest,
        {
            "target": "host",
            "graph": "model_add",
            "inputs": [
                {"name": "x", "dtype": "f32", "shape": ["s0", 4]},
                {"name": "y", "dtype": "f32", "shape": y_shape},
            ],
            "outputs": [
                {"name": "out", "dtype": "f32", "shape": ["s0", 4]},
                {"name": "cat", "dtype": "f32", "shape": ["2*s0", 4]},
            ],
            "symbols": {"s0": [1, 16]},
            "weights": {
                "file": af.WEIGHTS,
                "digest64": af.format_digest(w.digest64),
                "sha256": w.sha256,
                "bytes": w.data_bytes,
            },
            "library": af.LIBRARY,
            "passes": [],
            "build": {"cflags": ["-O2", "-fvisibility=hidden"]},
        },
    )
    return dest


def expected_add(x: np.ndarray, y: np.ndarray, y_expr: bool = False) -> list[np.ndarray]:
    if y_expr:
        s0 = x.shape[0]
        return [(x + y[:s0] + y[s0:]) * np.float32(SCALE) + BIAS, y]
    return [(x + y) * np.float32(SCALE) + BIAS, np.concatenate([x, y])]
