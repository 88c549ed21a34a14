"""Graph -> C artifact folder: backend passes (legalize, CSE, DCE, kernel grouping), weights
(pre-packed GEMM panels where a kernel reads them), memory plan, the rendered module, sources
(runtime + kernel library + helpers + Makefile), the compiled libraries and the manifest."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...ir.dtypes import DType
from ...ir.errors import LmcError
from ...ir.graph import Graph, Node, Value
from ...ir.ops.elementwise import Identity
from ...ir.ops.fused import FusedElementwise, is_elementwise
from ...ir.ops.nn import LayerNorm, LogSoftmax, RmsNorm, Softmax
from ...ir.ops.shape import Flatten, Reshape, Squeeze, Unsqueeze
from ...ir.ops.source import Param
from ...ir.printer import print_graph
from ...ir.shapes import dim_str, shape_eq
from ...passes import fuse_norms as _fn  # noqa: F401  (registers the pass)
from ...passes import fuse_rotary as _fr  # noqa: F401
from ...passes.manager import PassContext, Pipeline
from ...passes.quant_layers import quant_stats
from ...runtime import artifact as art
from ..memory_plan import MemoryPlan, plan_memory, storage_bytes
from ..targets import Target, TargetError, parse_target
from . import arm64
from . import fold_attention_layout as _fal  # noqa: F401
from . import group_kernels as _gk  # noqa: F401  (registers the pass)
from . import legalize as _lg  # noqa: F401
from . import merge_sibling_linears as _msl  # noqa: F401
from . import select_conv_algorithm as _sca  # noqa: F401
from . import wasm as web
from .emit import C, WeightRef, c_external, emit_module
from .emit_conv import conv_packed_key, packed_conv_params
from .emit_int8 import PACKED_S8, s8_packed_params
from .emit_linalg import PACKED, packed_gemm_params
from .emit_quant import quant_blobs, reads_quant_packed
from .packing import (
    CONV2D_LAYOUT,
    GEMM_LAYOUT,
    GEMM_S8_LAYOUT,
    pack_conv2d,
    pack_conv2d_winograd,
    pack_gemm,
    pack_gemm_s8,
    winograd_layout,
)
from .render import C_TEMPLATES, render
from .toolchain import Progress, compile_objects, find_toolchain, kernel_path, link, make_tools

# fuse_norms / fuse_rotary are target-independent but approximate (or rebuild cos / sin), so
# they run here rather than in the exact default pipeline; fold_attention_layout and
# merge_sibling_linears make ops only the C kernels take (fused_attention, linear_split).
BACKEND_PASSES = [
    "fuse_norms",
    "fuse_rotary",
    "legalize",
    "fold_attention_layout",
    "merge_sibling_linears",
    "eliminate_common_subexpressions",
    "eliminate_dead_nodes",
    "group_kernels",
    "select_conv_algorithm",
]
# Options of the C backend (lmc.compile(options=...), `lmc build --option KEY=VALUE`): name ->
# accepted values, the default first.
BACKEND_OPTIONS: dict[str, tuple[Any, ...]] = {
    "kernels": (True, False),  # call the kernel library (false: plain loops only)
    "epilogues": (True, False),  # fuse elementwise chains into producer epilogues
    "merge_linears": (True, False),  # sibling linears as one multi-piece GEMM
    "conv_algorithm": ("auto", "gemm", "winograd"),  # select_conv_algorithm
}


def parse_backend_option(text: str) -> tuple[str, Any]:
    """ "KEY=VALUE" -> (key, value) for BACKEND_OPTIONS (booleans as true/false/1/0)."""
    key, eq, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if key not in BACKEND_OPTIONS or not eq:
        known = ", ".join(f"{k}={'|'.join(map(_word, v))}" for k, v in BACKEND_OPTIONS.items())
        raise LmcError(f"option {text!r}: expected KEY=VALUE with one of {known}")
    choices = BACKEND_OPTIONS[key]
    bools = {"true": True, "1": True, "false": False, "0": False}
    got = bools.get(value.lower()) if isinstance(choices[0], bool) else value
    if got not in choices:
        raise LmcError(f"option {key}={value!r}: expected one of {'|'.join(map(_word, choices))}")
    return key, got


def _word(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


MODEL_SOURCE = "model.c"
GEN_HEADER = "lmc_gen.h"
F32_STORAGE = "f32-storage"  # layout of bf16 params: f32 bytes holding bf16 values
VIEWS = (Reshape, Squeeze, Unsqueeze, Flatten, Identity)
ROW_INPLACE = (LayerNorm, RmsNorm, Softmax, LogSoftmax)


@dataclass
class BuildResult:
    directory: Path
    graph: Graph  # the final (grouped) graph
    plan: MemoryPlan
    stats: dict[str, Any]


def lower(
    graph: Graph,
    target: Target,
    options: dict[str, Any] | None = None,
    ctx: PassContext | None = None,
) -> Graph:
    """The backend pass pipeline for a C target (a copy of `graph`)."""
    ctx = ctx or PassContext(target=target, options=dict(options or {}))
    ctx.target = target
    return Pipeline(BACKEND_PASSES).run(graph, ctx)


def is_view(n: Node) -> bool:
    return isinstance(n.op, VIEWS) and len(n.outputs) == 1


def inplace_operands(n: Node) -> list[int]:
    """Operands whose bytes the result may overwrite (elementwise: each element is read before
    it is written; row kernels: documented to allow y == x)."""
    if len(n.outputs) != 1:
        return []
    y = n.outputs[0].type
    if is_elementwise(n.op) or isinstance(n.op, FusedElementwise):
        return [
            i
            for i, v in enumerate(n.inputs)
            if storage_bytes(v.type.dtype) == storage_bytes(y.dtype)
            and shape_eq(v.type.shape, y.shape)
        ]
    if isinstance(n.op, ROW_INPLACE) and shape_eq(n.inputs[0].type.shape, y.shape):
        return [0]
    return []


def make_plan(g: Graph) -> MemoryPlan:
    return plan_memory(
        g,
        is_view=is_view,
        external=c_external,
        inplace=inplace_operands,
        workspace=C.workspace,
        direct_output=lambda v: v.type.dtype != DType.bf16,
    )


def weight_blobs(
    g: Graph, kernels: bool = True, path: str = "portable"
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Every blob of the weights file: plain params under their key, pre-packed GEMM weights
    under key + emit_linalg.PACKED[kind], conv weights under emit_conv.conv_packed_key (only the
    forms some kernel reads; Winograd ones in the row panels of kernel path `path`)."""
    packed = packed_gemm_params(g, kernels) | {(k, "s8") for k in s8_packed_params(g, kernels)}
    convs = packed_conv_params(g, kernels)  # blob key -> (param key, groups, algo)
    packed_keys = {key for key, _ in packed} | {key for key, _, _ in convs.values()}
    quant, quant_keys = quant_blobs(g, kernels)  # quantized linears' packed weights
    packed_keys |= quant_keys
    raw_needed: set[str] = set()
    for n in g.nodes:
        if isinstance(n.op, Param):
            key = n.op.key
            users = [u for v in n.outputs for u, i in v.uses]
            if (
                key not in packed_keys
                or any(not _reads_packed(u, n.outputs[0]) for u in users)
                or any(g.is_output(v) for v in n.outputs)
            ):
                raw_needed.add(key)
    blobs: dict[str, tuple[Any, dict[str, Any]]] = {}
    params = {n.op.key: n.outputs[0] for n in g.nodes if isinstance(n.op, Param)}  # type: ignore[attr-defined]
    for key, v in sorted(params.items()):
        if key not in g.weights:
            raise LmcError(f"param {key!r}: the graph's weights store has no array for it")
        a = np.asarray(g.weights[key])
        if key in raw_needed:
            if v.type.dtype == DType.bf16:
                meta = {"dtype": "bf16", "shape": list(a.shape), "layout": F32_STORAGE}
                blobs[key] = (np.ascontiguousarray(a, dtype="<f4"), meta)
            else:
                blobs[key] = art.blob(a, v.type.dtype)
        for kind in sorted(kind for k, kind in packed if k == key):
            suffix = PACKED_S8 if kind == "s8" else PACKED[kind]
            if key + suffix in params:
                raise LmcError(
                    f"param keys {key!r} and {key + suffix!r} collide in the "
                    "weights file (the second names the first's packed form)"
                )
            if kind == "s8":  # int8 GEMM operand B [K, N]
                meta = {"dtype": v.type.dtype.value, "shape": list(a.shape)}
                blobs[key + suffix] = (pack_gemm_s8(a), {**meta, "layout": GEMM_S8_LAYOUT})
                continue
            w = a.astype(np.float32) if kind == "linear" else a.astype(np.float32).T
            meta = {"dtype": "f32", "shape": list(w.shape), "layout": GEMM_LAYOUT}
            blobs[key + suffix] = (pack_gemm(np.ascontiguousarray(w)), meta)
        for blob_key, (_, groups, algo) in sorted(i for i in convs.items() if i[1][0] == key):
            if blob_key in params:
                raise LmcError(
                    f"param keys {key!r} and {blob_key!r} collide in the "
                    "weights file (the second names the first's packed form)"
                )
            w = np.ascontiguousarray(a.astype(np.float32))
            w = w.reshape(w.shape[0], w.shape[1], 1, -1) if w.ndim == 3 else w  # 1-D conv
            if algo == "winograd":
                meta = {"dtype": "f32", "shape": list(a.shape), "layout": winograd_layout(path)}
                blobs[blob_key] = (pack_conv2d_winograd(w, path), meta)
                continue
            meta = {"dtype": "f32", "shape": list(a.shape), "layout": CONV2D_LAYOUT}
            blobs[blob_key] = (pack_conv2d(w, groups), meta)
    for key in sorted(quant):
        if key in params:
            raise LmcError(f"param key {key!r} collides with a packed quantized weight's key")
        blobs[key] = quant[key]
    return blobs


def _reads_packed(user: Node, v: Value) -> bool:
    """Whether `user` reads param value v only as its packed GEMM right operand (or as the
    pre-packed weight of a conv kernel)."""
    if conv_packed_key(user) is not None:
        return user.inputs[1] is v
    if reads_quant_packed(user, v):
        return True
    from ...ir.ops.fused import FusedLinear, FusedMatmul
    from ...ir.ops.linalg import Linear, Matmul
    from ...ir.ops.quant import MatmulInteger
    from .emit_linear_split import split_packable

    if split_packable(user):
        return user.inputs[1] is v and all(x is not v for x in (user.inputs[0], *user.inputs[2:]))

    if isinstance(user.op, (Linear, FusedLinear, Matmul, FusedMatmul, MatmulInteger)):
        return (
            user.inputs[1] is v
            and all(x is not v for x in user.inputs[2:])
            and user.inputs[0] is not v
        )
    return False


_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_IDENT = re.compile(r"\blmc\w*")
# a definition at file scope: a line starting in column 0 with a type (not static, a directive,
# a typedef or a brace) whose first lmc identifier is followed by ( [ = or ;
_DEFINITION = re.compile(
    r"^(?!static\b|typedef\b|extern\b|#|[{}\s])[^\n(;=]*?\b(lmc\w*)\s*[(\[=;]", re.M
)


def linked_sources(model_code: str, files: dict[str, Path]) -> list[str]:
    """The library sources the generated code needs: the runtime's, and the closure of the
    kernel sources that define an lmc identifier a needed file uses. Only those are compiled
    (a model without convolutions or quantized layers does not build their kernels); the
    shared library is linked with --no-undefined, so a miss is a build error, not a load one."""
    texts = {n: _COMMENT.sub("", p.read_text()) for n, p in files.items() if n.endswith(".c")}
    defined: dict[str, set[str]] = {}
    for name, text in texts.items():
        for m in _DEFINITION.finditer(text):
            defined.setdefault(m.group(1), set()).add(name)
    need = set(art.RUNTIME_SOURCES)
    todo = [_COMMENT.sub("", model_code), *(texts[n] for n in art.RUNTIME_SOURCES)]
    while todo:
        for ident in set(_IDENT.findall(todo.pop())):
            for name in defined.get(ident, ()):
                if name not in need:
                    need.add(name)
                    todo.append(texts[name])
    return sorted(need)


def source_files() -> dict[str, Path]:
    """Verbatim sources of an artifact: runtime, kernel library, generated-code helpers."""
    files = {p.name: p for p in sorted((C_TEMPLATES / "lib").iterdir()) if p.suffix in (".c", ".h")}
    files[GEN_HEADER] = C_TEMPLATES / "gen" / GEN_HEADER
    for name in art.RUNTIME_SOURCES:
        files[name] = art.RUNTIME_DIR / "src" / name
    for name in art.RUNTIME_HEADERS:
        files[name] = art.RUNTIME_DIR / "include" / name
    return files


def build_artifact(
    graph: Graph,
    target: str | Target,
    out_dir: str | Path,
    passes_stats: dict[str, Any] | None = None,
    progress: Progress | None = None,
    *,
    force: bool = False,
    cc: str | None = None,
    cache_dir: Path | None = None,
    options: dict[str, Any] | None = None,
    compile: bool = True,
    jobs: int | None = None,
) -> BuildResult:
    """Build the artifact folder for `graph` (already through the target-independent passes)
    at `out_dir`. `passes_stats` (e.g. PassContext.stats of the frontend pipeline) goes into
    the manifest with the backend passes' own. Options: BACKEND_OPTIONS (kernels, epilogues,
    merge_linears, conv_algorithm). `jobs` caps the parallel
    compiler processes (default: one per core)."""
    t = parse_target(target)
    if t.kind != "c":
        raise TargetError(f"build_artifact builds C targets; {t} is a {t.kind} target")
    opts = {"kernels": True, **(options or {})}
    say = progress or (lambda msg: None)
    tc = find_toolchain(t, cc) if compile else None
    final = Path(out_dir)
    _check_out_dir(final, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.lmc-", dir=final.parent))
    try:
        g, plan, stats = _build_into(out, graph, t, tc, opts, say, passes_stats, cache_dir, jobs)
        art.prepare_output_dir(final, force=force)
        for child in sorted(out.iterdir()):
            shutil.move(str(child), str(final / child.name))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    say("done: " + str(final))
    return BuildResult(final, g, plan, stats)


def _check_out_dir(d: Path, force: bool) -> None:
    """Fail before building when the folder cannot be written (same rules as
    artifact.prepare_output_dir, which empties it only once the build succeeded)."""
    if d.exists() and not d.is_dir():
        raise art.ArtifactError(f"{d} exists and is not a folder")
    if d.is_dir() and any(d.iterdir()):
        if not art.is_artifact(d):
            raise art.ArtifactError(
                f"{d} is not empty and is not an lmc artifact; refusing to "
                "write into it (choose an empty or new folder)"
            )
        if not force:
            raise art.ArtifactError(
                f"{d} already holds an lmc artifact; pass force=True to overwrite it"
            )


def _build_into(
    out: Path,
    graph: Graph,
    t: Target,
    tc,
    opts: dict[str, Any],
    say: Progress,
    passes_stats: dict[str, Any] | None,
    cache_dir: Path | None,
    jobs: int | None = None,
):
    say("lowering for " + str(t))
    ctx = PassContext(target=t, options=dict(opts))
    g = lower(graph, t, opts, ctx)
    for name in BACKEND_PASSES:  # per-pass times for progress readers (the CLI's stage lines)
        say(f"pass {name} took {ctx.timings.get(name, 0.0):.6f} s")
    say("writing weights")
    blobs = weight_blobs(g, opts["kernels"], kernel_path(t))
    written = art.write_weights(out / art.WEIGHTS, blobs)
    weights = {k: WeightRef(k, off, n) for k, (off, n) in written.offsets.items()}
    say("planning memory")
    plan = make_plan(g)
    say("rendering C")
    code = emit_module(g, plan, weights, written.data_bytes, written.digest64, opts)
    src, inc, lib = out / "src", out / "include", out / "lib"
    src.mkdir()
    files = source_files()
    linked = linked_sources(code, files)
    for name, path in files.items():
        if name.endswith(".h") or name in linked:
            shutil.copyfile(path, src / name)
    inc.mkdir()
    shutil.copyfile(art.RUNTIME_DIR / "include" / "lmc_model.h", inc / "lmc_model.h")
    art.write_text(src / MODEL_SOURCE, code)
    sources = [MODEL_SOURCE, *linked]
    flags = list(tc.cflags) if tc else []
    if arm64.is_arm64(t):
        arm64.copy_harness_source(src)
    make_cc, make_ar = make_tools(t)
    if web.is_wasm(t):
        art.write_text(src / "Makefile", web.makefile(t, tc, sources))
    else:
        art.write_text(
            src / "Makefile",
            render(
                "Makefile.j2",
                cc=make_cc,
                ar=make_ar,
                cflags=" ".join(flags or ["-O3", "-fPIC", "-fwrapv", "-fvisibility=hidden"]),
                sources=sources,
                ldlibs=" ".join(tc.ldlibs if tc else ("-lm", "-lpthread")),
                harness=arm64.is_arm64(t),
            ),
        )
    art.write_text(out / art.IR_FILE, print_graph(g))
    if tc is not None:
        with tempfile.TemporaryDirectory(prefix="lmc-build-") as tmp:
            objs = compile_objects(
                tc,
                src,
                sources,
                Path(tmp),
                say,
                cache_dir,
                cacheable=lambda s: s != MODEL_SOURCE,
                jobs=jobs,
            )
            if web.is_wasm(t):
                web.link_module(out, tc, objs, say)
            else:
                link(tc, objs, lib / "liblmc_model.so", lib / "liblmc_model.a", say)
        if arm64.is_arm64(t):
            arm64.build_harness(out, tc, say)
    if arm64.is_arm64(t):
        arm64.write_readme(out, t, flags)
    stats = {**(passes_stats or {}), **ctx.stats}
    applied = list(dict.fromkeys([*(passes_stats or {}), *BACKEND_PASSES]))
    manifest = {
        "target": str(t),
        "inputs": [_io(v, v.name or f"input{i}") for i, v in enumerate(g.inputs)],
        "outputs": [_io(v, f"output{i}") for i, v in enumerate(g.outputs)],
        "symbols": {s: [lo, hi] for s, (lo, hi) in g.symbols.items()},
        "weights": {
            "file": art.WEIGHTS,
            "digest64": art.format_digest(written.digest64),
            "sha256": written.sha256,
            "bytes": written.data_bytes,
        },
        "passes": {"applied": applied, "stats": stats},
        "build": {
            "cflags": flags,
            "ldlibs": list(tc.ldlibs) if tc else [],
            "sources": sources,
            "options": opts,
            "memory_plan": {**plan.stats(), "table": plan.table().splitlines()},
        },
        "compiler": tc.version if tc else None,
    }
    layers = quant_stats(stats)
    if layers:  # per quantized layer: kind, weight SQNR, output error / cosine on calibration
        manifest["quant_stats"] = layers
    if tc is not None:
        manifest["library"] = "lib/liblmc_model.so"
        if arm64.is_arm64(t):
            manifest["harness"] = arm64.HARNESS
        if web.is_wasm(t):
            manifest["library"] = web.MODULE
            manifest["build"]["ldflags"] = list(tc.ldflags)
            manifest["build"]["per_source_cflags"] = {s: list(f) for s, f in tc.per_source}
            manifest["web"] = web.write_web(out, g, manifest)
    art.write_manifest(out, manifest)
    return g, plan, stats


def _io(v: Value, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": v.type.dtype.value,
        "shape": [d if isinstance(d, int) else dim_str(d) for d in v.type.shape],
    }
