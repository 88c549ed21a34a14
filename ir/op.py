"""The op base class and the registry: every op is declared once, as a frozen dataclass.

An op's dataclass fields are its attributes; `infer` is its shape/dtype rule over input types
and `ref` its numpy reference semantics. Backends keep their own tables keyed by the op class.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, ClassVar

import numpy as np

from .errors import IRTypeError
from .shapes import evaluate, free_symbols
from .types import TensorType

OPS: dict[str, type[Op]] = {}


class Op:
    """Base of all ops. Subclasses are `@register @dataclass(frozen=True)` classes."""

    name: ClassVar[str]
    # Source ops (input, param, constant) take no operands; their result type is declared on
    # the node instead of inferred.
    declares_type: ClassVar[bool] = False
    # Pure ops may be deduplicated (CSE) and removed when unused (DCE).
    pure: ClassVar[bool] = True
    commutative: ClassVar[bool] = False

    def infer(self, *inputs: TensorType) -> TensorType | tuple[TensorType, ...]:
        raise NotImplementedError(f"{self.name}: no shape rule")

    def ref(self, *inputs: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        raise NotImplementedError(f"{self.name}: no reference")

    # -- generic helpers ------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        """Attribute name -> value, in declaration order (the printer prints all of them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def symbols(self) -> set[str]:
        """Names of the shape symbols the attributes mention."""
        out: set[str] = set()
        for v in _walk(self.attrs().values()):
            if not isinstance(v, (int, float, str, bool)) and hasattr(v, "free_symbols"):
                out |= free_symbols(v)
        return out

    def bind(self, env: dict[str, int]) -> Op:
        """This op with every symbolic dim attribute evaluated under `env` (for references)."""
        changes = {}
        for k, v in self.attrs().items():
            nv = _bind_value(v, env)
            if nv is not v:
                changes[k] = nv
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]

    @classmethod
    def arity(cls) -> tuple[int, int | None]:
        """(min, max) number of operands `infer` accepts; max None for variadic."""
        return _ARITY[cls]

    @classmethod
    def attr_types(cls) -> dict[str, Any]:
        return _ATTR_TYPES[cls]


_ARITY: dict[type[Op], tuple[int, int | None]] = {}
_ATTR_TYPES: dict[type[Op], dict[str, Any]] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: add an op to the registry under `cls.name` (apply above @dataclass)."""
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: ops must be frozen dataclasses")
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: ops must set the ClassVar `name`")
    if name in OPS:
        raise TypeError(f"op {name!r} registered twice ({OPS[name].__name__}, {cls.__name__})")
    if not cls.__doc__ or cls.__doc__.startswith(cls.__name__ + "("):
        raise TypeError(f"{cls.__name__}: ops need a docstring stating their math")
    params = list(inspect.signature(cls.infer).parameters.values())[1:]
    lo = sum(1 for p in params if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty)
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    hi = None if variadic else sum(1 for p in params if p.kind == p.POSITIONAL_OR_KEYWORD)
    _ARITY[cls] = (lo, hi)
    _ATTR_TYPES[cls] = typing.get_type_hints(cls)
    _ATTR_TYPES[cls] = {f.name: _ATTR_TYPES[cls][f.name] for f in dataclasses.fields(cls)}
    OPS[name] = cls
    return cls


def op_class(name: str) -> type[Op]:
    try:
        return OPS[name]
    except KeyError:
        raise IRTypeError(f"unknown op {name!r}") from None


def _walk(values: Any):
    for v in values:
        if isinstance(v, tuple):
            yield from _walk(v)
        else:
            yield v


def _bind_value(v: Any, env: dict[str, int]) -> Any:
    if isinstance(v, tuple):
        items = [_bind_value(x, env) for x in v]
        return tuple(items) if any(a is not b for a, b in zip(items, v)) else v
    if isinstance(v, (bool, int, float, str)) or v is None or not hasattr(v, "free_symbols"):
        return v
    return evaluate(v, env)
