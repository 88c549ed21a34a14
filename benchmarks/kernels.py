"""Kernel benchmark: f32 4096x4096 linear at batch 1 (GEMV) and batch 128 (GEMM), lmc's C kernels
against numpy (OpenBLAS), onnxruntime (a one-node MatMul model) and torch, at 1 and 2 threads;
medians over interleaved repetitions (with 2+ threads: interleaved blocks of 5 calls after a
0.15 s pause, so that a peer's spinning idle workers do not steal the next one's cores), with
the machine's measured bandwidth (STREAM-like triad and a read-only sweep) and FMA peak, and
each result's fraction of that roofline.

    python -m benchmarks.kernels [--reps 30] [--threads 1,2] [--isa avx512|avx2|portable]

OPENBLAS_CORETYPE: when set in the environment it is removed before numpy loads, so OpenBLAS
picks its kernels for the CPU it detects (an override pinned for other reasons would otherwise
understate numpy here); the original value is printed with the results. Tests keep it.
"""

from __future__ import annotations

import os

_CORETYPE = os.environ.pop("OPENBLAS_CORETYPE", None)  # before numpy / OpenBLAS load

import argparse  # noqa: E402
import ctypes  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    Machine,
    blas_info,
    build_kernels,
    cpu_name,
    host_isa,
    interleave,
    markdown_table,
    median,
    numpy_threads,
    probe_machine,
    roofline_fraction,
)

N = K = 4096
WORKLOADS = {"gemv 4096x4096 b1": 1, "gemm 4096x4096 b128": 128}


def lmc_case(lib, pool, x: np.ndarray, packed: np.ndarray, y: np.ndarray):
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    f = lib.lmc_gemm_f32_packed
    f.argtypes = [vp, i64, i64, i64, vp, i64, vp, vp, i64, vp, vp, vp]
    args = (pool, x.shape[0], N, K, x.ctypes.data, K, packed.ctypes.data, y.ctypes.data, N)
    return lambda: f(*args, None, None, None)


def ort_session(w: np.ndarray, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    b = numpy_helper.from_array(np.ascontiguousarray(w.T), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", N])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def peer_cases(w: np.ndarray, x: np.ndarray, threads: int) -> dict:
    cases = {}
    y = np.empty((x.shape[0], N), np.float32)
    wt = w.T
    cases["numpy"] = lambda: np.matmul(x, wt, out=y)
    try:
        sess = ort_session(w, threads)
        cases["onnxruntime"] = lambda: sess.run(["y"], {"x": x})
    except ImportError:
        pass
    try:
        import torch

        xt, wtt, yt = torch.from_numpy(x), torch.from_numpy(w), torch.empty(x.shape[0], N)

        def run_torch():
            with torch.inference_mode():
                torch.matmul(xt, wtt.T, out=yt)

        cases["torch"] = run_torch
    except ImportError:
        pass
    return cases


def bench(lib, isa: str, threads: int, reps: int, machine: Machine) -> list[list]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N, K)).astype(np.float32)
    packed = np.zeros(lib.lmc_gemm_packed_bytes(N, K) // 4, np.float32)
    lib.lmc_gemm_pack(N, K, w.ctypes.data, K, packed.ctypes.data)
    pool = lib.lmc_pool_create(threads)
    rows = []
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    for name, m in WORKLOADS.items():
        x = rng.standard_normal((m, K)).astype(np.float32)
        y = np.empty((m, N), np.float32)
        cases = {f"lmc ({isa})": lmc_case(lib, pool, x, packed, y), **peer_cases(w, x, threads)}
        with numpy_threads(threads):
            # more than one thread: blocks of 5 calls after a pause, so that one peer's spinning
            # idle workers do not run on the cores the next one needs
            times = interleave(
                cases, reps, block=5 if threads > 1 else 1, gap=0.15 if threads > 1 else 0.0
            )
        flops, nbytes = 2.0 * m * N * K, 4.0 * (N * K + m * K + m * N)
        base = median(times[f"lmc ({isa})"])
        for impl, ts in times.items():
            t = median(ts)
            frac = roofline_fraction(t, flops, nbytes, machine)
            rows.append(
                [
                    name,
                    threads,
                    impl,
                    t * 1e3,
                    flops / t / 1e9,
                    nbytes / t / 1e9,
                    f"{100 * frac:.0f}%",
                    f"{t / base:.2f}x",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--isa", default=None)
    args = ap.parse_args(argv)
    isa = args.isa or host_isa()
    lib = build_kernels(isa)
    lib.lmc_gemm_packed_bytes.restype = ctypes.c_size_t
    lib.lmc_gemm_packed_bytes.argtypes = [ctypes.c_int64] * 2
    lib.lmc_gemm_pack.argtypes = [
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    load0 = os.getloadavg()[0]
    machines, rows = [], []
    for t in (int(s) for s in args.threads.split(",")):
        m = probe_machine(lib, lib.lmc_pool_create(t), t)
        machines.append(m)
        rows += bench(lib, isa, t, args.reps, m)
    print(
        f"# lmc kernel benchmark\n\n{cpu_name()}, kernels: {isa}, numpy BLAS: {blas_info()}, "
        f"OPENBLAS_CORETYPE: {_CORETYPE or 'unset'} (unset for this run), "
        f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f}, {args.reps} interleaved reps\n"
    )
    print(
        markdown_table(
            ["threads", "triad GB/s", "read GB/s", "FMA peak GFLOP/s"],
            [[m.threads, m.triad_gbs, m.read_gbs, m.peak_gflops] for m in machines],
        )
    )
    print()
    print(
        markdown_table(
            [
                "workload",
                "threads",
                "impl",
                "median ms",
                "GFLOP/s",
                "GB/s",
                "roofline",
                "time vs lmc",
            ],
            rows,
        )
    )
    print("\nroofline = max(flops / FMA peak, bytes / read bandwidth) / time at that thread count")
    for m in machines:
        r = next(r for r in rows if r[0].startswith("gemv") and r[1] == m.threads)
        print(
            f"GEMV b1, {m.threads} thread(s): {r[5]:.1f} GB/s = {100 * r[5] / m.triad_gbs:.0f}% "
            f"of triad, {100 * r[5] / m.read_gbs:.0f}% of read bandwidth (goal >= 85%)"
        )


if __name__ == "__main__":
    main()
