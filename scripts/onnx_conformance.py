"""ONNX node-test conformance of lmc: run every node test through lmc's ONNX backend with
ONNX's own runner and print the pass rates (common ops / all tests).

    python scripts/onnx_conformance.py                  # the numbers, per-op failures
    python scripts/onnx_conformance.py -k test_resize    # a subset (substring of the name)
    python scripts/onnx_conformance.py --write-expected  # rewrite the expected-failure list

A test's op is the op_type of its model's single node; an `_expanded` test (a function body
of many nodes) counts for the op of the test it expands. The common set is the op list of
the ONNX frontend issue (`COMMON_OPS`).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import time
import unittest
import warnings
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "tests" / "frontend" / "onnx_expected_failures.txt"

COMMON_OPS = frozenset(
    """
Add MatMul Mul Reshape Transpose Slice Softmax Concat Shape Unsqueeze Gather Cast Expand Constant
Where Div Pow Sigmoid Sqrt Conv Gemm LayerNormalization ReduceMean Cos Equal Gelu Identity IsNaN
Sin Squeeze Range ConstantOfShape Reciprocal Sub Neg And CumSum Erf GatherND LessOrEqual Max Not
Split Tanh Einsum Flatten GlobalAveragePool Resize Greater GreaterOrEqual InstanceNormalization
Pad Relu Abs Clip GatherElements Less Log MaxPool Min Mod ReduceSum ScatterElements Tile TopK
Trilu BatchNormalization AveragePool ConvTranspose HardSigmoid HardSwish LeakyRelu PRelu Softplus
Exp LogSoftmax ReduceMax ReduceL2 ArgMax ScatterND Or Floor DepthToSpace
""".split()
)


def _load_data_script():
    spec = importlib.util.spec_from_file_location(
        "onnx_node_data", ROOT / "scripts" / "onnx_node_data.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_ops(data_dir: Path) -> dict[str, str]:
    """Test name -> the op it tests (see the module docstring)."""
    import onnx

    single: dict[str, str] = {}
    multi: list[str] = []
    for case in sorted((data_dir / "node").iterdir()):
        m = onnx.load(str(case / "model.onnx"), load_external_data=False)
        if len(m.graph.node) == 1:
            single[case.name] = m.graph.node[0].op_type
        else:
            multi.append(case.name)
    out = dict(single)
    for name in multi:
        base = re.sub(r"_expanded.*$", "", name)
        out[name] = single.get(base, "?")
    return out


class _Collect(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.outcome: dict[str, tuple[bool, str]] = {}

    @staticmethod
    def _name(test: unittest.TestCase) -> str:
        return test.id().rsplit(".", 1)[-1].removesuffix("_cpu")

    def addSuccess(self, test):  # noqa: N802
        self.outcome[self._name(test)] = (True, "")

    def _fail(self, test, err) -> None:
        exc = err[1]
        text = f"{type(exc).__name__}: {exc}".strip()
        self.outcome[self._name(test)] = (False, text)

    addFailure = _fail  # noqa: N815
    addError = _fail  # noqa: N815

    def addSkip(self, test, reason):  # noqa: N802
        self.outcome[self._name(test)] = (False, f"skipped: {reason}")


def run_suite(data_dir: Path, include: list[str] | None = None) -> dict[str, tuple[bool, str]]:
    """Test name -> (passed, failure text) for every node test (or those in `include`)."""
    from lmc.frontend.onnx_backend import node_test_runner

    bt = node_test_runner(data_dir, include=include or ())
    suite = unittest.TestSuite()
    for case in bt.test_cases.values():
        for name in unittest.defaultTestLoader.getTestCaseNames(case):
            short = name.removesuffix("_cpu")
            if include is None or short in include:
                suite.addTest(case(name))
    result = _Collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite.run(result)
    return result.outcome


def short_reason(text: str) -> str:
    """One line saying why a test fails, for the expected-failure list."""
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    if not lines:
        return "failed"
    first = lines[0]
    if first.startswith(("UnsupportedOpsError", "NeedsConstantInputsError")) and len(lines) > 1:
        m = re.match(r"(.*?): \d+ node\(s\): .*", lines[1])
        return "unsupported: " + (m.group(1) if m else lines[1])[:150]
    if first.startswith("AssertionError") and len(lines) > 1:
        return "wrong result: " + " ".join(lines[:3])[15:140]
    return first[:160]


def rates(outcome: dict[str, tuple[bool, str]], ops: dict[str, str]) -> dict[str, tuple[int, int]]:
    common = [t for t in outcome if ops.get(t) in COMMON_OPS]
    return {
        "common": (sum(outcome[t][0] for t in common), len(common)),
        "all": (sum(ok for ok, _ in outcome.values()), len(outcome)),
    }


def write_expected(outcome: dict[str, tuple[bool, str]], ops: dict[str, str], path: Path) -> None:
    import onnx

    by_op: dict[str, list[str]] = defaultdict(list)
    for t, (ok, text) in sorted(outcome.items()):
        if not ok:
            by_op[ops.get(t, "?")].append(f"{t}  # {short_reason(text)}")
    lines = [
        f"# ONNX node tests that lmc's ONNX backend is expected to fail (onnx {onnx.__version__}).",
        "# tests/frontend/test_onnx_conformance.py fails when a test listed here passes or a",
        "# test not listed fails. Regenerate: python scripts/onnx_conformance.py --write-expected",
        "",
    ]
    for op in sorted(by_op):
        lines.append(f"## {op}")
        lines += by_op[op]
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", dest="pattern", default=None, help="run tests whose name contains this")
    p.add_argument("--data", type=Path, default=None, help="node test data folder")
    p.add_argument(
        "--write-expected",
        action="store_true",
        help=f"rewrite {EXPECTED.relative_to(ROOT)} from this run (full runs only)",
    )
    p.add_argument("--failures", action="store_true", help="print every failure's reason")
    args = p.parse_args(argv)
    data_dir = _load_data_script().generate(args.data)
    ops = test_ops(data_dir)
    include = sorted(t for t in ops if args.pattern in t) if args.pattern else None
    t0 = time.perf_counter()
    outcome = run_suite(data_dir, include)
    elapsed = time.perf_counter() - t0
    r = rates(outcome, ops)
    failed_ops = Counter(ops.get(t, "?") for t, (ok, _) in outcome.items() if not ok)
    if args.failures:
        for t, (ok, text) in sorted(outcome.items()):
            if not ok:
                print(f"{t}: {short_reason(text)}")
    print("failures by op: " + ", ".join(f"{op} {n}" for op, n in failed_ops.most_common()))
    for key, label in (("common", "common-op node tests"), ("all", "all node tests")):
        ok, n = r[key]
        print(f"{label}: {ok}/{n} pass ({100 * ok / max(n, 1):.1f}%)")
    print(f"ran {len(outcome)} tests in {elapsed:.1f} s")
    if args.write_expected:
        if include is not None:
            print("--write-expected needs a full run (no -k)", file=sys.stderr)
            return 2
        write_expected(outcome, ops, EXPECTED)
        print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
