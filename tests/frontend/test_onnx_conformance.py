"""ONNX's backend node-test suite, run by ONNX's own runner through `lmc.frontend.onnx_backend`.

Every node test of the pinned onnx is a test here (CPU only). Tests listed in
`onnx_expected_failures.txt` are expected failures: one that starts passing fails the run
("unexpected success"), and so does an unlisted test that fails. The data comes from
scripts/onnx_node_data.py (generated into .cache/ on first use). Pass rates:
`python scripts/onnx_conformance.py`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the ONNX frontend needs onnx (requirements/run.txt)")

from lmc.frontend.onnx_backend import node_test_runner, read_expected_failures  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FILE = Path(__file__).with_name("onnx_expected_failures.txt")


def _node_data_dir() -> Path:
    spec = importlib.util.spec_from_file_location(
        "onnx_node_data", ROOT / "scripts" / "onnx_node_data.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.generate()


DATA_DIR = _node_data_dir()
EXPECTED = read_expected_failures(EXPECTED_FILE)

_backend_test = node_test_runner(DATA_DIR, EXPECTED, parent_module=__name__)
globals().update(_backend_test.test_cases)


def test_expected_failures_name_real_tests() -> None:
    """A stale entry (a test onnx no longer has) would hide nothing but rot the list."""
    present = {p.name for p in (DATA_DIR / "node").iterdir()}
    stale = sorted(set(EXPECTED) - present)
    assert not stale, f"onnx_expected_failures.txt names tests onnx does not have: {stale}"


def test_every_node_test_is_collected() -> None:
    """Nothing is skipped silently: the runner holds one CPU test per generated case."""
    names = set()
    for case in _backend_test.test_cases.values():
        names |= {n.removesuffix("_cpu") for n in dir(case) if n.startswith("test_")}
    present = {p.name for p in (DATA_DIR / "node").iterdir() if (p / "model.onnx").exists()}
    assert present <= names, sorted(present - names)[:10]
