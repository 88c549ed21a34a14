"""Where an lmc model spends its time: time per generated kernel (one IR node or fused group),
from a profiling variant of the artifact, with each kernel's FLOPs and GFLOP/s.

    python benchmarks/profile_kernels.py MODEL [--threads 1] [--calls 20] [--top 25]

MODEL is a name from benchmarks/workloads.py. The model is compiled as benchmarks/models.py
compiles it; a copy of its artifact gets a model.c whose run function wraps every kernel call
in a clock_gettime pair (nothing else changes: same kernels, flags and weights), is rebuilt
with the artifact's own Makefile, and runs through the host runner. The table lists kernels by
total time with the IR line each came from; a summary groups them by op. The instrumented total
is compared with the plain artifact's time, so the timer overhead is visible.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from math import prod
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import markdown_table  # noqa: E402

CALL = re.compile(r"^(\s*)if \(\(rc = (lmc_k\d+)\(ex\)\) != 0\) return rc;\s*$")
DEF = re.compile(r"^static\b.*\b(lmc_k\d+)(?:_\w+)?\(")
ENTRY = re.compile(r"^static int (lmc_k\d+)\(const lmc_exec \*ex\)")
TYPE = re.compile(r"^\s*(%[\w.]+)\s*=.*:\s*\w+\[([^\]]*)\]\s*$")
NODE = re.compile(r"%(\w+) = (\w+)\(([^)]*)\)")

PROLOGUE = """
/* ---- lmc profile_kernels instrumentation (benchmarks/profile_kernels.py) ---- */
#include <time.h>
static double lmc_prof_acc[{n}];
static double lmc_prof_now(void) {{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}}
__attribute__((visibility("default"))) int lmc_prof_read(double *out, int n) {{
  for (int i = 0; i < n && i < {n}; i++) out[i] = lmc_prof_acc[i];
  return {n};
}}
__attribute__((visibility("default"))) void lmc_prof_reset(void) {{
  for (int i = 0; i < {n}; i++) lmc_prof_acc[i] = 0.0;
}}
"""


def instrument(model_c: str) -> tuple[str, list[str], dict[str, str]]:
    """model.c with timed kernel calls; the kernels in call order; kernel -> IR comment."""
    lines = model_c.splitlines()
    comments: dict[str, str] = {}
    helper: dict[str, str] = {}
    last = ""
    for line in lines:
        s = line.strip()
        if s.startswith("/* %"):
            last = s[3:-2].strip() if s.endswith("*/") else s[3:]
        m = DEF.match(line)
        if m and m.group(1) not in comments:
            helper[m.group(1)] = last  # a helper (task, epilogue) may precede the comment
        m = ENTRY.match(line)
        if m:
            comments[m.group(1)] = last
    comments = {**helper, **comments}
    order: list[str] = []
    out: list[str] = []
    for line in lines:
        m = CALL.match(line)
        if m is None:
            out.append(line)
            continue
        ind, k = m.group(1), m.group(2)
        i = len(order)
        order.append(k)
        out.append(
            f"{ind}{{ double t_ = lmc_prof_now(); rc = {k}(ex); "
            f"lmc_prof_acc[{i}] += lmc_prof_now() - t_; if (rc != 0) return rc; }}"
        )
    if not order:
        raise SystemExit("profile_kernels: no kernel calls found in model.c (format changed?)")
    text = "\n".join(out) + "\n"
    at = text.index("static int lmc_gen_run")
    return text[:at] + PROLOGUE.format(n=len(order)) + "\n" + text[at:], order, comments


def ir_types(ir: str) -> dict[str, list[str]]:
    """value name -> its dims as text, from model.lmc."""
    types = {}
    for line in ir.splitlines():
        m = TYPE.match(line)
        if m:
            dims = [d.strip() for d in m.group(2).split(",") if d.strip()]
            types[m.group(1)] = dims
    return types


def symbol_values(ir: str, arrays: list[np.ndarray]) -> dict[str, int]:
    """Symbols bound by the inputs' shapes (input dims that are plain names)."""
    vals: dict[str, int] = {}
    for line in ir.splitlines():
        m = re.match(r"^\s*%[\w.]+ = input\(\) \{index=(\d+)\} : \w+\[([^\]]*)\]", line)
        if m:
            dims = [d.strip() for d in m.group(2).split(",") if d.strip()]
            for d, n in zip(dims, arrays[int(m.group(1))].shape):
                if d.isidentifier():
                    vals[d] = int(n)
    return vals


def dim_value(d: str, syms: dict[str, int]) -> int:
    import sympy

    return int(sympy.sympify(d).subs(syms))


def node_flops(comment: str, types: dict[str, list[str]], syms: dict[str, int]) -> float | None:
    """FLOPs of a matmul-like node from its IR line (a multiply-add counts 2), else None."""
    m = NODE.search(comment)
    if m is None:
        return None
    op, args = m.group(2), [a.strip() for a in m.group(3).split(",")]
    try:
        out = [dim_value(d, syms) for d in types["%" + m.group(1)]]
        shape = [[dim_value(d, syms) for d in types[a]] for a in args[:3] if a in types]
    except (KeyError, TypeError, ValueError):
        return None
    if op in ("linear", "fused_linear"):
        return 2.0 * prod(out) * shape[1][-1]
    if op in ("conv", "fused_conv"):
        return 2.0 * prod(out) * prod(shape[1][1:])
    if op in ("matmul", "fused_matmul", "batch_matmul"):
        return 2.0 * prod(out) * shape[0][-1]
    if op in ("attention", "fused_attention"):
        q, k = shape[0], shape[1]
        return 4.0 * prod(q[:-1]) * k[-2] * q[-1]
    return None


def build_variant(artifact: Path, work: Path) -> tuple[Path, list[str], dict[str, str]]:
    dst = work / "artifact"
    shutil.copytree(artifact, dst)
    src = dst / "src"
    text, order, comments = instrument((src / "model.c").read_text())
    (src / "model.c").write_text(text)
    subprocess.run(
        ["make", "-s", "-j2", "OBJDIR=obj_prof", "LIBDIR=../lib_prof"],
        cwd=src,
        check=True,
        capture_output=True,
        text=True,
    )
    return dst / "lib_prof" / "liblmc_model.so", order, comments


def main(argv: list[str] | None = None) -> None:
    from benchmarks.models import BackgroundLoad, wait_quiet
    from benchmarks.workloads import WORKLOADS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", choices=sorted(WORKLOADS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S", help="as in models.py")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ctypes

    import lmc
    from lmc.runtime.host import HostRunner

    w = WORKLOADS[args.model]
    b = w.build()
    t0 = time.perf_counter()
    model = lmc.compile(b.module, b.example, target="host", dynamic_shapes=w.dynamic_shapes)
    print(f"compiled {args.model} in {time.perf_counter() - t0:.1f} s")
    arrays = [np.ascontiguousarray(x.numpy()) for x in b.inputs]
    artifact = Path(model.artifact)
    ir = (artifact / "model.lmc").read_text()
    with tempfile.TemporaryDirectory(prefix="lmc_prof_") as d:
        lib, order, comments = build_variant(artifact, Path(d))
        runner = HostRunner(lib, Path(d) / "artifact" / "weights.safetensors", args.threads)
        plain = model._runner
        plain.num_threads = args.threads
        cdll = ctypes.CDLL(str(lib))
        cdll.lmc_prof_read.argtypes = [ctypes.POINTER(ctypes.c_double), ctypes.c_int]
        for r in (runner, plain):
            r.run(arrays)
            r.run(arrays)
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        cdll.lmc_prof_reset()
        load = BackgroundLoad()
        load.start()
        wall = {"instrumented": [], "plain": []}
        for _ in range(args.calls):
            for name, r in (("instrumented", runner), ("plain", plain)):
                t0 = time.perf_counter()
                r.run(arrays)
                wall[name].append(time.perf_counter() - t0)
        bg = load.stop()
        acc = (ctypes.c_double * len(order))()
        cdll.lmc_prof_read(acc, len(order))
        runner.close()
    per_call = np.array(acc[:]) / args.calls
    total = float(per_call.sum())
    types, syms = ir_types(ir), symbol_values(ir, arrays)
    rows, by_op = [], defaultdict(lambda: [0.0, 0, 0.0])
    for i in np.argsort(-per_call):
        k, t = order[i], float(per_call[i])
        c = comments.get(k, "?")
        fl = node_flops(c, types, syms)
        m = NODE.search(c)
        op = m.group(2) if m else "?"
        by_op[op][0] += t
        by_op[op][1] += 1
        by_op[op][2] += fl or 0.0
        if len(rows) < args.top:
            gf = f"{fl / t / 1e9:.1f}" if fl and t > 0 else "-"
            rows.append([k, f"{t * 1e3:.3f}", f"{100 * t / total:.1f}%", gf, c[:150]])
    print(
        f"\n{args.model}, {args.threads} thread(s), {args.calls} calls: kernels sum "
        f"{total * 1e3:.2f} ms/call; instrumented run {np.median(wall['instrumented']) * 1e3:.2f}"
        f" ms, plain artifact {np.median(wall['plain']) * 1e3:.2f} ms (medians); other processes"
        f" used {'?' if bg is None else f'{100 * bg:.0f}%'} of the CPUs meanwhile\n"
    )
    print(markdown_table(["kernel", "ms/call", "share", "GFLOP/s", "IR"], rows))
    summary = [
        [op, n, f"{t * 1e3:.3f}", f"{100 * t / total:.1f}%", f"{fl / t / 1e9:.1f}" if fl else "-"]
        for op, (t, n, fl) in sorted(by_op.items(), key=lambda kv: -kv[1][0])
    ]
    print()
    print(markdown_table(["op", "kernels", "ms/call", "share", "GFLOP/s"], summary))


if __name__ == "__main__":
    main()
