"""What ONNX converters see: `OT` (a tensor during import, with its contents when known),
`NodeCtx` (a node's attributes and operands, and `emit`), ONNX dtype tables and the errors a
converter raises."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ..ir.dtypes import DTYPE_NAMES, DType
from ..ir.graph import Value
from ..ir.op import Op
from ..ir.shapes import Dim, is_static, norm
from ..ir.types import TensorType
from .common import UnsupportedOpsError

if TYPE_CHECKING:
    from .onnx import _Importer

# Words the text IR gives a meaning: symbol names must avoid them.
_RESERVED = DTYPE_NAMES | {
    "true",
    "false",
    "none",
    "inf",
    "nan",
    "in",
    "graph",
    "return",
    "floor",
    "ceiling",
    "Max",
    "Min",
    "Mod",
}

# ONNX TensorProto.DataType -> lmc dtype (the others are unsupported).
ONNX_DTYPES: dict[int, DType] = {
    1: DType.f32,
    2: DType.u8,
    3: DType.i8,
    5: DType.i16,
    6: DType.i32,
    7: DType.i64,
    9: DType.bool,
    10: DType.f16,
    11: DType.f64,
    16: DType.bf16,
    21: DType.u4,
    22: DType.i4,
}
# Unsigned 16/32/64-bit ints, where the IR has them (UINT16=4, UINT32=12, UINT64=13).
ONNX_DTYPES.update(
    {k: getattr(DType, n) for k, n in ((4, "u16"), (12, "u32"), (13, "u64")) if hasattr(DType, n)}
)


# 2-bit ONNX types carried in 8-bit storage (value range noted); only Cast reads or makes them.
NARROW: dict[int, tuple[DType, int, int]] = {26: (DType.i8, -2, 1), 25: (DType.u8, 0, 3)}


class NodeUnsupported(Exception):
    """A converter cannot handle this node (attribute value, dtype, mode); `reason` says why."""


class NeedsConstant(Exception):
    """A converter needs the contents of an operand that is only known at run time."""

    def __init__(self, index: int, ot: OT):
        super().__init__(index)
        self.index, self.ot = index, ot


class NeedsConstantInputsError(UnsupportedOpsError):
    """The graph is convertible once the graph inputs in `inputs` are fixed to constants
    (they feed shape-like operands: Reshape's shape, TopK's k, ...). Backends specialize."""

    def __init__(self, problems: dict[str, list[str]], inputs: set[str]):
        super().__init__("onnx", problems)
        self.inputs = frozenset(inputs)


@dataclass(eq=False)
class OT:
    """One ONNX tensor during import: its type, its IR value once materialized, and its
    contents when known at import (`const`; object dtype when it holds symbolic dims)."""

    dtype: DType
    shape: tuple[Dim, ...]
    value: Value | None = None
    const: np.ndarray | None = None
    deps: frozenset[str] = frozenset()  # graph inputs this tensor's contents depend on
    key: str | None = None  # weights-store key (initializers)
    narrow: int = 0  # ONNX elem type (INT2/UINT2) this storage dtype carries, 0 if none

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, self.shape)

    @property
    def symbolic(self) -> bool:
        return self.const is not None and self.const.dtype == object


def dtype_of_onnx(elem_type: int, what: str = "tensor") -> DType:
    if elem_type not in ONNX_DTYPES:
        import onnx

        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type else "UNDEFINED"
        raise NodeUnsupported(f"{what} has dtype {name}, which lmc does not support")
    return ONNX_DTYPES[elem_type]


def tensor_to_numpy(t: Any, what: str = "tensor") -> tuple[np.ndarray, DType]:
    """A TensorProto as an array in the interpreter's storage for its lmc dtype."""
    from onnx import numpy_helper

    dt = dtype_of_onnx(t.data_type, what)
    arr = numpy_helper.to_array(t)
    return np.asarray(arr, order="C").astype(dt.np), dt


def canon(arr: np.ndarray) -> np.ndarray:
    """An object array of dims becomes int64 once every element is a plain integer."""
    if arr.dtype != object:
        return arr
    flat = [norm(v) for v in arr.reshape(-1).tolist()]
    if all(isinstance(v, int) for v in flat):
        return np.array(flat, dtype=np.int64).reshape(arr.shape)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def symbol_name(raw: str) -> str:
    """A dim_param as a symbol name: an identifier the text IR reads back as that symbol."""
    s = re.sub(r"\W", "_", raw.strip(), flags=re.ASCII) or "s"
    if s[0].isdigit() or s in _RESERVED or s.startswith("__"):
        s = "s_" + s
    return s


class NodeCtx:
    """What a converter sees: the node's attributes and operands, and an `emit` that adds IR
    ops (or folds them with the op's reference when every operand is known)."""

    def __init__(self, imp: _Importer, node: Any, name: str, since: int, ins: list[OT | None]):
        self.imp, self.node, self.name, self.since, self.ins = imp, node, name, since, ins
        self.attrs = {a.name: a for a in node.attribute}

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def n_out(self) -> int:
        return len(self.node.output)

    def wants(self, i: int) -> bool:
        """Whether output i exists and has a name (optional outputs may be omitted)."""
        return i < len(self.node.output) and bool(self.node.output[i])

    def fail(self, reason: str) -> NoReturn:
        raise NodeUnsupported(reason)

    # -- attributes -------------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        a = self.attrs.get(name)
        if a is None:
            return default
        from onnx import helper

        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, list):
            return tuple(x.decode("utf-8") if isinstance(x, bytes) else x for x in v)
        if a.type == a.TENSOR:
            return tensor_to_numpy(v, f"attribute {name}")[0]
        return v

    # -- operands ---------------------------------------------------------------------------
    def has(self, i: int) -> bool:
        return i < len(self.ins) and self.ins[i] is not None

    def x(self, i: int) -> OT:
        if not self.has(i):
            self.fail(f"operand {i} is missing")
        return self.ins[i]  # type: ignore[return-value]

    def opt(self, i: int) -> OT | None:
        return self.ins[i] if self.has(i) else None

    def is_const(self, i: int) -> bool:
        return self.has(i) and self.ins[i].const is not None  # type: ignore[union-attr]

    def const(self, i: int) -> np.ndarray:
        """The contents of operand i, which must be known at import."""
        ot = self.x(i)
        if ot.const is None:
            raise NeedsConstant(i, ot)
        return ot.const

    def ints(self, i: int) -> list[Dim]:
        """Operand i as a flat list of (possibly symbolic) integers."""
        return [norm(v) for v in self.const(i).reshape(-1).tolist()]

    def prove_le(self, a: Dim, b: Dim) -> bool:
        """a <= b for every value of the symbols within their declared bounds (checked at
        the corners of the bounds box: exact for the linear dims shape arithmetic makes)."""
        from ..ir.shapes import evaluate, free_symbols

        a, b = norm(a), norm(b)
        if is_static(a) and is_static(b):
            return a <= b
        names = sorted(free_symbols(a) | free_symbols(b))
        if any(n not in self.imp.g.symbols for n in names):
            return False
        for corner in range(1 << len(names)):
            env = {n: self.imp.g.symbols[n][(corner >> i) & 1] for i, n in enumerate(names)}
            try:
                if evaluate(a, env) > evaluate(b, env):
                    return False
            except (KeyError, ValueError, TypeError):
                return False
        return True

    # -- building ---------------------------------------------------------------------------
    def emit(self, op: Op, *xs: OT | None) -> Any:
        if op.name not in ("cast", "identity") and any(x is not None and x.narrow for x in xs):
            self.fail(f"{op.name} of a 2-bit tensor (only Cast reads INT2/UINT2)")
        return self.imp.emit(op, list(xs))

    def const_ot(self, arr: Any, dtype: DType | None = None) -> OT:
        """A tensor with known contents (`arr`, converted to dtype's storage)."""
        a = np.asarray(arr)
        if a.dtype == object:
            a = canon(a)
        if a.dtype == object:
            return OT(dtype or DType.i64, tuple(a.shape), const=a)
        dt = dtype or _np_dtype(a.dtype)
        return OT(dt, tuple(a.shape), const=a.astype(dt.np))

    def scalar(self, value: float | int | bool, dtype: DType) -> OT:
        return self.const_ot(np.array(value, dtype=dtype.np), dtype)


def _np_dtype(dt: np.dtype) -> DType:
    from ..ir.dtypes import from_numpy

    return from_numpy(dt)
