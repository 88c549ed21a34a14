"""The quantization ops on arm64 under qemu-aarch64: the quantized-linear kernels (lmc_quant.c,
lmc_w8a8.c) called directly on every variant (NEON, NEON + dotprod's sdot W8A8, +nosimd portable
C) through a small driver, and every quantization op in whole graphs built for arm64 against the
reference interpreter (batch 3, 5 and 1). W8A8's int32 sums are compared bit-exactly."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.c import packing
from lmc.backends.c.toolchain import BASE_CFLAGS, arm64_flags
from lmc.backends.targets import parse_target
from lmc.ir.ops.quant import LinearW8a8

from tests.backends.arm64.arm64build import (
    CC,
    LIB,
    RUNTIME,
    VARIANTS,
    Requests,
    check_arm64,
    needs_arm64,
    run_records,
    session_dir,
)
from tests.backends.c.quant_graphs import N_ENVS, all_graphs
from tests.backends.c.test_quant_kernels import WQ_SHAPES, _w8a8_case, _wq_case
from tests.util import assert_close

pytestmark = needs_arm64
DRIVER = Path(__file__).resolve().parent / "fixtures" / "quant_driver.c"
SOURCES = ("lmc_gemm.c", "lmc_int8.c", "lmc_quant.c", "lmc_w8a8.c")
PATHS = {  # variant -> (weight-only path, W8A8 path)
    "arm64": ("neon", "neon"),
    "arm64+dotprod": ("neon", "sdot"),
    "arm64-nosimd": ("portable", "portable"),
}


@functools.cache
def driver(variant: str) -> Path:
    out = session_dir() / f"quant_driver-{variant.replace('+', '_')}"
    srcs = [str(LIB / s) for s in SOURCES] + [str(RUNTIME / "src" / "lmc_threads.c")]
    flags = [*BASE_CFLAGS, *arm64_flags(parse_target(variant)), "-Wall", "-Wextra", "-static"]
    cmd = [CC, *flags, f"-I{LIB}", f"-I{RUNTIME / 'include'}", *srcs, str(DRIVER)]
    r = subprocess.run([*cmd, "-lm", "-lpthread", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), (
        f"building quant_driver ({variant}):\n{r.stderr}"
    )
    return out


def run(req: Requests, variant: str) -> list[list[bytes]]:
    """The records of `req` through the quant driver (Requests' format) in one qemu process."""
    return run_records(bytes(req.data), req.count, driver(variant), variant, "quant driver")


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def test_paths(variant: str) -> None:
    req = Requests()
    req.add(0, 1, [], [])
    (wq, a8), *_ = run(req, variant)
    assert (wq.decode(), a8.decode()) == PATHS[variant]


def test_linear_wq(variant: str) -> None:
    rng = np.random.default_rng(1)
    req, cases = Requests(), []
    for bits, asym in [(4, False), (4, True), (8, False), (8, True)]:
        for m, n, k, group in WQ_SHAPES:
            if m == 0:
                continue
            bias = (n + k) % 2 == 0
            op, operands, packed, has_z, b = _wq_case(rng, m, n, k, bits, group, asym, bias)
            x = rng.standard_normal((m, k)).astype(np.float32)
            arrays = [x, np.frombuffer(packed, np.uint8), b if b is not None else np.zeros(1)]
            ints = [m, n, k, bits, group, int(has_z), int(bias)]
            i = req.add(1, 1 + len(cases) % 2, ints, arrays)
            cases.append((i, op.ref(x, *operands), f"{op.name} m{m} n{n} k{k} g{group}"))
    res = run(req, variant)
    for i, want, label in cases:
        got = np.frombuffer(res[i][0], np.float32).reshape(want.shape)
        tol = 1e-5 * max(1.0, float(np.abs(want).max(initial=0.0)))
        assert_close(got, want, 1e-4, tol, name=f"{variant} {label}")


def test_linear_w8a8(variant: str) -> None:
    rng = np.random.default_rng(2)
    req, cases = Requests(), []
    for m, n, k in [(1, 1, 1), (3, 17, 5), (4, 48, 384), (70, 40, 33), (1, 100, 1030)]:
        for mode in ("exact", "per_token", "static"):
            x, codes, sw, b = _w8a8_case(rng, m, n, k, exact=mode == "exact")
            xs = np.array(0.02, np.float32) if mode == "static" else None
            packed = np.frombuffer(packing.pack_gemm_s8(np.ascontiguousarray(codes.T)), np.uint8)
            arrays = [x, packed, sw, b if b is not None else np.zeros(1, np.float32)]
            arrays.append(xs if xs is not None else np.zeros(1, np.float32))
            i = req.add(
                2, 1 + len(cases) % 2, [m, n, k, int(b is not None), int(xs is not None)], arrays
            )
            op = LinearW8a8(per_token=xs is None)
            want = op.ref(
                x, codes, sw, *([b] if b is not None else []), *([xs] if xs is not None else [])
            )
            cases.append((i, want, mode, f"w8a8 {mode} m{m} n{n} k{k}"))
    res = run(req, variant)
    for i, want, mode, label in cases:
        got = np.frombuffer(res[i][0], np.float32).reshape(want.shape)
        if mode == "exact":  # y = float(acc): the int32 sums themselves
            np.testing.assert_array_equal(got, want, err_msg=f"{variant} {label}")
        else:
            assert_close(got, want, 1e-5, 1e-5, name=f"{variant} {label}")


GRAPHS = all_graphs()


@pytest.mark.parametrize("name", list(GRAPHS))
def test_quant_graph_on_arm64(name: str) -> None:
    check_arm64(GRAPHS[name], label=name, n_envs=N_ENVS)


@pytest.mark.parametrize("target", ["arm64+dotprod", "arm64-nosimd"])
@pytest.mark.parametrize("name", ["weight_only", "w8a8"])
def test_quant_graph_on_arm64_variants(name: str, target: str) -> None:
    check_arm64(GRAPHS[name], target, label=f"{name} on {target}", n_envs=N_ENVS)
