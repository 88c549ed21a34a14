"""The built-in passes, imported explicitly so their @graph_pass registrations run."""

from . import (  # noqa: F401
    canonicalize,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
    fold_constants,
)
