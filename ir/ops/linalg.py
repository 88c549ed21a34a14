"""Linear algebra ops: matmul (numpy semantics), linear (torch weight layout) and einsum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import DType
from ..errors import require
from ..op import Op, register
from ..shapes import Dim, broadcast_shapes, dim_eq
from ..types import TensorType


def compute_dtype(dt: np.dtype) -> np.dtype:
    """The numpy dtype references compute in: f64 stays f64, other floats widen to f32
    (f16/bf16 accumulate in f32), ints keep their own dtype (and wrap like numpy)."""
    if np.issubdtype(dt, np.floating):
        return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)
    return np.dtype(dt)


def same_dtype(op: str, *ts: TensorType | None) -> DType:
    """The common dtype of the given (non-None) operands, or IRTypeError naming `op`."""
    present = [t for t in ts if t is not None]
    first = present[0].dtype
    for t in present[1:]:
        require(t.dtype == first, f"{op}: operand dtypes differ ({present[0]} vs {t})")
    return first


@register
@dataclass(frozen=True)
class Matmul(Op):
    """y = a @ b with numpy matmul semantics: 1-D operands are promoted (a to [1, K], b to
    [K, 1]) and the added dim removed again; leading batch dims broadcast. Float inputs
    accumulate in at least f32; integer inputs keep their dtype and wrap like numpy."""

    name: ClassVar[str] = "matmul"

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        dt = same_dtype(self.name, a, b)
        require(dt != DType.bool, f"matmul: bool operands are not supported ({a} @ {b})")
        require(a.rank >= 1 and b.rank >= 1, f"matmul: operands need rank >= 1 ({a} @ {b})")
        ash = a.shape if a.rank > 1 else (1, a.shape[0])
        bsh = b.shape if b.rank > 1 else (b.shape[0], 1)
        require(
            dim_eq(ash[-1], bsh[-2]),
            f"matmul: contraction dims differ: {ash[-1]} vs {bsh[-2]} ({a} @ {b})",
        )
        batch = broadcast_shapes(ash[:-2], bsh[:-2])
        require(batch is not None, f"matmul: batch dims do not broadcast ({a} @ {b})")
        rows = (ash[-2],) if a.rank > 1 else ()
        cols = (bsh[-1],) if b.rank > 1 else ()
        return TensorType(dt, tuple(batch) + rows + cols)  # type: ignore[arg-type]

    def ref(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        acc = compute_dtype(a.dtype)
        return np.asarray(np.matmul(a.astype(acc), b.astype(acc))).astype(a.dtype)


@register
@dataclass(frozen=True)
class Linear(Op):
    """y = x @ w.T + b with w of shape [out, in] (torch layout), x [..., in], b [out]."""

    name: ClassVar[str] = "linear"

    def infer(self, x: TensorType, w: TensorType, b: TensorType | None = None) -> TensorType:
        dt = same_dtype(self.name, x, w, b)
        require(dt != DType.bool, f"linear: bool operands are not supported ({x})")
        require(x.rank >= 1, f"linear: input needs rank >= 1, got {x}")
        require(w.rank == 2, f"linear: weight must be [out, in], got {w}")
        require(
            dim_eq(w.shape[1], x.shape[-1]),
            f"linear: weight {w} expects {w.shape[1]} input features, input is {x}",
        )
        if b is not None:
            require(
                b.rank == 1 and dim_eq(b.shape[0], w.shape[0]),
                f"linear: bias must be [{w.shape[0]}], got {b}",
            )
        return TensorType(dt, x.shape[:-1] + (w.shape[0],))

    def ref(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        acc = compute_dtype(x.dtype)
        # Leading dims flattened: numpy's stacked matmul with a transposed operand skips BLAS.
        x2 = x.astype(acc).reshape(-1, x.shape[-1])
        y = np.matmul(x2, w.astype(acc).T).reshape(x.shape[:-1] + (w.shape[0],))
        if b is not None:
            y = y + b.astype(acc)
        return np.asarray(y).astype(x.dtype)


@register
@dataclass(frozen=True)
class Einsum(Op):
    """y = numpy.einsum(equation, *xs): labelled dims (a-z, A-Z) multiply, labels absent from
    the output are summed; `...` dims broadcast. Without `->` the output is `...` followed by
    the labels used exactly once, in ASCII order. Dims sharing a label must be equal (no
    size-1 broadcasting of labelled dims)."""

    name: ClassVar[str] = "einsum"
    equation: str = ""

    def infer(self, *xs: TensorType) -> TensorType:
        require(len(xs) >= 1, "einsum: needs at least one operand")
        dt = same_dtype(self.name, *xs)
        require(dt != DType.bool, "einsum: bool operands are not supported")
        terms, out = parse_einsum(self.equation, len(xs))
        dims: dict[str, Dim] = {}
        ell_shapes = []
        for i, (term, x) in enumerate(zip(terms, xs)):
            n_ell = x.rank - sum(1 for t in term if t != "...")
            require(
                n_ell >= 0 and ("..." in term or n_ell == 0),
                f"einsum: operand {i} has rank {x.rank}, term {''.join(term)!r} expects "
                f"{x.rank - n_ell}",
            )
            axis = 0
            for t in term:
                if t == "...":
                    ell_shapes.append(x.shape[axis : axis + n_ell])
                    axis += n_ell
                    continue
                d = x.shape[axis]
                require(
                    t not in dims or dim_eq(dims[t], d),
                    f"einsum: label {t!r} is {dims.get(t)} and {d} ({self.equation!r})",
                )
                dims.setdefault(t, d)
                axis += 1
        ell = broadcast_shapes(*ell_shapes) if ell_shapes else ()
        require(ell is not None, f"einsum: '...' dims do not broadcast ({self.equation!r})")
        require(
            "..." in out or not ell,
            f"einsum: output of {self.equation!r} needs '...' for broadcast dims {ell}",
        )
        shape: list[Dim] = []
        for t in out:
            shape.extend(ell if t == "..." else (dims[t],))  # type: ignore[arg-type]
        return TensorType(dt, shape)

    def ref(self, *xs: np.ndarray) -> np.ndarray:
        acc = compute_dtype(xs[0].dtype)
        y = np.einsum(self.equation, *(x.astype(acc) for x in xs), optimize=len(xs) > 2)
        return np.asarray(y).astype(xs[0].dtype)


def parse_einsum(equation: str, n: int) -> tuple[list[list[str]], list[str]]:
    """Split an einsum equation into input terms and the output term (lists of labels, with
    '...' as one item); the implicit output follows numpy. Raises IRTypeError when malformed."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = [_einsum_term(t, equation) for t in lhs.split(",")]
    require(
        len(terms) == n,
        f"einsum: equation {equation!r} has {len(terms)} operand terms, got {n} operands",
    )
    used = [t for term in terms for t in term if t != "..."]
    if arrow:
        out = _einsum_term(rhs, equation)
        labels = [t for t in out if t != "..."]
        require(len(set(labels)) == len(labels), f"einsum: repeated output label in {equation!r}")
        missing = [t for t in labels if t not in used]
        require(not missing, f"einsum: output labels {missing} not in the inputs ({equation!r})")
        require(
            "..." not in out or any("..." in t for t in terms),
            f"einsum: output has '...' but no input does ({equation!r})",
        )
    else:
        once = sorted(t for t in set(used) if used.count(t) == 1)
        out = (["..."] if any("..." in t for t in terms) else []) + once
    return terms, out


def _einsum_term(term: str, equation: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(term):
        if term.startswith("...", i):
            require("..." not in out, f"einsum: two '...' in one term of {equation!r}")
            out.append("...")
            i += 3
            continue
        c = term[i]
        require(
            c.isascii() and c.isalpha(),
            f"einsum: bad character {c!r} in {equation!r} (labels are a-z, A-Z)",
        )
        out.append(c)
        i += 1
    return out
