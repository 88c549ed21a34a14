"""Run a wasm32 artifact in this process with wasmtime (the PyPI package): instantiate its
reactor module (web/lmc_model.wasm), copy the weights file into linear memory and load it with
lmc_model_load_memory, then set inputs, run and read outputs through the exported C API of
runtime/include/lmc_model.h. Input checks and dtype handling are the host runner's; the C
runtime's errors arrive as the same LmcError subclasses, carrying its message."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError, error_from_status
from .host import (
    CODE_DTYPES,
    DTYPE_CODES,
    TensorSpec,
    _code_of,
    arrange_inputs,
    c_storage,
    from_storage,
    prepare_input,
)

WASM_FILE = "web/lmc_model.wasm"
WASMTIME_HINT = "install the Python package: `pip install wasmtime==50.0.1`"
ERR_LEN = 1024
ALIGN = 64  # the weights data region is used in place when this aligned
SCRATCH = ERR_LEN + 64  # error text, then out-parameters (8-aligned)


def _wasmtime() -> Any:
    try:
        import wasmtime
    except ImportError:
        raise ArtifactError(f"running wasm32 artifacts needs wasmtime; {WASMTIME_HINT}") from None
    return wasmtime


@functools.cache
def _engine() -> Any:
    return _wasmtime().Engine()


_MODULES: dict[str, Any] = {}
_MODULES_LOCK = threading.Lock()


def compiled_module(path: Path) -> Any:
    """The wasmtime Module of a .wasm file, compiled once per content in this process."""
    data = path.read_bytes()
    key = hashlib.sha256(data).hexdigest()
    with _MODULES_LOCK:
        if key not in _MODULES:
            wasmtime = _wasmtime()
            try:
                _MODULES[key] = wasmtime.Module(_engine(), data)
            except wasmtime.WasmtimeError as e:
                raise ArtifactError(f"{path} is not a valid WebAssembly module: {e}") from None
        return _MODULES[key]


class WasmRunner:
    """A loaded wasm32 model: `run(inputs) -> list of arrays`; `close()` frees it. Each runner
    has its own wasmtime store and instance (independent linear memory)."""

    def __init__(self, wasm: str | os.PathLike[str], weights: str | os.PathLike[str]) -> None:
        wasmtime = _wasmtime()
        self._model = 0
        self._lock = threading.Lock()
        module = compiled_module(Path(wasm))
        self._store = wasmtime.Store(_engine())
        linker = wasmtime.Linker(_engine())
        if module.imports:  # normally none; WASI (without any access) when there are some
            linker.define_wasi()
            self._store.set_wasi(wasmtime.WasiConfig())
        try:
            inst = linker.instantiate(self._store, module)
        except wasmtime.WasmtimeError as e:
            raise ArtifactError(f"{wasm}: cannot instantiate the module: {e}") from None
        self._ex = inst.exports(self._store)
        self._mem = self._ex["memory"]
        if "_initialize" in self._ex:
            self._call("_initialize")
        self._scratch = self._malloc(SCRATCH)
        self._buffers: list[tuple[int, int]] = []  # per input: (pointer, capacity)
        self._load(Path(weights))
        self.inputs = [
            self._info(i, False) for i in range(self._call("lmc_num_inputs", self._model))
        ]
        self.outputs = [
            self._info(i, True) for i in range(self._call("lmc_num_outputs", self._model))
        ]
        self.symbols = self._symbols()

    # ---- memory and calls ---------------------------------------------------------------

    def _call(self, name: str, *args: int) -> int:
        try:
            return self._ex[name](self._store, *args)
        except _wasmtime().Trap as e:
            raise error_from_status(7, f"the wasm module trapped in {name}: {e}") from None

    def _base(self) -> int:
        return ctypes.addressof(self._mem.data_ptr(self._store).contents)

    def _malloc(self, n: int) -> int:
        p = self._call("malloc", max(1, n)) & 0xFFFFFFFF
        if p == 0:
            raise error_from_status(5, f"wasm memory exhausted allocating {n} bytes")
        return p

    def _write(self, ptr: int, data: bytes | np.ndarray) -> None:
        buf = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data
        n = buf.nbytes
        if ptr + n > self._mem.data_len(self._store):
            raise error_from_status(1, "write past the end of wasm memory")
        if n:
            src = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
            ctypes.memmove(self._base() + ptr, src.ctypes.data, n)

    def _read(self, ptr: int, n: int) -> bytes:
        if ptr + n > self._mem.data_len(self._store):
            raise error_from_status(1, "read past the end of wasm memory")
        return ctypes.string_at(self._base() + ptr, n)

    def _u32(self, ptr: int) -> int:
        return int.from_bytes(self._read(ptr, 4), "little")

    def _i64s(self, ptr: int, n: int) -> list[int]:
        return [int(x) for x in np.frombuffer(self._read(ptr, 8 * n), dtype="<i8")]

    def _cstr(self, ptr: int) -> str:
        if not ptr:
            return ""
        end = self._mem.data_len(self._store)
        text = b""
        while ptr < end:
            chunk = self._read(ptr, min(256, end - ptr))
            cut = chunk.find(b"\0")
            if cut >= 0:
                return (text + chunk[:cut]).decode("utf-8", errors="replace")
            text, ptr = text + chunk, ptr + len(chunk)
        return text.decode("utf-8", errors="replace")

    def _check(self, st: int) -> None:
        if st != 0:
            msg = self._cstr(self._call("lmc_last_error", self._model) & 0xFFFFFFFF)
            raise error_from_status(st, msg)

    # ---- load and describe --------------------------------------------------------------

    def _load(self, weights: Path) -> None:
        try:
            data = weights.read_bytes()
        except OSError as e:
            raise error_from_status(2, f"cannot read {weights}: {e.strerror}") from None
        raw = self._malloc(len(data) + ALIGN)
        self._weights = raw
        at = -(-raw // ALIGN) * ALIGN
        self._write(at, np.frombuffer(data, dtype=np.uint8))
        del data
        out, err = self._scratch + ERR_LEN, self._scratch
        st = self._call("lmc_model_load_memory", at, os.path.getsize(weights), 1, out, err, ERR_LEN)
        if st != 0:
            raise error_from_status(st, self._cstr(err))
        self._model = self._u32(out)

    def _info(self, index: int, output: bool) -> TensorSpec:
        o = self._scratch + ERR_LEN
        fn = "lmc_output_info" if output else "lmc_input_info"
        self._check(self._call(fn, self._model, index, o))
        name, dtype, rank, dims, text = np.frombuffer(self._read(o, 20), dtype="<u4")
        rank = int(np.int32(rank))
        values = self._i64s(int(dims), rank)
        shape = tuple(
            d if d >= 0 else self._cstr(self._u32(int(text) + 4 * k)) for k, d in enumerate(values)
        )
        return TensorSpec(self._cstr(int(name)), CODE_DTYPES[int(dtype)], shape)

    def _symbols(self) -> dict[str, tuple[int, int]]:
        o = self._scratch + ERR_LEN
        out = {}
        for i in range(self._call("lmc_num_symbols", self._model)):
            self._check(self._call("lmc_symbol_info", self._model, i, o, o + 8, o + 16))
            lo, hi = self._i64s(o + 8, 2)
            out[self._cstr(self._u32(o))] = (lo, hi)
        return out

    # ---- the runner API -----------------------------------------------------------------

    @property
    def num_threads(self) -> int:
        return 1  # wasm32 artifacts are built without threads

    @num_threads.setter
    def num_threads(self, n: int) -> None:
        pass

    @property
    def arena_bytes(self) -> int:
        return self._call("lmc_arena_bytes", self._live()) & 0xFFFFFFFF

    def _live(self) -> int:
        if not self._model:
            raise error_from_status(1, "the model is closed")
        return self._model

    def run(
        self, inputs: Sequence[Any] | Mapping[str, Any], *, check: bool = True
    ) -> list[np.ndarray]:
        """Outputs (copied out of wasm memory) for inputs by position or by name; check=False
        leaves the checks to the C runtime (tests use it)."""
        arrays = arrange_inputs(self.inputs, inputs)
        with self._lock:
            model = self._live()
            for i, (spec, x) in enumerate(zip(self.inputs, arrays)):
                a = prepare_input(spec, x, check)
                ptr, shape = self._buffer(i, a.nbytes, a.ndim)
                self._write(ptr, a.reshape(-1).view(np.uint8) if a.size else b"")
                self._write(shape, np.asarray(a.shape, dtype="<i8").view(np.uint8))
                code = DTYPE_CODES[spec.dtype] if check else _code_of(a)
                self._check(self._call("lmc_set_input", model, i, ptr, shape, a.ndim, code))
            self._check(self._call("lmc_run", model))
            return [self._output(i, spec) for i, spec in enumerate(self.outputs)]

    def _buffer(self, index: int, nbytes: int, rank: int) -> tuple[int, int]:
        """(data, shape) pointers of input `index`: one allocation, the shape first and the
        data at the next 64-byte boundary; grown when too small and kept for reuse."""
        while len(self._buffers) <= index:
            self._buffers.append((0, -1))
        ptr, cap = self._buffers[index]
        head = -(-8 * max(rank, 1) // ALIGN) * ALIGN
        if cap < head + nbytes + ALIGN:
            if ptr:
                self._call("free", ptr)
            cap = head + max(nbytes, 4096) + ALIGN
            ptr = self._malloc(cap)
            self._buffers[index] = (ptr, cap)
        shape = -(-ptr // 8) * 8
        return -(-(shape + head) // ALIGN) * ALIGN, shape

    def _output(self, index: int, spec: TensorSpec) -> np.ndarray:
        o = self._scratch + ERR_LEN
        self._check(self._call("lmc_get_output", self._model, index, o, o + 4, o + 8))
        data, dims, rank = np.frombuffer(self._read(o, 12), dtype="<u4")
        shape = tuple(self._i64s(int(dims), int(np.int32(rank))))
        dt = c_storage(spec.dtype)
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._read(int(data), count * dt.itemsize) if count else b""
        out = np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)
        return from_storage(spec, out)

    def close(self) -> None:
        """Free the model and drop the instance (idempotent)."""
        with self._lock:
            if self._model:
                self._call("lmc_model_free", self._model)
                self._model = 0
            self._ex = self._mem = None  # type: ignore[assignment]
            self._store = None

    def __enter__(self) -> WasmRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wasm_runner(directory: Path, manifest: Mapping[str, Any], num_threads: int = 0) -> WasmRunner:
    """The runner of a wasm32 artifact folder (used by loader.load); num_threads is ignored
    (wasm32 builds are single-threaded)."""
    del num_threads
    wasm = directory / manifest.get("library", WASM_FILE)
    weights = directory / manifest.get("weights", {}).get("file", "weights.safetensors")
    if not wasm.is_file():
        raise ArtifactError(
            f"{directory}: no built module {wasm.relative_to(directory)} (was it built without "
            f"clang? `make -C {directory / 'src'}` builds it)"
        )
    return WasmRunner(wasm, weights)
