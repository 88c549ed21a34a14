"""Quantization benchmark on the host C target, at 1 and 2 threads:

  gemv     one 4096x4096 linear at batch 1: lmc int4 (g128, asymmetric and symmetric RTN;
           weight-only with f32 activations, and W4A8: the same int4 weights with int8
           activations quantized per token, like ORT's) vs lmc fp32 and vs onnxruntime's int8
           (quantize_dynamic of a one-MatMul model: int8 weights, dynamic int8 activations),
           with onnxruntime fp32 for reference; goals: int4 >= 3x faster than lmc fp32 and
           >= 1.5x faster than ORT int8 (both int4 forms are checked)
  minilm   all-MiniLM-L6-v2 (real weights, seq 128, batch 1): lmc W8A8 (per-token), W4-GPTQ
           and W4A8-GPTQ (g128) vs ORT quantize_dynamic int8, with both fp32 models for
           reference; the accuracy of each is the min cosine of 18 sentence embeddings against
           torch fp32; goal: lmc W8A8 / ORT int8 <= 1.0; and GPTQ's time on MiniLM (36 linears)

    python benchmarks/quant.py [--threads 1,2] [--parts gemv,minilm] [--repeats N]
                               [--wait-quiet S] [--json out.json]

Timings are medians of interleaved calls (common.interleave) with the other processes' CPU share
recorded while timing (models.BackgroundLoad); the machine is shared, so read `bg load`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")
logging.getLogger("torch.onnx").setLevel(logging.ERROR)
logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's preprocessing hint

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import cpu_name, host_isa, interleave, markdown_table  # noqa: E402
from benchmarks.models import BackgroundLoad, wait_quiet  # noqa: E402

N = 4096
GROUP = 128
SEQ = 128
GOALS = {"int4/fp32": 1 / 3, "int4/ORT int8": 1 / 1.5, "w8a8/ORT int8": 1.0}


class Contender:
    """A named callable per thread count, its output (for accuracy) and build time."""

    def __init__(self, name: str, build_s: float, bind: Callable[[int], Callable[[], Any]],
                 note: str = "") -> None:  # fmt: skip
        self.name, self.build_s, self.bind, self.note = name, build_s, bind, note
        self.model: Any = None


def lmc_contender(name: str, model: Any, arrays: list[np.ndarray], build_s: float) -> Contender:
    runner = model._runner  # HostRunner: .num_threads sets the pool size

    def bind(threads: int) -> Callable[[], Any]:
        runner.num_threads = threads
        return lambda: runner.run(arrays)

    c = Contender(name, build_s, bind)
    c.model = model  # the compiled model owns the loaded artifact: keep it alive
    return c


def ort_contender(name: str, path: Path, feeds: dict[str, np.ndarray], build_s: float) -> Contender:
    import onnxruntime as ort

    sessions: dict[int, Any] = {}

    def bind(threads: int) -> Callable[[], Any]:
        if threads not in sessions:
            o = ort.SessionOptions()
            o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
            o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sessions[threads] = ort.InferenceSession(
                str(path), o, providers=["CPUExecutionProvider"]
            )
        s = sessions[threads]
        return lambda: s.run(None, feeds)

    return Contender(name, build_s, bind)


def quantize_dynamic(src: Path, dst: Path) -> float:
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as qd

    t0 = time.perf_counter()
    qd(str(src), str(dst), weight_type=QuantType.QInt8)
    return time.perf_counter() - t0


def time_all(cs: list[Contender], threads: int, reps: int) -> tuple[dict[str, float], float | None]:
    """Median seconds per call of every contender at `threads` (interleaved), and the
    background load meanwhile."""
    fns = {c.name: c.bind(threads) for c in cs}
    load = BackgroundLoad()
    load.start()
    multi = threads > 1
    ts = interleave(fns, reps, warmup=3, block=3 if multi else 1, gap=0.05 if multi else 0.0)
    return {k: float(np.median(v)) for k, v in ts.items()}, load.stop()


# ---- GEMV -------------------------------------------------------------------------------------


def gemv_contenders(tmp: Path) -> tuple[list[Contender], dict[str, float]]:
    import lmc
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(0)
    lin = torch.nn.Linear(N, N, bias=False).eval()
    x = torch.randn(1, N)
    arrays = [x.numpy()]
    out: list[Contender] = []
    outputs: dict[str, np.ndarray] = {}
    ref = (x @ lin.weight.T).detach().numpy().astype(np.float64)
    for name, spec in (("lmc fp32", None), ("lmc int4 g128", "w4-rtn-g128"),
                       ("lmc int4 g128 sym", "w4-rtn-g128-sym"),
                       ("lmc int4 W4A8 g128", "w4a8-rtn-g128")):  # fmt: skip
        t0 = time.perf_counter()
        m = lmc.compile(lin, (x,), target="host", quantize=spec)
        c = lmc_contender(name, m, arrays, time.perf_counter() - t0)
        if spec:
            blob = next(k for k in _weights(m) if "#wq4" in k)
            c.note = f"{_weights(m)[blob] * 8 / N / N:.3f} bits/weight streamed"
        out.append(c)
        outputs[name] = m.run(arrays)[0]
    w = lin.weight.detach().numpy().T.copy()  # MatMul B [in, out]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N])
    yi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemv", [xi], [yi],
                          [numpy_helper.from_array(w, "w")])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    f32, i8 = tmp / "gemv.onnx", tmp / "gemv.int8.onnx"
    onnx.save(model, f32)
    q_s = quantize_dynamic(f32, i8)
    for name, path, s in (("ORT fp32", f32, 0.0), ("ORT int8 (quantize_dynamic)", i8, q_s)):
        c = ort_contender(name, path, {"x": arrays[0]}, s)
        out.append(c)
        outputs[name] = c.bind(1)()[0]
    errs = {k: float(np.abs(v - ref).max() / np.abs(ref).max()) for k, v in outputs.items()}
    return out, errs


def _weights(m: Any) -> dict[str, int]:
    from lmc.runtime.artifact import read_weights

    wf = read_weights(m.artifact / "weights.safetensors")
    return {k: wf.entries[k].meta["nbytes"] for k in wf.keys()}


# ---- MiniLM -----------------------------------------------------------------------------------


def minilm_contenders(tmp: Path) -> tuple[list[Contender], dict[str, float], dict[str, Any]]:
    import lmc
    import torch

    from benchmarks.peers import export_onnx
    from benchmarks.workloads import minilm
    from tests.models import build_minilm
    from tests.passes.quant_models import EVAL_SENTENCES, calibration_set, tokenizer

    built, zoo = minilm(), build_minilm()
    module, dyn = built.module, zoo.dynamic_shapes
    arrays = [np.ascontiguousarray(t.numpy()) for t in built.inputs]
    enc = tokenizer()(EVAL_SENTENCES, padding="max_length", max_length=SEQ, return_tensors="np")
    evals = [[enc["input_ids"][i : i + 1].astype(np.int64),
              enc["attention_mask"][i : i + 1].astype(np.int64)]
             for i in range(len(EVAL_SENTENCES))]  # fmt: skip
    with torch.inference_mode():
        ref = np.concatenate([module(*map(torch.from_numpy, e)).numpy() for e in evals])
    cal = calibration_set()
    out: list[Contender] = []
    embeds: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for name, spec in (
        ("lmc fp32", None),
        ("lmc W8A8", "w8a8"),
        ("lmc W4-GPTQ g128", "w4-gptq-g128"),
        ("lmc W4A8-GPTQ g128", "w4a8-gptq-g128"),
    ):
        t0 = time.perf_counter()
        m = lmc.compile(module, tuple(built.example), target="host", dynamic_shapes=dyn,
                        quantize=spec, calibration=cal if spec else None)  # fmt: skip
        c = lmc_contender(name, m, arrays, time.perf_counter() - t0)
        if spec == "w4-gptq-g128":
            info["gptq_s"] = m.pass_context.timings.get("quantize_weights_gptq")
            info["calibration_s"] = m.pass_context.timings.get("collect_calibration")
            c.note = f"GPTQ {info['gptq_s']:.1f} s"
        out.append(c)
        embeds[name] = np.concatenate([m.run(e)[0] for e in evals])
    f32, i8 = tmp / "minilm.onnx", tmp / "minilm.int8.onnx"
    export = export_onnx(module, built.example, f32, dyn, built.inputs)
    q_s = quantize_dynamic(f32, i8)
    names = ["input_ids", "attention_mask"]
    for name, path, s in (("ORT fp32", f32, export[0]),
                          ("ORT int8 (quantize_dynamic)", i8, export[0] + q_s)):  # fmt: skip
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds_names = [i.name for i in sess.get_inputs()]
        assert feeds_names == names, feeds_names
        out.append(ort_contender(name, path, dict(zip(names, arrays)), s))
        embeds[name] = np.concatenate([sess.run(None, dict(zip(names, e)))[0] for e in evals])
    cos = {k: _min_cosine(v, ref) for k, v in embeds.items()}
    info["onnx_export"] = export[1]
    return out, cos, info


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    return float(np.min(num / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


# ---- report ----------------------------------------------------------------------------------


def run_part(
    name: str,
    cs: list[Contender],
    accuracy: dict[str, float],
    acc_label: str,
    threads: list[int],
    args: argparse.Namespace,
) -> tuple[list[list[Any]], dict]:
    rows, meds = [], {}
    for t in threads:
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        med, bg = time_all(cs, t, args.repeats)
        meds[t] = med
        for c in cs:
            rows.append([name, t, c.name, med[c.name] * 1e3, acc_label, accuracy.get(c.name),
                         c.build_s, "-" if bg is None else f"{100 * bg:.0f}%", c.note])  # fmt: skip
        line = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in med.items())
        print(f"  {name} {t} thread(s): {line}", flush=True)
    return rows, meds


def goal_rows(part: str, meds: dict[int, dict[str, float]]) -> list[list[Any]]:
    pairs = {
        "gemv": [("lmc int4 g128", "lmc fp32", "int4/fp32"),
                 ("lmc int4 g128", "ORT int8 (quantize_dynamic)", "int4/ORT int8"),
                 ("lmc int4 W4A8 g128", "lmc fp32", "int4/fp32"),
                 ("lmc int4 W4A8 g128", "ORT int8 (quantize_dynamic)", "int4/ORT int8")],
        "minilm": [("lmc W8A8", "ORT int8 (quantize_dynamic)", "w8a8/ORT int8")],
    }[part]  # fmt: skip
    out = []
    for t, med in meds.items():
        for a, b, goal in pairs:
            r = med[a] / med[b]
            met = "yes" if r <= GOALS[goal] else "**no**"
            out.append([part, t, f"{a} / {b}", f"{r:.2f} ({1 / r:.2f}x faster)",
                        f"<= {GOALS[goal]:.2f}", met])  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--parts", default="gemv,minilm")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    parts = [p.strip() for p in args.parts.split(",")]
    load0 = os.getloadavg()[0]
    rows, goals, doc = [], [], {}
    with tempfile.TemporaryDirectory(prefix="lmc_quant_bench_") as d:
        tmp = Path(d)
        if "gemv" in parts:
            print("== gemv: 4096x4096 linear, batch 1", flush=True)
            cs, errs = gemv_contenders(tmp)
            r, meds = run_part("gemv", cs, errs, "max rel err vs fp32", threads, args)
            rows += r
            goals += goal_rows("gemv", meds)
            doc["gemv"] = {"medians": meds, "rel_err": errs}
        if "minilm" in parts:
            print("== minilm: all-MiniLM-L6-v2, seq 128, batch 1", flush=True)
            cs, cos, info = minilm_contenders(tmp)
            r, meds = run_part("minilm", cs, cos, "min cosine vs fp32", threads, args)
            rows += r
            goals += goal_rows("minilm", meds)
            doc["minilm"] = {"medians": meds, "min_cosine": cos, **info}
            print(f"  GPTQ on MiniLM: {info['gptq_s']:.1f} s (+ calibration "
                  f"{info['calibration_s']:.1f} s)", flush=True)  # fmt: skip
    load1 = os.getloadavg()[0]
    print(f"\n# lmc quantization benchmark\n\n{cpu_name()}, {os.cpu_count()} logical CPUs, "
          f"kernels {host_isa()}, load average {load0:.2f} -> {load1:.2f}, {args.repeats} "
          "interleaved calls per contender\n")  # fmt: skip
    headers = ["part", "thr", "system", "median ms", "accuracy", "value", "build s", "bg load",
               "note"]  # fmt: skip
    body = [[*r[:5], "-" if r[5] is None else f"{r[5]:.4g}", f"{r[6]:.1f}", *r[7:]] for r in rows]
    print(markdown_table(headers, body))
    print()
    print(markdown_table(["part", "thr", "ratio", "value", "goal", "met"], goals))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
