"""The lmc graph IR: types with symbolic shapes, ops, graphs, text form, verifier, interpreter."""

from . import ops  # noqa: F401  (registers the op set)
from .dtypes import DType
from .errors import LmcError
from .graph import Graph, Node, Value
from .interpreter import run
from .op import OPS, Op, register
from .parser import parse_ir
from .printer import print_graph
from .shapes import dim_eq, sym
from .types import TensorType
from .verifier import verify

__all__ = [
    "DType",
    "Graph",
    "LmcError",
    "Node",
    "OPS",
    "Op",
    "TensorType",
    "Value",
    "dim_eq",
    "parse_ir",
    "print_graph",
    "register",
    "run",
    "sym",
    "verify",
]
