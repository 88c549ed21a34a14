"""Source ops: graph inputs, params (weights-store keys) and small inline constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType, round_to_bf16
from ..errors import IRTypeError, require
from ..op import Op, register
from ..shapes import Dim, evaluate
from ..types import TensorType

MAX_INLINE_CONSTANT = 64  # elements; larger constants live in the weights store as params


@register
@dataclass(frozen=True)
class Input(Op):
    """The graph's `index`-th input; its type (with symbolic dims) is declared on the node."""

    name: ClassVar[str] = "input"
    declares_type: ClassVar[bool] = True
    pure: ClassVar[bool] = False
    index: int = 0

    def infer(self) -> TensorType:
        raise IRTypeError("input declares its type")


@register
@dataclass(frozen=True)
class Param(Op):
    """A weight: the array stored under `key` in the graph's weights store."""

    name: ClassVar[str] = "param"
    declares_type: ClassVar[bool] = True
    key: str = ""

    def infer(self) -> TensorType:
        raise IRTypeError("param declares its type")


@register
@dataclass(frozen=True)
class Constant(Op):
    """A small inline tensor: `value` holds its elements in row-major order.

    Integer constants may hold symbolic dims (shape arithmetic), bound when interpreted.
    """

    name: ClassVar[str] = "constant"
    declares_type: ClassVar[bool] = True
    value: tuple[Dim | float | bool, ...] = ()

    def infer(self) -> TensorType:
        raise IRTypeError("constant declares its type")

    def check_type(self, t: TensorType) -> None:
        """Reject a declared type that does not fit the values."""
        n = t.numel
        require(isinstance(n, int), f"constant: shape {t} must be static")
        require(n == len(self.value), f"constant: {len(self.value)} values for type {t}")
        require(
            n <= MAX_INLINE_CONSTANT or all(isinstance(v, (int, float)) for v in self.value),
            "constant: symbolic values only in small constants",
        )
        if not t.dtype.is_int:
            require(
                all(isinstance(v, (int, float, bool)) for v in self.value),
                f"constant: symbolic values need an integer dtype, not {t.dtype}",
            )

    def materialize(self, t: TensorType, env: dict[str, int]) -> np.ndarray:
        vals = [v if isinstance(v, (int, float, bool)) else evaluate(v, env) for v in self.value]
        arr = np.array(vals, dtype=t.dtype.np).reshape(t.concrete(env))
        return round_to_bf16(arr) if t.dtype == DType.bf16 else arr
