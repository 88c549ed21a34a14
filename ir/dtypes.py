"""Element types of the IR and their numpy storage in the reference interpreter."""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    """An IR element type; `.value` is its text spelling."""

    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u8 = "u8"
    u16 = "u16"
    u32 = "u32"
    u64 = "u64"
    i4 = "i4"
    u4 = "u4"
    bool = "bool"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.value}"

    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in _INTS

    @property
    def is_signed(self) -> bool:
        return self in _FLOATS or self in (DType.i64, DType.i32, DType.i16, DType.i8, DType.i4)

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def np(self) -> np.dtype:
        """The numpy dtype the reference interpreter stores this type in.

        bf16 is stored in float32 (values rounded to bf16 by `cast`); i4/u4 in int8/uint8.
        """
        return _NP[self]


_FLOATS = frozenset({DType.f64, DType.f32, DType.f16, DType.bf16})
_INTS = frozenset(
    {
        DType.i64,
        DType.i32,
        DType.i16,
        DType.i8,
        DType.u8,
        DType.u16,
        DType.u32,
        DType.u64,
        DType.i4,
        DType.u4,
    }
)
_BITS = {
    DType.f64: 64,
    DType.f32: 32,
    DType.f16: 16,
    DType.bf16: 16,
    DType.i64: 64,
    DType.i32: 32,
    DType.i16: 16,
    DType.i8: 8,
    DType.u8: 8,
    DType.u16: 16,
    DType.u32: 32,
    DType.u64: 64,
    DType.i4: 4,
    DType.u4: 4,
    DType.bool: 8,
}
_NP = {
    DType.f64: np.dtype(np.float64),
    DType.f32: np.dtype(np.float32),
    DType.f16: np.dtype(np.float16),
    DType.bf16: np.dtype(np.float32),
    DType.i64: np.dtype(np.int64),
    DType.i32: np.dtype(np.int32),
    DType.i16: np.dtype(np.int16),
    DType.i8: np.dtype(np.int8),
    DType.u8: np.dtype(np.uint8),
    DType.u16: np.dtype(np.uint16),
    DType.u32: np.dtype(np.uint32),
    DType.u64: np.dtype(np.uint64),
    DType.i4: np.dtype(np.int8),
    DType.u4: np.dtype(np.uint8),
    DType.bool: np.dtype(np.bool_),
}
_FROM_NP = {
    np.dtype(np.float64): DType.f64,
    np.dtype(np.float32): DType.f32,
    np.dtype(np.float16): DType.f16,
    np.dtype(np.int64): DType.i64,
    np.dtype(np.int32): DType.i32,
    np.dtype(np.int16): DType.i16,
    np.dtype(np.int8): DType.i8,
    np.dtype(np.uint8): DType.u8,
    np.dtype(np.uint16): DType.u16,
    np.dtype(np.uint32): DType.u32,
    np.dtype(np.uint64): DType.u64,
    np.dtype(np.bool_): DType.bool,
}
DTYPE_NAMES = frozenset(d.value for d in DType)


def dtype_of(name: str) -> DType:
    """The DType spelled `name` (KeyError-free: raises ValueError naming the valid ones)."""
    try:
        return DType(name)
    except ValueError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(DTYPE_NAMES)}") from None


def from_numpy(dt: np.dtype) -> DType:
    """The DType whose storage is numpy dtype `dt` (f32 for float32, never bf16)."""
    try:
        return _FROM_NP[np.dtype(dt)]
    except KeyError:
        raise ValueError(f"numpy dtype {np.dtype(dt)} has no lmc dtype") from None


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest bfloat16 (ties to even), kept in float32 storage."""
    bits = np.asarray(x, dtype=np.float32, order="C").view(np.uint32)  # 0-d stays 0-d
    nan = np.isnan(x)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(nan, np.float32(np.nan), out).astype(np.float32)
