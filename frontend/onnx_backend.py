"""The standard ONNX backend API over lmc (`onnx.backend.base.Backend`), so that ONNX's own
test runner (`onnx.backend.test.BackendTest`) can drive lmc.

`prepare` imports the model and compiles it with `lmc.compile` (reference target, default
pass pipeline). A graph input that feeds a shape-like operand (Reshape's shape, TopK's k, Slice's
starts, ...) cannot stay a run-time input of a statically shaped program: such a model is
compiled at `run` time, specialized on the values of those inputs (one compile per distinct
value, cached), exactly as if they had been initializers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from .onnx import NARROW, ONNX_DTYPES, NeedsConstantInputsError, load_onnx

try:
    from onnx.backend.base import Backend, BackendRep
except ImportError:  # onnx is an optional dependency of lmc
    Backend = BackendRep = object  # type: ignore[misc,assignment]

DEVICES = ("CPU",)


def to_lmc(a: Any) -> np.ndarray:
    """An input array in lmc's storage: bfloat16 as float32, int4/uint4 as int8/uint8."""
    a = np.asarray(a)
    name = a.dtype.name
    if name == "bfloat16":
        return a.astype(np.float32)
    if name in ("int4", "int2"):
        return a.astype(np.int8)
    if name in ("uint4", "uint2"):
        return a.astype(np.uint8)
    return a


def to_onnx(a: np.ndarray, elem_type: int) -> np.ndarray:
    """An lmc output in the numpy dtype ONNX uses for `elem_type` (ml_dtypes for bf16, int4)."""
    from onnx import helper

    dt = ONNX_DTYPES.get(elem_type)
    if dt in (DType.bf16, DType.i4, DType.u4) or elem_type in NARROW:
        return a.astype(helper.tensor_dtype_to_np_dtype(elem_type))
    return a


class LmcBackendRep(BackendRep):
    """A prepared model: runs inputs (a list in graph-input order, or a dict by name)."""

    def __init__(self, model: Any, device: str = "CPU", passes: Any = None) -> None:
        self.model = model
        self.device = device
        self.passes = passes
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [v.name for v in model.graph.input if v.name not in inits]
        self.output_types = [v.type.tensor_type.elem_type for v in model.graph.output]
        self.specialize_on: tuple[str, ...] = ()
        self._cache: dict[bytes, Any] = {}
        try:
            self.compiled = self._compile(model)
        except NeedsConstantInputsError as e:
            self.compiled = None
            self.specialize_on = tuple(n for n in self.input_names if n in e.inputs)

    def _compile(self, model: Any) -> Any:
        from ..backends.driver import compile as lmc_compile

        return lmc_compile(model, target="reference", passes=self.passes)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            named = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            named = dict(zip(self.input_names, inputs))
        compiled = self.compiled if self.compiled is not None else self._specialized(named)
        feed = {n: to_lmc(named[n]) for n in compiled.input_names}
        outs = compiled.run(feed)
        return tuple(to_onnx(o, t) for o, t in zip(outs, self.output_types))

    def _specialized(self, named: dict[str, Any]) -> Any:
        """The model compiled with `specialize_on` inputs fixed to the given values."""
        from onnx import numpy_helper

        key = b"".join(
            n.encode()
            + str(np.asarray(named[n]).dtype).encode()
            + repr(np.asarray(named[n]).shape).encode()
            + np.asarray(named[n]).tobytes()
            for n in self.specialize_on
        )
        if key not in self._cache:
            m = type(self.model)()
            m.CopyFrom(self.model)
            keep = [v for v in m.graph.input if v.name not in self.specialize_on]
            del m.graph.input[:]
            m.graph.input.extend(keep)
            for n in self.specialize_on:
                m.graph.initializer.append(numpy_helper.from_array(np.asarray(named[n]), n))
            try:
                self._cache[key] = self._compile(m)
            except NeedsConstantInputsError as e:
                # Fixing some inputs folded far enough to find more shape-like ones.
                more = tuple(n for n in self.input_names if n in e.inputs)
                if not more:
                    raise
                self.specialize_on += more
                return self._specialized(named)
        return self._cache[key]


class LmcBackend(Backend):
    """`onnx.backend` entry points: prepare / run_model / run_node / supports_device."""

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> LmcBackendRep:
        if not cls.supports_device(device):
            raise ValueError(f"lmc's ONNX backend runs on {DEVICES}, not {device!r}")
        model = load_onnx(model if not isinstance(model, bytes) else model)
        return LmcBackendRep(model, device, kwargs.get("passes"))

    @classmethod
    def run_model(
        cls,
        model: Any,
        inputs: Any,
        device: str = "CPU",
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: Any,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[Any, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        """Run one NodeProto on inputs (a list in the node's input order, or a dict)."""
        from onnx import TensorProto, helper

        if isinstance(inputs, dict):
            arrays = [np.asarray(inputs[n]) for n in node.input if n]
        else:
            arrays = [np.asarray(a) for a in inputs]
        names = [n for n in node.input if n]
        vis = [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrays)
        ]
        outs = []
        for i, n in enumerate(o for o in node.output if o):
            elem = (
                helper.np_dtype_to_tensor_dtype(np.dtype(outputs_info[i][0]))
                if outputs_info
                else TensorProto.UNDEFINED
            )
            outs.append(helper.make_tensor_value_info(n, elem, None))
        graph = helper.make_graph([node], "run_node", vis, outs)
        opset = kwargs.pop("opset_version", None)
        opsets = [helper.make_opsetid("", opset)] if opset else None
        model = helper.make_model(graph, opset_imports=opsets)
        return cls.run_model(model, arrays, device, **kwargs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().split(":")[0] in DEVICES


prepare = LmcBackend.prepare
run_model = LmcBackend.run_model
run_node = LmcBackend.run_node
supports_device = LmcBackend.supports_device


# -- ONNX's node test suite, driven by ONNX's own runner --------------------------------------
def read_expected_failures(path: str | Path) -> dict[str, str]:
    """Test name -> reason, from a file of `test_name  # reason` lines (blank lines and
    comment lines ignored; a `## reason` heading applies to the names under it)."""
    out: dict[str, str] = {}
    heading = ""
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if s.startswith("##"):
            heading = s.lstrip("#").strip()
            continue
        if not s or s.startswith("#"):
            continue
        name, _, reason = s.partition("#")
        out[name.strip()] = reason.strip() or heading
    return out


def node_test_runner(
    data_dir: str | Path,
    expected_failures: Iterable[str] = (),
    parent_module: str | None = None,
    include: Iterable[str] = (),
) -> Any:
    """An `onnx.backend.test.BackendTest` over lmc for the node tests found in
    `data_dir/node` (written by scripts/onnx_node_data.py), CPU only, with the named tests
    marked as expected failures (a listed test that passes then fails the run)."""
    import onnx.backend.test.runner as runner_mod
    from onnx.backend.test.case.test_case import TestCase

    node_dir = Path(data_dir) / "node"

    def load_model_tests(data_dir: str = "", kind: str | None = None) -> list[Any]:
        if kind != "node":
            return []
        cases = []
        for case_dir in sorted(p for p in node_dir.iterdir() if (p / "model.onnx").exists()):
            rtol, atol = 1e-3, 1e-7
            if (case_dir / "data.json").exists():
                import json

                data = json.loads((case_dir / "data.json").read_text())
                rtol, atol = data.get("rtol", rtol), data.get("atol", atol)
            cases.append(
                TestCase(
                    name=case_dir.name,
                    model_name=case_dir.name[5:],
                    url=None,
                    model_dir=str(case_dir),
                    model=None,
                    data_sets=None,
                    kind="node",
                    rtol=rtol,
                    atol=atol,
                )
            )
        return cases

    class CpuRunner(runner_mod.Runner):
        def _add_test(self, category, test_name, test_func, report_item, devices=DEVICES, **kwargs):
            super()._add_test(category, test_name, test_func, report_item, DEVICES, **kwargs)

    saved = runner_mod.load_model_tests
    runner_mod.load_model_tests = load_model_tests
    try:
        bt = CpuRunner(LmcBackend, parent_module)
    finally:
        runner_mod.load_model_tests = saved
    for name in include:
        bt.include(f"^{re.escape(name)}_cpu$")
    for name in expected_failures:
        bt.xfail(f"^{re.escape(name)}_cpu$")
    return bt
