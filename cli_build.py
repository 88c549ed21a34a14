"""`lmc build` and `lmc targets`: compile a model file into an artifact folder with one progress
line per stage on standard error, and list the targets with what this machine can do with each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .cli import _add_dynamic_arg, parse_dynamic
from .cli_quant import add_quant_args, check_quant_args, print_quant_stats, quant_pipeline
from .cli_weights import attach_weights
from .ir import LmcError

# Targets with a code generator and artifact builder in this lmc: name -> builder.
BUILDERS = {
    "host": "backends/c (C99 + SIMD kernel library)",
    "arm64": "backends/c (NEON kernels, cross-compiled)",
    "wasm32": "backends/c (SIMD128 kernels, clang --target=wasm32-wasi)",
}
# Executables a target needs (Target.toolchain / Target.runner) -> how to get them.
TOOL_HINTS = {
    "cc": "a C compiler: Debian/Ubuntu `apt-get install gcc`, Fedora `dnf install gcc`, "
    "macOS `xcode-select --install`; or set CC",
    "aarch64-linux-gnu-gcc": "Debian/Ubuntu `apt-get install gcc-aarch64-linux-gnu "
    "libc6-dev-arm64-cross`",
    "qemu-aarch64": "Debian/Ubuntu `apt-get install qemu-user`",
    "clang": "Debian/Ubuntu `apt-get install clang` (or the wasi-sdk)",
    "wasm-ld": "Debian/Ubuntu `apt-get install lld`",
    "nvcc": "the NVIDIA CUDA toolkit",
    "nvidia-smi": "an NVIDIA GPU and its driver",
    "g++": "Debian/Ubuntu `apt-get install g++`",
}


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `build` and `targets` on the `lmc` subcommand parser."""
    b = sub.add_parser(
        "build",
        parents=[common],
        help="compile a model into an artifact folder",
        description="Import a model, run the pass pipeline and build an artifact folder "
        "(manifest, weights, generated C, compiled library) for a target.",
    )
    b.add_argument("file", metavar="MODEL", help="a .onnx, .pt2 or .lmc model file")
    b.add_argument("--target", "-t", default="host", help="target string (default: host)")
    b.add_argument("-o", "--output", metavar="DIR", required=True, help="artifact folder")
    b.add_argument(
        "--passes", metavar="SPEC", help="comma-separated passes (default: 'default'; 'none')"
    )
    _add_dynamic_arg(b)
    b.add_argument(
        "--weights",
        metavar="FILE",
        help="weights of a .lmc model's params by key (.safetensors or .npz)",
    )
    b.add_argument("--force", action="store_true", help="replace an existing artifact at DIR")
    b.add_argument(
        "--threads", type=int, metavar="N", help="parallel compiler jobs (default: one per core)"
    )
    b.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        help="compiled-object cache (default: $XDG_CACHE_HOME/lmc/objects or ~/.cache/lmc/objects)",
    )
    b.add_argument("--no-cache", action="store_true", help="compile every source afresh")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    b.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a C backend option, repeatable: kernels=true|false, epilogues=true|false, "
        "merge_linears=true|false, conv_algorithm=auto|gemm|winograd",
    )
    add_quant_args(b)
    b.set_defaults(func=cmd_build)

    t = sub.add_parser(
        "targets",
        parents=[common],
        help="list targets and whether this machine can build and run them",
        description="Every target with its aliases, features and description, and whether "
        "this machine can build it and run it (with the reason when not).",
    )
    t.set_defaults(func=cmd_targets)


# -- lmc build -------------------------------------------------------------------------------
def cmd_build(args: argparse.Namespace) -> int:
    from .backends.c.build import build_artifact, parse_backend_option
    from .backends.c.toolchain import default_cache_dir
    from .frontend import import_model
    from .passes.manager import PassContext, Pipeline
    from .runtime.artifact import read_manifest

    t0 = time.perf_counter()
    target = check_buildable(args.target)
    out = Path(args.output)
    check_output_dir(out, args.force)
    model = Path(args.file)
    suffix = model.suffix.lower()
    if args.weights and suffix != ".lmc":
        raise LmcError(f"--weights is for .lmc models; {model.name} carries its own weights")
    if args.dynamic and suffix == ".lmc":
        raise LmcError("--dynamic is for .onnx/.pt2 models; a .lmc graph declares its symbols")
    if args.threads is not None and args.threads < 1:
        raise LmcError(f"--threads {args.threads}: expected a positive number of jobs")
    qspec = check_quant_args(args)
    options = dict(parse_backend_option(o) for o in args.option)
    stages = Stages(None if args.quiet else sys.stderr)

    stages.start("import")
    g, report = import_model(model, dynamic_shapes=parse_dynamic(args.dynamic))
    if suffix == ".lmc":
        attach_weights(g, args.weights, model.name)
    stages.detail = f"{report.path}: {len(g.nodes)} nodes, {len(g.weights)} weights"

    stages.start("passes")
    spec = args.passes or "default"
    pipeline = Pipeline([]) if spec == "none" else Pipeline.from_spec(spec)
    ctx = PassContext()
    before = len(g.nodes)
    if qspec is not None:
        pipeline = quant_pipeline(g, pipeline, ctx, qspec, args.calib, stages.progress)
    g = pipeline.run(g, ctx)
    stages.detail = f"{len(pipeline.passes)} passes, {before} -> {len(g.nodes)} nodes"

    res = build_artifact(
        g,
        target,
        out,
        passes_stats=ctx.stats,
        progress=stages.progress,
        force=args.force,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        jobs=args.threads,
        options=options,
    )
    stages.finish()
    names = [q.name for q in pipeline.passes]
    print_build_summary(res.directory, names, time.perf_counter() - t0)
    if qspec is not None:
        print_quant_stats(read_manifest(res.directory).get("quant_stats", {}))
    return 0


def check_buildable(spec: str) -> Any:
    """The parsed target, or an LmcError: unknown (listing the targets), no builder here, or
    its toolchain missing (naming what to install)."""
    from .backends.targets import TargetError, parse_target

    try:
        t = parse_target(spec)
    except TargetError as e:
        raise LmcError(f"{e} (`lmc targets` describes them)") from None
    ok, why = build_status(t)
    if not ok:
        raise LmcError(f"cannot build target {spec!r} here: {why}")
    if t.kind == "c":
        from .backends.c.toolchain import find_toolchain

        find_toolchain(t)  # ToolchainError says what to install
    return t


def build_status(t: Any) -> tuple[bool, str]:
    """Whether `lmc build` can build target t on this machine, and why not."""
    if t.kind == "reference":
        return False, (
            "the reference target builds no artifact; lmc.compile(model, target='reference') "
            "interprets the IR"
        )
    if t.name not in BUILDERS:
        return False, (
            f"this lmc has no {t.name} code generator yet (it builds: {', '.join(BUILDERS)})"
        )
    cc = os.environ.get("CC")
    if t.name == "host" and cc and shutil.which(cc):  # the C toolchain honours $CC
        return True, "ok"
    return _tools_status(t.can_build(), t.toolchain)


def run_status(t: Any) -> tuple[bool, str]:
    """Whether `lmc run` can run target t's artifacts on this machine, and why not."""
    from .runtime.loader import RUNNERS

    if t.kind == "reference":
        return True, "ok"
    if t.name not in RUNNERS:
        return False, f"lmc.load has no {t.name} runner yet (it runs: {', '.join(RUNNERS)})"
    return _tools_status(t.can_run(), t.runner)


def _tools_status(status: tuple[bool, str], tools: Iterable[str]) -> tuple[bool, str]:
    ok, why = status
    if ok:
        return True, "ok"
    missing = [x for x in tools if shutil.which(x) is None]
    hints = "; ".join(f"{x}: install {TOOL_HINTS[x]}" for x in missing if x in TOOL_HINTS)
    return False, why + (f" ({hints})" if hints else "")


def check_output_dir(d: Path, force: bool) -> None:
    """Refuse before any work: a non-artifact folder with files, or an artifact without
    --force (build_artifact checks again and only replaces it once the build succeeded)."""
    from .runtime.artifact import is_artifact

    if d.exists() and not d.is_dir():
        raise LmcError(f"{d} exists and is not a folder")
    if d.is_dir() and any(d.iterdir()):
        if not is_artifact(d):
            raise LmcError(
                f"{d} is not empty and is not an lmc artifact; refusing to write into it "
                "(choose an empty or new folder)"
            )
        if not force:
            raise LmcError(f"{d} already holds an lmc artifact; pass --force to replace it")


class Stages:
    """Prints one line per build stage (`lmc: <stage> <seconds> s  <detail>`) when it ends.
    `progress` reads build_artifact's messages: "lowering for T", "pass P took S s" (backend
    passes: legalize and cleanups -> legalize, group_kernels -> group), "writing weights",
    "planning memory", "rendering C", "compiling F (i/n)", "linking", "archiving", "done"."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.name = ""
        self.detail = ""
        self.t0 = 0.0
        self.pass_times: dict[str, float] = {}
        self.compiled = 0

    def start(self, name: str, detail: str = "") -> None:
        self.finish()
        self.name, self.detail, self.t0 = name, detail, time.perf_counter()

    def finish(self) -> None:
        if not self.name:
            return
        elapsed = time.perf_counter() - self.t0
        if self.name == "lower" and self.pass_times:
            group = {k: v for k, v in self.pass_times.items() if k == "group_kernels"}
            legal = {k: v for k, v in self.pass_times.items() if k not in group}
            self._line("legalize", sum(legal.values()), ", ".join(legal))
            self._line("group", sum(group.values()), ", ".join(group))
        else:
            self._line(self.name, elapsed, self.detail)
        self.name, self.detail, self.pass_times = "", "", {}

    def _line(self, name: str, seconds: float, detail: str) -> None:
        if self.out is not None:
            tail = f"  {detail}" if detail else ""
            print(f"lmc: {name:<9}{seconds:8.3f} s{tail}", file=self.out, flush=True)

    def progress(self, msg: str) -> None:
        if msg.startswith("lowering"):
            self.start("lower", msg)
        elif msg.startswith("pass ") and " took " in msg:
            name, _, rest = msg[5:].partition(" took ")
            self.pass_times[name] = float(rest.split()[0])
        elif msg.startswith("writing weights"):
            self.start("weights")
        elif msg.startswith("planning memory"):
            self.start("plan")
        elif msg.startswith("rendering"):
            self.start("render")
        elif msg.startswith("compiling "):
            if self.name != "compile":
                self.start("compile")
                self.compiled = 0
            self.compiled += 1
            self.detail = f"{self.compiled} source(s) compiled"
        elif msg.startswith(("linking", "archiving")):
            if self.name != "compile":
                self.start("compile", "0 sources compiled")
            self.detail += ", linked" if "linked" not in self.detail else ""
        elif msg.startswith("done"):
            self.finish()
        elif self.out is not None:
            print(f"lmc: {msg}", file=self.out, flush=True)


def print_build_summary(d: Path, pipeline: list[str], seconds: float) -> None:
    """The artifact's folder, library, arena, weights, inputs/outputs, passes and time."""
    from .runtime.artifact import read_manifest, read_weights

    m = read_manifest(d)
    lib = d / m.get("library", "lib/liblmc_model.so")
    static = lib.with_suffix(".a")
    w = m.get("weights", {})
    nweights = len(read_weights(d / w.get("file", "weights.safetensors")))
    plan = m.get("build", {}).get("memory_plan", {})
    bounds = ", ".join(f"{s}<={hi}" for s, (lo, hi) in sorted(m.get("symbols", {}).items()))
    print(f"built {d} for {m['target']}")
    lib_line = f"{lib.relative_to(d)} {fmt_bytes(lib.stat().st_size)}" if lib.is_file() else "-"
    if static.is_file():
        lib_line += f" (static {static.relative_to(d)} {fmt_bytes(static.stat().st_size)})"
    rows = [
        ("library", lib_line),
        (
            "arena",
            f"{fmt_bytes(plan.get('arena_bytes', 0))}"
            + (f" (at the symbols' upper bounds: {bounds})" if bounds else ""),
        ),
        (
            "weights",
            f"{fmt_bytes(w.get('bytes', 0))} in {nweights} tensor(s), digest64 "
            f"{w.get('digest64', '?')}",
        ),
        ("inputs", "; ".join(io_text(x) for x in m["inputs"])),
        ("outputs", "; ".join(io_text(x) for x in m["outputs"])),
        ("passes", pass_summary(pipeline, m.get("passes", {}))),
        ("time", f"{seconds:.2f} s"),
    ]
    for key, text in rows:
        lines = textwrap.wrap(text, 86) or [""]
        print(f"  {key:<9}{lines[0]}")
        for more in lines[1:]:
            print(f"  {'':<9}{more}")


def pass_summary(pipeline: list[str], passes: dict[str, Any]) -> str:
    """Each pass once, in order (the pipeline's, then the backend's), with its statistics."""
    stats = passes.get("stats", {})
    parts = []
    for name in dict.fromkeys([*pipeline, *passes.get("applied", [])]):
        s = stats.get(name) or {}
        # per-layer quantization numbers get their own report (print_quant_stats)
        detail = ", ".join(f"{k}={_stat(v)}" for k, v in sorted(s.items()) if k != "layers")
        parts.append(f"{name} ({detail})" if detail else name)
    return "; ".join(parts) or "none"


def _stat(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict) else str(v)


def io_text(spec: dict[str, Any]) -> str:
    return f"{spec['name']}: {spec['dtype']}[{', '.join(str(d) for d in spec['shape'])}]"


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- lmc targets -----------------------------------------------------------------------------
def cmd_targets(args: argparse.Namespace) -> int:
    from .backends.targets import alias_names, all_targets

    aliases: dict[str, list[str]] = {}
    for a, base in sorted(alias_names().items()):
        aliases.setdefault(base, []).append(a)
    for t in all_targets():
        feats = ", ".join(sorted(t.features)) or "none"
        print(f"{t.name}  ({t.kind}, {t.arch})")
        print(f"    aliases:  {', '.join(aliases.get(t.name, [])) or '-'}")
        print(f"    features: {feats}")
        optional = sorted(t.known_features - t.features)
        if optional:
            print(f"    optional: {', '.join('+' + f for f in optional)}")
        print(f"    about:    {t.description}")
        for what, (ok, why) in (("build", build_status(t)), ("run", run_status(t))):
            print(f"    {what + ':':<10}{'yes' if ok else 'no: ' + why}")
    return 0
