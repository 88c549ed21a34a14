"""Every op on wasm32 against the reference interpreter: each tests/cases/*.lmc graph built for
wasm32 (SIMD128 kernels) and wasm32-nosimd (portable C, scalar wasm), run through `lmc.load`
(wasmtime) at two values of every symbol; the compute-heavy cases with plain loops too; the
integer and bool dtypes (64-bit integers on a 32-bit target) and the f16 / bf16 / f64 retypes."""

from __future__ import annotations

import pytest
from lmc.ir.dtypes import DType

from tests.backends.c.hostbuild import CASES, case_graph, retype
from tests.backends.c.test_host_cases import integer_graph

from .wasmbuild import TARGETS, check_wasm, needs_wasm

pytestmark = needs_wasm
NATIVE = ["attention", "conv", "linalg", "norm"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case(path, target):
    check_wasm(case_graph(path), target, label=path.stem)


@pytest.mark.parametrize("name", NATIVE)
def test_case_plain_loops(name):
    path = next(p for p in CASES if p.stem == name)
    check_wasm(case_graph(path), "wasm32", {"kernels": False}, label=f"{name} (plain loops)")


def test_integer_and_bool_dtypes():
    g = integer_graph()
    assert len(g.outputs) > 300
    check_wasm(g, "wasm32", label="ints")


RETYPED = [("binary", DType.f64), ("unary", DType.f16), ("norm", DType.bf16), ("linalg", DType.f16)]


@pytest.mark.parametrize("name,dtype", RETYPED, ids=[f"{n}-{d}" for n, d in RETYPED])
def test_case_retyped(name, dtype):
    path = next(p for p in CASES if p.stem == name)
    g = retype(case_graph(path), DType.f32, dtype)
    check_wasm(g, "wasm32", label=f"{name} as {dtype}")


@pytest.mark.parametrize("target", TARGETS)
def test_winograd_conv(target):
    """Winograd F(2x2, 3x3) convs (SIMD128 even/odd split, or portable)."""
    from tests.backends.c.test_select_conv_algorithm import net

    g = net(c=8, k=12, hw=(6, 21))
    out = check_wasm(g, target, {"conv_algorithm": "winograd"}, label=f"winograd on {target}")
    assert (out / "model.lmc").read_text().count('algo="winograd"') == 2
