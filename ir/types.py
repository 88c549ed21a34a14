"""Tensor types: an element dtype and a shape of static or symbolic dims."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .dtypes import DType
from .shapes import Dim, Shape, dim_str, evaluate, free_symbols, norm_shape, numel, shape_eq


@dataclass(frozen=True)
class TensorType:
    """`f32[s0, 768]`: dtype plus a tuple of dims (ints or sympy expressions)."""

    dtype: DType
    shape: Shape

    def __init__(self, dtype: DType, shape: Iterable[object] = ()) -> None:
        if not isinstance(dtype, DType):
            raise TypeError(f"TensorType dtype must be a DType, got {dtype!r}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", norm_shape(shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Dim:
        return numel(self.shape)

    def with_shape(self, shape: Iterable[object]) -> TensorType:
        return TensorType(self.dtype, shape)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for d in self.shape:
            out |= free_symbols(d)
        return out

    def same_as(self, other: TensorType) -> bool:
        """Provably the same type (dtype equal, every dim provably equal)."""
        return self.dtype == other.dtype and shape_eq(self.shape, other.shape)

    def concrete(self, env: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(evaluate(d, env) for d in self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(dim_str(d) for d in self.shape)}]"
