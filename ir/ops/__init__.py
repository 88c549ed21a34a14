"""The op set. Importing this package registers every op (explicit imports, no scanning)."""

from . import (  # noqa: F401
    activation,
    conv,
    elementwise,
    fused,
    index,
    linalg,
    lowered,
    misc,
    nn,
    quant,
    reduce,
    shape,
    source,
    unary,
)
