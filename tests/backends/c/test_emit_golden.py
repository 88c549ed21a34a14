"""Emitted-code goldens: the C a refactor must not change (refresh with --update-golden). Built
with compile=False, so they need no compiler."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmc.backends.c.build import build_artifact

from .hostbuild import CASES, case_graph
from .test_fusion import _mlp

GOLDEN = Path(__file__).resolve().parent / "golden"
GRAPHS = {"source": lambda: case_graph(next(p for p in CASES if p.stem == "source")), "mlp": _mlp}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_emitted_module_matches_golden(name, tmp_path, request):
    out = build_artifact(GRAPHS[name](), "host", tmp_path / name, compile=False).directory
    code = (out / "src" / "model.c").read_text(encoding="utf-8")
    path = GOLDEN / f"{name}.c"
    if request.config.getoption("--update-golden"):
        path.write_text(code, encoding="utf-8")
        return
    assert path.is_file(), f"no golden {path.name}: run pytest --update-golden"
    assert code == path.read_text(encoding="utf-8"), f"{path.name} changed (--update-golden)"
    assert not (out / "lib").exists(), "compile=False builds sources only"
