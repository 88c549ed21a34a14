"""The SSA graph: nodes in topological order, multi-result nodes, use-lists kept by the API."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IRTypeError, LmcError
from .types import TensorType

if TYPE_CHECKING:
    import networkx

    from .op import Op


class Value:
    """One result of a node. `uses` lists (node, operand index) pairs that read it."""

    __slots__ = ("type", "node", "index", "name", "uses")

    def __init__(self, type: TensorType, node: Node, index: int, name: str | None = None):
        self.type = type
        self.node = node
        self.index = index
        self.name = name
        self.uses: list[tuple[Node, int]] = []

    def __repr__(self) -> str:
        label = self.name or f"{self.node.op.name}#{self.index}"
        return f"<Value {label}: {self.type}>"


class Node:
    """An op instance applied to operand values, producing one or more typed results."""

    __slots__ = ("op", "inputs", "outputs", "graph")

    def __init__(self, op: Op, inputs: Sequence[Value], graph: Graph):
        self.op = op
        self.inputs: tuple[Value, ...] = tuple(inputs)
        self.outputs: list[Value] = []
        self.graph = graph

    @property
    def out(self) -> Value:
        """The single result (error for multi-result nodes)."""
        if len(self.outputs) != 1:
            raise LmcError(f"{self.op.name} has {len(self.outputs)} results, not one")
        return self.outputs[0]

    def __repr__(self) -> str:
        return f"<Node {self.op.name}>"


class Graph:
    """A named SSA graph with declared shape symbols, a weights store and ordered outputs."""

    def __init__(self, name: str = "main", symbols: dict[str, tuple[int, int]] | None = None):
        self.name = name
        self.symbols: dict[str, tuple[int, int]] = dict(symbols or {})
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.weights: dict[str, np.ndarray] = {}

    # -- construction ----------------------------------------------------------------------
    def add_node(
        self,
        op: Op,
        inputs: Sequence[Value] = (),
        types: Sequence[TensorType] | None = None,
        names: Sequence[str | None] | None = None,
        before: Node | None = None,
    ) -> Node:
        """Insert a node (at the end or before `before`); types are inferred unless given."""
        for v in inputs:
            if not isinstance(v, Value) or v.node.graph is not self:
                raise LmcError(f"{op.name}: operand {v!r} is not a value of graph @{self.name}")
        if types is None:
            if op.declares_type:
                raise IRTypeError(f"{op.name} declares its result type: pass `types`")
            inferred = op.infer(*(v.type for v in inputs))
            types = inferred if isinstance(inferred, tuple) else (inferred,)
        node = Node(op, inputs, self)
        names = names or [None] * len(types)
        node.outputs = [Value(t, node, i, n) for i, (t, n) in enumerate(zip(types, names))]
        for i, v in enumerate(node.inputs):
            v.uses.append((node, i))
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.position(before), node)
        return node

    def apply(self, op: Op, *inputs: Value, before: Node | None = None) -> Any:
        """Add `op(*inputs)` with inferred types; returns its Value (a tuple if several)."""
        node = self.add_node(op, inputs, before=before)
        return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)

    def input(self, name: str, type: TensorType) -> Value:
        from .ops.source import Input

        index = sum(1 for n in self.nodes if isinstance(n.op, Input))
        return self.add_node(Input(index=index), (), [type], [name]).out

    def param(
        self,
        key: str,
        array: np.ndarray | None = None,
        type: TensorType | None = None,
        name: str | None = None,
    ) -> Value:
        """A `param` node reading `key` from the weights store (storing `array` if given)."""
        from .dtypes import from_numpy
        from .ops.source import Param

        if array is not None:
            self.weights[key] = array
            type = type or TensorType(from_numpy(array.dtype), array.shape)
        if type is None:
            raise LmcError(f"param {key!r}: give an array or a type")
        first_source = next((i for i, n in enumerate(self.nodes) if not n.op.declares_type), None)
        before = self.nodes[first_source] if first_source is not None else None
        return self.add_node(Param(key=key), (), [type], [name or key], before=before).out

    def constant(self, values: Any, type: TensorType, before: Node | None = None) -> Value:
        from .ops.source import Constant

        flat = tuple(np.asarray(values, dtype=object).reshape(-1).tolist())
        return self.add_node(Constant(value=flat), (), [type], before=before).out

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # -- mutation --------------------------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every reader of `old` (and the graph outputs) read `new` instead."""
        if old is new:
            return
        for node, i in list(old.uses):
            self.set_input(node, i, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def set_input(self, node: Node, i: int, new: Value) -> None:
        old = node.inputs[i]
        old.uses.remove((node, i))
        node.inputs = node.inputs[:i] + (new,) + node.inputs[i + 1 :]
        new.uses.append((node, i))

    def remove_node(self, node: Node) -> None:
        """Delete a node whose results nobody reads."""
        for v in node.outputs:
            if v.uses or any(o is v for o in self.outputs):
                raise LmcError(f"cannot remove {node.op.name}: its result is still used")
        for i, v in enumerate(node.inputs):
            v.uses.remove((node, i))
        self.nodes.remove(node)

    def replace_node(self, node: Node, op: Op, inputs: Sequence[Value]) -> Node:
        """Insert `op(inputs)` before `node`, move all uses over, delete `node`."""
        new = self.add_node(op, inputs, before=node)
        if len(new.outputs) != len(node.outputs):
            raise LmcError(f"replace {node.op.name} by {op.name}: result counts differ")
        for a, b in zip(node.outputs, new.outputs):
            self.replace_all_uses(a, b)
        self.remove_node(node)
        return new

    def position(self, node: Node) -> int:
        for i, n in enumerate(self.nodes):
            if n is node:
                return i
        raise LmcError(f"{node.op.name} is not in graph @{self.name}")

    # -- queries ---------------------------------------------------------------------------
    @property
    def inputs(self) -> list[Value]:
        """Graph inputs ordered by their `index` attribute."""
        from .ops.source import Input

        ins = [n for n in self.nodes if isinstance(n.op, Input)]
        return [n.out for n in sorted(ins, key=lambda n: n.op.index)]

    def values(self) -> Iterator[Value]:
        for n in self.nodes:
            yield from n.outputs

    def users(self, v: Value) -> list[Node]:
        return [n for n, _ in v.uses]

    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self.outputs)

    def copy(self) -> Graph:
        """A deep copy of the structure (ops are immutable and shared; weights dict copied)."""
        g = Graph(self.name, self.symbols)
        g.weights = dict(self.weights)
        vmap: dict[int, Value] = {}
        for n in self.nodes:
            new = g.add_node(
                n.op,
                [vmap[id(v)] for v in n.inputs],
                [v.type for v in n.outputs],
                [v.name for v in n.outputs],
            )
            for a, b in zip(n.outputs, new.outputs):
                vmap[id(a)] = b
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def to_nx(self) -> networkx.MultiDiGraph:
        """A networkx view for analyses: node ids are positions, edges carry value indices."""
        import networkx as nx

        pos = {id(n): i for i, n in enumerate(self.nodes)}
        G = nx.MultiDiGraph()
        for i, n in enumerate(self.nodes):
            G.add_node(i, op=n.op.name, node=n)
        for i, n in enumerate(self.nodes):
            for k, v in enumerate(n.inputs):
                G.add_edge(pos[id(v.node)], i, result=v.index, operand=k)
        return G

    def __str__(self) -> str:
        from .printer import print_graph

        return print_graph(self)
