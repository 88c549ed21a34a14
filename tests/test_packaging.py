"""The wheel installs into a fresh venv (no system site-packages) and works from there.

Builds the wheel with the dev venv's pip, installs it with its runtime dependencies from a
local wheelhouse (`.cache/wheelhouse`, filled once by `pip download` of the pins in
requirements/run.txt), then imports lmc and runs the `lmc` script with the cwd outside the
repo, so nothing can come from the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
CORE_DEPS = ("numpy", "sympy", "networkx", "jinja2")
NOT_PACKAGED = ("tests", "benchmarks", "examples", "scripts", "docs", "requirements")
NOT_SOURCES = (
    ".venv",
    ".git",
    ".cache",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
)

pytestmark = pytest.mark.slow


def pinned_core_deps() -> list[str]:
    """`name==version` for lmc's runtime dependencies, as requirements/run.txt pins them."""
    pins = {}
    for line in (ROOT / "requirements" / "run.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(0)
    missing = [d for d in CORE_DEPS if d not in pins]
    assert not missing, f"requirements/run.txt does not pin {missing}"
    return [pins[d] for d in CORE_DEPS]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def pip(*args: str, cwd: Path) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    r = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def fill_wheelhouse(pins: list[str], cwd: Path) -> None:
    have = {p.name.split("-")[0].lower() for p in WHEELHOUSE.glob("*.whl")}
    if all(pin.split("==")[0].lower() in have for pin in pins):
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    pip("download", "--only-binary=:all:", "--dest", str(WHEELHOUSE), *pins, cwd=cwd)


def expected_package_files(src: Path) -> list[str]:
    """Files the installed package must hold: every template, runtime C source/header and
    Python module (pyproject lists packages explicitly: a new subpackage must be added)."""
    files = [p.relative_to(src) for p in src.rglob("*") if p.is_file()]
    out = [f.as_posix() for f in files if f.parts[0] == "templates"]
    out += [f.as_posix() for f in files if f.parts[0] == "runtime" and f.suffix in (".c", ".h")]
    out += [f.as_posix() for f in files if f.suffix == ".py" and f.parts[0] not in NOT_PACKAGED]
    assert "templates/README.md" in out and "ir/graph.py" in out
    return [*out, "py.typed"]


def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    pins = pinned_core_deps()
    fill_wheelhouse(pins, tmp_path)
    # Build from a copy: an in-tree build leaves build/ behind, whose stale modules a later
    # wheel would pick up.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    expected = expected_package_files(src)
    dist = tmp_path / "dist"
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src), cwd=tmp_path)
    (wheel,) = dist.glob("lmc-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    stray = [n for n in names if not n.startswith(("lmc/", "lmc-"))]
    assert not stray, f"files outside the lmc package in the wheel: {stray[:10]}"
    assert not [n for n in names if n.startswith(("lmc/tests/", "lmc/.venv/"))]

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    pip(
        "--python",
        str(py),
        "install",
        "--no-index",
        "--find-links",
        str(WHEELHOUSE),
        str(wheel),
        *pins,
        cwd=tmp_path,
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = (
        "import json, pathlib, sys, lmc\n"
        "pkg = pathlib.Path(lmc.__file__).parent\n"
        "files = sorted(str(p.relative_to(pkg)) for p in pkg.rglob('*') if p.is_file())\n"
        "print(json.dumps({'file': lmc.__file__, 'version': lmc.__version__, 'files': files,\n"
        "                  'no_user_site': not any('site-packages' in p and\n"
        "                       not p.startswith(sys.prefix) for p in sys.path)}))\n"
    )
    r = subprocess.run(
        [str(py), "-c", probe], cwd=work, env=clean_env(), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert Path(info["file"]).resolve().is_relative_to(env_dir.resolve()), info["file"]
    assert info["no_user_site"]

    missing = sorted(set(expected) - set(info["files"]))
    assert not missing, f"missing from the installed wheel (see pyproject.toml): {missing}"

    lmc_exe = env_dir / "bin" / "lmc"
    r = subprocess.run(
        [str(lmc_exe), "--version"], cwd=work, env=clean_env(), capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.strip() == f"lmc {info['version']}", r.stderr

    case = ROOT / "tests" / "cases" / "source.lmc"
    r = subprocess.run(
        [str(lmc_exe), "ir", str(case)], cwd=work, env=clean_env(), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == case.read_text()
    r = subprocess.run(
        [str(lmc_exe), "ir", str(case), "--passes", "default"],
        cwd=work,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.startswith("graph @source"), r.stderr
