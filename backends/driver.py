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
    out = ["reference"]
    t = parse_target("host")
    if t.can_build()[0] and t.can_run()[0]:
        out.append("host")
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
) -> CompiledModel:
    """Import `model`, run the pass pipeline (default: DEFAULT_PIPELINE) and build `target`."""
    name = target if isinstance(target, str) else str(target)
    t = None
    if name != "reference":
        try:
            t = parse_target(target)
        except TargetError as e:
            raise LmcError(f"{e}; available here: {', '.join(available_targets())}") from None
        if t.kind != "c" or not t.can_run()[0]:
            raise LmcError(
                f"target {name!r} cannot be compiled and run here yet; available: "
                f"{', '.join(available_targets())}"
            )
    graph, report = import_model(model, example_inputs, dynamic_shapes=dynamic_shapes)
    if passes is None:
        pipeline = Pipeline(DEFAULT_PIPELINE)
    elif isinstance(passes, str):
        pipeline = Pipeline.from_spec(passes) if passes else Pipeline([])
    else:
        pipeline = Pipeline(list(passes))
    ctx = PassContext()
    graph = pipeline.run(graph, ctx)
    if t is None:
        return CompiledModel(graph, name, report, ctx)
    return _compile_c(graph, t, name, report, ctx, progress, options)


def _compile_c(
    graph: Graph,
    t: Target,
    name: str,
    report: CaptureReport,
    ctx: PassContext,
    progress: Any,
    options: dict[str, Any] | None,
) -> CompiledModel:
    from ..runtime.artifact import read_manifest
    from ..runtime.host import host_runner
    from .c.build import build_artifact

    tmp = tempfile.TemporaryDirectory(prefix="lmc-artifact-")
    out = Path(tmp.name) / "artifact"
    res = build_artifact(graph, t, out, passes_stats=ctx.stats, progress=progress, options=options)
    runner = host_runner(out, read_manifest(out))
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
