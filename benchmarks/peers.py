"""The systems `benchmarks/models.py` compares, behind one small interface: lmc (host C
target), onnxruntime (CPU EP), PyTorch eager and Apache TVM (untuned default Relax pipeline).

A `System` is built once per model (its build time is recorded), then `bind(threads)` returns
the zero-argument callable that is timed at that thread count and `outputs()` the outputs of
one run for the correctness check. A system that cannot be built or run here is a `Failed`
one carrying the reason, so that the benchmark reports it instead of crashing.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The zoo's form: {"input": {axis: ("name", lo, hi)}}.
DynamicShapes = dict[str, dict[int, tuple[str, int, int]]]


def reason(e: BaseException, limit: int = 160) -> str:
    """A one-line reason for a failure: the exception type and the first line of its text."""
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    return f"{type(e).__name__}: {line}"[:limit]


class System:
    """One contender for one model."""

    name = "?"

    def __init__(self) -> None:
        self.compile_s: float | None = None
        self.error: str | None = None
        self.info: dict[str, Any] = {}

    def bind(self, threads: int) -> Callable[[], object]:
        raise NotImplementedError

    def outputs(self) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Failed(System):
    def __init__(self, name: str, error: str) -> None:
        super().__init__()
        self.name, self.error = name, error


def build(name: str, factory: Callable[[], System]) -> System:
    """factory() or, when it raises, a Failed system with the reason (the traceback goes to
    stderr in short form so a real bug can still be found)."""
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 - any peer failure is reported, never fatal
        tb = traceback.format_exception_only(type(e), e)[-1].strip()
        print(f"  [{name}] failed: {tb[:400]}", flush=True)
        return Failed(name, reason(e))


def as_numpy_list(out: Any) -> list[np.ndarray]:
    """Outputs of any system (arrays, torch tensors, TVM tensors, nested sequences of them) as
    a flat list of numpy arrays."""
    if isinstance(out, np.ndarray):
        return [out]
    if hasattr(out, "detach"):  # torch.Tensor
        return [out.detach().numpy()]
    if hasattr(out, "numpy"):  # tvm.runtime.Tensor
        return [np.asarray(out.numpy())]
    if isinstance(out, (list, tuple)) or hasattr(out, "__len__"):
        flat: list[np.ndarray] = []
        for o in out:
            flat += as_numpy_list(o)
        return flat
    return [np.asarray(out)]


# ---- lmc ---------------------------------------------------------------------------------


class Lmc(System):
    """lmc.compile(target="host") from the example inputs with the model's dynamic shapes,
    without the object cache (the build time includes compiling the runtime and every kernel
    source the model links); threads through the host runner's pool."""

    name = "lmc"

    def __init__(
        self, module: Any, inputs: Sequence[Any], example: Sequence[Any], dynamic_shapes: Any
    ) -> None:
        super().__init__()
        import lmc

        t0 = time.perf_counter()
        self.model = lmc.compile(
            module,
            tuple(example),
            target="host",
            dynamic_shapes=dynamic_shapes,
            object_cache=False,
        )
        self.compile_s = time.perf_counter() - t0
        self.arrays = [np.ascontiguousarray(x.numpy()) for x in inputs]
        self.runner = self.model._runner  # HostRunner: .num_threads sets the pool size
        self.info["artifact"] = str(self.model.artifact)
        self.info["arena_bytes"] = self.runner.arena_bytes
        report = self.model.report
        self.info["capture"] = report.path
        self.info["symbols"] = {k: list(v) for k, v in report.symbols.items()}
        if not report.path.startswith("torch.export"):
            self.info["note"] = f"captured with {report.path[:100]}"

    def bind(self, threads: int) -> Callable[[], object]:
        self.runner.num_threads = threads
        run, arrays = self.runner.run, self.arrays
        return lambda: run(arrays)

    def outputs(self) -> list[np.ndarray]:
        return self.runner.run(self.arrays)

    def close(self) -> None:
        self.model.close()


# ---- onnxruntime -------------------------------------------------------------------------


def torch_dims(dynamic_shapes: DynamicShapes | None) -> dict[str, dict[int, Any]] | None:
    """The zoo's {"input": {axis: (name, lo, hi)}} as torch.export.Dim objects, one per name so
    that inputs share their symbols."""
    if not dynamic_shapes:
        return None
    from torch.export import Dim

    made: dict[str, Any] = {}
    out: dict[str, dict[int, Any]] = {}
    for inp, axes in dynamic_shapes.items():
        out[inp] = {}
        for axis, (dim, lo, hi) in axes.items():
            if dim not in made:
                made[dim] = Dim(dim, min=lo, max=hi)
            out[inp][axis] = made[dim]
    return out


def export_onnx(
    module: Any,
    example: Sequence[Any],
    path: Path,
    dynamic_shapes: DynamicShapes | None = None,
    inputs: Sequence[Any] | None = None,
) -> tuple[float, str]:
    """torch.onnx.export(dynamo=True) to `path` (weights inline) from `example` with the dynamic
    shapes; when the exporter rejects them, with static shapes from `inputs`. Returns the
    seconds taken and which shapes were exported."""
    import torch

    t0 = time.perf_counter()
    kw: dict[str, Any] = dict(dynamo=True, external_data=False, verbose=False)
    if dynamic_shapes:
        try:
            dims = torch_dims(dynamic_shapes)
            torch.onnx.export(module, tuple(example), str(path), dynamic_shapes=dims, **kw)
            return time.perf_counter() - t0, "dynamic"
        except Exception as e:  # noqa: BLE001 - retry static, then let the caller report
            print(f"  [onnx export] dynamic shapes failed ({reason(e)}); exporting static")
    torch.onnx.export(module, tuple(inputs or example), str(path), **kw)
    return time.perf_counter() - t0, "static"


class OnnxRuntime(System):
    """One CPU-EP session per thread count (intra_op = threads, inter_op = 1, ORT_ENABLE_ALL,
    sequential execution); session creation is the "compile" time (of the first one)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, inputs: Sequence[Any], export: tuple[float, str]) -> None:
        super().__init__()
        import onnxruntime as ort

        self.ort, self.path = ort, str(onnx_path)
        self.sessions: dict[int, Any] = {}
        self.info["export_s"], self.info["shapes"] = export
        self.info["version"] = ort.__version__
        self.current = self._session(1)
        names = [i.name for i in self.current.get_inputs()]
        arrays = [np.ascontiguousarray(x.numpy()) for x in inputs]
        if len(names) != len(arrays):
            raise RuntimeError(f"the ONNX model takes {len(names)} inputs, torch {len(arrays)}")
        self.feeds = dict(zip(names, arrays))

    def _session(self, threads: int) -> Any:
        if threads not in self.sessions:
            opts = self.ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            t0 = time.perf_counter()
            sess = self.ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
            if self.compile_s is None:
                self.compile_s = time.perf_counter() - t0
            self.sessions[threads] = sess
        return self.sessions[threads]

    def bind(self, threads: int) -> Callable[[], object]:
        self.current = sess = self._session(threads)
        feeds = self.feeds
        return lambda: sess.run(None, feeds)

    def outputs(self) -> list[np.ndarray]:
        return list(self.current.run(None, self.feeds))

    def close(self) -> None:
        self.sessions.clear()


# ---- PyTorch eager -----------------------------------------------------------------------


class TorchEager(System):
    """module(*inputs) under inference_mode; threads by torch.set_num_threads."""

    name = "torch"

    def __init__(self, module: Any, inputs: Sequence[Any]) -> None:
        super().__init__()
        import torch

        self.torch, self.module, self.inputs = torch, module, tuple(inputs)
        self.info["version"] = torch.__version__

    def bind(self, threads: int) -> Callable[[], object]:
        torch, module, inputs = self.torch, self.module, self.inputs
        torch.set_num_threads(threads)

        def run() -> object:
            with torch.inference_mode():
                return module(*inputs)

        return run

    def outputs(self) -> list[np.ndarray]:
        with self.torch.inference_mode():
            return as_numpy_list(self.module(*self.inputs))


# ---- Apache TVM --------------------------------------------------------------------------


def tvm_available() -> str | None:
    """None when TVM imports, else why not."""
    try:
        import tvm  # noqa: F401
        from tvm import relax  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return reason(e)
    return None


class Tvm(System):
    """Apache TVM, untuned: the model imported with static shapes through the torch frontend
    (relax.frontend.torch.from_exported_program) or, when importing or compiling that fails,
    the ONNX frontend (relax.frontend.onnx.from_onnx), and tvm.compile with the default Relax
    pipeline for an llvm target with this CPU's -mcpu. No MetaSchedule, so the TIR loops stay
    unscheduled: single-threaded scalar/auto-vectorized code, whatever the thread count.
    Threads: runtime.config_threadpool (TVM_NUM_THREADS is set too)."""

    name = "tvm"

    def __init__(self, module: Any, inputs: Sequence[Any]) -> None:
        super().__init__()
        import tvm
        from tvm import relax
        from tvm.target import codegen

        self.tvm = tvm
        self.info["version"] = tvm.__version__
        dev = tvm.cpu()
        target = tvm.target.Target({"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu()})
        t0 = time.perf_counter()
        failures = []
        for frontend in (self._from_torch, self._from_onnx):
            try:
                mod, params, self.info["frontend"] = frontend(module, inputs)
            except Exception as e:  # noqa: BLE001 - try the next frontend
                failures.append(f"{frontend.__name__[6:]} import: {reason(e, 120)}")
                continue
            try:
                ex = tvm.compile(mod, target=target)
                break
            except Exception as e:  # noqa: BLE001
                failures.append(f"{frontend.__name__[6:]} import, tvm.compile: {reason(e, 120)}")
        else:
            raise RuntimeError("; ".join(failures))
        self.compile_s = time.perf_counter() - t0
        if failures:
            self.info["fallback_because"] = failures
        self.vm = relax.VirtualMachine(ex, dev)
        self.args = [tvm.runtime.tensor(np.ascontiguousarray(x.numpy()), dev) for x in inputs]
        self.args += [tvm.runtime.tensor(np.asarray(p), dev) for p in params]
        self.main = self.vm["main"]

    @staticmethod
    def _from_torch(module: Any, inputs: Sequence[Any]) -> tuple[Any, list, str]:
        import torch
        from tvm import relax
        from tvm.relax.frontend.torch import from_exported_program

        with torch.no_grad():
            ep = torch.export.export(module, tuple(inputs))
        mod = from_exported_program(ep, keep_params_as_input=True)
        mod, params = relax.frontend.detach_params(mod)
        return mod, [p.numpy() for p in params.get("main", [])], "torch (exported program)"

    @staticmethod
    def _from_onnx(module: Any, inputs: Sequence[Any]) -> tuple[Any, list, str]:
        import onnx
        from tvm.relax.frontend.onnx import from_onnx

        with tempfile.TemporaryDirectory(prefix="lmc_bench_tvm_") as d:
            path = Path(d) / "model.onnx"
            export_onnx(module, inputs, path)
            model = onnx.load(str(path))
        names = [i.name for i in model.graph.input]
        shapes = {n: list(x.shape) for n, x in zip(names, inputs)}
        dtypes = {n: str(x.numpy().dtype) for n, x in zip(names, inputs)}
        mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)
        return mod, [], "onnx (static)"

    def bind(self, threads: int) -> Callable[[], object]:
        os.environ["TVM_NUM_THREADS"] = str(threads)
        self.tvm.get_global_func("runtime.config_threadpool")(1, threads)
        main, args = self.main, self.args
        return lambda: main(*args)

    def outputs(self) -> list[np.ndarray]:
        return as_numpy_list(self.main(*self.args))
