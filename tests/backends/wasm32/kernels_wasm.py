"""The C kernel library (templates/c/lib) built as a wasm32 reactor module with the host tests'
driver (tests/backends/c/fixtures/kernels_driver.c), once per session and SIMD path, called
through wasmtime: numpy arrays are copied into linear memory for a call and read back."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from lmc.backends.c.toolchain import find_toolchain, wasm_ldflags
from lmc.backends.targets import parse_target

from .wasmbuild import HERE, session_dir

ROOT = HERE.parents[2]
LIB = ROOT / "templates" / "c" / "lib"
RUNTIME = ROOT / "runtime"
DRIVER = ROOT / "tests" / "backends" / "c" / "fixtures" / "kernels_driver.c"
SHIM = HERE / "fixtures" / "kernels_shim.c"
EXPORTS = (
    "lmc_gemm_packed_bytes", "lmc_gemm_pack", "lmc_gemm_f32_packed", "lmc_gemm_f32",
    "lmc_attention_f32", "lmc_conv2d_packed_bytes", "lmc_conv2d_pack", "lmc_conv2d_f32",
    "lmc_conv2d_workspace_bytes", "lmc_max_pool2d_f32",
    "lmc_softmax_f32", "lmc_layer_norm_f32", "lmc_rms_norm_f32", "lmc_test_math",
    "lmc_test_epilogue_fn", "lmc_gemm_layout", "malloc", "free",
)  # fmt: skip
# lmc_attention_args on wasm32 (int64 fields 8-aligned, pointers 4 bytes)
_I8, _P = "<i8", "<u4"
ATTN_ARGS = np.dtype(
    [(n, _I8) for n in ("B", "Hq", "Hkv", "Sq", "Skv", "D", "Dv")]
    + [
        f
        for t in ("q", "k", "v", "out")
        for f in ((t, _P), *((f"{t[0]}_s{x}", _I8) for x in "bhs"))
    ]
    + [("mask_kind", "<i4"), ("mask", _P)]
    + [(f"m_s{x}", _I8) for x in ("b", "h", "q", "k")]
    + [("causal", "<i4"), ("scale", "<f4"), ("causal_offset", _I8)],
    align=True,
)
EPI_CTX = np.dtype(
    [("base", _P), ("ldc", _I8), ("count", _P), ("ld", _I8), ("res", _P), ("ldr", _I8),
     ("bad", "<i4")],
    align=True,
)  # fmt: skip


@functools.cache
def module_path(target: str) -> tuple[Path, str]:
    """(the .wasm, the compiler's warnings) of the kernel library for `target`."""
    tc = find_toolchain(parse_target(target))
    sysroot = next(f.split("=", 1)[1] for f in tc.cflags if f.startswith("--sysroot="))
    out = session_dir() / f"kernels-{target}.wasm"
    srcs = [*sorted(LIB.glob("*.c")), RUNTIME / "src" / "lmc_threads.c", DRIVER, SHIM]
    cmd = [tc.cc, *tc.cflags, "-Wall", "-Wextra", f"-I{LIB}", f"-I{RUNTIME / 'include'}"]
    cmd += [*map(str, srcs), *wasm_ldflags(sysroot, EXPORTS), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the kernel library for {target} failed:\n{res.stderr}")
    return out, res.stderr


class WasmKernels:
    """One instance of the kernel module: `call(name, *args)`, and `frame()` to place arrays
    in linear memory for a call."""

    def __init__(self, target: str) -> None:
        import wasmtime
        from lmc.runtime.wasm import _engine, compiled_module

        self.target = target
        path, self.warnings = module_path(target)
        self.store = wasmtime.Store(_engine())
        inst = wasmtime.Linker(_engine()).instantiate(self.store, compiled_module(path))
        self.ex = inst.exports(self.store)
        self.mem = self.ex["memory"]
        self.call("_initialize")
        self.epilogue = self.call("lmc_test_epilogue_fn")

    def call(self, name: str, *args: Any) -> Any:
        return self.ex[name](self.store, *args)

    def _view(self) -> np.ndarray:
        n = self.mem.data_len(self.store)
        ptr = self.mem.data_ptr(self.store)
        return np.ctypeslib.as_array(ptr, shape=(n,))

    @contextmanager
    def frame(self) -> Iterator[Frame]:
        f = Frame(self)
        try:
            yield f
        finally:
            for p in f.ptrs:
                self.call("free", p)


class Frame:
    """Arrays copied into wasm memory (64-byte aligned), freed when the frame closes."""

    def __init__(self, k: WasmKernels) -> None:
        self.k, self.ptrs = k, []
        self.placed: list[tuple[int, np.ndarray]] = []

    def alloc(self, nbytes: int) -> int:
        p = self.k.call("malloc", nbytes + 64) & 0xFFFFFFFF
        assert p, "wasm malloc failed"
        self.ptrs.append(p)
        return -(-p // 64) * 64

    def put(self, a: np.ndarray | None) -> int:
        """The address of a copy of `a` (any strides: the whole underlying buffer is copied and
        the address points at a's first element); 0 for None."""
        if a is None:
            return 0
        base = a
        while isinstance(base.base, np.ndarray):
            base = base.base
        raw = np.ascontiguousarray(base).reshape(-1).view(np.uint8)
        p = self.alloc(raw.nbytes)
        self.k._view()[p : p + raw.nbytes] = raw
        offset = a.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        self.placed.append((p, base))
        return p + offset

    def struct(self, rec: np.ndarray) -> int:
        p = self.alloc(rec.nbytes)
        self.k._view()[p : p + rec.nbytes] = rec.view(np.uint8).reshape(-1)
        return p

    def get(self, addr: int, like: np.ndarray) -> np.ndarray:
        """The array `like` (contiguous) read back from `addr`."""
        n = like.nbytes
        return self.k._view()[addr : addr + n].copy().view(like.dtype).reshape(like.shape)

    def get_struct(self, addr: int, dtype: np.dtype) -> np.ndarray:
        return self.k._view()[addr : addr + dtype.itemsize].copy().view(dtype)[0]


@functools.cache
def kernels(target: str) -> WasmKernels:
    return WasmKernels(target)
