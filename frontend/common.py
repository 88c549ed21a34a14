"""What every frontend shares: collecting all unsupported ops at once, and the capture report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..ir.errors import LmcError
from ..ir.graph import Graph


class ModelImportError(LmcError):
    """A model could not be imported (corrupt file, export failure, bad arguments)."""


class UnsupportedOpsError(ModelImportError):
    """Every op of a model the frontend cannot convert, reported at once."""

    def __init__(self, framework: str, problems: dict[str, list[str]]):
        # problems: "OpType (opset 17)" -> node names
        self.problems = problems
        total = sum(len(v) for v in problems.values())
        lines = [
            f"{framework} import failed: {total} node(s) of {len(problems)} unsupported op kind(s):"
        ]
        for op, nodes in sorted(problems.items()):
            shown = ", ".join(nodes[:5]) + (
                f", ... ({len(nodes) - 5} more)" if len(nodes) > 5 else ""
            )
            lines.append(f"  {op}: {len(nodes)} node(s): {shown}")
        super().__init__("\n".join(lines))


class Unsupported:
    """Collects unsupported ops during an import; `raise_if_any` raises one error for all."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.problems: dict[str, list[str]] = {}

    def add(self, op: str, node_name: str, reason: str = "") -> None:
        key = op + (f" ({reason})" if reason else "")
        self.problems.setdefault(key, []).append(node_name)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise UnsupportedOpsError(self.framework, self.problems)


@dataclass
class CaptureReport:
    """What an import produced: op histogram, symbols and bounds, params, the path taken."""

    source: str
    path: str  # e.g. "torch.export", "torch.fx.symbolic_trace (export failed: ...)", "onnx"
    ops: Counter = field(default_factory=Counter)
    symbols: dict[str, tuple[int, int]] = field(default_factory=dict)
    num_params: int = 0
    param_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, g: Graph, source: str, path: str, notes: list[str] | None = None) -> CaptureReport:
        r = cls(source, path, Counter(n.op.name for n in g.nodes), dict(g.symbols))
        keys = {n.op.key for n in g.nodes if n.op.name == "param"}
        r.num_params = sum(int(np.prod(g.weights[k].shape)) for k in keys if k in g.weights)
        r.param_bytes = sum(g.weights[k].nbytes for k in keys if k in g.weights)
        r.notes = list(notes or [])
        return r

    def __str__(self) -> str:
        lines = [f"source: {self.source}", f"captured with: {self.path}"]
        syms = ", ".join(f"{s} in {lo}..{hi}" for s, (lo, hi) in self.symbols.items())
        lines.append(f"symbols: {syms or 'none (static shapes)'}")
        lines.append(f"params: {self.num_params:,} elements, {self.param_bytes / 2**20:.2f} MiB")
        lines.append(f"ops ({sum(self.ops.values())} nodes):")
        for op, n in self.ops.most_common():
            lines.append(f"  {op:<28} {n}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
