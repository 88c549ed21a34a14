"""`lmc.compile`: import -> pass pipeline -> target; returns a callable compiled model.

target="reference" interprets the final graph with the numpy reference; a C target that runs
on this machine ("host") builds an artifact (backends/c/build.py) in a temporary folder and runs
it through the runtime's host runner; `.save(dir)` copies that artifact out.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..frontend import CaptureReport, import_model
from ..ir.errors import LmcError
from ..ir.graph import Graph
from ..ir.interpreter import run
from ..ir.printer import print_graph
from ..passes.manager import DEFAULT_PIPELINE, PassContext, Pipeline
from .targets import Target, TargetError, parse_target


class CompiledModel:
    """A compiled model: call it with numpy arrays (or torch tensors); numpy arrays come out,
    in the model's output order. `.ir` is the final IR text, `.graph` the graph; for C targets
    `.artifact` is the built artifact folder and `.save(dir)` copies it."""

    def __init__(
        self,
        graph: Graph,
        target: str,
        report: CaptureReport,
        ctx: PassContext,
        artifact: Path | None = None,
        runner: Any = None,
    ) -> None:
        self.graph = graph
        self.target = target
        self.report = report
        self.pass_context = ctx
        self.artifact = artifact
        self._runner = runner
        self._tmp: Any = None

    @property
    def ir(self) -> str:
        return print_graph(self.graph)

    @property
    def quant_stats(self) -> dict[str, dict[str, Any]]:
        """Per quantized layer (weight key): kind, weight SQNR, output error / cosine on the
        calibration data, and whether mixed precision kept it float."""
        from ..passes.quant_layers import quant_stats

        return quant_stats(self.pass_context.stats)

    @property
    def input_names(self) -> list[str]:
        return [v.name or f"input{i}" for i, v in enumerate(self.graph.inputs)]

    def __call__(self, *inputs: Any) -> list[np.ndarray] | np.ndarray:
        outs = self.run([_to_numpy(x) for x in inputs])
        return outs[0] if len(outs) == 1 else outs

    def run(self, inputs: Sequence[Any] | dict[str, Any]) -> list[np.ndarray]:
        """Always a list of outputs; inputs by position or by name."""
        if isinstance(inputs, dict):
            arrays: Any = {k: _to_numpy(v) for k, v in inputs.items()}
        else:
            arrays = [_to_numpy(x) for x in inputs]
        if self._runner is not None:
            return self._runner.run(arrays)
        return run(self.graph, arrays)

    def save(self, directory: str | Path, force: bool = False) -> Path:
        """Copy the artifact folder to `directory` (an existing artifact there is replaced
        only with force=True; a non-empty folder that is not an artifact never is)."""
        from ..runtime.artifact import prepare_output_dir

        if self.artifact is None:
            raise LmcError(
                f"target {self.target!r} builds no artifact; compile with target='host' to save one"
            )
        out = prepare_output_dir(directory, force=force)
        for child in sorted(self.artifact.iterdir()):
            dst = out / child.name
            if child.is_dir():
                shutil.copytree(child, dst)
            else:
                shutil.copy2(child, dst)
        return out

    def close(self) -> None:
        """Free the loaded model (the temporary artifact goes when the object does)."""
        if self._runner is not None:
            self._runner.close()


def available_targets() -> list[str]:
    """Targets `compile` can build and run here."""
    from ..runtime.loader import RUNNERS

    out = ["reference"]
    for name in RUNNERS:
        t = parse_target(name)
        if t.can_build()[0] and t.can_run()[0]:
            out.append(name)
    return out


def compile(
    model: Any,
    example_inputs: Any = None,
    *,
    target: str | Target = "reference",
    dynamic_shapes: Any = None,
    passes: str | Sequence[str] | None = None,
    progress: Any = None,
    options: dict[str, Any] | None = None,
    quantize: Any = None,
    calibration: Any = None,
    object_cache: str | Path | bool = True,
) -> CompiledModel:
    """Import `model`, run the pass pipeline (default: DEFAULT_PIPELINE) and build `target`.

    `quantize` (a spec such as "w4-gptq-g128" or "w8a8", see passes/quant_spec.py) appends
    the quantization passes; `calibration` is an iterable of input samples they record
    activations on (needed by GPTQ, static and smoothed W8A8, and the mixed-precision check).
    `object_cache` (C targets): True reuses the runtime and kernel-library objects from the
    cache `lmc build` keeps (toolchain.default_cache_dir()), a path uses that folder, False
    compiles everything.
    """
    name = target if isinstance(target, str) else str(target)
    t = None
    if name != "reference":
        try:
            t = parse_target(target)
        except TargetError as e:
            raise LmcError(f"{e}; available here: {', '.join(available_targets())}") from None
        from ..runtime.loader import RUN_HINTS, RUNNERS

        ok, why = t.can_run()
        if t.kind != "c" or t.name not in RUNNERS:
            raise LmcError(
                f"target {name!r} cannot be compiled and run here yet; available: "
                f"{', '.join(available_targets())}"
            )
        if not ok:
            hint = f"; {RUN_HINTS[t.name]}" if t.name in RUN_HINTS else ""
            raise LmcError(f"target {name!r} cannot run on this machine: {why}{hint}")
    graph, report = import_model(model, example_inputs, dynamic_shapes=dynamic_shapes)
    if passes is None:
        pipeline = Pipeline(DEFAULT_PIPELINE)
    elif isinstance(passes, str):
        pipeline = Pipeline.from_spec(passes) if passes else Pipeline([])
    else:
        pipeline = Pipeline(list(passes))
    ctx = PassContext()
    if quantize is not None or calibration is not None:
        from ..passes.quant_spec import quantization_pipeline

        pipeline = quantization_pipeline(graph, pipeline, ctx, quantize, calibration, progress)
    graph = pipeline.run(graph, ctx)
    if t is None:
        return CompiledModel(graph, name, report, ctx)
    return _compile_c(graph, t, name, report, ctx, progress, options, object_cache)


def _compile_c(
    graph: Graph,
    t: Target,
    name: str,
    report: CaptureReport,
    ctx: PassContext,
    progress: Any,
    options: dict[str, Any] | None,
    object_cache: str | Path | bool,
) -> CompiledModel:
    from ..runtime.artifact import read_manifest
    from ..runtime.loader import RUNNERS
    from .c.build import build_artifact
    from .c.toolchain import default_cache_dir

    if object_cache is True:
        cache_dir: Path | None = default_cache_dir()
    elif object_cache is False or object_cache is None:
        cache_dir = None
    else:
        cache_dir = Path(object_cache)

    tmp = tempfile.TemporaryDirectory(prefix="lmc-artifact-")
    out = Path(tmp.name) / "artifact"
    res = build_artifact(
        graph,
        t,
        out,
        passes_stats=ctx.stats,
        progress=progress,
        options=options,
        cache_dir=cache_dir,
    )
    runner = RUNNERS[t.name](out, read_manifest(out), 0)  # the target's runner (lmc.load's)
    m = CompiledModel(res.graph, name, report, ctx, artifact=out, runner=runner)
    m._tmp = tmp
    weakref.finalize(m, _cleanup, runner, tmp)
    return m


def _cleanup(runner: Any, tmp: tempfile.TemporaryDirectory) -> None:
    runner.close()
    tmp.cleanup()


def build_artifact(
    graph: Graph,
    target: str | Target,
    out_dir: str | Path,
    passes_stats: dict[str, Any] | None = None,
    progress: Any = None,
    **kwargs: Any,
) -> Path:
    """Build the artifact folder of an already-optimized graph for a C target (used by the CLI
    and `lmc.load`'s tests); returns the folder."""
    from .c.build import build_artifact as build

    return build(graph, target, out_dir, passes_stats, progress, **kwargs).directory


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


TARGETS_AVAILABLE = ("reference", "host")
