"""Memory planning (target-independent): liveness over the grouped graph, one arena sized for the
symbols' upper bounds, views that alias their operand, in-place reuse of dying operands, graph
outputs computed straight into the output buffers, and a verifier for the result.

A *class* is a value plus the views of it (reshape-like ops alias their operand's bytes); a
*buffer* holds one or more classes whose lifetimes follow each other (in-place reuse). Time is
the node position: a buffer is live from the node that writes it to the last node that reads
any value stored in it (graph outputs: to the end).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..ir.dtypes import DType
from ..ir.errors import LmcError
from ..ir.graph import Graph, Node, Value
from ..ir.printer import value_names
from ..ir.shapes import Dim, dim_eq, norm, upper_bound

ALIGN = 64


class PlanError(LmcError):
    """A memory plan is inconsistent (overlapping live buffers, misaligned, out of the arena)."""


@dataclass
class Buffer:
    """Bytes at `offset` in the arena, live over node positions [start, end]."""

    id: int
    size: int
    start: int
    end: int
    offset: int = -1
    values: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Location:
    """Where a value's bytes live: kind "arena" (index = buffer id), "input" / "output" (index
    = position), "param" (key), "static" (the producing node's position)."""

    kind: str
    index: int | str


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    where: dict[int, Location]  # id(Value) -> Location
    workspaces: dict[int, Buffer]  # id(Node) -> scratch buffer live during that node only
    copies: list[tuple[int, Value]]  # (output index, value) copied into the output at the end
    inplace: list[tuple[str, str]]  # (result, operand) pairs sharing bytes
    views: int
    arena_bytes: int
    alignment: int = ALIGN

    def location(self, v: Value) -> Location:
        return self.where[id(v)]

    def offset(self, v: Value) -> int:
        loc = self.where[id(v)]
        assert loc.kind == "arena", loc
        return self.buffers[loc.index].offset  # type: ignore[index]

    def stats(self) -> dict[str, int]:
        return {
            "arena_bytes": self.arena_bytes,
            "buffers": len(self.buffers),
            "bytes_without_reuse": sum(b.size for b in self.buffers),
            "inplace": len(self.inplace),
            "views": self.views,
            "output_copies": len(self.copies),
            "workspaces": len(self.workspaces),
        }

    def table(self) -> str:
        """The plan as a text table (one row per arena buffer, by offset)."""
        rows = [("buffer", "offset", "bytes", "live", "values")]
        for b in sorted(self.buffers, key=lambda b: (b.offset, b.id)):
            vals = ", ".join(b.values) + (f" ({b.note})" if b.note else "")
            rows.append((f"b{b.id}", str(b.offset), str(b.size), f"{b.start}..{b.end}", vals))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(
                c.rjust(w) if i in (1, 2) else c.ljust(w)
                for i, (c, w) in enumerate(zip(r[:4], widths))
            )
            + "  "
            + r[4]
            for r in rows
        ]
        head = f"memory plan: arena {self.arena_bytes} bytes, {len(self.buffers)} buffers"
        return "\n".join([head, *lines]) + "\n"


def storage_bytes(dtype: DType) -> int:
    """Bytes per element in the interpreter's storage (bf16 in f32, i4/u4 one per byte)."""
    return dtype.np.itemsize


def value_bytes(v: Value, itemsize: Callable[[DType], int] = storage_bytes) -> Dim:
    return norm(v.type.numel * itemsize(v.type.dtype))


def _round(n: int, align: int) -> int:
    return -(-n // align) * align


class _Classes:
    """Union of a value with its views: class root per value."""

    def __init__(self) -> None:
        self.root: dict[int, Value] = {}

    def add(self, v: Value, base: Value | None) -> None:
        self.root[id(v)] = self.root[id(base)] if base is not None else v

    def of(self, v: Value) -> Value:
        return self.root[id(v)]


def plan_memory(
    g: Graph,
    *,
    is_view: Callable[[Node], bool],
    external: Callable[[Node], str | None],
    inplace: Callable[[Node], list[int]] = lambda n: [],
    workspace: Callable[[Node], Dim | None] = lambda n: None,
    itemsize: Callable[[DType], int] = storage_bytes,
    direct_output: Callable[[Value], bool] = lambda v: True,
    alignment: int = ALIGN,
) -> MemoryPlan:
    """Plan `g`'s intermediate values into one arena.

    is_view(node): its single result aliases operand 0 (same bytes, other shape).
    external(node): for source nodes, the location kind outside the arena ("input", "param",
    "static"), or None to give the result an arena buffer.
    inplace(node): operand indices whose buffer the result may take over when that operand
    dies at this node and has the result's byte size (elementwise ops).
    workspace(node): scratch bytes the node's kernel needs (a symbolic dim is sized at the
    upper bound), or None.
    direct_output(value): whether the graph output `value` may be computed straight into its
    output buffer (else it is copied there at the end).
    """
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    end_of_graph = len(g.nodes)
    names = value_names(g)
    classes = _Classes()
    views = 0
    for n in g.nodes:
        base = n.inputs[0] if n.inputs and len(n.outputs) == 1 and is_view(n) else None
        views += base is not None
        for v in n.outputs:
            classes.add(v, base)
    # Liveness per class: from the root's producer to the last read of any member.
    last: dict[int, int] = {}
    for n in g.nodes:
        for v in n.outputs:
            r = id(classes.of(v))
            last[r] = max(last.get(r, pos[id(n)]), pos[id(n)])
        for v in n.inputs:
            r = id(classes.of(v))
            last[r] = max(last.get(r, 0), pos[id(n)])
    for v in g.outputs:
        last[id(classes.of(v))] = end_of_graph
    where: dict[int, Location] = {}
    copies: list[tuple[int, Value]] = []
    home: dict[int, Location] = {}  # class root -> location
    for k, v in enumerate(g.outputs):
        root = classes.of(v)
        if id(root) in home or external(root.node) is not None or not direct_output(v):
            copies.append((k, v))
        else:
            home[id(root)] = Location("output", k)
    buffers: list[Buffer] = []
    buffer_of: dict[int, Buffer] = {}  # class root -> buffer
    inplace_pairs: list[tuple[str, str]] = []
    for n in g.nodes:
        kind = external(n)
        for v in n.outputs:
            root = classes.of(v)
            if root is not v:
                continue
            if kind is not None:
                home[id(v)] = Location(
                    kind,
                    n.op.key
                    if kind == "param"
                    # type: ignore[attr-defined]
                    else (n.op.index if kind == "input" else pos[id(n)]),
                )  # type: ignore[attr-defined]
                continue
            if id(v) in home:
                continue
            size = _round(max(upper_bound(value_bytes(v, itemsize), g.symbols), 0), alignment)
            reuse = _inplace_source(n, v, inplace, classes, buffer_of, last, pos, itemsize)
            if reuse is not None and len(n.outputs) == 1:
                buf = reuse
                buf.end = max(buf.end, last[id(v)])
                buf.size = max(buf.size, size)
                inplace_pairs.append((names[id(v)], buf.values[-1]))
            else:
                buf = Buffer(len(buffers), size, pos[id(n)], last[id(v)])
                buffers.append(buf)
            buf.values.append(names[id(v)])
            buffer_of[id(v)] = buf
            home[id(v)] = Location("arena", buf.id)
    for n in g.nodes:
        for v in n.outputs:
            where[id(v)] = home[id(classes.of(v))]
    workspaces: dict[int, Buffer] = {}
    for n in g.nodes:
        ws = workspace(n)
        if ws is not None:
            size = _round(max(upper_bound(norm(ws), g.symbols), 0), alignment)
            buf = Buffer(len(buffers), size, pos[id(n)], pos[id(n)], note="workspace")
            buf.values.append(f"scratch of {names[id(n.outputs[0])]}" if n.outputs else "scratch")
            buffers.append(buf)
            workspaces[id(n)] = buf
    arena = _assign_offsets(buffers, alignment)
    plan = MemoryPlan(buffers, where, workspaces, copies, inplace_pairs, views, arena, alignment)
    verify_plan(plan)
    return plan


def _inplace_source(n, v, inplace, classes, buffer_of, last, pos, itemsize) -> Buffer | None:
    """The buffer of an operand that dies at `n` and has v's byte size, if `n` may reuse it."""
    here = pos[id(n)]
    for i in inplace(n):
        if i >= len(n.inputs):
            continue
        operand = n.inputs[i]
        root = classes.of(operand)
        buf = buffer_of.get(id(root))
        if buf is None or last[id(root)] != here or buf.end != here:
            continue
        if not dim_eq(value_bytes(operand, itemsize), value_bytes(v, itemsize)):
            continue
        if any(classes.of(w) is root and w is not operand for w in n.inputs):
            continue  # another view of the same bytes is read at other positions
        return buf
    return None


def _assign_offsets(buffers: list[Buffer], alignment: int) -> int:
    """Greedy first fit, largest first: each buffer goes at the lowest aligned offset that
    overlaps no placed buffer live at the same time. Returns the arena size."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda b: (-b.size, b.start, b.id)):
        if b.size == 0:
            b.offset = 0
            continue
        busy = sorted(
            (p.offset, p.offset + p.size) for p in placed if _overlap_time(p, b) and p.size
        )
        off = 0
        for lo, hi in busy:
            if off + b.size <= lo:
                break
            off = max(off, _round(hi, alignment))
        b.offset = off
        placed.append(b)
    return _round(max((b.offset + b.size for b in buffers), default=0), alignment)


def _overlap_time(a: Buffer, b: Buffer) -> bool:
    return a.start <= b.end and b.start <= a.end


def verify_plan(plan: MemoryPlan) -> None:
    """No two buffers live at the same time share bytes; every buffer is aligned and inside
    the arena. Raises PlanError naming the buffers."""
    bufs = [b for b in plan.buffers if b.size > 0]
    for b in bufs:
        if b.offset < 0 or b.offset % plan.alignment:
            raise PlanError(
                f"buffer b{b.id} ({', '.join(b.values)}) at offset {b.offset} is "
                f"not {plan.alignment}-byte aligned"
            )
        if b.offset + b.size > plan.arena_bytes:
            raise PlanError(
                f"buffer b{b.id} ({', '.join(b.values)}) ends at "
                f"{b.offset + b.size}, past the arena ({plan.arena_bytes} bytes)"
            )
    bufs.sort(key=lambda b: b.offset)
    for i, a in enumerate(bufs):
        for b in bufs[i + 1 :]:
            if b.offset >= a.offset + a.size:
                break
            if _overlap_time(a, b):
                raise PlanError(
                    f"buffers b{a.id} ({', '.join(a.values)}; bytes {a.offset}..{a.offset + a.size}"
                    f", live {a.start}..{a.end}) and b{b.id} ({', '.join(b.values)}; bytes "
                    f"{b.offset}..{b.offset + b.size}, live {b.start}..{b.end}) overlap while "
                    "both are live"
                )
