"""Generate ONNX's node test data (the models and .pb tensors its backend test runner reads).

The onnx wheel ships the node test *generators* but not their data. This script runs onnx's own
generator (`onnx.backend.test.case.node.collect_testcases()`) and writes every case with the
same layout as onnx's `backend-test-tools generate-data`:

    <out>/node/<test name>/model.onnx
    <out>/node/<test name>/test_data_set_<i>/input_<j>.pb, output_<j>.pb
    <out>/node/<test name>/data.json          (rtol/atol, only when the case overrides them)

Default output: `.cache/onnx-node-tests/<onnx version>-mldtypes<ml_dtypes version>/` under the
repository root (expected outputs of the narrow integer casts come from ml_dtypes, whose
out-of-range conversions changed between releases: 0.6 wraps, 0.7 gives 0). Work is skipped
when a complete cache for these versions is present (the `COMPLETE` stamp).

    python scripts/onnx_node_data.py [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RTOL, DEFAULT_ATOL = 1e-3, 1e-7  # what onnx's on-disk loader assumes without data.json
STAMP = "COMPLETE"


def default_dir() -> Path:
    import ml_dtypes
    import onnx

    versions = f"{onnx.__version__}-mldtypes{ml_dtypes.__version__}"
    return ROOT / ".cache" / "onnx-node-tests" / versions


def _write_value(path: Path, value, vinfo) -> None:
    """Serialize one input/output like onnx's generate-data (map/sequence/optional/tensor)."""
    from onnx import TensorProto, numpy_helper

    t = vinfo.type
    if t.HasField("map_type"):
        proto = numpy_helper.from_dict(value, vinfo.name)
    elif t.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, vinfo.name)
    elif t.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, vinfo.name)
    elif isinstance(value, TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(value, vinfo.name)
    path.write_bytes(proto.SerializeToString())


def write_case(case, out: Path) -> None:
    """Write one node test case into `out/node/<name>/`."""
    case_dir = out / "node" / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
    if (case.rtol, case.atol) != (DEFAULT_RTOL, DEFAULT_ATOL):
        (case_dir / "data.json").write_text(json.dumps({"rtol": case.rtol, "atol": case.atol}))
    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        ds = case_dir / f"test_data_set_{i}"
        ds.mkdir()
        for j, value in enumerate(inputs):
            _write_value(ds / f"input_{j}.pb", value, graph.input[j])
        for j, value in enumerate(outputs):
            _write_value(ds / f"output_{j}.pb", value, graph.output[j])


def generate(out: Path | None = None, force: bool = False, quiet: bool = True) -> Path:
    """Make sure `out` (default: `default_dir()`) holds every node test case; returns it."""
    import onnx
    from onnx.backend.test.case import node

    out = Path(out) if out is not None else default_dir()
    stamp = out / STAMP
    if stamp.exists() and not force and stamp.read_text().strip() == onnx.__version__:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the generators divide by zero on purpose
        cases = node.collect_testcases()
        for case in cases:
            write_case(case, tmp)
    (tmp / STAMP).write_text(onnx.__version__ + "\n")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    if not quiet:
        print(f"wrote {len(cases)} node test cases to {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="regenerate even if the cache is there")
    args = p.parse_args(argv)
    out = generate(args.out, force=args.force, quiet=False)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
