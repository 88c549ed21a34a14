"""Activation functions: elementwise nonlinearities of neural networks (Unary ops, plus prelu).

They follow the conventions of `elementwise.py` (f16 computed in f32 and rounded once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import require
from ..op import register
from .elementwise import Binary, Unary
from .unary import erf

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + e**-x) without overflow


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)  # ln(1 + e**x) without overflow


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


def _mish(x: np.ndarray) -> np.ndarray:
    return x * np.tanh(_softplus(x))


def _hardswish(x: np.ndarray) -> np.ndarray:
    return x * np.clip(x + 3, 0, 6) / 6


def _hardsigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(alpha * x + beta, 0, 1)


def _leaky_relu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x >= 0, x, alpha * x)


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(x))


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))


def _celu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha))


def _softplus_beta(x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
    bx = beta * x
    return np.where(bx > threshold, x, np.logaddexp(0, bx) / beta)


def _softsign(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.abs(x))


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


@register
@dataclass(frozen=True)
class Sigmoid(Unary):
    """y = 1 / (1 + e**-x)."""

    name: ClassVar[str] = "sigmoid"
    fn = staticmethod(_sigmoid)


@register
@dataclass(frozen=True)
class Relu(Unary):
    """y = max(x, 0)."""

    name: ClassVar[str] = "relu"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(_relu)


@register
@dataclass(frozen=True)
class Gelu(Unary):
    """approximate="none": y = x / 2 * (1 + erf(x / sqrt(2)));
    approximate="tanh": y = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""

    name: ClassVar[str] = "gelu"
    approximate: str = "none"
    fn = staticmethod(_gelu)

    def check_attrs(self) -> None:
        require(
            self.approximate in ("none", "tanh"),
            f'gelu: approximate must be "none" or "tanh", got {self.approximate!r}',
        )


@register
@dataclass(frozen=True)
class Silu(Unary):
    """y = x * sigmoid(x) (swish)."""

    name: ClassVar[str] = "silu"
    fn = staticmethod(_silu)


@register
@dataclass(frozen=True)
class Mish(Unary):
    """y = x * tanh(ln(1 + e**x))."""

    name: ClassVar[str] = "mish"
    fn = staticmethod(_mish)


@register
@dataclass(frozen=True)
class Hardswish(Unary):
    """y = x * min(max(x + 3, 0), 6) / 6."""

    name: ClassVar[str] = "hardswish"
    fn = staticmethod(_hardswish)


@register
@dataclass(frozen=True)
class Hardsigmoid(Unary):
    """y = min(max(alpha * x + beta, 0), 1) (torch defaults; ONNX importers set alpha=0.2)."""

    name: ClassVar[str] = "hardsigmoid"
    alpha: float = 1 / 6
    beta: float = 0.5
    fn = staticmethod(_hardsigmoid)


@register
@dataclass(frozen=True)
class LeakyRelu(Unary):
    """y = x if x >= 0 else alpha * x."""

    name: ClassVar[str] = "leaky_relu"
    alpha: float = 0.01
    fn = staticmethod(_leaky_relu)


@register
@dataclass(frozen=True)
class Elu(Unary):
    """y = x if x > 0 else alpha * (e**x - 1)."""

    name: ClassVar[str] = "elu"
    alpha: float = 1.0
    fn = staticmethod(_elu)


@register
@dataclass(frozen=True)
class Selu(Unary):
    """y = scale * (x if x > 0 else alpha * (e**x - 1)), alpha = 1.67326..., scale = 1.05070...
    (the self-normalizing constants)."""

    name: ClassVar[str] = "selu"
    fn = staticmethod(_selu)


@register
@dataclass(frozen=True)
class Celu(Unary):
    """y = max(0, x) + min(0, alpha * (e**(x / alpha) - 1)), alpha != 0."""

    name: ClassVar[str] = "celu"
    alpha: float = 1.0
    fn = staticmethod(_celu)

    def check_attrs(self) -> None:
        require(self.alpha != 0, "celu: alpha must be nonzero, got 0")


@register
@dataclass(frozen=True)
class Softplus(Unary):
    """y = ln(1 + e**(beta * x)) / beta, or x where beta * x > threshold (torch); beta != 0.

    ONNX Softplus is beta=1, threshold=inf.
    """

    name: ClassVar[str] = "softplus"
    beta: float = 1.0
    threshold: float = 20.0
    fn = staticmethod(_softplus_beta)

    def check_attrs(self) -> None:
        require(self.beta != 0, "softplus: beta must be nonzero, got 0")


@register
@dataclass(frozen=True)
class Softsign(Unary):
    """y = x / (1 + |x|)."""

    name: ClassVar[str] = "softsign"
    fn = staticmethod(_softsign)


@register
@dataclass(frozen=True)
class Prelu(Binary):
    """y = x if x >= 0 else slope * x, slope broadcast against x (per channel: slope [C, 1, 1]
    for x [N, C, H, W])."""

    name: ClassVar[str] = "prelu"
    allowed: ClassVar[str] = "float"
    fn = staticmethod(_prelu)
