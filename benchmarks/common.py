"""Shared benchmark helpers: build the C kernel library for this host, interleaved timing with
medians, machine probes (STREAM-like bandwidth, FMA peak) and roofline fractions, thread limits
for the peers (numpy/OpenBLAS, onnxruntime, torch), and markdown tables.

Benchmarks are not tests: nothing here asserts a speed. Run them on an idle machine; the
interleaved repetitions spread slow periods over every contender instead of one."""

from __future__ import annotations

import ctypes
import functools
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIB_DIR = ROOT / "templates" / "c" / "lib"
RUNTIME = ROOT / "runtime"
BENCH_C = Path(__file__).resolve().parent / "kernels_bench.c"

ISA_FLAGS = {
    "avx512": ["-DLMC_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
    "avx2": ["-DLMC_AVX2", "-mavx2", "-mfma"],
    "portable": [],
}


def host_isa() -> str:
    """The best kernel path this CPU runs."""
    from lmc.backends.targets import host_features

    f = host_features() if platform.machine() in ("x86_64", "AMD64") else frozenset()
    if {"avx512f", "avx512bw", "avx512vl", "fma"} <= f:
        return "avx512"
    return "avx2" if {"avx2", "fma"} <= f else "portable"


@functools.cache
def build_kernels(isa: str, extra: tuple[Path, ...] = (BENCH_C,)) -> ctypes.CDLL:
    """Compile the kernel library, the runtime's thread pool and `extra` sources into one shared
    library (-O3, the ISA's flags) in a temporary directory and load it."""
    if shutil.which("cc") is None:
        raise RuntimeError("benchmarks need a C compiler (cc)")
    out = Path(tempfile.mkdtemp(prefix="lmc_bench_")) / f"kernels_{isa}.so"
    srcs = [*sorted(LIB_DIR.glob("*.c")), RUNTIME / "src" / "lmc_threads.c", *extra]
    cmd = [
        "cc",
        "-O3",
        "-std=c99",
        "-fPIC",
        "-shared",
        *ISA_FLAGS[isa],
        f"-I{LIB_DIR}",
        f"-I{RUNTIME / 'include'}",
        *map(str, srcs),
        "-o",
        str(out),
        "-lpthread",
        "-lm",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(out))
    lib.lmc_pool_create.restype = ctypes.c_void_p
    lib.lmc_pool_create.argtypes = [ctypes.c_int]
    return lib


# ---- timing -------------------------------------------------------------------------------


def interleave(
    cases: dict[str, Callable[[], object]],
    reps: int,
    warmup: int = 2,
    block: int = 1,
    gap: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per call for every case, measured in rounds: each round runs every case `block`
    times in turn (the order rotates each round), so background noise hits all cases alike.
    `gap` seconds of sleep before each case's turn let the previous contender's idle worker
    threads (OpenBLAS, OpenMP and onnxruntime spin for a while after a call) go to sleep, so
    they do not steal cores from the next one -- use it for multi-threaded comparisons."""
    names = list(cases)
    for _ in range(warmup):
        for n in names:
            cases[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    rounds = max(1, -(-reps // block))
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            if gap:
                time.sleep(gap)
            for _ in range(block):
                t0 = time.perf_counter_ns()
                cases[n]()
                times[n].append((time.perf_counter_ns() - t0) * 1e-9)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


# ---- machine probes and roofline ------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """Measured limits at one thread count: bandwidths in GB/s, peak in GFLOP/s (f32 FMA)."""

    threads: int
    triad_gbs: float
    read_gbs: float
    peak_gflops: float


def probe_machine(lib: ctypes.CDLL, pool: int | None, threads: int, reps: int = 15) -> Machine:
    """STREAM-like triad a = b + s*c (3 x 4 B per element counted, as STREAM does) and a
    read-only sum over 3 x 128 MiB, and an FMA loop (12 independent vector chains per thread),
    medians over interleaved repetitions. Needs kernels_bench.c in the library."""
    import numpy as np

    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bench_triad.argtypes = [vp, i64, vp, vp, vp]
    lib.bench_read.argtypes = [vp, i64, vp]
    lib.bench_read.restype = ctypes.c_double
    lib.bench_fma.argtypes = [vp, i64, i64]
    lib.bench_fma.restype = ctypes.c_double
    n = 1 << 25  # 128 MiB per array, far beyond the caches
    a, b, c = (np.ones(n, np.float32) for _ in range(3))
    tasks, iters = 2 * threads, 1_000_000
    flops = lib.bench_fma(pool, tasks, 1000)  # warm; the count scales linearly
    flops = flops / 1000 * iters
    t = interleave(
        {
            "triad": lambda: lib.bench_triad(pool, n, a.ctypes.data, b.ctypes.data, c.ctypes.data),
            "read": lambda: lib.bench_read(pool, n, b.ctypes.data),
            "fma": lambda: lib.bench_fma(pool, tasks, iters),
        },
        reps,
    )
    return Machine(
        threads,
        3 * 4 * n / median(t["triad"]) / 1e9,
        4 * n / median(t["read"]) / 1e9,
        flops / median(t["fma"]) / 1e9,
    )


def roofline_fraction(seconds: float, flops: float, nbytes: float, m: Machine) -> float:
    """Attainable time (max of compute and memory time at the machine's limits, memory at the
    read bandwidth) over the measured time: 1.0 = at the roofline."""
    bound = max(flops / (m.peak_gflops * 1e9), nbytes / (m.read_gbs * 1e9))
    return bound / seconds


# ---- peers' thread counts ------------------------------------------------------------------


def numpy_threads(n: int):
    """A context manager limiting OpenBLAS (numpy) to n threads (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        i = next(x for x in threadpool_info() if x["user_api"] == "blas")
        return f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')})"
    except (ImportError, StopIteration):
        return "unknown BLAS"


# ---- output ---------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(x: object) -> str:
        return f"{x:.3g}" if isinstance(x, float) else str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
