"""Building C artifacts: byte-identical output for identical inputs, `make` in src/ rebuilding
the libraries without Python, clear errors for a missing compiler and for compile errors, the
output-folder policy, the manifest and progress messages."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.c import cexpr
from lmc.backends.c.build import build_artifact
from lmc.backends.c.toolchain import ToolchainError
from lmc.ir import OPS
from lmc.runtime.artifact import digest64, read_manifest, read_weights
from lmc.runtime.errors import ArtifactError

from .hostbuild import CASES, case_graph, check_host, needs_cc, object_cache, runner

LINALG = next(p for p in CASES if p.stem == "linalg")
SOURCE = next(p for p in CASES if p.stem == "source")


def _files(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@needs_cc
def test_identical_inputs_give_identical_artifacts(tmp_path):
    g = case_graph(LINALG)
    build_artifact(g, "host", tmp_path / "a", cache_dir=object_cache())
    build_artifact(g, "host", tmp_path / "b")  # no object cache: everything compiled afresh
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b, [k for k in a if a.get(k) != b.get(k)]
    assert {
        "manifest.json",
        "weights.safetensors",
        "model.lmc",
        "src/model.c",
        "src/Makefile",
        "lib/liblmc_model.so",
        "lib/liblmc_model.a",
        "include/lmc_model.h",
    } <= set(a)


@needs_cc
@pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
def test_make_rebuilds_the_library_without_python(tmp_path):
    g = case_graph(SOURCE)
    out = check_host(g, label="source")
    art = tmp_path / "art"
    shutil.copytree(out, art)
    shutil.rmtree(art / "lib")
    r = subprocess.run(["make", "-s", "-C", str(art / "src")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (art / "lib" / "liblmc_model.so").is_file()
    assert (art / "lib" / "liblmc_model.a").is_file()
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    want = runner(out).run([x])
    got = runner(art).run([x])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@needs_cc
@pytest.mark.parametrize(
    "case,kernels",
    [
        ("source", set()),
        ("linalg", {"lmc_gemm.c"}),
        ("conv", {"lmc_conv.c", "lmc_gemm.c"}),
        ("pool", {"lmc_pool.c"}),
        ("quant", {"lmc_quant.c", "lmc_w8a8.c", "lmc_w4a8.c", "lmc_int8.c"}),
    ],
)
def test_artifact_compiles_only_the_kernel_sources_it_links(case, kernels):
    """src/ and its Makefile hold the runtime and the kernel sources the model's code reaches
    (the library is linked with --no-undefined, so a missing one would not build)."""
    out = check_host(case_graph(next(p for p in CASES if p.stem == case)), label=case)
    runtime = {"lmc_runtime.c", "lmc_threads.c", "lmc_digest.c"}
    c_files = {p.name for p in (out / "src").glob("*.c")}
    quant = {"lmc_quant.c", "lmc_w8a8.c", "lmc_w4a8.c", "lmc_int8.c"}
    assert runtime | kernels | {"model.c"} <= c_files
    assert not (c_files - runtime - {"model.c", "lmc_gemm.c"} - kernels), c_files
    if not kernels & quant:
        assert not c_files & quant
    srcs = next(ln for ln in (out / "src" / "Makefile").read_text().splitlines()
                if ln.startswith("SRCS = "))  # fmt: skip
    assert set(srcs.split()[2:]) == c_files


def test_missing_compiler_says_what_to_install(tmp_path, monkeypatch):
    g = case_graph(SOURCE)
    with pytest.raises(ToolchainError, match="not found.*install"):
        build_artifact(g, "host", tmp_path / "a", cc="/nonexistent/bin/cc-bogus")
    monkeypatch.setenv("CC", "lmc-no-such-compiler")
    with pytest.raises(ToolchainError, match="lmc-no-such-compiler"):
        build_artifact(g, "host", tmp_path / "b")
    assert not (tmp_path / "b").exists(), "a failed build leaves no folder behind"


@needs_cc
def test_compile_error_quotes_the_generated_line(tmp_path, monkeypatch):
    from lmc.ir import DType, Graph, TensorType, sym

    monkeypatch.setitem(cexpr.C_EXPR, OPS["neg"], {"*": "({a} +* oops)"})
    g = Graph("broken", {"s0": (1, 4)})
    x = g.input("x", TensorType(DType.f32, [sym("s0")]))
    g.set_outputs([g.apply(OPS["neg"](), x)])
    with pytest.raises(ToolchainError) as e:
        build_artifact(g, "host", tmp_path / "broken")
    msg = str(e.value)
    assert "model.c:" in msg and "error:" in msg
    assert "oops" in msg, "the offending source line is quoted"
    assert not (tmp_path / "broken").exists()


@needs_cc
def test_output_folder_policy(tmp_path):
    g = case_graph(SOURCE)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not an lmc artifact"):
        build_artifact(g, "host", other, cache_dir=object_cache())
    assert (other / "notes.txt").read_text() == "mine"
    out = tmp_path / "art"
    build_artifact(g, "host", out, cache_dir=object_cache())
    with pytest.raises(ArtifactError, match="force=True"):
        build_artifact(g, "host", out, cache_dir=object_cache())
    build_artifact(g, "host", out, force=True, cache_dir=object_cache())
    assert read_manifest(out)["target"].startswith("host")


@needs_cc
def test_manifest_weights_and_progress(tmp_path):
    g = case_graph(LINALG)
    g.weights["unused"] = np.zeros(3, np.float32)
    msgs: list[str] = []
    out = build_artifact(
        g, "host", tmp_path / "a", progress=msgs.append, cache_dir=object_cache()
    ).directory
    m = read_manifest(out)
    assert [i["name"] for i in m["inputs"]] == ["x", "w", "b", "a", "c", "v"]
    assert m["inputs"][0]["shape"] == ["s0", 8] and m["symbols"]["s0"] == [2, 64]
    assert m["passes"]["stats"]["legalize"]["einsum_to_matmul"] == 1
    plan = m["build"]["memory_plan"]
    assert plan["arena_bytes"] >= 0 and plan["table"][0].startswith("memory plan")
    w = read_weights(out / "weights.safetensors")
    assert m["weights"]["digest64"] == f"0x{digest64(w.data):016x}"
    assert m["compiler"] and "-O3" in m["build"]["cflags"]
    assert any(s.startswith("compiling model.c") for s in msgs) or any("link" in s for s in msgs)
    assert msgs[-1].startswith("done")


@needs_cc
def test_packed_gemm_weights_are_recorded(tmp_path):
    from lmc.ir import DType, Graph, TensorType, sym

    g = Graph("packed", {"s0": (1, 8)})
    x = g.input("x", TensorType(DType.f32, [sym("s0"), 4]))
    w = g.param("fc.weight", np.arange(24, dtype=np.float32).reshape(6, 4) / 10)
    g.set_outputs([g.apply(OPS["linear"](), x, w)])
    out = check_host(g, label="packed")
    wf = read_weights(out / "weights.safetensors")
    assert wf.keys() == ["fc.weight#gemm"]
    assert wf.entries["fc.weight#gemm"].layout == "lmc.gemm.panel16.v1"


@needs_cc
def test_one_param_read_raw_and_in_both_packed_forms():
    from lmc.ir import DType, Graph, TensorType, sym

    g = Graph("tied", {"s0": (1, 8)})
    x = g.input("x", TensorType(DType.f32, [sym("s0"), 5]))
    ids = g.input("ids", TensorType(DType.i64, [sym("s0")]))
    w = g.param("tied", np.arange(25, dtype=np.float32).reshape(5, 5) / 7)  # ids <= 4
    g.set_outputs(
        [
            g.apply(OPS["linear"](), x, w),
            g.apply(OPS["matmul"](), x, w),
            g.apply(OPS["embedding"](), w, ids),
        ]
    )
    out = check_host(g, label="tied")
    keys = read_weights(out / "weights.safetensors").keys()
    assert sorted(keys) == ["tied", "tied#gemm", "tied#gemm_t"]
