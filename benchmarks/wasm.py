"""wasm32 benchmark: lmc's wasm32 artifact (SIMD128) under node against onnxruntime-web (its
wasm backend, one thread, SIMD) under node on the same inputs, and against lmc's host artifact
at the same thread count (one); plus the .wasm's code size without weights.

  minilm        all-MiniLM-L6-v2 (real weights), batch 1, seq 128
  llama_decode  LLaMA architecture (hidden 512, 8 layers, 8 heads, ffn 1376, vocab 32000,
                random weights), one decode step with a 128-token KV cache

    python benchmarks/wasm.py [--models minilm,llama_decode] [--reps N] [--warmup N]
                              [--json out.json]

Also measured: the arithmetic peaks that bound wasm/host on compute-bound models, SIMD128
multiply-add in node (benchmarks/web/peak.c) against the host kernels' FMA loop at one thread.

onnxruntime-web is installed by this script with npm (pinned, ORT_WEB_VERSION) into the
git-ignored .cache/npm; artifacts, ONNX files and inputs go to .cache/lmc-bench-wasm. Every
system's outputs are checked against PyTorch (max abs error / output scale). The node harness
(benchmarks/web/bench.mjs) interleaves lmc and ORT runs; medians with p10/p90 are reported.
Goals (issue): lmc wasm32 <= 1.0x onnxruntime-web, wasm32 within 2x of lmc host, code < 300 KB.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="torch")
logging.getLogger("torch.onnx").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import peers  # noqa: E402
from benchmarks.common import cpu_name, host_isa, markdown_table  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402

ORT_WEB_VERSION = "1.30.0"
NPM_PREFIX = ROOT / ".cache" / "npm"
WORK = ROOT / ".cache" / "lmc-bench-wasm"
HARNESS = Path(__file__).resolve().parent / "web" / "bench.mjs"
PEAK = Path(__file__).resolve().parent / "web" / "peak.c"
MODELS = ("minilm", "llama_decode")
CODE_GOAL = 300 * 1024
DTYPE_NAMES = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32"}


def ensure_ort_web() -> Path:
    """onnxruntime-web@ORT_WEB_VERSION under .cache/npm (npm install on first use)."""
    pkg = NPM_PREFIX / "node_modules" / "onnxruntime-web" / "package.json"
    if pkg.is_file() and json.loads(pkg.read_text()).get("version") == ORT_WEB_VERSION:
        return NPM_PREFIX
    if shutil.which("npm") is None:
        raise SystemExit("the wasm benchmark needs npm (and node) to install onnxruntime-web")
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    manifest = NPM_PREFIX / "package.json"
    if not manifest.is_file():
        manifest.write_text('{"private": true}\n')
    print(f"installing onnxruntime-web@{ORT_WEB_VERSION} into {NPM_PREFIX} ...", flush=True)
    cmd = ["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund"]
    subprocess.run([*cmd, "--save-exact", f"onnxruntime-web@{ORT_WEB_VERSION}"], check=True)
    return NPM_PREFIX


@dataclass
class Prepared:
    name: str
    title: str
    inputs: list[np.ndarray]
    input_names: list[str]
    want: list[np.ndarray]  # PyTorch outputs
    wasm: Path  # the wasm32 artifact
    host: Path  # the host artifact
    onnx: Path
    seconds: dict[str, float] = field(default_factory=dict)


def prepare(name: str) -> Prepared:
    import inspect

    import torch
    from lmc.backends.c.build import build_artifact
    from lmc.backends.driver import compile as lmc_compile

    w = WORKLOADS[name]
    built = w.build()
    d = WORK / name
    d.mkdir(parents=True, exist_ok=True)
    secs: dict[str, float] = {}
    with torch.no_grad():
        out = built.module(*built.inputs)
    want = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    t0 = time.perf_counter()
    graph = lmc_compile(
        built.module, built.example, target="reference", dynamic_shapes=w.dynamic_shapes
    ).graph
    secs["import"] = time.perf_counter() - t0
    for target in ("wasm32", "host"):
        t0 = time.perf_counter()
        build_artifact(graph, target, d / target, force=True, cache_dir=WORK / "objects")
        secs[f"build {target}"] = time.perf_counter() - t0
    onnx = d / "model.onnx"
    t0 = time.perf_counter()
    peers.export_onnx(built.module, built.example, onnx, w.dynamic_shapes, built.inputs)
    secs["onnx export"] = time.perf_counter() - t0
    names = list(inspect.signature(built.module.forward).parameters)[: len(built.inputs)]
    arrays = [np.ascontiguousarray(t.numpy()) for t in built.inputs]
    return Prepared(name, w.title, arrays, names, want, d / "wasm32", d / "host", onnx, secs)


def scale_error(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-12)
    return float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0)) / scale


def run_node(p: Prepared, reps: int, warmup: int) -> dict[str, Any]:
    """The node harness on p: lmc wasm32 and onnxruntime-web, interleaved."""
    specs = []
    for name, a in zip(p.input_names, p.inputs):
        f = WORK / p.name / f"input_{name}.bin"
        a.astype(a.dtype.newbyteorder("<")).tofile(f)
        specs.append({"name": name, "dtype": DTYPE_NAMES[a.dtype.name], "shape": list(a.shape),
                      "file": str(f)})  # fmt: skip
    out_dir = WORK / p.name / "outputs"
    out_dir.mkdir(exist_ok=True)
    config = {
        "lmc_web": str(p.wasm / "web"),
        "onnx": str(p.onnx),
        "ort_prefix": str(NPM_PREFIX),
        "inputs": specs,
        "reps": reps,
        "warmup": warmup,
        "out_dir": str(out_dir),
    }
    cfg = WORK / p.name / "bench.json"
    cfg.write_text(json.dumps(config))
    res = subprocess.run(["node", str(HARNESS), str(cfg)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"node harness failed on {p.name}:\n{res.stderr[-3000:]}")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    for system in ("lmc", "ort"):
        errs = []
        for o, want in zip(result[system]["outputs"], p.want):
            got = np.fromfile(o["file"], dtype=want.dtype).reshape(o["shape"])
            errs.append(scale_error(got, want))
        result[system]["error"] = max(errs)
    return result


def time_host(p: Prepared, reps: int, warmup: int) -> dict[str, Any]:
    """lmc's host artifact at one thread (the wasm32 build is single-threaded)."""
    from lmc.runtime.loader import load

    with load(p.host, num_threads=1) as m:
        for _ in range(warmup):
            got = m.run(p.inputs)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            got = m.run(p.inputs)
            times.append((time.perf_counter() - t0) * 1e3)
    err = max(scale_error(a, b) for a, b in zip(got, p.want))
    return {"times": times, "error": err}


def stats(times: list[float]) -> tuple[float, float, float]:
    xs = sorted(times)
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
    return float(np.median(xs)), q(0.1), q(0.9)


def code_size(p: Prepared) -> dict[str, int]:
    from lmc.backends.c.wasm import code_bytes

    data = (p.wasm / "web" / "lmc_model.wasm").read_bytes()
    return {"wasm_bytes": len(data), "code_bytes": code_bytes(data)}


def peaks() -> dict[str, float]:
    """GFLOP/s: SIMD128 multiply-add under node (peak.c, built with the wasm32 toolchain's
    clang) and the host kernels' FMA loop, one thread each."""
    from lmc.backends.c.toolchain import find_toolchain
    from lmc.backends.targets import parse_target

    from benchmarks.common import build_kernels, probe_machine

    clang = find_toolchain(parse_target("wasm32")).cc
    wasm = WORK / "peak.wasm"
    WORK.mkdir(parents=True, exist_ok=True)
    cmd = [clang, "--target=wasm32", "-O3", "-msimd128", "-nostdlib", "-Wl,--no-entry"]
    subprocess.run([*cmd, str(PEAK), "-o", str(wasm)], check=True)
    res = subprocess.run(["node", str(PEAK.with_suffix(".mjs")), str(wasm)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    host = probe_machine(build_kernels(host_isa()), None, 1, reps=5)
    return {"wasm_simd128": json.loads(res.stdout)["gflops"], "host_fma": host.peak_gflops}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    ensure_ort_web()
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    print(f"# lmc wasm32 benchmark on {cpu_name()}, node {node_version.strip()}, "
          f"onnxruntime-web {ORT_WEB_VERSION} (wasm, 1 thread)\n", flush=True)  # fmt: skip
    rows, sizes, report = [], [], {}
    for name in args.models.split(","):
        print(f"[{name}] preparing ...", flush=True)
        p = prepare(name)
        print(f"[{name}] timing ({args.reps} reps) ...", flush=True)
        res = run_node(p, args.reps, args.warmup)
        host = time_host(p, args.reps, args.warmup)
        lw, lw10, lw90 = stats(res["lmc"]["times"])
        ow, ow10, ow90 = stats(res["ort"]["times"])
        hm, _, _ = stats(host["times"])
        rows.append([
            p.title, f"{lw:.2f} ({lw10:.2f}-{lw90:.2f})", f"{ow:.2f} ({ow10:.2f}-{ow90:.2f})",
            f"{lw / ow:.2f}x", f"{hm:.2f}", f"{lw / hm:.2f}x",
            f"{res['lmc']['error']:.1e} / {res['ort']['error']:.1e} / {host['error']:.1e}",
        ])  # fmt: skip
        size = code_size(p)
        sizes.append([
            name, f"{size['code_bytes'] / 1024:.1f}", f"{size['wasm_bytes'] / 1024:.1f}",
            "yes" if size["code_bytes"] < CODE_GOAL else "no",
        ])  # fmt: skip
        report[name] = {"node": res, "host": host, "size": size, "prepare_s": p.seconds}
    print()
    print(markdown_table(
        ["model", "lmc wasm32 ms (p10-p90)", "ort-web wasm ms (p10-p90)", "lmc/ort",
         "lmc host 1T ms", "wasm/host", "max err vs torch (wasm / ort / host)"], rows))  # fmt: skip
    print()
    print(markdown_table(["model", ".wasm code KB", ".wasm file KB", "< 300 KB"], sizes))
    pk = peaks()
    report["peaks"] = pk
    print(f"\narithmetic peak, one thread: SIMD128 multiply-add in node {pk['wasm_simd128']:.1f} "
          f"GFLOP/s, host {host_isa()} FMA {pk['host_fma']:.1f} GFLOP/s: a compute-bound model "
          f"runs >= {pk['host_fma'] / pk['wasm_simd128']:.1f}x slower in wasm than at the host's "
          "efficiency")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
