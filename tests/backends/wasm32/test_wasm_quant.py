"""The quantization ops on wasm32: the quantized-linear kernels (lmc_quant.c, lmc_w8a8.c with
lmc_int8.c's i32x4.dot_i16x8_s micro-kernel for W8A8) built as a small reactor module for wasm32
(SIMD128) and wasm32-nosimd (portable C) and called through wasmtime, and every quantization op
in whole graphs built for both targets and run through lmc.load, against the reference
interpreter (batch 3, 5 and 1). W8A8's int32 sums are compared bit-exactly."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.backends.c.toolchain import find_toolchain, wasm_ldflags
from lmc.backends.targets import parse_target
from lmc.ir.ops.quant import LinearW8a8

from tests.backends.c.quant_graphs import N_ENVS, all_graphs
from tests.backends.c.test_quant_kernels import WQ_SHAPES, _w8a8_case, _wq_case
from tests.util import assert_close

from .kernels_wasm import LIB, RUNTIME, WasmKernels
from .wasmbuild import TARGETS, check_wasm, needs_wasm, session_dir

pytestmark = needs_wasm
SOURCES = ("lmc_gemm.c", "lmc_int8.c", "lmc_quant.c", "lmc_w8a8.c")
EXPORTS = ("lmc_wq_path", "lmc_w8a8_path", "lmc_linear_wq_f32", "lmc_linear_w8a8_f32",
           "malloc", "free")  # fmt: skip
PATHS = {"wasm32": ("wasm", "wasm"), "wasm32-nosimd": ("portable", "portable")}
_I8, _I4, _P = "<i8", "<i4", "<u4"  # int64, int, pointer on wasm32
WQ_ARGS = np.dtype(
    [("M", _I8), ("N", _I8), ("K", _I8), ("x", _P), ("ldx", _I8), ("packed", _P), ("bits", _I4),
     ("group", _I8), ("has_zeros", _I4), ("bias", _P), ("y", _P), ("ldy", _I8)],
    align=True,
)  # fmt: skip
A8_ARGS = np.dtype(
    [("M", _I8), ("N", _I8), ("K", _I8), ("x", _P), ("ldx", _I8), ("w_packed", _P),
     ("w_scales", _P), ("bias", _P), ("x_scale", _P), ("y", _P), ("ldy", _I8)],
    align=True,
)  # fmt: skip


@functools.cache
def module(target: str) -> Path:
    tc = find_toolchain(parse_target(target))
    sysroot = next(f.split("=", 1)[1] for f in tc.cflags if f.startswith("--sysroot="))
    out = session_dir() / f"quant-{target}.wasm"
    srcs = [str(LIB / s) for s in SOURCES] + [str(RUNTIME / "src" / "lmc_threads.c")]
    cmd = [tc.cc, *tc.cflags, "-Wall", "-Wextra", f"-I{LIB}", f"-I{RUNTIME / 'include'}", *srcs]
    cmd += [*wasm_ldflags(sysroot, EXPORTS), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), f"building ({target}):\n{r.stderr}"
    return out


class QuantWasm(WasmKernels):
    """The quant kernels' module (WasmKernels' calls and memory frames)."""

    def __init__(self, target: str) -> None:  # noqa: D107 (not WasmKernels': another module)
        import wasmtime
        from lmc.runtime.wasm import _engine, compiled_module

        self.target = target
        self.store = wasmtime.Store(_engine())
        inst = wasmtime.Linker(_engine()).instantiate(self.store, compiled_module(module(target)))
        self.ex = inst.exports(self.store)
        self.mem = self.ex["memory"]
        self.call("_initialize")

    def text(self, fn: str) -> str:
        p, mem = self.call(fn), self._view()
        return bytes(mem[p : p + 32]).split(b"\0")[0].decode()

    def wq(self, x, packed, n, bits, group, has_zeros, bias) -> np.ndarray:
        m, k = x.shape
        y = np.zeros((m, n), np.float32)
        with self.frame() as f:
            px, pp = f.put(x), f.put(np.frombuffer(packed, np.uint8) if packed else None)
            py = f.put(y)
            args = np.array([(m, n, k, px, k, pp, bits, group, has_zeros, f.put(bias), py, n)],
                            WQ_ARGS)  # fmt: skip
            self.call("lmc_linear_wq_f32", 0, f.struct(args))
            return f.get(py, y)

    def w8a8(self, x, codes, sw, bias, xs) -> np.ndarray:
        m, k = x.shape
        n = codes.shape[0]
        packed = np.frombuffer(packing.pack_gemm_s8(np.ascontiguousarray(codes.T)), np.uint8)
        y = np.zeros((m, n), np.float32)
        with self.frame() as f:
            xs = None if xs is None else np.asarray(xs, np.float32).reshape(1)
            py = f.put(y)
            args = np.array([(m, n, k, f.put(x), k, f.put(packed), f.put(sw), f.put(bias),
                              f.put(xs), py, n)], A8_ARGS)  # fmt: skip
            self.call("lmc_linear_w8a8_f32", 0, f.struct(args))
            return f.get(py, y)


@functools.cache
def quant_module(target: str) -> QuantWasm:
    return QuantWasm(target)


@pytest.fixture(params=TARGETS)
def wasm(request) -> QuantWasm:
    return quant_module(request.param)


def test_paths(wasm: QuantWasm) -> None:
    assert (wasm.text("lmc_wq_path"), wasm.text("lmc_w8a8_path")) == PATHS[wasm.target]


@pytest.mark.parametrize("bits,asym", [(4, False), (4, True), (8, False), (8, True)],
                         ids=["w4sym", "w4asym", "w8sym", "w8asym"])  # fmt: skip
def test_linear_wq(wasm: QuantWasm, bits: int, asym: bool) -> None:
    rng = np.random.default_rng(bits + asym)
    for m, n, k, group in WQ_SHAPES:
        if m == 0:
            continue
        op, operands, packed, has_z, b = _wq_case(rng, m, n, k, bits, group, asym, (n + k) % 2 == 0)
        x = rng.standard_normal((m, k)).astype(np.float32)
        want = op.ref(x, *operands)
        tol = 1e-5 * max(1.0, float(np.abs(want).max(initial=0.0)))
        got = wasm.wq(x, packed, n, bits, group, int(has_z), b)
        assert_close(got, want, 1e-4, tol, name=f"{wasm.target} {op.name} m{m} n{n} k{k}")


def test_linear_w8a8(wasm: QuantWasm) -> None:
    rng = np.random.default_rng(3)
    for m, n, k in [(1, 1, 1), (3, 17, 5), (4, 48, 384), (70, 40, 33), (1, 100, 1030)]:
        x, codes, sw, _ = _w8a8_case(rng, m, n, k, exact=True)
        got = wasm.w8a8(x, codes, sw, None, None)
        np.testing.assert_array_equal(got, LinearW8a8().ref(x, codes, sw), err_msg=f"m{m} n{n}")
        x, codes, sw, b = _w8a8_case(rng, m, n, k)
        assert_close(
            wasm.w8a8(x, codes, sw, b, None), LinearW8a8().ref(x, codes, sw, b), 1e-5, 1e-5
        )
        xs = np.array(0.02, np.float32)
        want = LinearW8a8(per_token=False).ref(x, codes, sw, b, xs)
        assert_close(wasm.w8a8(x, codes, sw, b, xs), want, 1e-5, 1e-5, name=f"static m{m} n{n}")


GRAPHS = all_graphs()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(GRAPHS))
def test_quant_graph_on_wasm(name: str, target: str) -> None:
    check_wasm(GRAPHS[name], target, label=f"{name} on {target}", n_envs=N_ENVS)
