"""The C runtime through C drivers: the whole API over model_add (plain, read() instead of mmap,
ASan + UBSan), the thread pool (pthreads, LMC_NO_THREADS, ASan + UBSan, TSan), warning-free
builds, and the code-size script (printed, not asserted)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from lmc.runtime import artifact as af

from .cbuild import (
    CC,
    INCLUDE,
    ROOT,
    RUNTIME_SRC,
    build_driver,
    cc,
    needs_cc,
    run,
    write_add_weights,
)
from .cbuild import sanitizer_flags_work as sanitizer_reason

pytestmark = needs_cc

ASAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
TSAN = ["-fsanitize=thread"]


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """The model_add weights and damaged copies: (good, truncated, tampered, missing, other)."""
    if CC is None:
        pytest.skip("no C compiler (cc) on PATH")
    d = tmp_path_factory.mktemp("weights")
    w = write_add_weights(d / "good.safetensors")
    raw = (d / "good.safetensors").read_bytes()
    (d / "truncated").write_bytes(raw[:100])
    tampered = bytearray(raw)
    tampered[-1] ^= 0x80
    (d / "tampered").write_bytes(bytes(tampered))
    shutil.copyfile(ROOT / "runtime" / "artifact.py", d / "other")
    paths = [str(d / n) for n in ("good.safetensors", "truncated", "tampered", "missing", "other")]
    return w.digest64, paths


def _check_driver(r: subprocess.CompletedProcess) -> None:
    print(r.stdout[-2000:])
    assert r.returncode == 0, f"driver failed (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert "FAIL" not in r.stdout and "0 failure(s)" in r.stdout
    assert "runtime error" not in r.stderr and "ERROR" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "flags",
    [["-O1"], ["-O2", "-DLMC_NO_MMAP"], ["-O2", "-DLMC_NO_THREADS"]],
    ids=["mmap", "read", "nothreads"],
)
def test_api_driver(tmp_path, weight_files, flags):
    digest, paths = weight_files
    exe = build_driver(tmp_path / "api", "api_driver.c", digest, flags)
    _check_driver(run(exe, *paths))


def test_api_driver_asan_ubsan(tmp_path, weight_files):
    reason = sanitizer_reason(ASAN, tmp_path)
    if reason:
        pytest.skip(reason)
    digest, paths = weight_files
    exe = build_driver(tmp_path / "api_asan", "api_driver.c", digest, ["-O1", "-g", *ASAN])
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    _check_driver(run(exe, *paths, env=env))


@pytest.mark.parametrize(
    "flags",
    [
        ["-O2"],
        ["-O2", "-DLMC_NO_THREADS"],
        ["-O1", "-g", *ASAN],
        ["-O1", "-g", *TSAN, "-DREPS=200"],
    ],
    ids=["pthreads", "nothreads", "asan_ubsan", "tsan"],
)
def test_threads_driver(tmp_path, flags):
    sanitizers = [f for f in flags if f.startswith("-fsanitize")]
    reason = sanitizer_reason(sanitizers, tmp_path) if sanitizers else None
    if reason:
        pytest.skip(reason)
    exe = build_driver(tmp_path / "threads", "threads_driver.c", None, flags, with_model=False)
    _check_driver(run(exe))


@pytest.mark.parametrize(
    "flags",
    [
        ["-std=c99", "-D_POSIX_C_SOURCE=200809L"],
        ["-std=c11"],
        ["-std=c11", "-DLMC_NO_THREADS"],
        ["-std=c11", "-DLMC_NO_MMAP"],
        ["-std=c11", "-Os", "-fvisibility=hidden"],
    ],
)
def test_runtime_compiles_without_warnings(tmp_path, flags):
    for src in RUNTIME_SRC:
        cc(
            [
                *flags,
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Wshadow",
                "-Wstrict-prototypes",
                "-Werror",
                f"-I{INCLUDE}",
                "-c",
                str(src),
                "-o",
                str(tmp_path / (src.stem + ".o")),
            ],
            src.name,
        )


def test_public_header_is_cxx_clean(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    src = tmp_path / "use.cpp"
    src.write_text(
        '#include "lmc_model.h"\nint main() { return lmc_num_inputs(nullptr) == -1 ? 0 : 1; }\n'
    )
    r = subprocess.run(
        [cxx, "-Wall", "-Werror", "-fsyntax-only", f"-I{INCLUDE}", str(src)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_library_exports_only_the_public_api(add_artifact):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm on PATH")
    r = subprocess.run(
        [nm, "-D", "--defined-only", str(add_artifact / af.LIBRARY)], capture_output=True, text=True
    )
    exported = {line.split()[-1] for line in r.stdout.splitlines() if " T " in line}
    assert exported and all(name.startswith("lmc_") for name in exported)
    assert "lmc_model_definition" not in exported and "lmc_parallel_for" not in exported
    assert "lmc_model_load" in exported and "lmc_run" in exported


def test_runtime_size_script():
    """Prints the runtime's -Os code size (the goal, < 16 KB .text, is reported, not tested)."""
    if shutil.which("size") is None:
        pytest.skip("no `size` (binutils) on PATH")
    r = subprocess.run(
        ["sh", str(ROOT / "scripts" / "runtime_size.sh")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    assert "runtime .text:" in r.stdout
