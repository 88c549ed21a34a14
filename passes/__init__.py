"""Graph passes: the pass manager and one pass per file."""

from .manager import DEFAULT_PIPELINE, PASSES, PassContext, PassInfo, Pipeline, Prop, graph_pass

__all__ = [
    "DEFAULT_PIPELINE",
    "PASSES",
    "PassContext",
    "PassInfo",
    "Pipeline",
    "Prop",
    "graph_pass",
]
