"""arm64 artifacts as a user sees them: the folder (aarch64 static and shared libraries, the
static harness, README with the Android / iOS lines, deterministic bytes), `make` in src/
rebuilding it with the cross compiler, `lmc.load(dir)` running it under qemu-aarch64 (by
position, by name, several input sets in one process), `lmc.compile(..., target="arm64")`
with `.save()`, the Python and C-runtime input errors, and the missing-tool errors that name
the Debian package to install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lmc.backends.c.build import build_artifact
from lmc.backends.c.toolchain import ToolchainError
from lmc.ir import DType
from lmc.ir.errors import LmcError
from lmc.runtime.arm64 import Arm64Runner, read_tensor, write_tensor
from lmc.runtime.errors import ArtifactError, DigestError, InputError
from lmc.runtime.host import DTYPE_CODES, c_storage
from lmc.runtime.loader import load

from tests.backends.arm64.arm64build import build, needs_arm64, object_cache, runner
from tests.backends.c.hostbuild import CASES, case_graph

LINALG = next(p for p in CASES if p.stem == "linalg")
SOURCE = next(p for p in CASES if p.stem == "source")
EM_AARCH64 = 183  # ELF e_machine


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


def _x(rows: int = 3) -> np.ndarray:
    return np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)


@needs_arm64
def test_artifact_folder():
    out = build(case_graph(SOURCE))
    lib = out / "lib"
    assert elf_machine(lib / "liblmc_model.so") == EM_AARCH64
    assert elf_machine(out / "bin" / "lmc_harness") == EM_AARCH64
    assert b"ld-linux" not in (out / "bin" / "lmc_harness").read_bytes()[:4096], "not static"
    ar = subprocess.run(["aarch64-linux-gnu-ar", "t", str(lib / "liblmc_model.a")],
                        capture_output=True, text=True, check=True)  # fmt: skip
    objs = set(ar.stdout.split())
    assert {"model.o", "lmc_runtime.o", "lmc_threads.o", "lmc_digest.o"} <= objs
    # only the kernel sources the model links: no convolution or quantized kernels here
    assert not objs & {"lmc_conv.o", "lmc_quant.o", "lmc_w8a8.o", "lmc_int8.o"}, objs
    assert (out / "include" / "lmc_model.h").is_file()
    readme = (out / "README.md").read_text()
    for needle in ("CMAKE_TOOLCHAIN_FILE", "arm64-v8a", "Xcode", "xcrun -sdk iphoneos",
                   "-march=armv8-a", "-DLMC_NEON", "lmc_model_load"):  # fmt: skip
        assert needle in readme, needle
    m = load(out)
    assert m.manifest["harness"] == "bin/lmc_harness" and m.target == "arm64"


@needs_arm64
def test_dotprod_readme_and_flags():
    out = build(case_graph(SOURCE), "arm64+dotprod")
    readme = (out / "README.md").read_text()
    assert "-march=armv8.2-a+dotprod" in readme and "-DLMC_DOTPROD" in readme
    assert "-march=armv8.2-a+dotprod" in load(out).manifest["build"]["cflags"]


@needs_arm64
def test_identical_inputs_give_identical_artifacts(tmp_path):
    g = case_graph(SOURCE)
    for d in ("a", "b"):
        build_artifact(g, "arm64", tmp_path / d, cache_dir=object_cache())

    def files(d: Path) -> dict[str, bytes]:
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a == b, [k for k in a if a.get(k) != b.get(k)]


@needs_arm64
@pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
def test_make_rebuilds_libraries_and_harness(tmp_path):
    art = tmp_path / "art"
    shutil.copytree(build(case_graph(SOURCE)), art)
    shutil.rmtree(art / "lib")
    shutil.rmtree(art / "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "AR", "CFLAGS")}
    r = subprocess.run(["make", "-s", "-j2", "-C", str(art / "src")], capture_output=True,
                       text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert elf_machine(art / "lib" / "liblmc_model.so") == EM_AARCH64
    assert (art / "lib" / "liblmc_model.a").is_file()
    got = load(art).run([_x()])
    want = load(build(case_graph(SOURCE))).run([_x()])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@needs_arm64
def test_load_runs_by_position_name_and_batch():
    out = build(case_graph(SOURCE))
    m = load(out)
    assert isinstance(m.runner, Arm64Runner) and m.runner.cpu == "cortex-a53"
    y, shape = m(_x())
    w = load(out).run({"x": _x()})
    np.testing.assert_array_equal(y, w[0])
    np.testing.assert_array_equal(shape, np.array([3, 7]))
    outs = m.runner.run_many([[_x(1)], [_x(5)], {"x": _x(2)}])
    assert [o[0].shape for o in outs] == [(1, 4), (5, 4), (2, 4)]
    assert [o[1].tolist() for o in outs] == [[1, 3], [5, 11], [2, 5]]
    one, two = runner(out, threads=1).run([_x(9)]), runner(out, threads=2).run([_x(9)])
    np.testing.assert_array_equal(one[0], two[0])


@needs_arm64
def test_input_errors_from_python_and_from_the_c_runtime():
    m = load(build(case_graph(SOURCE)))
    with pytest.raises(InputError, match="'x'.*dtype float64"):
        m.run([_x().astype(np.float64)])
    with pytest.raises(InputError, match="'x' axis 1: expected 4, got 5"):
        m.run([np.zeros((2, 5), np.float32)])
    with pytest.raises(InputError, match="missing input"):
        m.run({})
    # the C runtime's own checks, reported through the harness's exit status and stderr
    with pytest.raises(InputError) as e:
        m.runner.run([_x().astype(np.float64)], check=False)
    assert "dtype" in str(e.value) and "job" not in str(e.value)
    with pytest.raises(InputError, match="s0"):
        m.run([np.zeros((33, 4), np.float32)])  # s0 in 1..32


@needs_arm64
def test_corrupt_weights_are_refused(tmp_path):
    art = tmp_path / "art"
    shutil.copytree(build(case_graph(SOURCE)), art)
    w = art / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(DigestError):
        load(art).run([_x()])


@needs_arm64
def test_compile_and_save(tmp_path):
    torch = pytest.importorskip("torch")
    import lmc

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.LayerNorm(5))
    x = torch.randn(3, 6)
    model = lmc.compile(net, (x,), target="arm64")
    assert model.target == "arm64"
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-5)
    saved = model.save(tmp_path / "saved")
    np.testing.assert_allclose(load(saved)(x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_lmct_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for dt in DType:
        a = rng.integers(0, 2, (2, 3)).astype(c_storage(dt))
        write_tensor(tmp_path / "t.lmct", a, DTYPE_CODES[dt])
        got_dt, got = read_tensor(tmp_path / "t.lmct")
        assert got_dt == dt and got.dtype == a.dtype
        np.testing.assert_array_equal(got, a)
    write_tensor(tmp_path / "s.lmct", np.array(2.5, np.float32), DTYPE_CODES[DType.f32])
    assert read_tensor(tmp_path / "s.lmct")[1].shape == ()
    (tmp_path / "bad.lmct").write_bytes(b"LMCT\x01\x00\x00\x00")
    with pytest.raises(ArtifactError, match="not an LMCT"):
        read_tensor(tmp_path / "bad.lmct")


def _path_with(tmp_path: Path, tools: list[str]) -> str:
    """A PATH holding only links to `tools` (those that exist here)."""
    d = tmp_path / "bin"
    d.mkdir()
    for t in tools:
        if shutil.which(t):
            (d / t).symlink_to(shutil.which(t))
    return str(d)


def test_missing_cross_compiler_names_the_package(tmp_path, monkeypatch):
    g = case_graph(SOURCE)
    monkeypatch.setenv("PATH", _path_with(tmp_path, ["cc", "qemu-aarch64"]))
    with pytest.raises(ToolchainError) as e:
        build_artifact(g, "arm64", tmp_path / "a")
    msg = str(e.value)
    assert "aarch64-linux-gnu-gcc" in msg and "apt-get install gcc-aarch64-linux-gnu" in msg
    assert "libc6-dev-arm64-cross" in msg and "qemu-user" in msg
    assert not (tmp_path / "a").exists(), "a failed build leaves no folder behind"


@needs_arm64
def test_missing_qemu_names_the_package(tmp_path, monkeypatch):
    out = build(case_graph(SOURCE))
    monkeypatch.setenv("PATH", _path_with(tmp_path, ["aarch64-linux-gnu-gcc", "cc"]))
    with pytest.raises(ArtifactError, match="apt-get install qemu-user"):
        load(out)
    torch = pytest.importorskip("torch")
    import lmc

    with pytest.raises(LmcError, match="qemu-aarch64.*apt-get install qemu-user"):
        lmc.compile(torch.nn.Linear(2, 2), (torch.randn(1, 2),), target="arm64")


@needs_arm64
def test_scalar_inputs_keep_rank_zero():
    from lmc.ir import Graph, TensorType, sym
    from lmc.ir.ops.elementwise import Add

    g = Graph("scalar", {"s0": (1, 8)})
    x = g.input("x", TensorType(DType.f32, ()))
    y = g.input("y", TensorType(DType.f32, (sym("s0"),)))
    g.set_outputs([g.apply(Add(), x, y)])
    (got,) = load(build(g)).run([np.float32(2.0), np.arange(3, dtype=np.float32)])
    np.testing.assert_array_equal(got, [2.0, 3.0, 4.0])
