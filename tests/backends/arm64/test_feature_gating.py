"""Feature gating of the arm64 builds, on a model with a real int8 user: ONNX MatMulInteger
(u8 activations x i8 weights with per-column zero points), which legalization turns into
matmul_integer and the int8 GEMM. A plain `arm64` build contains no `sdot` and runs on an
armv8.0 CPU model (cortex-a53); an `arm64+dotprod` build's library uses `sdot`, runs on CPU
models with the extension (cortex-a76, max) and dies on one without it. Results are compared
bit-exactly with onnxruntime."""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np
import pytest
from lmc.backends.c.build import lower
from lmc.backends.c.packing import GEMM_S8_LAYOUT
from lmc.backends.targets import parse_target
from lmc.frontend import import_model
from lmc.passes.manager import DEFAULT_PIPELINE, PassContext, Pipeline
from lmc.runtime.artifact import read_weights
from lmc.runtime.errors import KernelError

from tests.backends.arm64.arm64build import build, needs_arm64, runner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = needs_arm64
OBJDUMP = "aarch64-linux-gnu-objdump"
K, N = 72, 40


@functools.cache
def int8_model() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.integers(-128, 128, (K, N)).astype(np.int8), "W"),
        numpy_helper.from_array(np.array(131, np.uint8), "a_zero"),
        numpy_helper.from_array(rng.integers(-5, 5, N).astype(np.int8), "w_zero"),
    ]
    node = helper.make_node("MatMulInteger", ["A", "W", "a_zero", "w_zero"], ["Y"])
    graph = helper.make_graph(
        [node],
        "int8_mm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["rows", K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["rows", N])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime reads
    return model.SerializeToString()


@functools.cache
def int8_graph():
    g, _ = import_model(onnx.load_from_string(int8_model()))
    return Pipeline(DEFAULT_PIPELINE).run(g, PassContext())


def inputs(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).integers(0, 256, (rows, K)).astype(np.uint8)


def reference(a: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(int8_model(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"A": a})[0]


def sdot_count(lib) -> int:
    if shutil.which(OBJDUMP) is None:
        pytest.skip(f"{OBJDUMP} missing (apt-get install binutils-aarch64-linux-gnu)")
    dis = subprocess.run([OBJDUMP, "-d", str(lib)], capture_output=True, text=True, check=True)
    return sum(1 for line in dis.stdout.splitlines() if "\tsdot\t" in line)


def run_and_compare(out, cpu: str) -> None:
    batches = [[inputs(r)] for r in (1, 5, 17)]
    got = runner(out, cpu=cpu).run_many(batches)
    for (a,), (y,) in zip(batches, got):
        np.testing.assert_array_equal(y, reference(a), err_msg=f"rows {a.shape[0]} on {cpu}")


def test_matmul_integer_reaches_the_int8_kernel():
    g = lower(int8_graph(), parse_target("arm64"))
    ops = [n.op.name for n in g.nodes]
    assert "matmul_integer" in ops and "matmul" not in ops, ops
    out = build(int8_graph(), "arm64")
    entries = read_weights(out / "weights.safetensors").entries.values()
    layouts = {e.meta.get("layout") for e in entries}
    assert GEMM_S8_LAYOUT in layouts, layouts


def test_arm64_without_dotprod_has_no_sdot_and_runs_on_cortex_a53():
    out = build(int8_graph(), "arm64")
    assert sdot_count(out / "lib" / "liblmc_model.so") == 0
    assert sdot_count(out / "bin" / "lmc_harness") == 0
    run_and_compare(out, "cortex-a53")


def test_arm64_dotprod_uses_sdot():
    out = build(int8_graph(), "arm64+dotprod")
    assert sdot_count(out / "lib" / "liblmc_model.so") >= 16  # the 4x16 micro-kernel
    for cpu in ("cortex-a76", "max"):
        run_and_compare(out, cpu)
    with pytest.raises(KernelError, match="Illegal instruction"):  # no dot product unit
        runner(out, cpu="cortex-a53").run([inputs(3)])
