"""Elementwise ops: unary math, binary arithmetic with numpy broadcasting, comparisons, logic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import require
from ..op import Op, register
from ..shapes import broadcast_shapes
from ..types import TensorType


@dataclass(frozen=True)
class Unary(Op):
    """Base of unary elementwise ops; `fn` maps an array to an array of the same shape."""

    fn: ClassVar[Callable[[np.ndarray], np.ndarray]]
    float_only: ClassVar[bool] = True

    def infer(self, x: TensorType) -> TensorType:
        if self.float_only:
            require(x.dtype.is_float, f"{self.name}: needs a float input, got {x}")
        return x

    def ref(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(type(self).fn(x)).astype(x.dtype, copy=False)


@dataclass(frozen=True)
class Binary(Op):
    """Base of binary elementwise ops: both operands of one dtype, shapes broadcast."""

    fn: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]
    out_dtype: ClassVar[DType | None] = None  # None: same as the operands
    allowed: ClassVar[str] = "any"  # "any", "float", "int", "bool"

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        require(a.dtype == b.dtype, f"{self.name}: operand dtypes differ ({a} vs {b})")
        kind_ok = {"any": True, "float": a.dtype.is_float, "int": a.dtype.is_int,
                   "bool": a.dtype == DType.bool, "number": a.dtype != DType.bool}[self.allowed]
        require(kind_ok, f"{self.name}: dtype {a.dtype} not allowed ({self.allowed})")
        shape = broadcast_shapes(a.shape, b.shape)
        require(shape is not None, f"{self.name}: shapes {a} and {b} do not broadcast")
        return TensorType(self.out_dtype or a.dtype, shape)  # type: ignore[arg-type]

    def ref(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.asarray(type(self).fn(a, b))
        return out.astype(np.bool_ if self.out_dtype == DType.bool else a.dtype, copy=False)


@register
@dataclass(frozen=True)
class Add(Binary):
    """y = a + b."""

    name: ClassVar[str] = "add"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.add)


@register
@dataclass(frozen=True)
class Mul(Binary):
    """y = a * b."""

    name: ClassVar[str] = "mul"
    commutative: ClassVar[bool] = True
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.multiply)


@register
@dataclass(frozen=True)
class Relu(Unary):
    """y = max(x, 0)."""

    name: ClassVar[str] = "relu"
    float_only: ClassVar[bool] = False
    fn = staticmethod(lambda x: np.maximum(x, 0))
