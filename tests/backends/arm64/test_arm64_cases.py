"""Every op on arm64 against the reference interpreter: each tests/cases/*.lmc graph built for
arm64 (NEON kernels), the compute-heavy ones also with plain loops, +dotprod and +nosimd (the
portable kernels), the cases retyped to f64 / f16 / bf16, and the integer / bool dtype graph;
each at two values of every symbol, both runs in one qemu-aarch64 process on the oldest CPU
model with the target's features."""

from __future__ import annotations

import pytest
from lmc.ir import DType

from tests.backends.arm64.arm64build import check_arm64, needs_arm64
from tests.backends.c.hostbuild import CASES, case_graph, retype
from tests.backends.c.test_host_cases import BF16_CASES, NATIVE, integer_graph

pytestmark = needs_arm64
HEAVY = ["attention", "conv", "linalg", "lowered", "matmul_integer", "norm"]


def _case(name: str):
    return next(p for p in CASES if p.stem == name)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_on_arm64(path):
    check_arm64(case_graph(path), label=path.stem)


@pytest.mark.parametrize("name", NATIVE)
def test_case_on_arm64_plain_loops(name):
    check_arm64(case_graph(_case(name)), options={"kernels": False}, label=f"{name} (plain)")


@pytest.mark.parametrize("target", ["arm64+dotprod", "arm64-nosimd"])
@pytest.mark.parametrize("name", HEAVY)
def test_case_on_arm64_variants(name, target):
    check_arm64(case_graph(_case(name)), target, label=f"{name} on {target}")


FLOAT_CASES = [p for p in CASES if "f32[" in p.read_text(encoding="utf-8")]
RETYPED = [(p, dt) for dt in (DType.f64, DType.f16) for p in FLOAT_CASES] + [
    (p, DType.bf16) for p in FLOAT_CASES if p.stem in BF16_CASES
]


@pytest.mark.parametrize("path,dtype", RETYPED, ids=[f"{p.stem}-{d}" for p, d in RETYPED])
def test_case_retyped_on_arm64(path, dtype):
    g = retype(case_graph(path), DType.f32, dtype)
    assert g.outputs, f"{path.stem}: no node accepts {dtype}"
    check_arm64(g, label=f"{path.stem} as {dtype}")


def test_integer_and_bool_dtypes_on_arm64():
    check_arm64(integer_graph(), label="ints")


@pytest.mark.parametrize("target", ["arm64", "arm64-nosimd"])
def test_winograd_conv_on_arm64(target):
    """Winograd F(2x2, 3x3) convs (NEON even/odd split and row panels of 6, or portable)."""
    from tests.backends.c.test_select_conv_algorithm import net

    g = net(c=8, k=12, hw=(6, 21))
    out = check_arm64(g, target, {"conv_algorithm": "winograd"}, label=f"winograd on {target}")
    assert (out / "model.lmc").read_text().count('algo="winograd"') == 2
