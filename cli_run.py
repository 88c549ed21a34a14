"""`lmc run` and `lmc bench`: run a built artifact folder (through `lmc.load`) on inputs from
.npy/.npz files or on random inputs, print output summaries, latency percentiles and memory."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cli_build import fmt_bytes, io_text
from .ir import LmcError

# ops whose operand 1 indexes operand 0 along an axis: op name -> attribute holding the axis
INDEXING_OPS = {"embedding": None, "gather": "axis", "gather_elements": "axis"}
# ops an index input may pass through unchanged in value before it indexes
VALUE_KEEPING_OPS = {"reshape", "squeeze", "unsqueeze", "flatten", "identity", "cast", "expand"}
SMALL_INTS = 2  # random ints in 0..SMALL_INTS-1 when no indexed dim bounds an int input


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `run` and `bench` on the `lmc` subcommand parser."""
    r = sub.add_parser(
        "run",
        parents=[common],
        help="run an artifact on inputs from .npy/.npz files",
        description="Load an artifact folder, run it on the given inputs and print each "
        "output's name, shape, dtype and a short summary of its values.",
    )
    r.add_argument("artifact", metavar="DIR", help="an artifact folder (lmc build -o DIR)")
    _add_inputs_arg(r, required=True)
    r.add_argument("--output", metavar="OUT.npz", help="save the outputs by name here")
    r.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    r.add_argument("--threads", type=int, default=0, metavar="N", help="threads (0: all cores)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser(
        "bench",
        parents=[common],
        help="measure an artifact's latency, throughput and memory",
        description="Run an artifact repeatedly on given or random inputs and report latency "
        "percentiles, throughput and peak memory per thread count.",
    )
    b.add_argument("artifact", metavar="DIR", help="an artifact folder (lmc build -o DIR)")
    _add_inputs_arg(b, required=False)
    b.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=DIMS",
        help="random input shape (x=1x128) or symbol value (seq=128); repeatable",
    )
    b.add_argument(
        "--threads", default="0", metavar="N[,N...]", help="thread counts (0: all cores)"
    )
    b.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed runs (default 5)")
    b.add_argument("--iters", type=int, default=50, metavar="N", help="timed runs (default 50)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    b.add_argument(
        "--reference",
        action="store_true",
        help="also run the reference interpreter once and print the max abs/rel error",
    )
    b.add_argument(
        "--no-memory", action="store_true", help="skip the RSS measurement (a subprocess)"
    )
    b.set_defaults(func=cmd_bench)


def _add_inputs_arg(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--inputs",
        nargs="+",
        default=[],
        required=required,
        metavar="FILE",
        help="a.npy b.npy (by position), name=a.npy (by name), or one .npz holding them by name",
    )


# -- lmc run ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .runtime.loader import load

    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        raise LmcError(f"{out} exists; pass --force to overwrite it")
    with load(args.artifact, num_threads=args.threads) as m:
        inputs = read_inputs(args.inputs, m.input_names)
        t0 = time.perf_counter()
        outs = m.run(inputs)
        ms = (time.perf_counter() - t0) * 1e3
        threads = getattr(m.runner, "num_threads", args.threads)
    print(f"ran {args.artifact} ({m.target}, {threads} thread(s)) in {ms:.3f} ms")
    names = m.output_names
    for name, a in zip(names, outs):
        print(f"{name}: {dtype_name(a)}[{', '.join(map(str, a.shape))}]  {summarize(a)}")
    if out is not None:
        with open(out, "wb") as f:  # np.savez on a path would append ".npz" to other names
            np.savez(f, **dict(zip(names, outs)))
        print(f"saved {len(outs)} output(s) to {out}")
    return 0


def read_inputs(specs: Sequence[str], names: Sequence[str]) -> list[np.ndarray] | dict:
    """Arrays from `--inputs`: files by position, name=file pairs, or one .npz by name
    (an .npz written by np.savez(*arrays), keys arr_0.., counts as by position)."""
    if len(specs) == 1 and specs[0].lower().endswith(".npz") and "=" not in specs[0]:
        with _open(specs[0]) as z:
            arrays = {k: z[k] for k in z.files}
        if set(arrays) == {f"arr_{i}" for i in range(len(arrays))} and not set(arrays) & set(names):
            return [arrays[f"arr_{i}"] for i in range(len(arrays))]
        return arrays
    named = ["=" in s for s in specs]
    if any(named) and not all(named):
        raise LmcError("--inputs: give every input as name=file, or none (then by position)")
    if all(named) and specs:
        out = {}
        for s in specs:
            name, _, path = s.partition("=")
            if name in out:
                raise LmcError(f"--inputs: input {name!r} given twice")
            out[name] = _load_array(path)
        return out
    return [_load_array(s) for s in specs]


def _open(path: str) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LmcError(f"input file {path} does not exist") from None
    except (ValueError, OSError) as e:
        raise LmcError(f"{path}: not a readable numpy file: {e}") from None


def _load_array(path: str) -> np.ndarray:
    a = _open(path)
    if not isinstance(a, np.ndarray):
        a.close()
        raise LmcError(f"{path} holds several arrays (.npz); pass it alone as --inputs {path}")
    return a


def dtype_name(a: np.ndarray) -> str:
    from .ir.dtypes import from_numpy

    try:
        return str(from_numpy(a.dtype))
    except (ValueError, KeyError, LmcError):
        return str(a.dtype)


def summarize(a: np.ndarray, first: int = 4) -> str:
    """min/max/mean (and NaN/Inf counts) plus the first values."""
    if a.size == 0:
        return "(empty)"
    flat = a.reshape(-1)
    head = ", ".join(_num(x) for x in flat[:first]) + (", ..." if a.size > first else "")
    if a.dtype == np.bool_:
        return f"true {int(flat.sum())} of {a.size}  [{head}]"
    f = flat.astype(np.float64)
    finite = f[np.isfinite(f)]
    bad = a.size - finite.size
    stats = (
        f"min {_num(finite.min())} max {_num(finite.max())} mean {_num(finite.mean())}"
        if finite.size
        else "no finite values"
    )
    if bad:
        stats += f" ({int(np.isnan(f).sum())} NaN, {int(np.isinf(f).sum())} Inf)"
    return f"{stats}  [{head}]"


def _num(x: Any) -> str:
    return str(x) if isinstance(x, (np.integer, np.bool_, int)) else f"{float(x):.6g}"


# -- lmc bench -------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace) -> int:
    from .runtime.loader import load

    threads = _thread_counts(args.threads)
    if args.iters < 1 or args.warmup < 0:
        raise LmcError("--iters must be >= 1 and --warmup >= 0")
    d = Path(args.artifact)
    with load(d) as m:
        manifest, ir_text, names = m.manifest, m.ir, m.input_names
    if args.inputs:
        if args.shape:
            raise LmcError("--shape is for random inputs; it cannot be combined with --inputs")
        given = read_inputs(args.inputs, names)
        arrays = dict(zip(names, given)) if isinstance(given, list) else given
        how = {n: "from file" for n in arrays}
        env: dict[str, int] = {}
    else:
        arrays, how, env = random_inputs(ir_text, names, args.shape, args.seed)
    print(f"bench {d} ({manifest['target']})")
    for spec in manifest["inputs"]:
        a = arrays.get(spec["name"])
        shape = "x".join(map(str, a.shape)) if a is not None else "?"
        print(f"  input {io_text(spec)} = [{shape}] {how.get(spec['name'], '')}")
    if env:
        print("  symbols " + ", ".join(f"{k}={v}" for k, v in sorted(env.items())))
    print(f"  {args.warmup} warmup + {args.iters} timed runs per thread count; times in ms")
    print(
        f"  {'threads':>7} {'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9} {'min':>9} {'runs/s':>10}"
    )
    outs: list[np.ndarray] = []
    for n in threads:
        with load(d, num_threads=n) as m:
            used = getattr(m.runner, "num_threads", n)
            for _ in range(args.warmup):
                m.run(arrays)
            times = np.empty(args.iters)
            for i in range(args.iters):
                t0 = time.perf_counter()
                outs = m.run(arrays)
                times[i] = time.perf_counter() - t0
        ms = times * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        cols = (p50, p90, p99, ms.mean(), ms.min())
        print(f"  {used:>7} " + " ".join(f"{c:9.3f}" for c in cols) + f" {1e3 / ms.mean():10.1f}")
    _print_memory(d, manifest, arrays, max(threads, key=lambda t: t or 1 << 30), args.no_memory)
    if args.reference:
        _print_reference(d, ir_text, names, arrays, outs, manifest)
    return 0


def _thread_counts(spec: str) -> list[int]:
    try:
        counts = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 0 for c in counts):
        raise LmcError(f"--threads {spec!r}: expected counts like 1,2,4 (0: all cores)")
    return counts


def random_inputs(
    ir_text: str, names: Sequence[str], shapes: Sequence[str], seed: int
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, int]]:
    """Random arrays for every input of the artifact's final IR: shapes from `--shape`
    (input=1x128 or symbol=128); unbound symbols at their lower bounds; floats standard
    normal; ints in 0..V-1 when they index a dim V (embedding/gather), else 0..SMALL_INTS-1."""
    from .ir import parse_ir
    from .ir.shapes import evaluate

    g = parse_ir(ir_text)
    by_name = dict(zip(names, g.inputs))
    env, explicit = _bind_shapes(g, by_name, shapes)
    for s, (lo, _) in g.symbols.items():
        env.setdefault(s, lo)
    for s, v in env.items():
        lo, hi = g.symbols[s]
        if not lo <= v <= hi:
            raise LmcError(f"--shape: symbol {s}={v} is outside its bounds {lo}..{hi}")
    rng = np.random.default_rng(seed)
    arrays, how = {}, {}
    for name, v in by_name.items():
        shape = explicit.get(name) or tuple(evaluate(d, env) for d in v.type.shape)
        want = tuple(evaluate(d, env) for d in v.type.shape)
        if shape != want:
            raise LmcError(f"--shape {name}: {list(shape)} does not fit {v.type} at {env}")
        arrays[name], how[name] = _random_array(v, shape, rng)
    return arrays, how, env


def _bind_shapes(g: Any, by_name: dict[str, Any], shapes: Sequence[str]) -> tuple[dict, dict]:
    env: dict[str, int] = {}
    explicit: dict[str, tuple[int, ...]] = {}
    for spec in shapes:
        name, _, dims = spec.partition("=")
        try:
            vals = tuple(int(x) for x in dims.lower().split("x")) if dims else ()
        except ValueError:
            vals = ()
        if not vals:
            raise LmcError(f"--shape {spec!r}: expected NAME=1x128 (input) or SYMBOL=128")
        if name in g.symbols and name not in by_name:
            if len(vals) != 1:
                raise LmcError(f"--shape {spec!r}: symbol {name} takes one value")
            _bind(env, name, vals[0], spec)
            continue
        if name not in by_name:
            known = ", ".join(list(by_name) + list(g.symbols))
            raise LmcError(f"--shape {spec!r}: no input or symbol {name!r} (known: {known})")
        t = by_name[name].type
        if len(vals) != t.rank:
            raise LmcError(f"--shape {spec!r}: rank {len(vals)}, the input is {t}")
        explicit[name] = vals
        for d, val in zip(t.shape, vals):
            if isinstance(d, int) and d != val:
                raise LmcError(f"--shape {spec!r}: the input is {t}")
            if not isinstance(d, int) and d.is_Symbol:
                _bind(env, d.name, val, spec)
    return env, explicit


def _bind(env: dict[str, int], s: str, v: int, spec: str) -> None:
    if env.get(s, v) != v:
        raise LmcError(f"--shape {spec!r}: symbol {s} is already {env[s]}")
    env[s] = v


def _random_array(v: Any, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[Any, str]:
    dt = v.type.dtype
    if dt.is_float:
        return rng.standard_normal(shape).astype(dt.np), "random normal"
    if dt.np == np.bool_:
        return rng.random(shape) < 0.5, "random bool"
    hi = index_bound(v)
    top = hi if hi is not None else SMALL_INTS
    why = f"indexes a dim of {hi}" if hi is not None else "no indexed dim found"
    return rng.integers(0, top, size=shape).astype(dt.np), f"random ints 0..{top - 1} ({why})"


def index_bound(v: Any) -> int | None:
    """The smallest static dim that value v (through value-keeping ops) indexes, if any."""
    best: int | None = None
    todo, seen = [v], set()
    while todo:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        for user, pos in x.uses:
            op = user.op
            if op.name in VALUE_KEEPING_OPS:
                todo.extend(user.outputs)
            elif op.name in INDEXING_OPS and pos == 1:
                data = user.inputs[0].type
                attr = INDEXING_OPS[op.name]
                axis = getattr(op, attr) if attr else 0
                dim = data.shape[axis] if -data.rank <= axis < data.rank else None
                if isinstance(dim, int) and dim > 0:
                    best = dim if best is None else min(best, dim)
    return best


def _print_memory(
    d: Path, manifest: dict, arrays: dict[str, np.ndarray], threads: int, skip: bool
) -> None:
    arena = int(manifest.get("build", {}).get("memory_plan", {}).get("arena_bytes", 0))
    weights = int(manifest.get("weights", {}).get("bytes", 0))
    line = f"  memory: arena {fmt_bytes(arena)} + weights {fmt_bytes(weights)}"
    line += f" = {fmt_bytes(arena + weights)} planned"
    if not skip:
        growth, where = rss_growth(d, arrays, threads)
        line += f"; peak RSS growth {fmt_bytes(growth)} ({where})" if growth >= 0 else ""
    print(line)


def _maxrss() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


def _rss() -> int:
    """The current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * resource.getpagesize()


def rss_growth(d: Path, arrays: dict[str, np.ndarray], threads: int, runs: int = 3) -> tuple:
    """Peak-RSS growth of loading the artifact and running it `runs` times, measured in a fresh
    Python process: the ru_maxrss delta, or the current-RSS delta where the peak the imports
    left behind hides a small model's growth."""
    with tempfile.TemporaryDirectory(prefix="lmc-bench-") as tmp:
        path = Path(tmp) / "inputs.npz"
        np.savez(path, **arrays)
        job = {"dir": str(d), "inputs": str(path), "threads": threads, "runs": runs}
        cmd = [sys.executable, "-c", "from lmc.cli_run import memory_probe; memory_probe()"]
        try:
            res = subprocess.run(
                cmd, input=json.dumps(job), capture_output=True, text=True, timeout=600
            )
            got = json.loads(res.stdout.strip().splitlines()[-1])
            growth = max(got["maxrss"][1] - got["maxrss"][0], got["rss"][1] - got["rss"][0])
            return growth, f"load + {runs} runs in a fresh process"
        except (OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError):
            return -1, "unavailable"


def memory_probe() -> None:
    """The subprocess of rss_growth: reads its job as JSON on stdin, prints JSON."""
    from .runtime.loader import load

    job = json.loads(sys.stdin.read())
    with np.load(job["inputs"], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    peak, rss = _maxrss(), _rss()
    with load(job["dir"], num_threads=job["threads"]) as m:
        for _ in range(job["runs"]):
            m.run(arrays)
        result = {"maxrss": [peak, _maxrss()], "rss": [rss, _rss()]}
    print(json.dumps(result))


def _print_reference(
    d: Path,
    ir_text: str,
    names: Sequence[str],
    arrays: dict[str, np.ndarray],
    outs: list[np.ndarray],
    manifest: dict,
) -> None:
    from .cli_weights import lmc_weight_arrays
    from .ir import parse_ir
    from .ir.dtypes import DType, round_to_bf16
    from .ir.interpreter import run

    g = parse_ir(ir_text)
    wfile = d / manifest.get("weights", {}).get("file", "weights.safetensors")
    weights = lmc_weight_arrays(wfile, [n.op.key for n in g.nodes if n.op.name == "param"])
    inputs = []
    for name, v in zip(names, g.inputs):
        a = arrays[name]
        inputs.append(round_to_bf16(a) if v.type.dtype is DType.bf16 else a)
    t0 = time.perf_counter()
    want = run(g, inputs, weights)
    print(f"  reference interpreter: {(time.perf_counter() - t0) * 1e3:.1f} ms")
    for spec, a, b in zip(manifest["outputs"], outs, want):
        print(f"    {spec['name']}: {compare(a, b)}")


def compare(a: np.ndarray, b: np.ndarray) -> str:
    """Max abs and max relative error of a against reference b (relative: |a - b| /
    max(|b|, 1e-6) elementwise); integers and bools: the count of differing elements."""
    if a.shape != b.shape:
        return f"shape {list(a.shape)} vs reference {list(b.shape)}"
    if a.size == 0:
        return "empty"
    if a.dtype == np.bool_ or np.issubdtype(b.dtype, np.integer):
        return f"{int((a != b).sum())} of {a.size} elements differ"
    af, bf = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(af - bf)
    diff = np.where(np.isnan(af) & np.isnan(bf), 0.0, diff)
    rel = diff / np.maximum(np.abs(bf), 1e-6)
    return f"max abs err {np.nanmax(diff):.3g}, max rel err {np.nanmax(rel):.3g}"
