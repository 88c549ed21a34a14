"""Frontends: PyTorch (torch.export / torch.fx) and ONNX models into the lmc IR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ir.graph import Graph
from .common import CaptureReport, ModelImportError, UnsupportedOpsError


def import_model(
    model: Any,
    example_inputs: Any = None,
    *,
    dynamic_shapes: Any = None,
) -> tuple[Graph, CaptureReport]:
    """Any supported model (torch Module / ExportedProgram, onnx ModelProto, or a path to
    .onnx / .pt2 / .lmc) -> (IR graph with weights, capture report)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise ModelImportError(f"model file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        if suffix == ".lmc":
            from ..ir.parser import parse_ir
            from ..ir.verifier import verify

            g = parse_ir(path.read_text())
            verify(g)
            return g, CaptureReport.of(g, str(path), "lmc text IR")
        if suffix == ".onnx":
            from .onnx import import_onnx

            return import_onnx(path, dynamic_shapes=dynamic_shapes)
        if suffix == ".pt2":
            from .torch_export import import_torch

            return import_torch(path, example_inputs, dynamic_shapes=dynamic_shapes)
        raise ModelImportError(
            f"{path.name}: unknown model file type {suffix!r} (expected .onnx, .pt2 or .lmc)"
        )
    if isinstance(model, Graph):
        return model, CaptureReport.of(model, "Graph", "lmc IR")
    mod = type(model).__module__
    if mod.startswith("onnx"):
        from .onnx import import_onnx

        return import_onnx(model, dynamic_shapes=dynamic_shapes)
    if mod.startswith("torch") or _is_torch_module(model):
        from .torch_export import import_torch

        return import_torch(model, example_inputs, dynamic_shapes=dynamic_shapes)
    raise ModelImportError(
        f"cannot import a {type(model).__name__}: expected a torch.nn.Module, "
        "torch.export.ExportedProgram, onnx.ModelProto or a path to "
        ".onnx/.pt2/.lmc"
    )


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, (torch.nn.Module, torch.export.ExportedProgram))


__all__ = ["CaptureReport", "ModelImportError", "UnsupportedOpsError", "import_model"]
