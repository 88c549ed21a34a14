"""Weights files for the CLI: `--weights` of `lmc build` (.npz, plain safetensors, or an lmc
artifact's weights.safetensors with packed GEMM panels unpacked) and attaching them to the params
of a .lmc graph; `lmc bench --reference` reads an artifact's weights back the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .ir import Graph, LmcError
from .ir.dtypes import DType, round_to_bf16

# safetensors dtype names -> numpy (BF16 is widened to float32, the IR's bf16 storage)
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?",
}  # fmt: skip


def param_types(g: Graph) -> dict[str, Any]:
    """key -> TensorType of every param node of g."""
    from .ir.ops.source import Param

    return {n.op.key: n.outputs[0].type for n in g.nodes if isinstance(n.op, Param)}


def attach_weights(g: Graph, weights: str | None, model_name: str) -> None:
    """Fill g.weights from a weights file for every param key; one error lists every missing
    key and every shape or dtype mismatch."""
    types = param_types(g)
    needed = sorted(k for k in types if k not in g.weights)
    if not needed:
        return
    if not weights:
        raise LmcError(
            f"{model_name} has {len(needed)} param(s) ({_some(needed)}) and a .lmc file carries "
            "no weights; pass --weights FILE.safetensors or FILE.npz with arrays by key"
        )
    arrays = read_weight_file(Path(weights), needed)
    missing = [k for k in needed if k not in arrays]
    problems = [f"missing key(s): {_some(missing, 20)}"] if missing else []
    for k in needed:
        if k not in arrays:
            continue
        a, t = np.asarray(arrays[k]), types[k]
        want = tuple(int(d) for d in t.shape)
        if a.shape != want:
            problems.append(f"{k!r}: shape {list(a.shape)}, the param is {t}")
        elif a.dtype != t.dtype.np:
            problems.append(f"{k!r}: dtype {a.dtype}, the param is {t} (numpy {t.dtype.np})")
        else:
            g.weights[k] = round_to_bf16(a) if t.dtype is DType.bf16 else a
    if problems:
        raise LmcError(f"--weights {weights} does not fit {model_name}: " + "; ".join(problems))


def _some(keys: list[str], n: int = 8) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def read_weight_file(path: Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays by key from a .npz, a plain safetensors file, or an lmc weights file (packed GEMM
    panels unpacked back to the param's array). `keys` limits what an lmc file decodes."""
    if not path.is_file():
        raise LmcError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise LmcError(f"{path}: not a readable .npz file: {e}") from None
    if suffix != ".safetensors":
        raise LmcError(f"{path}: unknown weights file type {suffix!r} (.safetensors or .npz)")
    header, start = _safetensors_header(path)
    meta = header.get("__metadata__") or {}
    from .runtime.weights import WEIGHTS_FORMAT_KEY

    if isinstance(meta, dict) and WEIGHTS_FORMAT_KEY in meta:
        return lmc_weight_arrays(path, keys)
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, t in header.items():
        if k == "__metadata__":
            continue
        try:
            lo, hi = (start + int(o) for o in t["data_offsets"])
            shape = tuple(int(d) for d in t["shape"])
            raw = data[lo:hi]
            if t["dtype"] == "BF16":
                out[k] = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
            else:
                dt = np.dtype(SAFETENSORS_DTYPES[t["dtype"]])
                out[k] = raw.view(dt).reshape(shape).astype(dt.newbyteorder("="))
        except (KeyError, TypeError, ValueError) as e:
            raise LmcError(f"{path}: tensor {k!r} is malformed or unsupported ({e!r})") from None
    return out


def _safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        size = path.stat().st_size
        if n < 0 or n > size - 8:
            raise LmcError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LmcError(f"{path}: safetensors header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise LmcError(f"{path}: safetensors header is not a JSON object")
    return header, 8 + n


def lmc_weight_arrays(path: Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Param arrays from an lmc weights file: plain entries as stored; bf16 params kept as f32
    bytes; params stored only as packed GEMM panels unpacked (linear: W, matmul: B)."""
    from .backends.c.emit_linalg import PACKED
    from .backends.c.packing import GEMM_LAYOUT, unpack_gemm
    from .runtime.weights import PLAIN, read_weights

    wf = read_weights(path)
    packed = {suffix: kind for kind, suffix in PACKED.items()}
    if keys is None:
        keys = {k for k in wf.keys() if not any(k.endswith(s) for s in packed)}
        keys |= {k[: -len(s)] for k in wf.keys() for s in packed if k.endswith(s)}
    out: dict[str, np.ndarray] = {}
    for k in keys:
        if k in wf:
            e = wf.entries[k]
            if e.layout == PLAIN:
                out[k] = np.array(wf.array(k))
            elif e.meta.get("dtype") == "bf16":  # f32 bytes holding bf16 values
                out[k] = np.frombuffer(wf.raw(k), "<f4").reshape(e.shape).copy()
            else:
                raise LmcError(f"{path}: weight {k!r} has layout {e.layout!r}, not readable")
            continue
        for suffix, kind in packed.items():
            e = wf.entries.get(k + suffix)
            if e is not None and e.layout == GEMM_LAYOUT:
                n, kk = e.shape
                w = unpack_gemm(bytes(wf.raw(k + suffix)), n, kk)
                out[k] = w if kind == "linear" else np.ascontiguousarray(w.T)
                break
    return out
