"""lmc: an ahead-of-time model compiler. Public API only; the rest lives in the subpackages."""

from __future__ import annotations

from .ir import Graph, LmcError, parse_ir, print_graph

__version__ = "0.1.0"

__all__ = ["Graph", "LmcError", "__version__", "parse_ir", "print_graph"]
