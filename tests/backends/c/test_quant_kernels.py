"""The quantized linears of the kernel library (lmc_quant.c, lmc_w8a8.c, lmc_w4a8.c) on this
CPU, called directly through ctypes: weight-only int4 / int8 (lmc_linear_wq_f32), W8A8
(lmc_linear_w8a8_f32) and W4A8 (lmc_linear_w4a8_f32) on every x86 path this machine runs
(AVX-512 with VNNI, AVX-512 without it, AVX2, portable C), against the ops' references: int32
sums bit-exact, the rest within float rounding. Shapes cover in-dims that are not a multiple
of the group or of the code blocks, odd out-dims, batch 1 and more, one and two threads. At the
end: every quantization op in whole graphs through the host backend (tests/backends/arm64 and
tests/backends/wasm32 do the same for their targets)."""

from __future__ import annotations

import ctypes as C
import functools
import subprocess

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.ir.ops.quant import LinearW4, LinearW4a8, LinearW8, LinearW8a8, pack_int4

from tests.backends.c.hostbuild import check_host, needs_cc
from tests.backends.c.kernels_harness import ISAS, LIB_DIR, RUNTIME, _build_dir, skip_reason
from tests.backends.c.quant_graphs import N_ENVS, all_graphs, weight_only_graph
from tests.util import assert_close

i64, fp = C.c_int64, C.c_void_p
VNNI = "avx512vnni"
PATHS = {  # kernel path -> (flags, features, wq path name, w8a8 path name, w4a8 path name)
    VNNI: (ISAS["avx512"][0] + ["-mavx512vnni"], {"avx512vnni"}, "avx512", "vnni", "vnni"),
    "avx512": (ISAS["avx512"][0], set(), "avx512", "avx2", "avx512bw"),
    "avx2": (ISAS["avx2"][0], set(), "avx2", "avx2", "portable"),
    "portable": ([], set(), "portable", "portable", "portable"),
}
GRAPHS = {name: (lambda name=name: all_graphs()[name]) for name in all_graphs()}
THREADS = (1, 2)
# scratch and scheduling, the int8 micro-kernel, the quantized linears
SOURCES = ("lmc_gemm.c", "lmc_int8.c", "lmc_quant.c", "lmc_w8a8.c", "lmc_w4a8.c")


class WqArgs(C.Structure):
    _fields_ = [
        ("M", i64), ("N", i64), ("K", i64), ("x", fp), ("ldx", i64),
        ("packed", fp), ("bits", C.c_int), ("group", i64), ("has_zeros", C.c_int),
        ("bias", fp), ("y", fp), ("ldy", i64),
    ]  # fmt: skip


class A8Args(C.Structure):
    _fields_ = [
        ("M", i64), ("N", i64), ("K", i64), ("x", fp), ("ldx", i64),
        ("w_packed", fp), ("w_scales", fp), ("bias", fp), ("x_scale", fp),
        ("y", fp), ("ldy", i64),
    ]  # fmt: skip


class W4a8Args(C.Structure):
    _fields_ = [
        ("M", i64), ("N", i64), ("K", i64), ("x", fp), ("ldx", i64),
        ("packed", fp), ("group", i64), ("has_zeros", C.c_int),
        ("x_scale", fp), ("bias", fp), ("y", fp), ("ldy", i64), ("workspace", fp),
    ]  # fmt: skip


def _skip(path: str) -> str | None:
    base = "avx512" if path == VNNI else path
    why = skip_reason(base)
    if why is None and PATHS[path][1]:
        from lmc.backends.targets import host_features

        missing = PATHS[path][1] - host_features()
        why = f"this CPU lacks {', '.join(sorted(missing))}" if missing else None
    return why


class Lib:
    def __init__(self, path: str) -> None:
        out = _build_dir() / f"lmc_quant_{path}.so"
        srcs = [str(LIB_DIR / f) for f in SOURCES] + [str(RUNTIME / "src" / "lmc_threads.c")]
        cmd = ["cc", "-O3", "-std=gnu11", "-Wall", "-Wextra", "-fPIC", "-shared", *PATHS[path][0]]
        cmd += [f"-I{LIB_DIR}", f"-I{RUNTIME / 'include'}", *srcs, "-o", str(out)]
        r = subprocess.run([*cmd, "-lpthread", "-lm"], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), f"building ({path}):\n{r.stderr}"
        self.path = path
        lib = self.lib = C.CDLL(str(out))
        for name, res, args in [
            ("lmc_wq_layout", C.c_char_p, []),
            ("lmc_wq_path", C.c_char_p, []),
            ("lmc_w8a8_path", C.c_char_p, []),
            ("lmc_w4a8_path", C.c_char_p, []),
            ("lmc_linear_w4a8_workspace_bytes", C.c_size_t, [i64, i64, i64]),
            ("lmc_linear_w4a8_f32", None, [fp, C.POINTER(W4a8Args)]),
            ("lmc_wq_packed_bytes", C.c_size_t, [i64, i64, C.c_int, i64, C.c_int]),
            ("lmc_linear_wq_f32", None, [fp, C.POINTER(WqArgs)]),
            ("lmc_linear_w8a8_f32", None, [fp, C.POINTER(A8Args)]),
            ("lmc_pool_create", fp, [C.c_int]),
        ]:
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        self.pools = {1: None, 2: lib.lmc_pool_create(2)}

    def wq(self, x, packed, n, bits, group, has_zeros, bias, threads) -> np.ndarray:
        m, k = x.shape
        y = np.full((m, n), np.nan, np.float32)
        buf = np.frombuffer(packed, np.uint8) if packed else np.zeros(1, np.uint8)
        a = WqArgs(m, n, k, _p(x), k, _p(buf), bits, group, int(has_zeros), _p(bias), _p(y), n)
        self.lib.lmc_linear_wq_f32(self.pools[threads], C.byref(a))
        return y

    def w8a8(self, x, codes, w_scales, bias, x_scale, threads) -> np.ndarray:
        m, k = x.shape
        n = codes.shape[0]
        packed = np.frombuffer(packing.pack_gemm_s8(np.ascontiguousarray(codes.T)), np.uint8)
        y = np.full((m, n), np.nan, np.float32)
        xs = None if x_scale is None else np.asarray(x_scale, np.float32).reshape(1)
        a = A8Args(m, n, k, _p(x), k, _p(packed), _p(w_scales), _p(bias), _p(xs), _p(y), n)
        self.lib.lmc_linear_w8a8_f32(self.pools[threads], C.byref(a))
        return y

    def w4a8(self, x, packed, n, group, has_zeros, bias, x_scale, threads) -> np.ndarray:
        m, k = x.shape
        y = np.full((m, n), np.nan, np.float32)
        buf = np.frombuffer(packed, np.uint8) if packed else np.zeros(1, np.uint8)
        ws = np.full(self.lib.lmc_linear_w4a8_workspace_bytes(m, k, group) + 1, 0xAB, np.uint8)
        xs = None if x_scale is None else np.asarray(x_scale, np.float32).reshape(1)
        a = W4a8Args(m, n, k, _p(x), k, _p(buf), group, int(has_zeros), _p(xs), _p(bias), _p(y),
                     n, _p(ws))  # fmt: skip
        self.lib.lmc_linear_w4a8_f32(self.pools[threads], C.byref(a))
        return y


def _p(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


@functools.cache
def _lib(path: str) -> Lib:
    return Lib(path)


@pytest.fixture(
    params=[
        pytest.param(p, marks=[pytest.mark.skipif(_skip(p) is not None, reason=str(_skip(p)))])
        for p in PATHS
    ]  # fmt: skip
)
def lib(request) -> Lib:
    return _lib(request.param)


def test_layout_and_paths(lib: Lib) -> None:
    assert lib.lib.lmc_wq_layout().decode() == packing.WQ_LAYOUT
    assert lib.lib.lmc_wq_path().decode() == PATHS[lib.path][2]
    assert lib.lib.lmc_w8a8_path().decode() == PATHS[lib.path][3]
    assert lib.lib.lmc_w4a8_path().decode() == PATHS[lib.path][4]
    for n, k, bits, group, z in [(6, 20, 4, 8, 1), (17, 300, 4, 128, 0), (33, 7, 8, 0, 0),
                                 (16, 130, 8, 64, 1), (1, 1, 4, 0, 0)]:  # fmt: skip
        want = packing.wq_packed_bytes(n, k, bits, group, bool(z))
        assert lib.lib.lmc_wq_packed_bytes(n, k, bits, group, z) == want


def _wq_case(rng, m: int, n: int, k: int, bits: int, group: int, asym: bool, bias: bool):
    """(op, operands for the reference, packed bytes, has_zeros) of a random weight-only
    linear."""
    groups = 1 if group == 0 else -(-k // group)
    scales = (rng.random((n, groups)) * 0.1 + 0.01).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    if bits == 4:
        codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
        zeros = rng.integers(0, 16, (n, groups)).astype(np.uint8) if asym else None
        op, stored = LinearW4(group=group), pack_int4(codes)
    elif asym:
        codes = rng.integers(0, 256, (n, k)).astype(np.uint8)
        zeros = rng.integers(0, 256, (n, groups)).astype(np.uint8)
        op, stored = LinearW8(group=group), codes
    else:
        codes, zeros = rng.integers(-128, 128, (n, k)).astype(np.int8), None
        op, stored = LinearW8(group=group), codes
    operands = [stored, scales] + ([zeros] if zeros is not None else []) + ([b] if bias else [])
    return op, operands, packing.pack_wq(codes, scales, zeros, bits, group), zeros is not None, b


WQ_SHAPES = [  # m, n, k, group
    (1, 1, 1, 0), (1, 6, 20, 8), (3, 17, 33, 8), (1, 40, 300, 128), (5, 16, 129, 0),
    (7, 33, 64, 32), (1, 256, 256, 128), (9, 70, 200, 6), (0, 4, 8, 0), (130, 20, 40, 8),
]  # fmt: skip


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
@pytest.mark.parametrize("bits,asym", [(4, False), (4, True), (8, False), (8, True)],
                         ids=["w4sym", "w4asym", "w8sym", "w8asym"])  # fmt: skip
def test_linear_wq(lib: Lib, bits: int, asym: bool, threads: int) -> None:
    rng = np.random.default_rng(bits * 10 + asym)
    for m, n, k, group in WQ_SHAPES:
        for bias in (False, True):
            op, operands, packed, has_z, b = _wq_case(rng, m, n, k, bits, group, asym, bias)
            x = rng.standard_normal((m, k)).astype(np.float32)
            got = lib.wq(x, packed, n, bits, group, has_z, b, threads)
            want = op.ref(x, *operands)
            tol = 1e-5 * max(1.0, float(np.abs(want).max(initial=0.0)))
            assert_close(got, want, 1e-4, tol, name=f"{op.name} m{m} n{n} k{k} g{group} b{bias}")


def _w8a8_case(rng, m: int, n: int, k: int, *, exact: bool = False):
    x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
    codes = rng.integers(-128, 128, (n, k)).astype(np.int8)
    if exact:  # sx = 1, sw = 1, no bias: y = float(acc), the int32 sums themselves
        x = rng.integers(-127, 128, (m, k)).astype(np.float32)
        x[:, 0] = 127.0
        return x, codes, np.ones(n, np.float32), None
    return (
        x,
        codes,
        (rng.random(n) * 0.01).astype(np.float32),
        rng.standard_normal(n).astype(np.float32),
    )


A8_SHAPES = [(1, 1, 1), (1, 16, 64), (3, 17, 5), (4, 48, 384), (70, 40, 33), (9, 70, 1030),
             (130, 64, 96), (1, 100, 4100)]  # fmt: skip


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
def test_linear_w8a8_sums_are_exact(lib: Lib, threads: int) -> None:
    rng = np.random.default_rng(7)
    for m, n, k in A8_SHAPES:
        if k == 0:
            continue
        x, codes, sw, _ = _w8a8_case(rng, m, n, k, exact=True)
        got = lib.w8a8(x, codes, sw, None, None, threads)
        want = LinearW8a8().ref(x, codes, sw)
        assert np.abs(want).max() < 2**24  # float(acc) is the sum itself
        np.testing.assert_array_equal(got, want, err_msg=f"m{m} n{n} k{k}")


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
@pytest.mark.parametrize("per_token", [True, False], ids=["per_token", "static"])
def test_linear_w8a8(lib: Lib, per_token: bool, threads: int) -> None:
    rng = np.random.default_rng(8)
    for m, n, k in A8_SHAPES:
        x, codes, sw, b = _w8a8_case(rng, m, n, k)
        xs = None if per_token else np.array(0.02, np.float32)  # saturates: codes hit -128
        got = lib.w8a8(x, codes, sw, b, xs, threads)
        op = LinearW8a8(per_token=per_token)
        want = op.ref(x, codes, sw, b) if per_token else op.ref(x, codes, sw, b, xs)
        assert_close(got, want, 1e-5, 1e-5, name=f"w8a8 m{m} n{n} k{k}")


def test_linear_w8a8_zero_rows_and_scale(lib: Lib) -> None:
    """All-zero rows (sx = 0) and a static scale <= 0 quantize to 0: y = bias."""
    rng = np.random.default_rng(9)
    x, codes, sw, b = _w8a8_case(rng, 6, 20, 40)
    x[2] = 0
    op = LinearW8a8()
    assert_close(lib.w8a8(x, codes, sw, b, None, 2), op.ref(x, codes, sw, b), 1e-5, 1e-5)
    zero = np.array(0.0, np.float32)
    got = lib.w8a8(x, codes, sw, b, zero, 1)
    assert_close(got, LinearW8a8(per_token=False).ref(x, codes, sw, b, zero), 0, 0)


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
@pytest.mark.parametrize("asym", [False, True], ids=["sym", "asym"])
def test_linear_w4a8_sums_are_exact(lib: Lib, asym: bool, threads: int) -> None:
    """sx = 1 (integer activations, one of magnitude 127), scales 1, no bias: every output is
    the sum of the groups' int32 sums, exact in f32 at these sizes."""
    rng = np.random.default_rng(11 + asym)
    for m, n, k, group in WQ_SHAPES:
        if k == 0 or m == 0:
            continue
        _, operands, packed, has_z, _ = _wq_case(rng, m, n, k, 4, group, asym, False)
        operands[1][:] = 1.0  # scales
        packed = packing.pack_wq(
            np.asarray(_unpack(operands[0], k)), operands[1], operands[2] if has_z else None, 4,
            group,
        )  # fmt: skip
        x = rng.integers(-127, 128, (m, k)).astype(np.float32)
        x[:, 0] = 127.0
        got = lib.w4a8(x, packed, n, group, has_z, None, None, threads)
        want = LinearW4a8(group=group).ref(x, *operands)
        assert np.abs(want).max() < 2**24
        np.testing.assert_array_equal(got, want, err_msg=f"m{m} n{n} k{k} g{group}")


def _unpack(codes: np.ndarray, k: int) -> np.ndarray:
    from lmc.ir.ops.quant import unpack_int4

    return unpack_int4(codes, k)


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
@pytest.mark.parametrize("asym", [False, True], ids=["sym", "asym"])
@pytest.mark.parametrize("per_token", [True, False], ids=["per_token", "static"])
def test_linear_w4a8(lib: Lib, asym: bool, per_token: bool, threads: int) -> None:
    rng = np.random.default_rng(12 + 2 * asym + per_token)
    for m, n, k, group in WQ_SHAPES:
        for bias in (False, True):
            _, operands, packed, has_z, b = _wq_case(rng, m, n, k, 4, group, asym, bias)
            x = (rng.standard_normal((m, k)) * 3).astype(np.float32)
            if m > 2:
                x[1] = 0  # an all-zero row: sx = 0, y = bias
            xs = None if per_token else np.array(0.02, np.float32)  # saturates codes at -128
            got = lib.w4a8(x, packed, n, group, has_z, b, xs, threads)
            op = LinearW4a8(group=group, per_token=per_token)
            want = op.ref(x, *operands, *([] if xs is None else [xs]))
            tol = 1e-5 * max(1.0, float(np.abs(want).max(initial=0.0)))
            assert_close(got, want, 1e-5, tol, name=f"w4a8 m{m} n{n} k{k} g{group} b{bias}")


# -- whole graphs on the host target ------------------------------------------------------------


@needs_cc
@pytest.mark.parametrize("name", list(GRAPHS), ids=list(GRAPHS))
@pytest.mark.parametrize("kernels", [True, False], ids=["kernels", "plain"])
def test_quant_graph_on_host(name: str, kernels: bool) -> None:
    """Every quantization op through the host backend at batch 3, 5 and 1 (kernel library on:
    pre-packed weights and lmc_quant.c / lmc_w8a8.c; off: plain loops)."""
    g = GRAPHS[name]()
    out = check_host(g, {"kernels": kernels}, label=f"{name} kernels={kernels}", n_envs=N_ENVS)
    src = (out / "src" / "model.c").read_text()
    calls = sum(src.count(f"lmc_linear_{k}_f32(ex") for k in ("wq", "w8a8", "w4a8"))
    linears = sum(n.op.name.startswith("linear_w") for n in g.nodes)
    assert calls == (linears if kernels else 0)


@needs_cc
def test_packed_params_are_not_stored_raw() -> None:
    """The kernels read codes / scales / zeros only from their packed blob: the weights file
    holds no raw copy of them, and an int4 g128 layer streams 4.25 bits per weight."""
    from lmc.runtime.artifact import read_weights

    g = weight_only_graph()
    out = check_host(g, label="weight_only", n_envs=1)
    w = read_weights(out / "weights.safetensors")
    assert not [k for k in w.keys() if k.endswith((".codes", ".scales", ".zeros"))]
    entry = w.entries[next(k for k in w.keys() if k.startswith("s2.w4sym.codes#wq4"))]
    assert entry.meta["layout"] == packing.WQ_LAYOUT
    assert entry.meta["nbytes"] == packing.wq_packed_bytes(33, 130, 4, 128, False)
    k = n = 4096
    assert packing.wq_packed_bytes(n, k, 4, 128, False) * 8 / (n * k) == 4.25
    assert packing.wq_packed_bytes(n, k, 4, 128, True) * 8 / (n * k) == 4.3125


@pytest.mark.parametrize("k,group", [(4096, 128), (130, 64), (384, 0), (1536, 32)])
@pytest.mark.parametrize("zeros", [False, True])
def test_packed_int4_groups_start_on_cache_lines(k: int, group: int, zeros: bool) -> None:
    """Every int4 group's scales and code blocks start 64-byte aligned within a panel (the
    zero points sit in a panel prefix), so no 64-byte code-block load straddles two lines:
    checked on the bytes pack_wq writes, by finding each group's scales."""
    rng = np.random.default_rng(k + group)
    n, gl = 16, group or k
    ng = -(-k // gl)
    codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
    scales = (np.arange(n * ng, dtype=np.float32).reshape(n, ng) + 1.0) * 0.5
    z = rng.integers(0, 16, (n, ng)).astype(np.uint8) if zeros else None
    blob = packing.pack_wq(codes, scales, z, 4, group)
    assert len(blob) == packing.wq_packed_bytes(n, k, 4, group, zeros)
    raw = np.frombuffer(blob, np.uint8)
    for gi in range(ng):
        want = scales[:, gi].astype("<f4").tobytes()
        at = [i for i in range(0, len(blob) - 63, 64) if blob[i : i + 64] == want]
        assert at, f"group {gi}: scales not found at a 64-byte boundary"
        if zeros:  # the prefix holds group gi's zero bytes at 16 * gi
            assert raw[16 * gi : 16 * gi + 16].tolist() == z[:, gi].tolist()
