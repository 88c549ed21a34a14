"""lmc: an ahead-of-time model compiler. Public API only; the rest lives in the subpackages."""

from __future__ import annotations

from .ir import Graph, LmcError, parse_ir, print_graph

__version__ = "0.1.0"

print_ir = print_graph  # the text IR of a graph (the name DESIGN.md's public API uses)

__all__ = ["Graph", "LmcError", "__version__", "parse_ir", "print_graph", "print_ir"]
