"""N-d loop building blocks for C kernels: contiguous strides, broadcast strides, collapsing
of axes, and `MapBuilder`, which fills templates/c/ops/map.c.j2 (one kernel over an N-d
iteration space, parallel over flat element ranges)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Value
from ...ir.shapes import Dim, norm

GRAIN = 16384  # elements per parallel task at least (small tensors run on one thread)


def strides(shape: list[Dim] | tuple[Dim, ...]) -> list[Dim]:
    """Row-major element strides of a contiguous tensor."""
    out: list[Dim] = []
    acc: Dim = 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc = norm(acc * d)
    return list(reversed(out))


def broadcast_strides(shape: tuple[Dim, ...], out: tuple[Dim, ...]) -> list[Dim]:
    """Strides of an operand of `shape` read at every index of `out` (numpy broadcasting:
    right-aligned, a literal 1 against another dim repeats, stride 0)."""
    lead = len(out) - len(shape)
    st = strides(shape)
    res: list[Dim] = []
    for a, d in enumerate(out):
        i = a - lead
        if i < 0 or (shape[i] == 1 and d != 1):
            res.append(0)
        else:
            res.append(st[i])
    return res


def collapse(
    out: tuple[Dim, ...], shapes: list[tuple[Dim, ...]]
) -> tuple[list[Dim], list[list[Dim]]]:
    """Merge adjacent output axes where every operand is either read along both or broadcast
    along both (size-1 output axes dropped): fewer, longer loops. Returns the iteration dims and
    each operand's strides over them."""
    lead = [len(out) - len(s) for s in shapes]
    keep = [a for a, d in enumerate(out) if d != 1]
    flags = []
    for a in keep:
        row = []
        for s, ld in zip(shapes, lead):
            i = a - ld
            row.append(i < 0 or s[i] == 1)
        flags.append(tuple(row))
    groups: list[list[int]] = []
    for j, a in enumerate(keep):
        if groups and flags[j] == flags[j - 1]:
            groups[-1].append(a)
        else:
            groups.append([a])
    if not groups:
        return [1], [[0] for _ in shapes]
    dims = [norm(_prod([out[a] for a in g])) for g in groups]
    per_op = []
    for k in range(len(shapes)):
        bshape = [1 if flags[keep.index(g[0])][k] else dims[j] for j, g in enumerate(groups)]
        st = strides(bshape)
        per_op.append([0 if flags[keep.index(g[0])][k] else st[j] for j, g in enumerate(groups)])
    return dims, per_op


def _prod(ds: list[Dim]) -> Dim:
    acc: Dim = 1
    for d in ds:
        acc = acc * d
    return norm(acc)


@dataclass
class MapBuilder:
    """One map kernel: declare pointers, add per-row and per-element statements, render."""

    k: object  # emit.Kernel
    dims: list[Dim]
    decls: list[str] = field(default_factory=list)
    row: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    pre: list[str] = field(default_factory=list)
    grain: int = GRAIN
    _names: int = 0

    def __post_init__(self) -> None:
        if not self.dims:
            self.dims = [1]

    @property
    def rank(self) -> int:
        return len(self.dims)

    def name(self, stem: str) -> str:
        """A fresh local name (stem_N: emitters' own locals never contain '_' + digits)."""
        self._names += 1
        return f"{stem}_{self._names}"

    def pointer(self, v: Value, const: bool = True, as_type: str | None = None) -> str:
        p = self.name("p")
        t = self.k.ptr(v, const=const, as_type=as_type)  # type: ignore[attr-defined]
        self.decls.append(f"{'const ' if const else ''}{as_type or _ctype(v)} *const {p} = {t};")
        return p

    def declare(self, ctype: str, value: str, stem: str = "c") -> str:
        n = self.name(stem)
        self.decls.append(f"const {ctype} {n} = {value};")
        return n

    def offset(self, st: list[Dim], base: str = "") -> str:
        """The element offset at (i0, ..., i_last) for per-axis strides `st`: the outer part
        computed once per row, the innermost term per element."""
        dim = self.k.dim  # type: ignore[attr-defined]
        if not any(_nonzero(s) for s in st):
            return base or "0"
        if [norm(s) for s in st] == [norm(s) for s in strides(self.dims)] and not base:
            return "o"
        terms = [f"i{a} * {dim(s)}" for a, s in enumerate(st[:-1]) if _nonzero(s)]
        if base:
            terms.insert(0, base)
        r = self.name("r")
        self.row.append(f"const int64_t {r} = {' + '.join(terms) if terms else '0'};")
        last = st[-1]
        if not _nonzero(last):
            return r
        inner = f"i{self.rank - 1}" if norm(last) == 1 else f"i{self.rank - 1} * {dim(last)}"
        return f"{r} + {inner}"

    def render(self, store: str) -> str:
        dim = self.k.dim  # type: ignore[attr-defined]
        cdims = [dim(d) for d in self.dims]
        total = dim(_prod(self.dims))
        return self.k.render(  # type: ignore[attr-defined]
            "ops/map.c.j2",
            rank=self.rank,
            dims=cdims,
            outer_rev=list(range(self.rank - 2, -1, -1)),
            total=total,
            grain=self.grain,
            decls=self.decls,
            row=self.row,
            body=self.body,
            pre=self.pre,
            store=store,
        )


def _nonzero(s: Dim) -> bool:
    return not (isinstance(s, int) and s == 0)


def _ctype(v: Value) -> str:
    from .cexpr import ctype

    return ctype(v.type.dtype)
