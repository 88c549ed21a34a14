"""Builds the C kernel library (templates/c/lib) once per test session for each SIMD path this
CPU runs, with the runtime's thread pool and a small test driver, and wraps it with ctypes."""

from __future__ import annotations

import atexit
import ctypes as C
import functools
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.targets import host_features

ROOT = Path(__file__).resolve().parents[3]
LIB_DIR = ROOT / "templates" / "c" / "lib"
RUNTIME = ROOT / "runtime"
DRIVER = Path(__file__).resolve().parent / "fixtures" / "kernels_driver.c"

# path -> (compiler flags, CPU features it needs)
ISAS: dict[str, tuple[list[str], set[str]]] = {
    "avx512": (
        ["-DLMC_AVX512", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
        {"avx512f", "avx512bw", "avx512vl", "avx2", "fma"},
    ),
    "avx2": (["-DLMC_AVX2", "-mavx2", "-mfma"], {"avx2", "fma"}),
    "portable": ([], set()),
}
CFLAGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-fPIC", "-shared"]
THREADS = (1, 2)

i64, fp = C.c_int64, C.c_void_p


def skip_reason(isa: str) -> str | None:
    """Why `isa` cannot run here, or None."""
    if shutil.which("cc") is None:
        return "no C compiler (cc) on PATH"
    need = ISAS[isa][1]
    if need and platform.machine() not in ("x86_64", "AMD64"):
        return f"{isa} needs an x86_64 CPU, this is {platform.machine()}"
    missing = need - host_features()
    return f"this CPU lacks {', '.join(sorted(missing))}" if missing else None


@functools.cache
def _build_dir() -> Path:
    d = tempfile.TemporaryDirectory(prefix="lmc_kernels_")
    atexit.register(d.cleanup)
    return Path(d.name)


def _compile(isa: str) -> tuple[Path, str]:
    out = _build_dir() / f"lmc_kernels_{isa}.so"
    srcs = sorted(str(p) for p in LIB_DIR.glob("*.c"))
    srcs += [str(RUNTIME / "src" / "lmc_threads.c"), str(DRIVER)]
    cmd = ["cc", *CFLAGS, *ISAS[isa][0], f"-I{LIB_DIR}", f"-I{RUNTIME / 'include'}", *srcs]
    r = subprocess.run([*cmd, "-o", str(out), "-lpthread", "-lm"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"building the kernel library ({isa}) failed:\n{r.stderr}")
    return out, r.stderr


@functools.cache
def _build_all() -> dict[str, tuple[Path, str] | Exception]:
    """Compile every runnable path in parallel, once per session."""
    isas = [i for i in ISAS if skip_reason(i) is None]

    def one(isa: str) -> tuple[Path, str] | Exception:
        try:
            return _compile(isa)
        except Exception as e:  # reported by the test that uses it
            return e

    with ThreadPoolExecutor(len(isas) or 1) as ex:
        return dict(zip(isas, ex.map(one, isas)))


class EpiCtx(C.Structure):
    _fields_ = [
        ("base", fp),
        ("ldc", i64),
        ("count", fp),
        ("ld", i64),
        ("res", fp),
        ("ldr", i64),
        ("bad", C.c_int32),
    ]


class AttnArgs(C.Structure):
    _fields_ = (
        [(n, i64) for n in ("B", "Hq", "Hkv", "Sq", "Skv", "D", "Dv")]
        + [
            f
            for t in "qkv"
            for f in ((t, fp), (f"{t}_sb", i64), (f"{t}_sh", i64), (f"{t}_ss", i64))
        ]
        + [
            ("out", fp),
            ("o_sb", i64),
            ("o_sh", i64),
            ("o_ss", i64),
            ("mask_kind", C.c_int),
            ("mask", fp),
            ("m_sb", i64),
            ("m_sh", i64),
            ("m_sq", i64),
            ("m_sk", i64),
            ("causal", C.c_int),
            ("scale", C.c_float),
            ("causal_offset", i64),
        ]
    )


CONV_FIELDS = (
    "N",
    "C",
    "H",
    "W",
    "K",
    "R",
    "S",
    "OH",
    "OW",
    "stride_h",
    "stride_w",
    "pad_top",
    "pad_left",
    "dil_h",
    "dil_w",
    "groups",
)


class ConvShape(C.Structure):
    _fields_ = [(n, i64) for n in CONV_FIELDS]


POOL_FIELDS = (
    "planes",
    "H",
    "W",
    "OH",
    "OW",
    "KH",
    "KW",
    "stride_h",
    "stride_w",
    "pad_top",
    "pad_left",
    "dil_h",
    "dil_w",
)


class Pool2dShape(C.Structure):
    _fields_ = [(n, i64) for n in POOL_FIELDS]


def ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def estrides(a: np.ndarray) -> tuple[int, ...]:
    """Element strides of a float32 array."""
    return tuple(s // a.itemsize for s in a.strides)


class Kernels:
    """One built variant of the library plus thread pools for 1 and 2 threads."""

    def __init__(self, isa: str, path: Path, warnings: str) -> None:
        self.isa, self.warnings = isa, warnings
        lib = self.lib = C.CDLL(str(path))
        sig = {
            "lmc_gemm_layout": (C.c_char_p, []),
            "lmc_conv2d_layout": (C.c_char_p, []),
            "lmc_gemm_packed_bytes": (C.c_size_t, [i64, i64]),
            "lmc_gemm_pack": (None, [i64, i64, fp, i64, fp]),
            "lmc_gemm_f32_packed": (None, [fp, i64, i64, i64, fp, i64, fp, fp, i64, fp, fp, fp]),
            "lmc_gemm_f32": (None, [fp, i64, i64, i64, fp, i64, fp, i64, i64, fp, i64, fp, fp, fp]),
            "lmc_attention_f32": (None, [fp, C.POINTER(AttnArgs)]),
            "lmc_conv2d_packed_bytes": (C.c_size_t, [C.POINTER(ConvShape)]),
            "lmc_conv2d_workspace_bytes": (C.c_size_t, [C.POINTER(ConvShape)]),
            "lmc_conv2d_pack": (None, [C.POINTER(ConvShape), fp, fp]),
            "lmc_conv2d_f32": (None, [fp, C.POINTER(ConvShape), fp, fp, fp, fp, fp, fp, fp]),
            "lmc_conv2d_wino_layout": (C.c_char_p, []),
            "lmc_conv2d_wino_applies": (C.c_int, [C.POINTER(ConvShape)]),
            "lmc_conv2d_wino_packed_bytes": (C.c_size_t, [C.POINTER(ConvShape)]),
            "lmc_conv2d_wino_pack": (None, [C.POINTER(ConvShape), fp, fp]),
            "lmc_conv2d_wino_f32": (None, [fp, C.POINTER(ConvShape), fp, fp, fp, fp, fp, fp]),
            "lmc_max_pool2d_f32": (None, [fp, C.POINTER(Pool2dShape), fp, fp]),
            "lmc_softmax_f32": (None, [fp, i64, i64, fp, fp, C.c_int]),
            "lmc_layer_norm_f32": (None, [fp, i64, i64, fp, fp, fp, C.c_float, fp]),
            "lmc_rms_norm_f32": (None, [fp, i64, i64, fp, fp, C.c_float, fp]),
            "lmc_test_math": (None, [C.c_int, i64, fp, fp]),
            "lmc_pool_create": (fp, [C.c_int]),
            "lmc_pool_size": (C.c_int, [fp]),
        }
        for name, (res, args) in sig.items():
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        self.epilogue = C.cast(lib.lmc_test_epilogue, fp).value
        self.pools = {1: None, 2: lib.lmc_pool_create(2)}
        assert lib.lmc_pool_size(self.pools[2]) == 2

    def pool(self, threads: int) -> int | None:
        return self.pools[threads]


@functools.cache
def kernels(isa: str) -> Kernels:
    built = _build_all()[isa]
    if isinstance(built, Exception):
        raise built
    return Kernels(isa, *built)


def isa_params() -> list:
    """pytest params over the SIMD paths, skipped (with the reason) where the CPU lacks one."""
    out = []
    for isa in ISAS:
        why = skip_reason(isa)
        marks = [pytest.mark.skip(reason=why)] if why else []
        out.append(pytest.param(isa, marks=marks, id=isa))
    return out


class Epilogue:
    """An EpiCtx over an output [rows, cols] (leading dim ldc) that counts tile coverage and
    optionally applies relu(c + res)."""

    def __init__(self, out: np.ndarray, ldc: int, res: np.ndarray | None = None) -> None:
        rows = out.size // ldc if ldc else 0
        self.count = np.zeros((max(rows, 1), max(ldc, 1)), np.int32)
        self.res = res
        self.ctx = EpiCtx(
            ptr(out),
            ldc,
            ptr(self.count),
            self.count.shape[1],
            ptr(res),
            res.shape[1] if res is not None else 0,
            0,
        )

    def ref(self) -> C.c_void_p:
        return C.cast(C.pointer(self.ctx), C.c_void_p)

    def check(self, rows: int, cols: int) -> None:
        assert self.ctx.bad == 0, "an epilogue got a wrong tile pointer, ldc or an empty tile"
        seen = self.count[:rows, :cols]
        assert (seen == 1).all(), f"epilogue coverage {np.unique(seen)} (want every element once)"
        assert self.count.sum() == rows * cols, "epilogue touched elements outside the output"
