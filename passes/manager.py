"""The pass manager: passes declare contracts; a Pipeline checks their order before running.

A pass is a function `Graph, PassContext -> Graph` registered with `@graph_pass`. `requires`
names properties the input must have, `ensures` those the output has, `breaks` those it may
destroy. `tolerance` is None for exact passes (interpretation before == after) or
(rtol, atol) for approximating ones; pass tests use it.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ir.errors import LmcError, PassError
from ..ir.graph import Graph
from ..ir.printer import print_graph
from ..ir.verifier import verify


class Prop(enum.Enum):
    """Properties of a graph that passes require, ensure or break."""

    TYPED = "typed"  # every node's types agree with its op's rule (the verifier holds)
    CANONICAL = "canonical"  # canonicalize reached its fixpoint
    FOLDED = "folded"  # no node whose operands are all constants is left unfolded
    NO_DEAD_NODES = "no_dead_nodes"
    NO_COMMON_SUBEXPRESSIONS = "no_common_subexpressions"
    QUANTIZED = "quantized"


PassFn = Callable[[Graph, "PassContext"], Graph]


@dataclass(frozen=True)
class PassInfo:
    name: str
    fn: PassFn
    requires: frozenset[Prop]
    ensures: frozenset[Prop]
    breaks: frozenset[Prop]
    tolerance: tuple[float, float] | None  # None: exact
    doc: str

    def __call__(self, g: Graph, ctx: PassContext | None = None) -> Graph:
        """Run this pass alone (in place, no verification); stats go under its name."""
        ctx = ctx or PassContext()
        outer, ctx.current = ctx.current, self.name
        try:
            return self.fn(g, ctx)
        finally:
            ctx.current = outer


PASSES: dict[str, PassInfo] = {}


def graph_pass(
    requires: Iterable[Prop] = (Prop.TYPED,),
    ensures: Iterable[Prop] = (Prop.TYPED,),
    breaks: Iterable[Prop] = (),
    tolerance: tuple[float, float] | None = None,
) -> Callable[[PassFn], PassInfo]:
    """Register a pass under its function name (`verb_object`) with its contract."""

    def deco(fn: PassFn) -> PassInfo:
        name = fn.__name__
        if name in PASSES:
            raise PassError(f"pass {name!r} registered twice")
        doc = (fn.__doc__ or "").strip()
        if not doc:
            raise PassError(f"pass {name!r} needs a docstring saying what changes and why")
        info = PassInfo(
            name, fn, frozenset(requires), frozenset(ensures), frozenset(breaks), tolerance, doc
        )
        PASSES[name] = info
        return info

    return deco


@dataclass
class PassContext:
    """What passes may read besides the graph: target, options, calibration data, and where
    they record statistics. `dump_dir` / `print_after_all` write the IR after every pass."""

    target: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    calibration: Any = None
    seed: int = 0
    dump_dir: Path | None = None
    print_after_all: bool = False
    printer: Callable[[str], None] = print
    check_props: bool = False
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    current: str = ""

    def stat(self, key: str, value: Any = 1, add: bool = True) -> None:
        """Record a statistic of the running pass (summed when `add`)."""
        d = self.stats.setdefault(self.current or "?", {})
        d[key] = d.get(key, 0) + value if add and isinstance(value, (int, float)) else value


# Property checkers: used after a pass when `ctx.check_props` (tests turn it on).
PROP_CHECKS: dict[Prop, Callable[[Graph], str | None]] = {}


def prop_check(prop: Prop) -> Callable[[Callable[[Graph], str | None]], Callable]:
    def deco(fn: Callable[[Graph], str | None]) -> Callable[[Graph], str | None]:
        PROP_CHECKS[prop] = fn
        return fn

    return deco


class Pipeline:
    """An ordered list of passes whose contracts were checked when it was built."""

    def __init__(self, passes: Sequence[str | PassInfo], start: Iterable[Prop] = (Prop.TYPED,)):
        _load_builtin_passes()
        self.passes: list[PassInfo] = []
        for p in passes:
            if isinstance(p, PassInfo):
                self.passes.append(p)
            elif p in PASSES:
                self.passes.append(PASSES[p])
            else:
                raise PassError(f"unknown pass {p!r}; known passes: {', '.join(sorted(PASSES))}")
        self.start = frozenset(start)
        self._check_order()

    @classmethod
    def from_spec(cls, spec: str) -> Pipeline:
        """`"canonicalize,fold_constants"`; `default` expands to DEFAULT_PIPELINE."""
        names: list[str] = []
        for part in (s.strip() for s in spec.split(",")):
            if not part:
                raise PassError(f"empty pass name in spec {spec!r}")
            names.extend(DEFAULT_PIPELINE if part == "default" else [part])
        return cls(names)

    def _check_order(self) -> None:
        have = set(self.start)
        for i, p in enumerate(self.passes):
            missing = p.requires - have
            if missing:
                providers = sorted({q.name for q in PASSES.values() if q.ensures & missing})
                hint = f"; run one of {providers} before it" if providers else ""
                raise PassError(
                    f"pipeline position {i}: {p.name} requires "
                    f"{sorted(m.value for m in missing)} which the passes before it "
                    f"do not ensure{hint}"
                )
            have = (have - p.breaks) | p.ensures

    def props_after(self) -> frozenset[Prop]:
        """The properties the contracts promise for the pipeline's result."""
        have = set(self.start)
        for p in self.passes:
            have = (have - p.breaks) | p.ensures
        return frozenset(have)

    def run(self, g: Graph, ctx: PassContext | None = None) -> Graph:
        """Run every pass on a copy of `g`; verify after each; record timings and stats.

        With `ctx.check_props`, every property the contracts say holds after a pass (what it
        ensures and what earlier passes ensured and it does not break) is checked."""
        ctx = ctx or PassContext()
        env_dump = os.environ.get("LMC_DUMP")
        dump = ctx.dump_dir or (Path(env_dump) if env_dump else None)
        g = g.copy()
        verify(g)
        have = set(self.start)
        for i, p in enumerate(self.passes):
            ctx.current = p.name
            t0 = time.perf_counter()
            try:
                out = p.fn(g, ctx)
            except Exception as e:
                e.add_note(f"in pass {p.name} (pipeline position {i})")
                raise
            finally:
                ctx.current = ""
            if not isinstance(out, Graph):
                raise PassError(f"pass {p.name} returned {type(out).__name__}, not a Graph")
            g = out
            ctx.timings[p.name] = ctx.timings.get(p.name, 0.0) + time.perf_counter() - t0
            try:
                verify(g)
            except LmcError as e:
                raise PassError(f"IR invalid after pass {p.name}: {e}") from e
            have = (have - p.breaks) | p.ensures
            if ctx.check_props:
                _check_props(g, p, have)
            text = None
            if dump is not None:
                dump.mkdir(parents=True, exist_ok=True)
                text = print_graph(g)
                (dump / f"{i:02d}-{p.name}.lmc").write_text(text)
            if ctx.print_after_all:
                ctx.printer(f"// ----- IR after {p.name} -----\n{text or print_graph(g)}")
        return g

    def __repr__(self) -> str:
        return f"Pipeline({','.join(p.name for p in self.passes)})"


# Canonicalize again after folding: folded constants enable identities (x * (3 - 2) -> x).
# The result is canonical, CSE'd and free of dead nodes; it is folded in practice, but
# canonicalize cannot promise that in general (see its docstring).
DEFAULT_PIPELINE = [
    "canonicalize",
    "fold_constants",
    "canonicalize",
    "eliminate_common_subexpressions",
    "eliminate_dead_nodes",
]


def _check_props(g: Graph, p: PassInfo, have: set[Prop]) -> None:
    for prop in sorted(have, key=lambda q: q.value):
        check = PROP_CHECKS.get(prop)
        problem = check(g) if check else None
        if problem:
            how = "ensures" if prop in p.ensures else "keeps (does not declare it breaks)"
            raise PassError(f"pass {p.name} {how} {prop.value}, but: {problem}")


def _load_builtin_passes() -> None:
    """Import the built-in pass modules (explicit list; registration happens at definition)."""
    from ..backends.c import group_kernels, legalize  # noqa: F401  (target passes)
    from . import builtin  # noqa: F401
