"""Session fixtures: the model_add artifact folders, built once (tests that change one copy it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .cbuild import CC, build_add_artifact


@pytest.fixture(scope="session")
def add_artifact(tmp_path_factory) -> Path:
    if CC is None:
        pytest.skip("no C compiler (cc) on PATH")
    return build_add_artifact(tmp_path_factory.mktemp("artifacts") / "model_add")


@pytest.fixture(scope="session")
def add_expr_artifact(tmp_path_factory) -> Path:
    if CC is None:
        pytest.skip("no C compiler (cc) on PATH")
    return build_add_artifact(tmp_path_factory.mktemp("artifacts") / "model_add_expr", y_expr=True)


@pytest.fixture
def artifact_copy(add_artifact, tmp_path) -> Path:
    """A private copy of the model_add artifact, free to damage."""
    dest = tmp_path / "copy"
    shutil.copytree(add_artifact, dest)
    return dest
