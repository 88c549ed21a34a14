"""Model benchmark: lmc's host C target against onnxruntime (CPU EP), PyTorch eager and, when
installed, Apache TVM (untuned), on whole models at 1 and 2 threads, fp32, batch 1:

  minilm          all-MiniLM-L6-v2 (real weights), seq 128
  llama_prefill   LLaMA architecture (hidden 512, 8 layers, 8 heads, ffn 1376, vocab 32000,
                  random weights), 128 prompt tokens -> logits
  llama_decode    the same model, one token with a 128-token KV cache as explicit inputs
  resnet18        ResNet-18-shaped CNN (torch-written), 224x224
  linear_b1       one 4096x4096 linear (no bias), batch 1 (GEMV)
  linear_b128     the same at batch 128 (GEMM)

    python benchmarks/models.py [--threads 1,2] [--models minilm,resnet18] [--repeats N]
                                [--quick] [--json out.json] [--no-tvm]

Every system's outputs are checked against PyTorch once per model (max relative error) before
anything is timed. Systems are interleaved within each repetition (common.interleave) and
medians with p10/p90 are reported, with lmc / ORT from the same run, compile times, and each
result's fraction of the machine's measured roofline (common.probe_machine). A system that
fails to build or run is reported with its reason. See docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="torch")
logging.getLogger("torch.onnx").setLevel(logging.ERROR)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import peers  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Machine,
    build_kernels,
    cpu_name,
    host_isa,
    interleave,
    markdown_table,
    probe_machine,
    roofline_fraction,
)
from benchmarks.workloads import WORKLOADS, Built, Workload, describe  # noqa: E402

# lmc / ORT latency goals (fp32) per model; the GEMV goal is a bandwidth fraction.
RATIO_GOALS = {"minilm": 1.0, "llama_prefill": 1.0, "llama_decode": 1.0, "resnet18": 1.2}
GEMV_GOAL = 0.85
COMPILE_GOALS = {"minilm": 15.0}
REL_TOL = 1e-3  # max |y - ref| / max |ref| above this marks a result WRONG
SLOW_S = 1.0  # a system slower than this per call is timed apart (few calls, not interleaved)
SLOW_CALLS, SLOW_BUDGET_S = 3, 30.0  # ... with at most this many calls, within this budget
QUIET = 0.10  # --wait-quiet: other processes' CPU share counted as quiet


@dataclass
class Row:
    model: str
    threads: int
    system: str
    median_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    calls: int = 0
    vs_ort: float | None = None
    gflops: float | None = None
    gbs: float | None = None
    roofline: float | None = None
    bound: str = ""
    rel_err: float | None = None
    compile_s: float | None = None
    background: float | None = None
    note: str = ""


def rel_error(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """max over outputs of max |got - ref| / max |ref| (shapes must match)."""
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs, expected {len(ref)}")
    worst = 0.0
    for g, r in zip(got, ref):
        g = np.asarray(g)
        if g.shape != r.shape:
            raise ValueError(f"output shape {g.shape}, expected {r.shape}")
        scale = max(float(np.max(np.abs(r))), 1e-30) if r.size else 1.0
        err = float(np.max(np.abs(g.astype(np.float64) - r))) if r.size else 0.0
        worst = max(worst, err / scale)
    return worst


def quantile(xs: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(xs), q))


class BackgroundLoad:
    """CPU time used by other processes during a measurement, as a fraction of all cores
    (psutil; None when it is missing)."""

    def __init__(self) -> None:
        try:
            import psutil

            self.psutil = psutil
            self.me = psutil.Process()
        except ImportError:
            self.psutil = None

    def start(self) -> None:
        if self.psutil is None:
            return
        t, me = self.psutil.cpu_times(), self.me.cpu_times()
        self.t0 = (time.perf_counter(), t.user + t.system + getattr(t, "nice", 0.0), me)

    def stop(self) -> float | None:
        if self.psutil is None:
            return None
        wall0, busy0, me0 = self.t0
        t, me = self.psutil.cpu_times(), self.me.cpu_times()
        busy = t.user + t.system + getattr(t, "nice", 0.0) - busy0
        mine = (me.user + me.system) - (me0.user + me0.system)
        wall = time.perf_counter() - wall0
        return max(0.0, busy - mine) / (wall * (self.psutil.cpu_count() or 1))


def wait_quiet(limit_s: float) -> None:
    """Sleep until other processes used < QUIET of the CPUs over 3 s, or limit_s passed."""
    load, t0 = BackgroundLoad(), time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        load.start()
        time.sleep(3.0)
        share = load.stop()
        if share is None or share < QUIET:
            return
        print(f"  waiting for a quiet machine (others use {100 * share:.0f}%)", flush=True)


class ReadSweep(peers.System):
    """Not a peer: a read-only sweep (kernels_bench.c bench_read, the probe's loop) over as many
    bytes as the GEMV streams, timed interleaved with the peers, so the GEMV's bandwidth goal
    compares with the bandwidth of the same working set under the same conditions."""

    name = "read sweep"
    probe = True

    def __init__(self, nbytes: int) -> None:
        super().__init__()
        import ctypes

        self.lib = build_kernels(host_isa())
        self.lib.bench_read.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        self.lib.bench_read.restype = ctypes.c_double
        self.n = max(1, nbytes // 4 // (4096 * 4)) * 4096 * 4
        self.buf = np.ones(self.n, np.float32)
        self.pools: dict[int, int | None] = {}
        self.info["note"] = "not a peer: the bandwidth the GEMV goal is a fraction of"

    def bind(self, threads: int) -> Callable[[], object]:
        if threads not in self.pools:
            self.pools[threads] = self.lib.lmc_pool_create(threads)
        pool, n, ptr = self.pools[threads], self.n, self.buf.ctypes.data
        return lambda: self.lib.bench_read(pool, n, ptr)


def build_systems(w: Workload, b: Built, tmp: Path, use_tvm: bool, nbytes: int = 0) -> list:
    """lmc, onnxruntime, torch and TVM for one model (and for the GEMV the read sweep of its
    bytes); failures become peers.Failed."""
    module, inputs, dyn = b.module, b.inputs, w.dynamic_shapes
    systems = [peers.build("lmc", lambda: peers.Lmc(module, inputs, b.example, dyn))]
    onnx_path = tmp / f"{w.name}.onnx"

    def make_ort() -> peers.System:
        export = peers.export_onnx(module, b.example, onnx_path, dyn, inputs)
        return peers.OnnxRuntime(onnx_path, inputs, export)

    systems.append(peers.build("onnxruntime", make_ort))
    systems.append(peers.build("torch", lambda: peers.TorchEager(module, inputs)))
    if w.name == "linear_b1" and nbytes:
        systems.append(peers.build(ReadSweep.name, lambda: ReadSweep(int(nbytes))))
    if use_tvm:
        why = peers.tvm_available()
        if why is None:
            systems.append(peers.build("tvm", lambda: peers.Tvm(module, inputs)))
        else:
            systems.append(peers.Failed("tvm", f"not installed ({why})"))
    return systems


def check(systems: list, ref: list[np.ndarray]) -> dict[str, float | None]:
    """Each system's max relative error against torch (one run at 1 thread); a system whose
    run fails becomes Failed."""
    errs: dict[str, float | None] = {}
    for i, s in enumerate(systems):
        if s.error or getattr(s, "probe", False):
            errs[s.name] = None
            continue
        try:
            s.bind(1)
            errs[s.name] = rel_error(s.outputs(), ref)
        except Exception as e:  # noqa: BLE001
            systems[i] = peers.Failed(s.name, f"run failed: {peers.reason(e)}")
            errs[s.name] = None
            continue
        flag = "" if errs[s.name] <= REL_TOL else "  <-- WRONG"
        print(f"  {s.name:12s} max rel error vs torch {errs[s.name]:.2e}{flag}", flush=True)
    return errs


def first_calls(fn: Callable[[], object]) -> float:
    """Seconds of the faster of two calls (the first after bind may build thread pools); one
    call when it alone takes more than 5 s."""
    t0 = time.perf_counter()
    fn()
    best = time.perf_counter() - t0
    if best <= 5.0:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_systems(
    systems: list, threads: int, reps: int, quick: bool
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Interleaved timings at `threads`; systems slower than SLOW_S per call are timed apart
    with a few calls. Returns seconds per call and notes per system."""
    cases: dict[str, Callable[[], object]] = {}
    notes: dict[str, str] = {}
    slow: dict[str, tuple[Callable[[], object], float]] = {}
    for s in systems:
        if s.error:
            continue
        try:
            fn = s.bind(threads)
            est = first_calls(fn)
        except Exception as e:  # noqa: BLE001
            s.error = f"run failed: {peers.reason(e)}"
            continue
        if est > SLOW_S:
            slow[s.name] = (fn, est)
        else:
            cases[s.name] = fn
    multi = threads > 1
    times = interleave(cases, reps, warmup=2, block=3 if multi else 1, gap=0.1 if multi else 0.0)
    for name, (fn, est) in slow.items():
        ts = [est]  # the first call counts: at seconds per call, warm-up does not matter
        while len(ts) < SLOW_CALLS and sum(ts) + est < (0 if quick else SLOW_BUDGET_S):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        times[name] = ts
        notes[name] = f"{len(ts)} call(s) apart, not interleaved (> {SLOW_S:.0f} s/call)"
    return times, notes


def bench_model(
    w: Workload, threads: list[int], args: argparse.Namespace
) -> tuple[list[Row], dict[str, Any]]:
    print(f"\n== {w.name}: {w.title}", flush=True)
    built = w.build()
    module, inputs = built.module, built.inputs
    flops, nbytes = describe(module, inputs)
    with __import__("torch").inference_mode():
        ref = peers.as_numpy_list(module(*inputs))
    ref = [np.asarray(r, dtype=np.float64) for r in ref]
    print(f"  {flops / 1e9:.3f} GFLOP, {nbytes / 1e6:.1f} MB weights+io per inference", flush=True)
    rows: list[Row] = []
    meta: dict[str, Any] = {"flops": flops, "bytes": nbytes, "title": w.title, "compile": {}}
    with tempfile.TemporaryDirectory(prefix="lmc_bench_") as d:
        systems = build_systems(w, built, Path(d), not args.no_tvm, nbytes)
        for s in systems:
            meta["compile"][s.name] = {"seconds": s.compile_s, "error": s.error, **s.info}
            if s.compile_s is not None:
                print(f"  {s.name:12s} build {s.compile_s:.2f} s", flush=True)
        errs = check(systems, ref)
        load = BackgroundLoad()
        for t in threads:
            if args.wait_quiet:
                wait_quiet(args.wait_quiet)
            load.start()
            times, notes = time_systems(systems, t, args.repeats, args.quick)
            bg = load.stop()
            meta.setdefault("background_load", {})[t] = bg
            ort = times.get("onnxruntime")
            ort_med = float(np.median(ort)) if ort else None
            for s in systems:
                row = Row(w.name, t, s.name, rel_err=errs.get(s.name), compile_s=s.compile_s)
                ts = times.get(s.name)
                if s.error or not ts:
                    row.note = s.error or "not timed"
                    rows.append(row)
                    continue
                med = float(np.median(ts))
                row.median_ms, row.calls = med * 1e3, len(ts)
                row.p10_ms, row.p90_ms = quantile(ts, 0.1) * 1e3, quantile(ts, 0.9) * 1e3
                row.vs_ort = med / ort_med if ort_med else None
                row.gflops, row.gbs = flops / med / 1e9, nbytes / med / 1e9
                parts = []
                if row.rel_err is not None and row.rel_err > REL_TOL:
                    parts.append("WRONG RESULT (see rel err)")
                if s.name in notes:
                    parts.append(notes[s.name])
                if s.info.get("note"):
                    parts.append(s.info["note"])
                if s.info.get("fallback_because"):
                    parts.append(f"via {s.info['frontend']}; {s.info['fallback_because'][0]}")
                row.note = "; ".join(parts)
                row.background = bg
                rows.append(row)
            line = ", ".join(
                f"{r.system} {r.median_ms:.2f} ms" for r in rows[-len(systems) :] if r.median_ms
            )
            bgs = f", background load {100 * bg:.0f}%" if bg is not None else ""
            print(f"  {t} thread(s): {line}{bgs}", flush=True)
        for s in systems:
            s.close()
    return rows, meta


def apply_roofline(rows: list[Row], machines: dict[int, Machine], metas: dict[str, Any]) -> None:
    """Each timed row's fraction of the roofline at its thread count, and what bounds it."""
    for r in rows:
        m = machines.get(r.threads)
        if m is None or r.median_ms is None:
            continue
        flops, nbytes = metas[r.model]["flops"], metas[r.model]["bytes"]
        r.roofline = roofline_fraction(r.median_ms / 1e3, flops, nbytes, m)
        compute_s = flops / (m.peak_gflops * 1e9)
        r.bound = "compute" if compute_s >= nbytes / (m.read_gbs * 1e9) else "memory"


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def results_table(rows: list[Row]) -> str:
    headers = [
        "model", "thr", "system", "median ms", "p10", "p90", "vs ORT", "GFLOP/s", "GB/s",
        "roofline", "max rel err", "build s", "bg load", "note",
    ]  # fmt: skip
    body = [
        [
            r.model, r.threads, r.system, fmt(r.median_ms), fmt(r.p10_ms), fmt(r.p90_ms),
            fmt(r.vs_ort), fmt(r.gflops, ".1f"), fmt(r.gbs, ".1f"),
            "-" if r.roofline is None else f"{100 * r.roofline:.0f}% ({r.bound})",
            fmt(r.rel_err, ".1e"), fmt(r.compile_s, ".1f"),
            "-" if r.background is None else f"{100 * r.background:.0f}%", r.note,
        ]
        for r in rows
    ]  # fmt: skip
    return markdown_table(headers, body)


def goals_table(rows: list[Row], machines: dict[int, Machine], metas: dict[str, Any]) -> str:
    """lmc against the goals: lmc / ORT ratio, GEMV bandwidth fraction, MiniLM compile time."""
    out = []
    for r in rows:
        if r.system != "lmc" or r.median_ms is None:
            continue
        if r.model in RATIO_GOALS:
            goal = RATIO_GOALS[r.model]
            ok = r.vs_ort is not None and r.vs_ort <= goal
            out.append([r.model, r.threads, f"lmc/ORT {fmt(r.vs_ort)}", f"<= {goal}", ok])
        sweep = next(
            (s for s in rows if s.model == r.model and s.threads == r.threads
             and s.system == ReadSweep.name and s.gbs),
            None,
        )  # fmt: skip
        if r.model == "linear_b1" and sweep is not None:
            frac = r.gbs / sweep.gbs
            what = f"{r.gbs:.1f} GB/s: {100 * frac:.0f}% of the read sweep's {sweep.gbs:.1f} GB/s"
            if r.threads in machines:
                what += f" ({100 * r.gbs / machines[r.threads].read_gbs:.0f}% of the probe's read)"
            goal = f">= {100 * GEMV_GOAL:.0f}% of the read sweep"
            out.append([r.model, r.threads, what, goal, frac >= GEMV_GOAL])
    for model, limit in COMPILE_GOALS.items():
        s = metas.get(model, {}).get("compile", {}).get("lmc", {}).get("seconds")
        if s is not None:
            out.append([model, "-", f"compile {s:.1f} s", f"< {limit:.0f} s", s < limit])
    body = [[*r[:4], "yes" if r[4] else "**no**"] for r in out]
    return markdown_table(["model", "thr", "lmc", "goal", "met"], body)


def probe(threads: list[int], quick: bool) -> dict[int, Machine]:
    """The machine's limits at each thread count (common.probe_machine); {} without a C
    compiler."""
    try:
        lib = build_kernels(host_isa())
    except Exception as e:  # noqa: BLE001
        print(f"machine probe unavailable: {peers.reason(e)}")
        return {}
    reps = 5 if quick else 15
    return {t: probe_machine(lib, lib.lmc_pool_create(t), t, reps=reps) for t in threads}


def best_of(a: dict[int, Machine], b: dict[int, Machine]) -> dict[int, Machine]:
    """Per thread count, the higher of two probes in each limit: on a shared machine a probe
    only underestimates, and the roofline should be what the machine can do."""
    return {
        t: Machine(
            t,
            max(m.triad_gbs, b[t].triad_gbs),
            max(m.read_gbs, b[t].read_gbs),
            max(m.peak_gflops, b[t].peak_gflops),
        )
        for t, m in a.items()
        if t in b
    } or a


def show_probes(machines: dict[int, Machine], when: str) -> None:
    for m in machines.values():
        print(
            f"machine {when}, {m.threads} thread(s): triad {m.triad_gbs:.1f} GB/s, read "
            f"{m.read_gbs:.1f} GB/s, FMA peak {m.peak_gflops:.0f} GFLOP/s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(WORKLOADS), help="comma-separated subset")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per system (20)")
    ap.add_argument("--quick", action="store_true", help="5 repeats, short machine probe")
    ap.add_argument("--no-tvm", action="store_true", help="leave Apache TVM out")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each model and thread count, wait up to S seconds for other processes "
        f"to use less than {100 * QUIET:.0f}%% of the CPUs (over 3 s)",
    )
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 20)
    threads = [int(t) for t in args.threads.split(",")]
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    load0 = os.getloadavg()[0]
    machines = before = after = probe(threads, args.quick)
    show_probes(machines, "(before)")
    rows: list[Row] = []
    metas: dict[str, Any] = {}
    for n in names:
        r, meta = bench_model(WORKLOADS[n], threads, args)
        rows += r
        metas[n] = meta
    load1 = os.getloadavg()[0]
    if machines:
        after = probe(threads, args.quick)
        machines = best_of(before, after)
        show_probes(after, "(after)")
    apply_roofline(rows, machines, metas)
    header = (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, kernels {host_isa()}, "
        f"load average {load0:.2f} -> {load1:.2f}, {args.repeats} interleaved calls per system"
    )
    print(f"\n# lmc model benchmark\n\n{header}\n")
    if machines:
        print(
            markdown_table(
                ["threads", "triad GB/s", "read GB/s", "FMA peak GFLOP/s"],
                [[m.threads, m.triad_gbs, m.read_gbs, m.peak_gflops] for m in machines.values()],
            )
        )
        print()
    print(results_table(rows))
    print(
        "\nroofline = max(FLOPs / FMA peak, bytes / read bandwidth) / median time; bytes = "
        "weights (embedding tables excluded) + inputs + outputs; vs ORT = median / ORT's median "
        "in the same run; bg load = other processes' share of the CPUs while timing.\n"
    )
    print(goals_table(rows, machines, metas))
    bg = {n: m.get("background_load") for n, m in metas.items()}
    print(f"\nbackground load (other processes' CPU share during timing): {json.dumps(bg)}")
    if args.json:
        doc = {
            "machine": {
                "cpu": cpu_name(),
                "logical_cpus": os.cpu_count(),
                "platform": platform.platform(),
                "kernels": host_isa(),
                "load_average": [load0, load1],
                "probes": {t: vars(m) for t, m in machines.items()},
                "probes_before": {t: vars(m) for t, m in before.items()},
                "probes_after": {t: vars(m) for t, m in after.items()},
            },
            "repeats": args.repeats,
            "models": metas,
            "results": [vars(r) for r in rows],
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
