"""Helpers for pass tests: golden Before/Expected case files and interpretation equivalence.

A golden case (`tests/passes/cases/*.lmc`) is a `// RUN: <pipeline spec>` line, optionally
`// OPTIONS: key=value, ...`, a Before graph, a line `// EXPECTED` and the Expected graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lmc.ir import parse_ir, print_graph, run
from lmc.ir.errors import InterpreterError
from lmc.ir.graph import Graph
from lmc.ir.ops.source import Param
from lmc.ir.shapes import shape_is_static
from lmc.passes import PassContext, Pipeline

from tests.util import assert_close, random_array, random_inputs, symbol_values

TESTS = Path(__file__).resolve().parents[1]
GOLDEN_DIR = TESTS / "passes" / "cases"
OP_CASES_DIR = TESTS / "cases"
EXPECTED_MARK = "// EXPECTED\n"
# Exact passes may not reassociate, so results must agree to rounding noise only.
EXACT_TOLERANCE = (1e-6, 1e-7)


@dataclass
class GoldenCase:
    path: Path
    spec: str
    options: dict[str, object]
    before: str  # header lines and Before graph, as written
    expected: str

    def graph(self) -> Graph:
        """The Before graph, with seeded random weights for its params (fold_params reads
        them; integer params keep the printed folds short)."""
        g = with_random_weights(parse_ir(self.before))
        assert g is not None, f"{self.path.name}: params need static shapes"
        return g

    def run(self) -> tuple[Graph, PassContext]:
        ctx = PassContext(options=dict(self.options), check_props=True)
        return Pipeline.from_spec(self.spec).run(self.graph(), ctx), ctx

    def write_expected(self, text: str) -> None:
        self.path.write_text(self.before + EXPECTED_MARK + text)


def golden_paths(prefix: str = "") -> list[Path]:
    return sorted(GOLDEN_DIR.glob(f"{prefix}*.lmc"))


def load_golden(path: Path) -> GoldenCase:
    text = path.read_text()
    before, sep, expected = text.partition(EXPECTED_MARK)
    assert sep, f"{path.name}: no '// EXPECTED' line"
    m = re.search(r"^// RUN: *(.+)$", before, re.M)
    assert m, f"{path.name}: no '// RUN: passes' line"
    options: dict[str, object] = {}
    o = re.search(r"^// OPTIONS: *(.+)$", before, re.M)
    for item in o.group(1).split(",") if o else []:
        key, _, value = item.strip().partition("=")
        options[key] = {"true": True, "false": False}.get(value, value)
    return GoldenCase(path, m.group(1).strip(), options, before, expected)


def check_golden(path: Path, update: bool) -> None:
    case = load_golden(path)
    out, _ = case.run()
    text = print_graph(out)
    if update:
        case.write_expected(text)
        return
    assert text == case.expected, (
        f"{path.name}: output differs from Expected\n--- got:\n{text}--- expected:\n{case.expected}"
    )
    assert print_graph(parse_ir(case.expected)) == case.expected, "Expected is not canonical"


def all_case_graphs() -> list[tuple[str, str]]:
    """(label, Before text) of every op case file and every golden case."""
    out = [(f"cases/{p.name}", p.read_text()) for p in sorted(OP_CASES_DIR.glob("*.lmc"))]
    out += [(f"passes/{p.name}", load_golden(p).before) for p in golden_paths()]
    return out


def with_random_weights(g: Graph, seed: int = 0) -> Graph | None:
    """Store random arrays for params missing from the weights store (None: symbolic param)."""
    rng = np.random.default_rng(seed)
    for n in g.nodes:
        if isinstance(n.op, Param) and n.op.key not in g.weights:
            t = n.outputs[0].type
            if not shape_is_static(t.shape):
                return None
            g.weights[n.op.key] = random_array(tuple(t.shape), t.dtype, rng)
    return g


def reference_runs(g: Graph, n_envs: int = 2) -> list[tuple[dict, list, list]] | None:
    """[(env, inputs, outputs)] at the first `n_envs` symbol bindings; None if the graph
    cannot be interpreted on random inputs (e.g. random indices out of range)."""
    runs = []
    for env in symbol_values(g)[:n_envs]:
        inputs = random_inputs(g, env, seed=len(runs))
        # Integer inputs are often indices: retry with them made non-negative (0..4).
        for attempt in (inputs, [np.abs(a) if a.dtype.kind == "i" else a for a in inputs]):
            try:
                runs.append((env, attempt, run(g, attempt)))
                break
            except InterpreterError:
                continue
        else:
            return None
    return runs


def assert_equivalent(
    after: Graph,
    runs: list[tuple[dict, list, list]],
    tolerance: tuple[float, float] | None,
    label: str,
) -> None:
    rtol, atol = tolerance or EXACT_TOLERANCE
    for env, inputs, want in runs:
        got = run(after, inputs)
        assert len(got) == len(want), f"{label}: {len(got)} outputs, want {len(want)}"
        for i, (a, b) in enumerate(zip(got, want)):
            assert a.dtype == b.dtype, f"{label} output {i}: dtype {a.dtype} vs {b.dtype}"
            assert_close(a, b, rtol, atol, name=f"{label} output {i} at {env}")
