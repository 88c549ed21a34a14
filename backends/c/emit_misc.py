"""C emitters of resize (separable taps per axis from lmc_resize_taps, their tensor product per
output element) and topk (insertion into the output row: sorted, ties by lower index)."""

from __future__ import annotations

from ...ir.graph import Node
from ...ir.ops.misc import Resize, Topk
from .cexpr import compute_type
from .emit import C, Kernel
from .nd import MapBuilder, strides

CTM = {
    "half_pixel": 0,
    "half_pixel_symmetric": 1,
    "pytorch_half_pixel": 2,
    "align_corners": 3,
    "asymmetric": 4,
}
MODE = {"nearest": 0, "linear": 1, "cubic": 2}
NEAREST = {"round_prefer_floor": 0, "round_prefer_ceil": 1, "floor": 2, "ceil": 3}


@C.emits(Resize)
def resize(k: Kernel, node: Node) -> str:
    x, y = node.inputs[0], node.outputs[0]
    op = node.op
    r = x.type.rank
    m = MapBuilder(k, list(y.type.shape), grain=256)
    px, py = m.pointer(x), m.pointer(y, const=False)
    D = k.dim
    xst = strides(x.type.shape)
    ctm, mode = CTM[op.coordinate_transformation_mode], MODE[op.mode]  # type: ignore[attr-defined]
    near = NEAREST[op.nearest_mode]  # type: ignore[attr-defined]
    a, excl = repr(float(op.cubic_coeff_a)), int(op.exclude_outside)  # type: ignore[attr-defined]
    for i in range(r):
        n, size = D(x.type.shape[i]), D(y.type.shape[i])
        scale = (
            repr(float(op.scales[i]))
            if op.scales  # type: ignore[attr-defined]
            else f"({n} ? (double){size} / (double){n} : 1.0)"
        )
        m.body.append(
            f"int64_t ix{i}[4]; double w{i}[4]; const int nt{i} = lmc_resize_taps(i{i}, "
            f"{n}, {size}, {scale}, {ctm}, {mode}, {near}, {a}, {excl}, ix{i}, w{i});"
        )
    loops = " ".join(f"for (int t{i} = 0; t{i} < nt{i}; ++t{i})" for i in range(r))
    off = " + ".join(f"ix{i}[t{i}] * {D(xst[i])}" for i in range(r)) or "0"
    if mode == 0:
        idx0 = " + ".join(f"ix{i}[0] * {D(xst[i])}" for i in range(r)) or "0"
        return m.render(f"{py}[o] = {px}[{idx0}];")
    wprod = " * ".join(f"w{i}[t{i}]" for i in range(r)) or "1.0"
    m.body.append(f"double acc = 0; {loops} acc += {wprod} * (double){px}[{off}];")
    return m.render(f"{py}[o] = ({compute_type(y.type.dtype)})acc;")


@C.emits(Topk)
def topk(k: Kernel, node: Node) -> str:
    x = node.inputs[0]
    yv, yi = node.outputs
    op = node.op
    ax = op.axis % x.type.rank  # type: ignore[attr-defined]
    kept = [a for a in range(x.type.rank) if a != ax]
    m = MapBuilder(k, [x.type.shape[a] for a in kept], grain=16)
    px, pv, pi = m.pointer(x), m.pointer(yv, const=False), m.pointer(yi, const=False)
    D = k.dim
    xst, yst = strides(x.type.shape), strides(yv.type.shape)
    xb = " + ".join(f"i{j} * {D(xst[a])}" for j, a in enumerate(kept)) or "0"
    yb = " + ".join(f"i{j} * {D(yst[a])}" for j, a in enumerate(kept)) or "0"
    t = compute_type(x.type.dtype)
    n, kk, xs, ys = D(x.type.shape[ax]), D(yv.type.shape[ax]), D(xst[ax]), D(yst[ax])
    fl = x.type.dtype.is_float
    if op.largest:  # type: ignore[attr-defined]
        better = "(a > b || (a != a && b == b))" if fl else "(a > b)"
    else:
        better = "(a < b || (a == a && b != b))" if fl else "(a < b)"
    m.body.append(f"const int64_t xb = {xb}, yb = {yb}; int64_t cnt = 0;")
    m.body.append(
        f"for (int64_t j = 0; j < {n} && {kk} > 0; ++j) {{ const {t} a = {px}[xb + j * {xs}]; "
        f"int64_t p; if (cnt == {kk}) {{ const {t} b = {pv}[yb + (cnt - 1) * {ys}]; "
        f"if (!{better}) continue; p = cnt - 1; }} else {{ p = cnt++; }} "
        f"while (p > 0) {{ const {t} b = {pv}[yb + (p - 1) * {ys}]; if (!{better}) break; "
        f"{pv}[yb + p * {ys}] = b; {pi}[yb + p * {ys}] = {pi}[yb + (p - 1) * {ys}]; --p; }} "
        f"{pv}[yb + p * {ys}] = a; {pi}[yb + p * {ys}] = j; }}"
    )
    return m.render("(void)o;")
