"""runtime/host.py and runtime/loader.py on the hand-written model_add artifact: runs, every
bad-input and bad-file path (right error class, a message naming what is wrong), several
models in one process, threads, closing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from lmc.ir.dtypes import DType
from lmc.runtime import artifact as af
from lmc.runtime.errors import (
    ArgumentError,
    ArtifactError,
    DigestError,
    InputError,
    KernelError,
    RuntimeLmcError,
    WeightsFormatError,
    WeightsIOError,
)
from lmc.runtime.host import HostRunner, TensorSpec
from lmc.runtime.loader import LoadedModel, load

from .cbuild import ROOT, expected_add, write_add_weights

RNG = np.random.default_rng(0)


def xy(s0: int, y_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.standard_normal((s0, 4)).astype(np.float32)
    y = RNG.standard_normal((y_rows if y_rows is not None else s0, 4)).astype(np.float32)
    return x, y


def check_run(m: LoadedModel, s0: int, y_expr: bool = False) -> None:
    x, y = xy(s0, 2 * s0 if y_expr else s0)
    out, cat = m(x, y)
    want = expected_add(x, y, y_expr)
    np.testing.assert_allclose(out, want[0], rtol=1e-6)
    np.testing.assert_array_equal(cat, want[1])


# ---- good paths ---------------------------------------------------------------------------------


def test_load_and_run(add_artifact):
    with load(add_artifact) as m:
        assert m.target == "host" and m.manifest["graph"] == "model_add"
        assert m.ir.startswith("graph @model_add") and m.input_names == ["x", "y"]
        assert m.output_names == ["out", "cat"]
        for s0 in (1, 3, 16):
            check_run(m, s0)
        x, y = xy(5)
        by_name = m.run({"y": y, "x": x})
        assert isinstance(by_name, list) and len(by_name) == 2
        np.testing.assert_array_equal(by_name[1], np.concatenate([x, y]))


def test_runner_reports_the_models_signature(add_artifact):
    with load(add_artifact) as m:
        r = m.runner
        assert r.inputs == [
            TensorSpec("x", DType.f32, ("s0", 4)),
            TensorSpec("y", DType.f32, ("s0", 4)),
        ]
        assert r.outputs[1] == TensorSpec("cat", DType.f32, ("2*s0", 4))
        assert r.symbols == {"s0": (1, 16)} and r.arena_bytes == 256
        assert str(r.inputs[0]) == "x: f32[s0, 4]"


def test_outputs_are_copies(add_artifact):
    with load(add_artifact) as m:
        x, y = xy(4)
        first = m(x, y)[0].copy()
        kept = m(x, y)[0]
        m(*xy(4))
        np.testing.assert_array_equal(kept, first)


def test_non_contiguous_inputs(add_artifact):
    with load(add_artifact) as m:
        big = RNG.standard_normal((6, 8)).astype(np.float32)
        x, y = big[:, ::2], big[:, 1::2]
        np.testing.assert_allclose(m(x, y)[0], expected_add(x, y)[0], rtol=1e-6)


def test_expression_dims(add_expr_artifact):
    with load(add_expr_artifact) as m:
        for s0 in (1, 2, 8):
            check_run(m, s0, y_expr=True)


def test_threads(add_artifact):
    x, y = xy(16)
    with load(add_artifact, num_threads=1) as m:
        assert m.runner.num_threads == 1
        one = m(x, y)
        m.runner.num_threads = 3
        assert m.runner.num_threads == 3
        three = m(x, y)
        m.runner.num_threads = 0  # all cores this process may use
        assert m.runner.num_threads == len(os.sched_getaffinity(0))
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


def test_two_instances_of_one_model(add_artifact):
    a, b = load(add_artifact, num_threads=2), load(add_artifact, num_threads=1)
    for s0 in (2, 9, 16, 1):
        check_run(a, s0)
        check_run(b, 17 - s0)
    a.close()
    check_run(b, 4)
    b.close()


def test_two_different_models_in_one_process(add_artifact, add_expr_artifact):
    # -fvisibility=hidden keeps each library's lmc_model_definition its own
    with load(add_artifact) as a, load(add_expr_artifact) as b:
        check_run(a, 3)
        check_run(b, 3, y_expr=True)
        check_run(a, 5)


def test_close(add_artifact):
    m = load(add_artifact)
    out = m(*xy(2))
    m.close()
    m.close()
    with pytest.raises(ArgumentError, match="closed"):
        m(*xy(2))
    assert out[0].shape == (2, 4)  # earlier outputs are unaffected
    r = HostRunner(add_artifact / af.LIBRARY, add_artifact / af.WEIGHTS)
    del r  # __del__ frees the model


def test_loader_does_not_import_torch(add_artifact):
    code = (
        "import sys, numpy as np\n"
        "from lmc.runtime.loader import load\n"
        f"m = load({str(add_artifact)!r})\n"
        "out = m(np.ones((2, 4), np.float32), np.ones((2, 4), np.float32))\n"
        "assert out[0][0, 0] == 5.0, out\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


# ---- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.ones((3, 4)), np.ones((3, 4), np.float32), r"input 'x': dtype float64, expected f32"),
        (np.ones((3, 4, 1), np.float32), np.ones((3, 4), np.float32), r"'x': rank 3 .* expected 2"),
        (
            np.ones((3, 4), np.float32),
            np.ones((3, 5), np.float32),
            r"'y' axis 1: expected 4, got 5",
        ),
    ],
)
def test_python_side_input_checks(add_artifact, x, y, match):
    with load(add_artifact) as m:
        with pytest.raises(InputError, match=match):
            m(x, y)
        check_run(m, 3)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.ones((3, 4)), np.ones((3, 4), np.float32), r"input 'x': dtype f64, expected f32"),
        (np.ones(3, np.float32), np.ones((3, 4), np.float32), r"input 'x': rank 1, expected 2"),
        (
            np.ones((3, 4), np.float32),
            np.ones((3, 5), np.float32),
            r"input 'y' axis 1: expected 4, got 5",
        ),
        (
            np.ones((17, 4), np.float32),
            np.ones((17, 4), np.float32),
            r"input 'x' axis 0 \(s0\): 17 is outside s0's bounds 1\.\.16",
        ),
        (
            np.ones((0, 4), np.float32),
            np.ones((0, 4), np.float32),
            r"input 'x' axis 0 \(s0\): 0 is outside s0's bounds 1\.\.16",
        ),
        (
            np.ones((3, 4), np.float32),
            np.ones((4, 4), np.float32),
            r"input 'y' axis 0 \(s0\): got 4, but input 'x' axis 0 gave s0 = 3",
        ),
    ],
)
def test_runtime_input_checks(add_artifact, x, y, match):
    """The C runtime's own checks (check=False skips the Python-side ones)."""
    with load(add_artifact) as m:
        with pytest.raises(InputError, match=match) as e:
            m.runner.run([x, y], check=False)
        assert e.value.code == 6 and e.value.status == "LMC_ERR_INPUT"
        check_run(m, 3)  # the model still works


@pytest.mark.parametrize(
    ("x_rows", "y_rows", "match"),
    [(17, 17, "outside s0's bounds"), (3, 4, "gave s0 = 3"), (0, 0, "0 is outside")],
)
def test_symbol_checks_come_from_c(add_artifact, x_rows, y_rows, match):
    with load(add_artifact) as m:
        with pytest.raises(InputError, match=match):
            m(*xy(x_rows, y_rows))


def test_expression_dim_mismatch(add_expr_artifact):
    with load(add_expr_artifact) as m:
        with pytest.raises(InputError, match=r"input 'y' axis 0 \(2\*s0\): expected 6 .*got 5"):
            m(*xy(3, 5))
        check_run(m, 3, y_expr=True)


def test_argument_count_and_names(add_artifact):
    x, y = xy(3)
    with load(add_artifact) as m:
        with pytest.raises(InputError, match=r"expected 2 input\(s\) \(x, y\), got 1"):
            m(x)
        with pytest.raises(InputError, match="missing input.*'y'"):
            m.run({"x": x})
        with pytest.raises(InputError, match="unknown input.*'z'"):
            m.run({"x": x, "y": y, "z": y})


def test_missing_input_in_c(add_artifact):
    """lmc_run before any lmc_set_input: the C runtime names the missing input."""
    with load(add_artifact) as m:
        r = m.runner
        st = r._lib.lmc_run(r.handle)
        assert st == 6 and b"input 'x' (index 0) is not set" in r._lib.lmc_last_error(r.handle)
        assert r._lib.lmc_get_output(r.handle, 0, None, None, None) == 1


def test_kernel_error(add_artifact):
    with load(add_artifact) as m:
        x, y = xy(2)
        x[0, 0] = -12345.0
        with pytest.raises(KernelError, match="kernel error 3: model_add: x.* error trigger"):
            m(x, y)
        check_run(m, 2)


# ---- bad files ----------------------------------------------------------------------------------


def test_truncated_weights(artifact_copy):
    w = artifact_copy / af.WEIGHTS
    w.write_bytes(w.read_bytes()[:-10])
    with pytest.raises(WeightsFormatError, match="118 bytes, the model expects 128"):
        load(artifact_copy)
    w.write_bytes(b"")
    with pytest.raises(WeightsFormatError, match="too short"):
        load(artifact_copy)


def test_tampered_weights(artifact_copy):
    w = artifact_copy / af.WEIGHTS
    raw = bytearray(w.read_bytes())
    raw[-60] ^= 1  # inside the data region (scale's padding)
    w.write_bytes(bytes(raw))
    with pytest.raises(DigestError, match=r"expects 0x[0-9a-f]{16}, the file has 0x[0-9a-f]{16}"):
        load(artifact_copy)
    with pytest.raises(ArtifactError, match="sha256"):
        load(artifact_copy, verify_sha256=True)


def test_weights_of_the_same_size_but_other_values(artifact_copy):
    write_add_weights(artifact_copy / af.WEIGHTS, scale=3.0)
    with pytest.raises(DigestError, match="digest mismatch"):
        load(artifact_copy)


def test_weights_of_another_model(artifact_copy):
    af.write_weights(artifact_copy / af.WEIGHTS, {"w": af.blob(np.ones(40, np.float32), "f32")})
    with pytest.raises(WeightsFormatError, match="192 bytes, the model expects 128"):
        load(artifact_copy)


def test_missing_weights(artifact_copy):
    (artifact_copy / af.WEIGHTS).unlink()
    with pytest.raises(WeightsIOError, match="cannot open .*weights.safetensors"):
        load(artifact_copy)


def test_not_safetensors(artifact_copy):
    shutil.copyfile(artifact_copy / "manifest.json", artifact_copy / af.WEIGHTS)
    with pytest.raises(WeightsFormatError, match="not a safetensors file"):
        load(artifact_copy)


def test_verify_sha256_passes_on_a_good_artifact(add_artifact):
    load(add_artifact, verify_sha256=True).close()


def _edit_manifest(d, **changes):
    p = d / "manifest.json"
    m = json.loads(p.read_text())
    m.update(changes)
    p.write_text(json.dumps(m))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format_version": 99}, "format version 99 is not supported"),
        ({"target": "quantum9"}, "unknown target 'quantum9'"),
        ({"target": "fpga-u280"}, "cannot run 'fpga-u280' artifacts"),
        ({"target": "wasm32"}, "liblmc_model.so is not a valid WebAssembly module"),
        ({"library": "lib/nothing.so"}, "no built library lib/nothing.so"),
        ({"library": "manifest.json"}, "not a loadable lmc model library"),
    ],
)
def test_bad_manifests(artifact_copy, changes, match):
    _edit_manifest(artifact_copy, **changes)
    with pytest.raises(ArtifactError, match=match):
        load(artifact_copy)


def test_not_an_artifact(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ArtifactError, match="is not an lmc artifact: it has no manifest.json"):
        load(tmp_path)
    with pytest.raises(ArtifactError, match="no such folder"):
        load(tmp_path / "nope")


def test_every_runtime_error_is_an_lmc_error():
    from lmc.ir.errors import LmcError
    from lmc.runtime.errors import ERRORS_BY_CODE, error_from_status

    assert sorted(ERRORS_BY_CODE) == list(range(1, 8))
    for code, cls in ERRORS_BY_CODE.items():
        e = error_from_status(code, "msg")
        assert isinstance(e, cls) and isinstance(e, RuntimeLmcError) and isinstance(e, LmcError)
        assert e.code == code and str(e) == "msg"
    assert isinstance(error_from_status(42, "x"), KernelError)
