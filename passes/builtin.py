"""The built-in passes, imported explicitly so their @graph_pass registrations run."""

from . import (  # noqa: F401
    canonicalize,
    collect_calibration,
    eliminate_common_subexpressions,
    eliminate_dead_nodes,
    fold_constants,
    fuse_norms,
    fuse_quantized_linear,
    fuse_rotary,
    keep_sensitive_float,
    quantize_activations,
    quantize_weights_gptq,
    quantize_weights_rtn,
    smooth_activations,
)
