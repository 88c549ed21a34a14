"""Unary math ops (neg, abs, exp, log, trig, hyperbolic, erf, rounding, sign): `Unary` ops.

They follow the conventions of `elementwise.py` (f16 computed in f32 and rounded once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..op import register
from .elementwise import Unary


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return 1 / np.sqrt(x)


_ERF = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, from libm in f64 (numpy has none; exact to f64 rounding)."""
    return _ERF(x.astype(np.float64))


@register
@dataclass(frozen=True)
class Neg(Unary):
    """y = -x (integers wrap)."""

    name: ClassVar[str] = "neg"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.negative)


@register
@dataclass(frozen=True)
class Abs(Unary):
    """y = |x| (integers wrap: abs of the minimum value is itself)."""

    name: ClassVar[str] = "abs"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.abs)


@register
@dataclass(frozen=True)
class Exp(Unary):
    """y = e**x."""

    name: ClassVar[str] = "exp"
    fn = staticmethod(np.exp)


@register
@dataclass(frozen=True)
class Log(Unary):
    """y = ln(x) (NaN for x < 0, -inf at 0)."""

    name: ClassVar[str] = "log"
    fn = staticmethod(np.log)


@register
@dataclass(frozen=True)
class Log1p(Unary):
    """y = ln(1 + x), accurate near 0."""

    name: ClassVar[str] = "log1p"
    fn = staticmethod(np.log1p)


@register
@dataclass(frozen=True)
class Expm1(Unary):
    """y = e**x - 1, accurate near 0."""

    name: ClassVar[str] = "expm1"
    fn = staticmethod(np.expm1)


@register
@dataclass(frozen=True)
class Sqrt(Unary):
    """y = sqrt(x) (NaN for x < 0)."""

    name: ClassVar[str] = "sqrt"
    fn = staticmethod(np.sqrt)


@register
@dataclass(frozen=True)
class Rsqrt(Unary):
    """y = 1 / sqrt(x)."""

    name: ClassVar[str] = "rsqrt"
    fn = staticmethod(_rsqrt)


@register
@dataclass(frozen=True)
class Reciprocal(Unary):
    """y = 1 / x."""

    name: ClassVar[str] = "reciprocal"
    fn = staticmethod(np.reciprocal)


@register
@dataclass(frozen=True)
class Sin(Unary):
    """y = sin(x), x in radians."""

    name: ClassVar[str] = "sin"
    fn = staticmethod(np.sin)


@register
@dataclass(frozen=True)
class Cos(Unary):
    """y = cos(x), x in radians."""

    name: ClassVar[str] = "cos"
    fn = staticmethod(np.cos)


@register
@dataclass(frozen=True)
class Tan(Unary):
    """y = tan(x), x in radians."""

    name: ClassVar[str] = "tan"
    fn = staticmethod(np.tan)


@register
@dataclass(frozen=True)
class Asin(Unary):
    """y = arcsin(x) in [-pi/2, pi/2] (NaN outside [-1, 1])."""

    name: ClassVar[str] = "asin"
    fn = staticmethod(np.arcsin)


@register
@dataclass(frozen=True)
class Acos(Unary):
    """y = arccos(x) in [0, pi] (NaN outside [-1, 1])."""

    name: ClassVar[str] = "acos"
    fn = staticmethod(np.arccos)


@register
@dataclass(frozen=True)
class Atan(Unary):
    """y = arctan(x) in (-pi/2, pi/2)."""

    name: ClassVar[str] = "atan"
    fn = staticmethod(np.arctan)


@register
@dataclass(frozen=True)
class Sinh(Unary):
    """y = (e**x - e**-x) / 2."""

    name: ClassVar[str] = "sinh"
    fn = staticmethod(np.sinh)


@register
@dataclass(frozen=True)
class Cosh(Unary):
    """y = (e**x + e**-x) / 2."""

    name: ClassVar[str] = "cosh"
    fn = staticmethod(np.cosh)


@register
@dataclass(frozen=True)
class Tanh(Unary):
    """y = (e**x - e**-x) / (e**x + e**-x)."""

    name: ClassVar[str] = "tanh"
    fn = staticmethod(np.tanh)


@register
@dataclass(frozen=True)
class Asinh(Unary):
    """y = ln(x + sqrt(x**2 + 1))."""

    name: ClassVar[str] = "asinh"
    fn = staticmethod(np.arcsinh)


@register
@dataclass(frozen=True)
class Acosh(Unary):
    """y = ln(x + sqrt(x**2 - 1)) (NaN for x < 1)."""

    name: ClassVar[str] = "acosh"
    fn = staticmethod(np.arccosh)


@register
@dataclass(frozen=True)
class Atanh(Unary):
    """y = ln((1 + x) / (1 - x)) / 2 (NaN outside [-1, 1], +-inf at +-1)."""

    name: ClassVar[str] = "atanh"
    fn = staticmethod(np.arctanh)


@register
@dataclass(frozen=True)
class Erf(Unary):
    """y = 2 / sqrt(pi) * integral from 0 to x of e**(-t**2) dt."""

    name: ClassVar[str] = "erf"
    fn = staticmethod(erf)


@register
@dataclass(frozen=True)
class Floor(Unary):
    """y = the largest integer <= x."""

    name: ClassVar[str] = "floor"
    fn = staticmethod(np.floor)


@register
@dataclass(frozen=True)
class Ceil(Unary):
    """y = the smallest integer >= x."""

    name: ClassVar[str] = "ceil"
    fn = staticmethod(np.ceil)


@register
@dataclass(frozen=True)
class Round(Unary):
    """y = x rounded to the nearest integer, halves to even (numpy, ONNX, torch)."""

    name: ClassVar[str] = "round"
    fn = staticmethod(np.rint)


@register
@dataclass(frozen=True)
class Sign(Unary):
    """y = -1, 0 or 1 by the sign of x (NaN stays NaN; -0.0 gives 0)."""

    name: ClassVar[str] = "sign"
    allowed: ClassVar[str] = "number"
    fn = staticmethod(np.sign)
