"""Run a host artifact in this process: ctypes over lib/liblmc_model.so and the C API of
runtime/include/lmc_model.h. Inputs are checked here first (dtype, rank, static dims) for clear
Python errors; the C runtime checks everything again and its errors arrive as LmcError
subclasses carrying its message."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.dtypes import DType, from_numpy, round_to_bf16
from .errors import ArgumentError, ArtifactError, InputError, error_from_status

# lmc_dtype values (lmc_model.h): appended, never renumbered.
DTYPE_CODES: dict[DType, int] = {
    DType.f64: 0, DType.f32: 1, DType.f16: 2, DType.bf16: 3, DType.i64: 4, DType.i32: 5,
    DType.i16: 6, DType.i8: 7, DType.u8: 8, DType.i4: 9, DType.u4: 10, DType.bool: 11,
    DType.u16: 12, DType.u32: 13, DType.u64: 14,
}  # fmt: skip
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
ERR_LEN = 1024


def c_storage(dt: DType) -> np.dtype:
    """The numpy dtype of a tensor's bytes in the C buffers (bf16: its raw 16 bits)."""
    return np.dtype(np.uint16) if dt is DType.bf16 else dt.np


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_int32),
        ("dims", ctypes.POINTER(ctypes.c_int64)),
        ("dim_text", ctypes.POINTER(ctypes.c_char_p)),
    ]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: static dims are ints, symbolic ones their text."""

    name: str
    dtype: DType
    shape: tuple[int | str, ...]

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"


_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "lmc_model_load": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_P),
                                      ctypes.c_char_p, ctypes.c_size_t]),
    "lmc_model_free": (None, [_P]),
    "lmc_num_inputs": (ctypes.c_int, [_P]),
    "lmc_num_outputs": (ctypes.c_int, [_P]),
    "lmc_num_symbols": (ctypes.c_int, [_P]),
    "lmc_input_info": (ctypes.c_int, [_P, ctypes.c_int, ctypes.POINTER(_TensorInfo)]),
    "lmc_output_info": (ctypes.c_int, [_P, ctypes.c_int, ctypes.POINTER(_TensorInfo)]),
    "lmc_symbol_info": (ctypes.c_int, [_P, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                       ctypes.POINTER(ctypes.c_int64),
                                       ctypes.POINTER(ctypes.c_int64)]),
    "lmc_arena_bytes": (ctypes.c_size_t, [_P]),
    "lmc_set_input": (ctypes.c_int, [_P, ctypes.c_int, _P, ctypes.POINTER(ctypes.c_int64),
                                     ctypes.c_int32, ctypes.c_int]),
    "lmc_run": (ctypes.c_int, [_P]),
    "lmc_get_output": (ctypes.c_int, [_P, ctypes.c_int, ctypes.POINTER(_P),
                                      ctypes.POINTER(ctypes.POINTER(ctypes.c_int64)),
                                      ctypes.POINTER(ctypes.c_int32)]),
    "lmc_last_error": (ctypes.c_char_p, [_P]),
    "lmc_set_num_threads": (ctypes.c_int, [_P, ctypes.c_int]),
}  # fmt: skip
_LIBS: dict[str, ctypes.CDLL] = {}
_LIBS_LOCK = threading.Lock()


def open_library(path: str | os.PathLike[str]) -> ctypes.CDLL:
    """dlopen an artifact's library once per path and declare the C API's signatures."""
    key = os.path.realpath(path)
    with _LIBS_LOCK:
        if key in _LIBS:
            return _LIBS[key]
        if not os.path.isfile(key):
            raise ArtifactError(f"no model library at {path}")
        try:
            lib = ctypes.CDLL(key)
            for name, (res, args) in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = res, args
        except (OSError, AttributeError) as e:
            raise ArtifactError(f"{path} is not a loadable lmc model library: {e}") from None
        _LIBS[key] = lib
        return lib


def _text(b: bytes | None) -> str:
    return (b or b"").decode("utf-8", errors="replace")


class HostRunner:
    """A loaded model: `run(inputs) -> list of arrays`; `close()` frees it (also on GC)."""

    def __init__(
        self, library: str | os.PathLike[str], weights: str | os.PathLike[str], num_threads: int = 0
    ) -> None:
        self._model: ctypes.c_void_p | None = None
        self._lock = threading.Lock()
        self._lib = open_library(library)
        handle, err = ctypes.c_void_p(), ctypes.create_string_buffer(ERR_LEN)
        # load serially; the pool is made once below, where its size can be read back
        st = self._lib.lmc_model_load(os.fsencode(weights), 1, ctypes.byref(handle), err, ERR_LEN)
        if st != 0:
            raise error_from_status(st, _text(err.value))
        self._model = handle
        self.inputs = [self._info(i, False) for i in range(self._lib.lmc_num_inputs(handle))]
        self.outputs = [self._info(i, True) for i in range(self._lib.lmc_num_outputs(handle))]
        self.symbols = self._symbols()
        self._num_threads = self._lib.lmc_set_num_threads(handle, int(num_threads))

    def _info(self, index: int, output: bool) -> TensorSpec:
        info = _TensorInfo()
        fn = self._lib.lmc_output_info if output else self._lib.lmc_input_info
        self._check(fn(self._model, index, ctypes.byref(info)))
        shape = tuple(
            info.dims[k] if info.dims[k] >= 0 else _text(info.dim_text[k]) for k in range(info.rank)
        )
        return TensorSpec(_text(info.name), CODE_DTYPES[info.dtype], shape)

    def _symbols(self) -> dict[str, tuple[int, int]]:
        out = {}
        name, lo, hi = ctypes.c_char_p(), ctypes.c_int64(), ctypes.c_int64()
        for i in range(self._lib.lmc_num_symbols(self._model)):
            self._check(
                self._lib.lmc_symbol_info(
                    self._model, i, ctypes.byref(name), ctypes.byref(lo), ctypes.byref(hi)
                )
            )
            out[_text(name.value)] = (lo.value, hi.value)
        return out

    def _check(self, st: int) -> None:
        if st != 0:
            raise error_from_status(st, _text(self._lib.lmc_last_error(self._model)))

    @property
    def handle(self) -> ctypes.c_void_p:
        if self._model is None:
            raise ArgumentError("the model is closed")
        return self._model

    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, n: int) -> None:
        with self._lock:
            self._num_threads = self._lib.lmc_set_num_threads(self.handle, int(n))

    @property
    def arena_bytes(self) -> int:
        return int(self._lib.lmc_arena_bytes(self.handle))

    def run(
        self, inputs: Sequence[Any] | Mapping[str, Any], *, check: bool = True
    ) -> list[np.ndarray]:
        """Outputs (copied out of the model) for inputs by position or by name. check=False
        skips the Python-side checks so the C runtime's own checks answer (tests use it)."""
        arrays = self._arrange(inputs)
        lib = self._lib
        with self._lock:
            handle = self.handle
            keep = []
            for i, (spec, a) in enumerate(zip(self.inputs, arrays)):
                a = self._prepare(spec, a, check)
                keep.append(a)
                shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
                code = DTYPE_CODES[spec.dtype] if check else _code_of(a)
                st = lib.lmc_set_input(handle, i, a.ctypes.data, shape, a.ndim, code)
                if st:
                    self._check(st)
            st = lib.lmc_run(handle)
            if st:
                self._check(st)
            return [self._output(i) for i in range(len(self.outputs))]

    def _arrange(self, inputs: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
        return arrange_inputs(self.inputs, inputs)

    def _prepare(self, spec: TensorSpec, x: Any, check: bool) -> np.ndarray:
        return prepare_input(spec, x, check)

    def _output(self, index: int) -> np.ndarray:
        spec = self.outputs[index]
        data, shape, rank = ctypes.c_void_p(), ctypes.POINTER(ctypes.c_int64)(), ctypes.c_int32()
        self._check(
            self._lib.lmc_get_output(
                self.handle, index, ctypes.byref(data), ctypes.byref(shape), ctypes.byref(rank)
            )
        )
        dims = tuple(shape[: rank.value])
        out = np.empty(dims, dtype=c_storage(spec.dtype))
        if out.nbytes:
            ctypes.memmove(out.ctypes.data, data.value, out.nbytes)
        return from_storage(spec, out)

    def close(self) -> None:
        """Free the model (idempotent); outputs already returned stay valid."""
        with self._lock:
            if self._model is not None:
                self._lib.lmc_model_free(self._model)
                self._model = None

    def __del__(self) -> None:
        if getattr(self, "_model", None) is not None and getattr(self, "_lib", None) is not None:
            self._lib.lmc_model_free(self._model)
            self._model = None

    def __enter__(self) -> HostRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def arrange_inputs(
    specs: Sequence[TensorSpec], inputs: Sequence[Any] | Mapping[str, Any]
) -> list[Any]:
    """Inputs by position or by name -> a list in the model's input order (every runner)."""
    names = [s.name for s in specs]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise InputError(
                f"unknown input(s) {', '.join(map(repr, unknown))}; the model's "
                f"inputs are {', '.join(names)}"
            )
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"missing input(s) {', '.join(map(repr, missing))}")
        return [inputs[n] for n in names]
    if len(inputs) != len(names):
        raise InputError(f"expected {len(names)} input(s) ({', '.join(names)}), got {len(inputs)}")
    return list(inputs)


def prepare_input(spec: TensorSpec, x: Any, check: bool = True) -> np.ndarray:
    """x checked against spec (dtype, rank, static dims; clear errors naming the input) and
    made contiguous in its C storage form (bf16 as raw 16 bits). check=False leaves the
    checks to the C runtime."""
    a = np.asarray(x)
    if check:
        want = spec.dtype.np
        if a.dtype != want:
            raise InputError(
                f"input '{spec.name}': dtype {a.dtype}, expected {spec.dtype} "
                f"(numpy {want}); spec {spec}"
            )
        if a.ndim != len(spec.shape):
            raise InputError(
                f"input '{spec.name}': rank {a.ndim} (shape {a.shape}), "
                f"expected {len(spec.shape)}; spec {spec}"
            )
        for k, (d, e) in enumerate(zip(a.shape, spec.shape)):
            if isinstance(e, int) and d != e:
                raise InputError(
                    f"input '{spec.name}' axis {k}: expected {e}, got {d}; spec {spec}"
                )
        if spec.dtype is DType.bf16:
            a = (round_to_bf16(a).view(np.uint32) >> 16).astype(np.uint16)
    if a.flags.c_contiguous:
        return a
    return np.require(a, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def from_storage(spec: TensorSpec, a: np.ndarray) -> np.ndarray:
    """An output array in its C storage form (c_storage) -> the user-facing numpy array."""
    if spec.dtype is DType.bf16:
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a


def _code_of(a: np.ndarray) -> int:
    """The lmc_dtype of an unchecked array (the C side then judges it)."""
    try:
        return DTYPE_CODES[from_numpy(a.dtype)]
    except ValueError:
        return -1


def host_runner(directory: Path, manifest: Mapping[str, Any], num_threads: int = 0) -> HostRunner:
    """The runner of a host artifact folder (used by loader.load)."""
    lib = directory / manifest.get("library", "lib/liblmc_model.so")
    weights = directory / manifest.get("weights", {}).get("file", "weights.safetensors")
    if not lib.is_file():
        raise ArtifactError(
            f"{directory}: no built library {lib.relative_to(directory)} (was it "
            f"built without a compiler? `make -C {directory / 'src'}` builds it)"
        )
    return HostRunner(lib, weights, num_threads)
