"""The C emitter: the op -> kernel table `C`, the per-kernel context `Kernel`, and `emit_module`,
which renders one C file defining `lmc_model_definition()` for a legalized, grouped and
memory-planned graph. Emitters for op families live in emit_*.py and register with
`@C.emits(OpClass, ...)`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ... import __version__
from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, Value
from ...ir.op import Op
from ...ir.ops.source import Constant, Input, Param
from ...ir.printer import node_line, print_graph
from ...ir.shapes import Dim, dim_str, norm, numel, sym, to_c
from ..memory_plan import MemoryPlan
from .cexpr import LMC_DTYPE, ctype
from .render import render
from .sanitize import c_comment, c_ident, c_string

Emitter = Callable[["Kernel", Node], "str | None"]


class EmitterTable:
    """Emitters by op class; `check` says why a node is not supported (None: it is), and
    `workspace` how many scratch bytes its kernel needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fns: dict[type[Op], Emitter] = {}
        self.checks: dict[type[Op], Callable[[Node], str | None]] = {}
        self.workspaces: dict[type[Op], Callable[[Node], Dim | None]] = {}

    def emits(
        self,
        *classes: type[Op],
        check: Callable[[Node], str | None] | None = None,
        workspace: Callable[[Node], Dim | None] | None = None,
    ) -> Callable[[Emitter], Emitter]:
        def deco(fn: Emitter) -> Emitter:
            for cls in classes:
                if cls in self.fns:
                    raise TypeError(f"{self.name}: two emitters for {cls.name}")
                self.fns[cls] = fn
                if check is not None:
                    self.checks[cls] = check
                if workspace is not None:
                    self.workspaces[cls] = workspace
            return fn

        return deco

    def has(self, cls: type[Op]) -> bool:
        _load()
        return cls in self.fns

    def unsupported_reason(self, node: Node) -> str | None:
        _load()
        check = self.checks.get(type(node.op))
        return check(node) if check else None

    def workspace(self, node: Node) -> Dim | None:
        _load()
        ws = self.workspaces.get(type(node.op))
        return ws(node) if ws else None

    def emit(self, k: Kernel, node: Node) -> str | None:
        _load()
        return self.fns[type(node.op)](k, node)


C = EmitterTable("c")


def _load() -> None:
    """Import the emitter families (explicit list; each registers at definition)."""
    from . import (  # noqa: F401
        emit_attention,
        emit_conv,
        emit_elementwise,
        emit_index,
        emit_int8,
        emit_linalg,
        emit_linear_split,
        emit_misc,
        emit_nn,
        emit_quant,
        emit_reduce,
        emit_shape,
    )


# -- dims ------------------------------------------------------------------------------------


class DimTable:
    """Every dim the generated code or the I/O tables use; symbolic ones are read as D[i]
    from ex->dim, which eval_dims fills from the symbol values."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.entries: list[Dim] = []
        self.index: dict[str, int] = {}

    def add(self, d: Dim) -> int:
        d = norm(d)
        key = dim_str(d)
        if key not in self.index:
            self.index[key] = len(self.entries)
            self.entries.append(d)
        return self.index[key]

    def ref(self, d: Dim) -> str:
        d = norm(d)
        if isinstance(d, int):
            return str(d) if d >= 0 else f"({d})"
        return f"D[{self.add(d)}]"

    def c_expr(self, d: Dim) -> str:
        """d over the local symbol variables lmc_s0.. of eval_dims (an int64_t expression)."""
        if isinstance(d, int):
            return f"INT64_C({d})"
        mapping = {sym(n): sym(f"lmc_s{i}") for i, n in enumerate(self.symbols)}
        text = to_c(d.xreplace(mapping))  # type: ignore[union-attr]
        if any(t in text for t in (".", "floor", "ceil", "fmin", "fmax", "pow", "/")):
            return f"(int64_t)llround((double)({text}))"
        return f"(int64_t)({text})"

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for d in self.entries:
            static = isinstance(d, int)
            bare = not static and d.is_Symbol  # type: ignore[union-attr]
            out.append({
                "value": d if static else -1,
                "sym": self.symbols.index(d.name) if bare else -1,  # type: ignore[union-attr]
                "expr": self.c_expr(d),
            })  # fmt: skip
        return out


# -- kernels ---------------------------------------------------------------------------------


@dataclass
class WeightRef:
    """A blob of the weights file: its key, offset in the data region and byte size."""

    key: str
    offset: int
    nbytes: int


@dataclass
class Kernel:
    """What an emitter works with for one node: names, dims and pointers of its values."""

    mod: ModuleBuilder
    node: Node
    name: str
    comment: str
    extra: list[str] = field(default_factory=list)

    def dim(self, d: Dim) -> str:
        return self.mod.dims.ref(d)

    def shape(self, v: Value) -> list[str]:
        return [self.dim(d) for d in v.type.shape]

    def numel(self, shape: Any) -> str:
        dims = shape.type.shape if isinstance(shape, Value) else shape
        return self.dim(numel(list(dims)))

    def ptr(self, v: Value, const: bool = True, as_type: str | None = None) -> str:
        """A typed pointer expression to v's first element."""
        t = as_type or ctype(v.type.dtype)
        base = self.mod.base(v)
        q = "const " if const else ""
        return f"(({q}{t} *)({base}))"

    def workspace(self) -> str:
        buf = self.mod.plan.workspaces[id(self.node)]
        return f"(ex->arena + {buf.offset})"

    def weight(self, key: str) -> WeightRef:
        return self.mod.weights[key]

    def render(self, template: str, **ctx: Any) -> str:
        return render(template, name=self.name, comment=self.comment, **ctx)


class ModuleBuilder:
    """Collects kernels and tables and renders module.c.j2."""

    def __init__(
        self,
        g: Graph,
        plan: MemoryPlan,
        weights: dict[str, WeightRef],
        weights_bytes: int,
        weights_digest: int,
        options: dict[str, Any],
    ) -> None:
        self.g, self.plan, self.weights = g, plan, weights
        self.weights_bytes, self.weights_digest = weights_bytes, weights_digest
        self.options = options
        self.dims = DimTable(list(g.symbols))
        self.statics: list[str] = []
        self.static_names: dict[int, str] = {}

    def base(self, v: Value) -> str:
        """An untyped address expression of v's bytes."""
        loc = self.plan.location(v)
        if loc.kind == "arena":
            return f"ex->arena + {self.plan.buffers[loc.index].offset}"  # type: ignore[index]
        if loc.kind == "input":
            return f"ex->in[{loc.index}]"
        if loc.kind == "output":
            return f"ex->out[{loc.index}]"
        if loc.kind == "param":
            return f"ex->weights + {self.weights[str(loc.index)].offset}"
        if loc.kind == "static":
            return self.static_names[loc.index]  # type: ignore[index]
        raise AssertionError(loc)

    def io_rows(self, values: list[Value], names: list[str], prefix: str) -> list[dict[str, Any]]:
        rows = []
        for k, (v, name) in enumerate(zip(values, names)):
            rows.append({
                "name": c_string(name),
                "dtype": LMC_DTYPE[v.type.dtype],
                "rank": v.type.rank,
                "dims": [self.dims.add(d) for d in v.type.shape],
                "text": [c_string(dim_str(d)) for d in v.type.shape],
                "ident": c_ident(prefix, k),
            })  # fmt: skip
        return rows

    def build(self) -> str:
        g = self.g
        ins = self.io_rows(g.inputs, [v.name or f"input{i}" for i, v in enumerate(g.inputs)], "in")
        outs = self.io_rows(g.outputs, [f"output{i}" for i in range(len(g.outputs))], "out")
        for n in g.nodes:
            if isinstance(n.op, Constant) and self.plan.location(n.outputs[0]).kind == "static":
                self._static_constant(n)
        kernels, calls = [], []
        for pos, n in enumerate(g.nodes):
            k = Kernel(self, n, c_ident("lmc", f"k{pos}"), c_comment(node_line(n)))
            code = C.emit(k, n)
            if code:
                kernels.append(code)
                calls.append(k.name)
        from .emit_shape import output_copy

        for pos, (index, v) in enumerate(self.plan.copies):
            name = c_ident("lmc", f"copy{pos}")
            kernels.append(output_copy(self, name, index, v))
            calls.append(name)
        capacity = [_upper_bytes(v, g.symbols) for v in g.outputs]
        text = print_graph(g)
        return render(
            "module.c.j2",
            version=c_comment(__version__),
            graph=c_comment(g.name),
            graph_name=c_string(g.name),
            lmc_version=c_string(__version__),
            ir_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
            symbols=[
                {"name": c_string(s), "lo": lo, "hi": hi} for s, (lo, hi) in g.symbols.items()
            ],
            dims=self.dims.rows(),
            inputs=ins,
            outputs=outs,
            capacity=capacity,
            arena_bytes=self.plan.arena_bytes,
            weights=[
                {"key": c_string(w.key), "offset": w.offset, "nbytes": w.nbytes}
                for w in sorted(self.weights.values(), key=lambda w: w.offset)
            ],
            weights_bytes=self.weights_bytes,
            weights_digest=f"UINT64_C(0x{self.weights_digest:016x})",
            statics=self.statics,
            kernels=kernels,
            calls=calls,
        )

    def _static_constant(self, n: Node) -> None:
        from .cexpr import storage_literal

        v = n.outputs[0]
        name = c_ident("lmc", f"const{len(self.statics)}")
        self.static_names[self.plan.location(v).index] = name  # type: ignore[index]
        vals = [storage_literal(x, v.type.dtype) for x in n.op.value] or ["0"]  # type: ignore[attr-defined]
        comment = c_comment(node_line(n))
        decl = f"static const {ctype(v.type.dtype)} {name}[{len(vals)}] = {{{', '.join(vals)}}};"
        self.statics.append(f"/* {comment} */\n{decl}")


def _upper_bytes(v: Value, symbols: dict[str, tuple[int, int]]) -> int:
    from ...ir.shapes import upper_bound
    from .cexpr import CTYPE

    size = {
        "double": 8,
        "float": 4,
        "uint16_t": 2,
        "int64_t": 8,
        "int32_t": 4,
        "int16_t": 2,
        "int8_t": 1,
        "uint8_t": 1,
        "uint32_t": 4,
        "uint64_t": 8,
    }[CTYPE[v.type.dtype]]
    if v.type.dtype == DType.bf16:
        size = 2  # bf16 crosses the API as 16 bits
    return max(upper_bound(numel(list(v.type.shape)), symbols), 0) * size


def constant_is_static(n: Node) -> bool:
    return isinstance(n.op, Constant) and not n.op.symbols()


def emit_module(
    g: Graph,
    plan: MemoryPlan,
    weights: dict[str, WeightRef],
    weights_bytes: int,
    weights_digest: int,
    options: dict[str, Any] | None = None,
) -> str:
    """The C source of the model: tables for the runtime and one kernel per node."""
    return ModuleBuilder(g, plan, weights, weights_bytes, weights_digest, options or {}).build()


# Sources whose values live outside the arena in the C backend (memory_plan.external).
def c_external(n: Node) -> str | None:
    if isinstance(n.op, Input):
        return None if n.outputs[0].type.dtype == DType.bf16 else "input"
    if isinstance(n.op, Param):
        return "param"
    if isinstance(n.op, Constant):
        return "static" if constant_is_static(n) else None
    return None
