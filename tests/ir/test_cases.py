"""Every `.lmc` case (tests/cases, examples): canonical text, CLI output, interpretation; and
the registry: every op has a case file and a docstring, and follows the naming rule."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from lmc.cli import main
from lmc.ir import OPS, parse_ir, print_graph, run, verify
from lmc.ir.graph import Graph
from lmc.ir.ops.source import Param

from tests.util import random_array, random_inputs, symbol_values

ROOT = Path(__file__).resolve().parents[2]
CASES = sorted((ROOT / "tests" / "cases").glob("*.lmc"))
EXAMPLES = sorted((ROOT / "examples").glob("*.lmc"))
ALL = CASES + EXAMPLES


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


def canonical_text(path: Path) -> str:
    """The file's text without leading `//` comment lines (examples open with a comment)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    while lines and lines[0].startswith("//"):
        lines.pop(0)
    return "".join(lines)


def random_weights(g: Graph, env: dict[str, int], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        n.op.key: random_array(n.out.type.concrete(env), n.out.type.dtype, rng)
        for n in g.nodes
        if isinstance(n.op, Param)
    }


def test_there_are_cases():
    assert CASES, "tests/cases/*.lmc is empty"


@pytest.mark.parametrize("path", CASES, ids=_id)
def test_case_file_is_canonical(path):
    text = path.read_text(encoding="utf-8")
    g = parse_ir(text)
    verify(g)
    assert print_graph(g) == text, f"{path.name} is not in canonical printed form"


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_cli_prints_the_case(path, capsys):
    assert main(["ir", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == canonical_text(path)
    assert err == ""


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_case_interprets_at_several_symbol_values(path):
    g = parse_ir(path.read_text(encoding="utf-8"))
    assert g.symbols, f"{path.name}: a case should use a symbolic dim"
    envs = symbol_values(g)
    assert len(envs) >= 2, f"{path.name}: symbol bounds leave fewer than two values to test"
    for env in envs:
        # Integer inputs are index-like (gather, embedding): keep them non-negative.
        ins = [np.abs(a) if a.dtype.kind == "i" else a for a in random_inputs(g, env)]
        outs = run(g, ins, random_weights(g, env))
        assert len(outs) == len(g.outputs)


def _ops_in_cases() -> set[str]:
    used: set[str] = set()
    for path in CASES:
        used |= {n.op.name for n in parse_ir(path.read_text(encoding="utf-8")).nodes}
    return used


def test_every_op_appears_in_a_case():
    missing = sorted(set(OPS) - _ops_in_cases())
    assert not missing, f"ops without a tests/cases/*.lmc case: {missing}"


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_has_docstring_and_canonical_names(name):
    cls = OPS[name]
    doc = (cls.__doc__ or "").strip()
    assert doc and not doc.startswith(cls.__name__ + "("), f"{name}: no docstring"
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name), f"{name}: not lower snake case"
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    assert cls.__name__ == camel, f"op {name!r}: class {cls.__name__}, expected {camel}"
