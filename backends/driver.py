"""`lmc.compile`: import -> pass pipeline -> target; returns a callable compiled model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..frontend import CaptureReport, import_model
from ..ir.errors import LmcError
from ..ir.graph import Graph
from ..ir.interpreter import run
from ..ir.printer import print_graph
from ..passes.manager import DEFAULT_PIPELINE, PassContext, Pipeline


class CompiledModel:
    """A compiled model: call it with numpy arrays (or torch tensors); numpy arrays come out,
    in the model's output order. `.ir` is the final IR text, `.graph` the graph."""

    def __init__(self, graph: Graph, target: str, report: CaptureReport, ctx: PassContext):
        self.graph = graph
        self.target = target
        self.report = report
        self.pass_context = ctx

    @property
    def ir(self) -> str:
        return print_graph(self.graph)

    @property
    def input_names(self) -> list[str]:
        return [v.name or f"input{i}" for i, v in enumerate(self.graph.inputs)]

    def __call__(self, *inputs: Any) -> list[np.ndarray] | np.ndarray:
        arrays = [_to_numpy(x) for x in inputs]
        outs = run(self.graph, arrays)
        return outs[0] if len(outs) == 1 else outs

    def run(self, inputs: Sequence[Any] | dict[str, Any]) -> list[np.ndarray]:
        """Always a list of outputs; inputs by position or by name."""
        if isinstance(inputs, dict):
            return run(self.graph, {k: _to_numpy(v) for k, v in inputs.items()})
        return run(self.graph, [_to_numpy(x) for x in inputs])


TARGETS_AVAILABLE = ("reference",)


def compile(model: Any, example_inputs: Any = None, *, target: str = "reference",
            dynamic_shapes: Any = None, passes: str | Sequence[str] | None = None,
            ) -> CompiledModel:
    """Import `model`, run the pass pipeline (default: DEFAULT_PIPELINE) and build `target`."""
    if target not in TARGETS_AVAILABLE:
        raise LmcError(f"unknown or unavailable target {target!r}; available: "
                       f"{', '.join(TARGETS_AVAILABLE)}")
    graph, report = import_model(model, example_inputs, dynamic_shapes=dynamic_shapes)
    if passes is None:
        pipeline = Pipeline(DEFAULT_PIPELINE)
    elif isinstance(passes, str):
        pipeline = Pipeline.from_spec(passes) if passes else Pipeline([])
    else:
        pipeline = Pipeline(list(passes))
    ctx = PassContext()
    graph = pipeline.run(graph, ctx)
    return CompiledModel(graph, target, report, ctx)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
