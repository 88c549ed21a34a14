"""Calibration: run sample inputs through the reference interpreter and record what the
quantization passes need — activation ranges and histograms, per-channel abs-max, a bounded
sample of rows, and H = 2·XᵀX/n per linear input (streamed in float64, activations not kept).

The pass context carries a `Calibration` (`ctx.calibration`): the validated samples and the
record of the graph they were last run on. Passes call `record(g, ctx, hessians=...)`, which
runs the samples only when nothing usable was recorded yet; a pass that changes activations
(smoothing) calls `invalidate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir.errors import InterpreterError, LmcError
from ..ir.graph import Graph, Node, Value
from ..ir.interpreter import bind_symbols, run
from ..ir.ops.quant import LINEAR_X_DTYPES
from ..ir.ops.source import Param
from .manager import PassContext

# log2-spaced |x| histogram: 8 bins per octave over 2^-32 .. 2^32, plus under/overflow bins.
HIST_PER_OCTAVE = 8
HIST_LO, HIST_HI = -32, 32
HIST_BINS = (HIST_HI - HIST_LO) * HIST_PER_OCTAVE + 2
# Rows of each linear input kept (uniform reservoir sample) to measure quantized outputs.
SAMPLE_ROWS = 512


class CalibrationError(LmcError):
    """The calibration set is unusable (empty, wrong shapes or dtypes) or missing."""


@dataclass
class TensorStats:
    """Running statistics of one float tensor over every calibration sample."""

    count: int = 0
    min: float = float("inf")
    max: float = float("-inf")
    absmax_channel: np.ndarray | None = None  # max |x| per channel (last axis)
    hist: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, np.int64))

    def update(self, a: np.ndarray) -> None:
        a = np.asarray(a, np.float32)
        if a.size == 0:
            return
        self.count += a.size
        self.min = min(self.min, float(a.min()))
        self.max = max(self.max, float(a.max()))
        mag = np.abs(a)
        ch = mag.reshape(-1, a.shape[-1]).max(axis=0) if a.ndim else mag.reshape(1)
        prev = self.absmax_channel
        self.absmax_channel = ch if prev is None else np.maximum(prev, ch)
        with np.errstate(divide="ignore"):
            idx = np.floor(np.log2(mag.reshape(-1)) * HIST_PER_OCTAVE)
        idx = np.clip(
            np.nan_to_num(idx, neginf=-1e9) - HIST_LO * HIST_PER_OCTAVE + 1, 0, HIST_BINS - 1
        )
        self.hist += np.bincount(idx.astype(np.int64), minlength=HIST_BINS)

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    def percentile(self, p: float) -> float:
        """An upper bound of the p-th percentile of |x| (the bin's upper edge, within 9%)."""
        if not self.count:
            return 0.0
        cum = np.cumsum(self.hist)
        b = int(np.searchsorted(cum, p / 100.0 * self.count))
        if b == 0:
            return 2.0**HIST_LO
        if b >= HIST_BINS - 1:
            return self.absmax
        return min(2.0 ** (HIST_LO + b / HIST_PER_OCTAVE), self.absmax)

    def summary(self) -> dict[str, float]:
        return {
            "min": self.min,
            "max": self.max,
            "absmax": self.absmax,
            "p99.9": self.percentile(99.9),
        }


@dataclass
class LinearInput:
    """What was seen at one linear input (shared by the linears that read the same value)."""

    stats: TensorStats = field(default_factory=TensorStats)
    xtx: np.ndarray | None = None  # sum of x xᵀ over rows, float64 [in, in]
    rows: int = 0
    sample: np.ndarray | None = None  # up to SAMPLE_ROWS rows, float32

    @property
    def hessian(self) -> np.ndarray:
        """H = 2·XᵀX / n, GPTQ's layer-wise Hessian (float64)."""
        if self.xtx is None:
            raise CalibrationError("no Hessian was recorded for this linear")
        return 2.0 * self.xtx / max(self.rows, 1)

    def update(self, x: np.ndarray, hessian: bool, rng: np.random.Generator) -> None:
        x2 = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
        self.stats.update(x2)
        if hessian:
            x64 = x2.astype(np.float64)
            self.xtx = (0 if self.xtx is None else self.xtx) + x64.T @ x64
        seen = self.rows
        self.rows += x2.shape[0]
        self.sample = _reservoir(self.sample, x2, seen, rng)


def _reservoir(
    sample: np.ndarray | None, rows: np.ndarray, seen: int, rng: np.random.Generator
) -> np.ndarray:
    """Algorithm R over a batch of rows: a uniform sample of at most SAMPLE_ROWS rows."""
    if sample is None:
        sample = rows[:0].copy()
    room = max(SAMPLE_ROWS - sample.shape[0], 0)
    sample = np.concatenate([sample, rows[:room]])
    rest = rows[room:]
    if len(rest):
        t = seen + room + np.arange(len(rest))
        j = (rng.random(len(rest)) * (t + 1)).astype(np.int64)
        keep = j < SAMPLE_ROWS
        sample = sample.copy()
        sample[j[keep]] = rest[keep]
    return sample


@dataclass
class Calibration:
    """The calibration samples and what running them recorded, keyed by linear weight key."""

    samples: list[list[np.ndarray]]
    progress: Callable[[str], None] | None = None
    inputs: dict[str, LinearInput] = field(default_factory=dict)
    hessians: bool = False
    fresh: bool = False
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def invalidate(self) -> None:
        """Activations changed (a pass rewrote weights they depend on): record again."""
        self.fresh = False
        self.inputs = {}

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)


def make_calibration(
    g: Graph, data: Any, progress: Callable[[str], None] | None = None
) -> Calibration:
    """Validate a calibration set against g's inputs. Each item is one sample: an array (for
    one-input graphs), a sequence of arrays by position or a mapping by input name; torch
    tensors are accepted; arrays are cast to the input's dtype when of the same kind."""
    if data is None:
        raise CalibrationError("no calibration set: pass calibration=[inputs, ...]")
    if isinstance(data, Calibration):
        return data
    if isinstance(data, (np.ndarray, Mapping)) or not isinstance(data, Iterable):
        raise CalibrationError(
            f"calibration must be an iterable of samples (each a tuple of inputs), got "
            f"{type(data).__name__}"
        )
    samples = [_sample(g, i, item) for i, item in enumerate(data)]
    if not samples:
        raise CalibrationError(
            f"the calibration set is empty: give at least one sample for the inputs "
            f"{[f'{v.name}: {v.type}' for v in g.inputs]}"
        )
    return Calibration(samples, progress)


def _sample(g: Graph, i: int, item: Any) -> list[np.ndarray]:
    ins = g.inputs
    if isinstance(item, Mapping):
        names = [v.name for v in ins]
        missing = [n for n in names if n not in item]
        extra = [k for k in item if k not in names]
        if missing or extra:
            raise CalibrationError(
                f"calibration sample {i}: inputs are {names}; missing {missing}, unknown {extra}"
            )
        item = [item[n] for n in names]
    elif not isinstance(item, (list, tuple)):
        item = [item]
    if len(item) != len(ins):
        raise CalibrationError(
            f"calibration sample {i}: @{g.name} takes {len(ins)} inputs "
            f"({', '.join(f'{v.name}: {v.type}' for v in ins)}), the sample has {len(item)}"
        )
    arrays = [_array(i, v, a) for v, a in zip(ins, item)]
    try:
        bind_symbols(g, arrays)
    except InterpreterError as e:
        raise CalibrationError(f"calibration sample {i}: {e}") from None
    return arrays


def _array(i: int, v: Value, a: Any) -> np.ndarray:
    if type(a).__module__.startswith("torch"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    want = v.type.dtype.np
    if a.dtype != want and a.dtype.kind == want.kind:
        a = a.astype(want)
    if a.dtype != want:
        raise CalibrationError(
            f"calibration sample {i}: input {v.name!r} expects {v.type}, got a {a.dtype} "
            f"array of shape {list(a.shape)}"
        )
    return a


# -- recording -------------------------------------------------------------------------------
QUANT_LINEARS = ("linear_w4", "linear_w4a8", "linear_w8", "linear_w8a8")


def linear_weight_key(n: Node) -> str | None:
    """The param key naming a linear layer: the weight's key for `linear(x, param)` and
    `matmul(x, param[in, out])`, the codes' key less `.codes` for quantized linears (so a
    layer keeps its name through quantization); None for other nodes."""
    if n.op.name not in ("linear", "matmul", *QUANT_LINEARS) or len(n.inputs) < 2:
        return None
    w = n.inputs[1]
    if not isinstance(w.node.op, Param) or w.type.rank != 2:
        return None
    if n.op.name == "matmul" and n.inputs[0].type.rank < 2:
        return None
    key = w.node.op.key
    return key.removesuffix(".codes") if n.op.name in QUANT_LINEARS else key


def linear_nodes(g: Graph) -> dict[str, Node]:
    """Layer name -> linear-like node (float or quantized) with a float input. The name is
    the weight's param key (`key#1`, `key#2` for further readers of the same key)."""
    out: dict[str, Node] = {}
    for n in g.nodes:
        key = linear_weight_key(n)
        if key is None or n.inputs[0].type.dtype not in LINEAR_X_DTYPES:
            continue
        name, k = key, 0
        while name in out:
            k += 1
            name = f"{key}#{k}"
        out[name] = n
    return out


def calibration_of(ctx: PassContext, what: str) -> Calibration:
    cal = ctx.calibration
    if not isinstance(cal, Calibration):
        raise CalibrationError(
            f"{what} needs calibration data: compile with calibration=[samples, ...] "
            f"(or set PassContext.calibration)"
        )
    return cal


def record(
    g: Graph,
    ctx: PassContext,
    hessians: bool = False,
    what: str = "this pass",
    keys: Iterable[str] | None = None,
) -> Calibration:
    """Run the calibration samples through g (unless a usable record exists) and record, for
    every linear input: TensorStats, a row sample and (with `hessians`) XᵀX."""
    cal = calibration_of(ctx, what)
    sites = linear_nodes(g)
    wanted = set(sites if keys is None else keys) & set(sites)
    if cal.fresh and (cal.hessians or not hessians) and wanted <= set(cal.inputs):
        return cal
    by_value: dict[int, LinearInput] = {}
    cal.inputs = {}
    for key, n in sites.items():
        cal.inputs[key] = by_value.setdefault(id(n.inputs[0]), LinearInput())
    watched = list({id(n.inputs[0]): n.inputs[0] for n in sites.values()}.values())
    probe = _probe_graph(g, watched)
    rng = np.random.default_rng(ctx.seed)
    for i, sample in enumerate(cal.samples):
        cal.say(f"calibration: sample {i + 1}/{len(cal.samples)}")
        values = run(probe, sample)[len(g.outputs) :]
        for v, a in zip(watched, values):
            by_value[id(v)].update(a, hessians, rng)
    cal.fresh, cal.hessians = True, hessians
    return cal


def _probe_graph(g: Graph, watched: list[Value]) -> Graph:
    """A copy of g whose outputs are g's outputs followed by the watched values."""
    pos = {id(v): (g.position(v.node), v.index) for v in watched}
    probe = g.copy()
    extra = [probe.nodes[p].outputs[k] for p, k in (pos[id(v)] for v in watched)]
    probe.set_outputs(list(probe.outputs) + extra)
    return probe
