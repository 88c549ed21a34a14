"""lmc: an ahead-of-time model compiler. Public API only; the rest lives in the subpackages."""

from __future__ import annotations

from .backends.driver import CompiledModel, compile
from .backends.targets import Target, parse_target
from .ir import Graph, LmcError, parse_ir, print_graph
from .runtime.loader import load

__version__ = "0.1.0"

print_ir = print_graph  # the text IR of a graph (the name DESIGN.md's public API uses)

__all__ = [
    "CompiledModel",
    "Graph",
    "LmcError",
    "Target",
    "__version__",
    "compile",
    "load",
    "parse_ir",
    "parse_target",
    "print_graph",
    "print_ir",
]
