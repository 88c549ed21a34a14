"""`lmc build`, `lmc run`, `lmc bench` and `lmc targets`: artifacts from .onnx and .lmc (+
--weights) models, inputs from .npy/.npz, outputs to .npz, bench report structure (never
timings), the target listing, progress lines, and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.targets import alias_names, all_targets
from lmc.cli import main
from lmc.cli_weights import lmc_weight_arrays, read_weight_file

from tests.backends.c.hostbuild import needs_cc, object_cache

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp.lmc"
RNG = np.random.default_rng(0)
TABLE = RNG.standard_normal((50, 8)).astype(np.float32)
W = RNG.standard_normal((8, 4)).astype(np.float32)
MLP_WEIGHTS = {
    "fc1.weight": RNG.standard_normal((32, 16)).astype(np.float32),
    "fc1.bias": RNG.standard_normal(32).astype(np.float32),
    "fc2.weight": RNG.standard_normal((8, 32)).astype(np.float32),
    "fc2.bias": RNG.standard_normal(8).astype(np.float32),
}
NO_CC = needs_cc.args[0]  # the skip condition of the C backend's tests
STAGES = ("import", "passes", "legalize", "group", "plan", "render", "compile")


def lmc(*argv: str | Path) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def build(*argv: str | Path) -> tuple[int, str, str]:
    return lmc("build", *argv, "--cache-dir", object_cache())


def one_error(err: str) -> str:
    assert err.startswith("lmc: error: ") and err.count("\n") == 1, err
    return err


def mlp_ref(x: np.ndarray) -> np.ndarray:
    w = MLP_WEIGHTS
    h = np.maximum(x @ w["fc1.weight"].T + w["fc1.bias"], 0)
    return h @ w["fc2.weight"].T + w["fc2.bias"]


def emb_ref(ids: np.ndarray) -> np.ndarray:
    return np.maximum(TABLE[ids] @ W, 0)


def write_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """A plain (non-lmc) safetensors file of f32 arrays."""
    header, blobs, off = {}, [], 0
    for k, a in arrays.items():
        b = np.ascontiguousarray(a, "<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))
    return path


@pytest.fixture(scope="module")
def emb_onnx(tmp_path_factory) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"]),
        helper.make_node("MatMul", ["e", "w"], ["m"]),
        helper.make_node("Relu", ["m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "emb",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 4])],
        initializer=[numpy_helper.from_array(TABLE, "table"), numpy_helper.from_array(W, "w")],
    )
    path = tmp_path_factory.mktemp("onnx") / "emb.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def emb_build(emb_onnx, tmp_path_factory) -> tuple[Path, str, str]:
    if NO_CC:
        pytest.skip(needs_cc.kwargs["reason"])
    out = tmp_path_factory.mktemp("emb") / "art"
    code, stdout, stderr = build(emb_onnx, "-o", out, "--dynamic", "ids:0=batch:1:8")
    assert code == 0, stderr
    return out, stdout, stderr


@pytest.fixture(scope="module")
def mlp_build(tmp_path_factory) -> Path:
    if NO_CC:
        pytest.skip(needs_cc.kwargs["reason"])
    d = tmp_path_factory.mktemp("mlp")
    np.savez(d / "w.npz", **MLP_WEIGHTS)
    code, _, stderr = build(MLP, "-o", d / "art", "--weights", d / "w.npz", "-q")
    assert code == 0 and stderr == "", stderr
    return d / "art"


# -- build -----------------------------------------------------------------------------------
def test_build_onnx_prints_stages_and_summary(emb_build):
    out, stdout, stderr = emb_build
    assert (out / "manifest.json").is_file() and (out / "lib" / "liblmc_model.so").is_file()
    lines = stderr.splitlines()
    for stage in STAGES:
        hits = [x for x in lines if re.match(rf"lmc: {stage}\s+\d+\.\d{{3}} s", x)]
        assert len(hits) == 1, (stage, stderr)
    assert stdout.startswith(f"built {out} for host")
    for key in ("library", "arena", "weights", "inputs", "outputs", "passes", "time"):
        assert re.search(rf"^  {key}\s", stdout, re.M), (key, stdout)
    assert "ids: i64[batch, 6]" in stdout and "batch<=8" in stdout
    assert re.search(r"group_kernels\s+\(epilogues=1", stdout) and "2 tensor(s)" in stdout


@needs_cc
def test_build_lmc_with_npz_weights_runs(mlp_build, tmp_path):
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, stdout, _ = lmc("run", mlp_build, "--inputs", tmp_path / "x.npy", "--threads", "1")
    assert code == 0
    assert "output0: f32[3, 8]  min " in stdout and "1 thread(s)" in stdout
    code, _, _ = lmc("run", mlp_build, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "o")
    assert code == 0
    with np.load(tmp_path / "o") as z:  # the name given, no ".npz" appended
        np.testing.assert_allclose(z["output0"], mlp_ref(x), rtol=1e-4, atol=1e-4)


@needs_cc
def test_build_lmc_with_safetensors_weights(tmp_path):
    path = write_safetensors(tmp_path / "w.safetensors", MLP_WEIGHTS)
    code, _, err = build(MLP, "-o", tmp_path / "art", "--weights", path, "--threads", "2")
    assert code == 0, err
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    code, _, _ = lmc("run", tmp_path / "art", "--inputs", tmp_path / "in.npz", "--output",
                     tmp_path / "o.npz")  # fmt: skip
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["output0"], mlp_ref(x), 1e-4, 1e-4)


def test_build_lmc_missing_weight_key_names_it(tmp_path):
    partial = {k: v for k, v in MLP_WEIGHTS.items() if k != "fc2.bias"}
    partial["fc1.weight"] = partial["fc1.weight"][:3]
    np.savez(tmp_path / "w.npz", **partial)
    code, _, err = build(MLP, "-o", tmp_path / "art", "--weights", tmp_path / "w.npz")
    assert code == 1
    one_error(err)
    assert "missing key(s): 'fc2.bias'" in err
    assert "'fc1.weight': shape [3, 16], the param is f32[32, 16]" in err
    assert not (tmp_path / "art").exists()


def test_build_lmc_without_weights_says_how(tmp_path):
    code, _, err = build(MLP, "-o", tmp_path / "art")
    assert code == 1 and "--weights" in one_error(err) and "'fc1.bias'" in err


def test_build_unknown_target_lists_targets(tmp_path):
    code, _, err = build(MLP, "-o", tmp_path / "art", "--target", "nosuch")
    assert code == 1
    one_error(err)
    assert "unknown target 'nosuch'" in err and "host" in err and "arm64" in err


def test_build_target_without_backend_or_toolchain(tmp_path, monkeypatch):
    code, _, err = build(MLP, "-o", tmp_path / "art", "--target", "cuda")
    assert code == 1 and "no cuda code generator" in one_error(err)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc anywhere
    monkeypatch.delenv("CC", raising=False)
    code, _, err = build(MLP, "-o", tmp_path / "art", "--target", "host")
    assert code == 1 and "missing cc" in one_error(err) and "apt-get install gcc" in err


@needs_cc
def test_build_refuses_to_overwrite(mlp_build, tmp_path):
    np.savez(tmp_path / "w.npz", **MLP_WEIGHTS)
    args = ("--weights", tmp_path / "w.npz", "-q")
    code, _, err = build(MLP, "-o", mlp_build, *args)
    assert code == 1 and "--force" in one_error(err)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    code, _, err = build(MLP, "-o", other, *args, "--force")
    assert code == 1 and "not an lmc artifact" in one_error(err)
    assert (other / "notes.txt").read_text() == "keep"
    before = (mlp_build / "manifest.json").read_bytes()
    assert build(MLP, "-o", mlp_build, *args, "--force")[0] == 0
    assert (mlp_build / "manifest.json").read_bytes() == before  # deterministic rebuild


# -- run -------------------------------------------------------------------------------------
def test_run_npy_npz_by_name_and_position(emb_build, tmp_path):
    art = emb_build[0]
    ids = RNG.integers(0, 50, (2, 6)).astype(np.int64)
    np.save(tmp_path / "ids.npy", ids)
    np.savez(tmp_path / "named.npz", ids=ids)
    np.savez(tmp_path / "positional.npz", ids)
    results = []
    for spec in ("ids.npy", f"ids={tmp_path / 'ids.npy'}", "named.npz", "positional.npz"):
        out = tmp_path / f"out{len(results)}.npz"
        given = spec if "=" in spec else tmp_path / spec
        code, stdout, err = lmc("run", art, "--inputs", given, "--output", out)
        assert code == 0, err
        assert "output0: f32[2, 6, 4]" in stdout and f"saved 1 output(s) to {out}" in stdout
        results.append(np.load(out)["output0"])
    for r in results:
        np.testing.assert_allclose(r, emb_ref(ids), rtol=1e-5, atol=1e-5)


def test_run_wrong_inputs_give_runtime_errors(mlp_build, tmp_path):
    np.save(tmp_path / "narrow.npy", np.zeros((3, 5), np.float32))
    np.save(tmp_path / "big.npy", np.zeros((100, 16), np.float32))
    np.save(tmp_path / "f64.npy", np.zeros((3, 16)))
    cases = {
        "narrow.npy": "input 'x' axis 1: expected 16, got 5",
        "big.npy": "outside batch's bounds 1..64",  # the C runtime's check of symbols
        "f64.npy": "input 'x': dtype float64, expected f32",
    }
    for name, text in cases.items():
        code, _, err = lmc("run", mlp_build, "--inputs", tmp_path / name)
        assert code == 1 and text in one_error(err), err
    code, _, err = lmc("run", mlp_build, "--inputs", f"y={tmp_path / 'f64.npy'}")
    assert code == 1 and "unknown input(s) 'y'" in one_error(err)
    code, _, err = lmc("run", mlp_build, "--inputs", tmp_path / "missing.npy")
    assert code == 1 and "does not exist" in one_error(err)


def test_run_output_never_overwritten_without_force(mlp_build, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((1, 16), np.float32))
    (tmp_path / "o.npz").write_text("mine")
    code, _, err = lmc("run", mlp_build, "--inputs", tmp_path / "x.npy", "--output",
                       tmp_path / "o.npz")  # fmt: skip
    assert code == 1 and "--force" in one_error(err)
    assert (tmp_path / "o.npz").read_text() == "mine"


# -- bench -----------------------------------------------------------------------------------
def _table(stdout: str) -> tuple[list[str], list[list[str]]]:
    lines = stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.split()[:1] == ["threads"])
    rows = [x.split() for x in lines[at + 1 :] if x.split() and x.split()[0].isdigit()]
    return lines[at].split(), rows


def test_bench_reports_percentiles_memory_and_reference(emb_build):
    code, stdout, err = lmc(
        "bench", emb_build[0], "--threads", "1,2", "--warmup", "1", "--iters", "3",
        "--shape", "batch=3", "--reference",
    )  # fmt: skip
    assert code == 0, err
    header, rows = _table(stdout)
    assert header == ["threads", "p50", "p90", "p99", "mean", "min", "runs/s"]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r) == 7 for r in rows)
    assert all(float(v) > 0 for r in rows for v in r[1:])
    assert "input ids: i64[batch, 6] = [3x6] random ints 0..49 (indexes a dim of 50)" in stdout
    assert "symbols batch=3" in stdout
    assert re.search(
        r"memory: arena [\d.]+ \w*B \+ weights [\d.]+ \w*B = .* planned; peak RSS "
        r"growth [\d.]+ \w*B \(load \+ 3 runs in a fresh process\)",
        stdout,
    ), stdout
    m = re.search(r"output0: max abs err (\S+), max rel err (\S+)", stdout)
    assert m and float(m[1]) < 1e-4, stdout


def test_bench_with_input_files_and_bad_options(mlp_build, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.ones((4, 16), np.float32))
    code, stdout, err = lmc("bench", mlp_build, "--inputs", tmp_path / "in.npz", "--iters", "2",
                            "--no-memory")  # fmt: skip
    assert code == 0, err
    assert "= [4x16] from file" in stdout and "peak RSS" not in stdout
    assert len(_table(stdout)[1]) == 1
    bad = {
        ("--shape", "batch=100"): "outside its bounds 1..64",
        ("--shape", "x=2x5"): "the input is f32[batch, 16]",
        ("--shape", "nope=3"): "no input or symbol 'nope'",
        ("--threads", "1,x"): "expected counts like 1,2,4",
        ("--iters", "0"): "--iters must be >= 1",
    }
    for argv, text in bad.items():
        code, _, err = lmc("bench", mlp_build, *argv, "--no-memory")
        assert code == 1 and text in one_error(err), err


# -- weights and targets ---------------------------------------------------------------------
def test_artifact_weights_read_back_unpacked(emb_build, tmp_path):
    arrays = lmc_weight_arrays(emb_build[0] / "weights.safetensors")
    assert sorted(arrays) == ["table", "w"]
    np.testing.assert_array_equal(arrays["table"], TABLE)
    np.testing.assert_array_equal(arrays["w"], W)  # from the packed GEMM panels
    plain = read_weight_file(write_safetensors(tmp_path / "p.safetensors", {"a": W}))
    np.testing.assert_array_equal(plain["a"], W)


def test_targets_lists_every_target_with_status():
    code, stdout, _ = lmc("targets")
    assert code == 0
    blocks = {b.split()[0]: b for b in re.split(r"\n(?=\S)", stdout.strip())}
    assert set(blocks) == {t.name for t in all_targets()}
    for alias, base in alias_names().items():
        assert alias in blocks[base]
    if not NO_CC:
        assert "    build:    yes" in blocks["host"] and "    run:      yes" in blocks["host"]
    assert "build:    no: the reference target builds no artifact" in blocks["reference"]
    if shutil.which("aarch64-linux-gnu-gcc"):
        assert "    build:    yes" in blocks["arm64"]
    else:
        assert re.search(r"build:    no: .*gcc-aarch64-linux-gnu", blocks["arm64"])
    assert re.search(r"build:    no: .*no cuda code generator", blocks["cuda"])
    assert "features:" in blocks["host"] and "about:" in blocks["cuda"]


@needs_cc
def test_build_backend_options(tmp_path):
    """--option KEY=VALUE reaches the C backend (here: a conv taken by Winograd, then not);
    unknown keys and values are one clear error listing what is accepted."""
    rng = np.random.default_rng(5)
    src = "\n".join(
        [
            "graph @c [n in 1..2] {",
            "  %x = input() {index=0} : f32[n, 4, 10, 30]",
            '  %w = param() {key="w"} : f32[6, 4, 3, 3]',
            "  %0 = conv(%x, %w) {stride=[1, 1], padding=[1, 1, 1, 1], dilation=[1, 1], groups=1}"
            " : f32[n, 6, 10, 30]",
            "  return %0",
            "}",
        ]
    )
    (tmp_path / "c.lmc").write_text(src + "\n")
    np.savez(tmp_path / "w.npz", w=rng.standard_normal((6, 4, 3, 3)).astype(np.float32))
    common = (tmp_path / "c.lmc", "--weights", tmp_path / "w.npz", "-q")
    for algo in ("winograd", "gemm"):
        out = tmp_path / algo
        code, _, err = build(*common, "-o", out, "--option", f"conv_algorithm={algo}")
        assert code == 0, err
        assert ('algo="winograd"' in (out / "model.lmc").read_text()) == (algo == "winograd")
    code, _, err = build(*common, "-o", tmp_path / "x", "--option", "conv_algorithm=fast")
    assert code == 1 and "expected one of auto|gemm|winograd" in one_error(err)
    code, _, err = build(*common, "-o", tmp_path / "x", "--option", "speed=11")
    assert code == 1 and "conv_algorithm=auto|gemm|winograd" in one_error(err)
