"""`lmc build --quantize SPEC [--calib FILE.npz]`: the quantization options of `lmc build`, the
calibration file format, and the per-layer quantization report.

Calibration file: an `.npz` whose arrays are named after the model's inputs, either
`<input>` with a leading sample axis (`np.savez(f, input_ids=ids)` with ids of shape
[samples, batch, seq]: sample i is ids[i]) or `<input>_<k>`, one array per sample k = 0, 1, ...
(samples of different shapes, e.g. sequence lengths). Every input needs the same samples.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from .ir import LmcError


def add_quant_args(b: argparse.ArgumentParser) -> None:
    b.add_argument(
        "--quantize",
        metavar="SPEC",
        help="quantize the weights (and activations): w4-gptq-g128, w4-rtn-g128, w8-rtn, w8a8, "
        "w8a8-static, ... (see docs/cli.md)",
    )
    b.add_argument(
        "--calib",
        metavar="FILE",
        type=Path,
        help="calibration inputs (.npz: <input> with a leading sample axis, or <input>_<k> per "
        "sample); needed by GPTQ and W8A8",
    )


def check_quant_args(args: argparse.Namespace) -> Any:
    """The parsed spec (None without --quantize), after the checks that need no model: a valid
    spec, --calib only with --quantize, calibration present where the spec needs it, the file
    readable."""
    from .passes.quant_spec import VALID_FORMS, QuantSpecError, parse_quant_spec

    if args.quantize is None:
        if args.calib is not None:
            raise LmcError("--calib is calibration data for --quantize; give --quantize SPEC too")
        return None
    try:
        spec = parse_quant_spec(args.quantize)
    except QuantSpecError as e:  # one line: the reason, then the valid forms
        why = str(e).splitlines()[0].rstrip(".")
        raise LmcError(f"--quantize: {why}; valid forms: {', '.join(VALID_FORMS)}") from None
    needs = spec.method == "gptq" or spec.act_bits is not None or spec.needs_calibration
    if needs and args.calib is None:
        raise LmcError(
            f"--quantize {spec} needs calibration data: pass --calib FILE.npz (arrays named after "
            "the model's inputs, <input> with a leading sample axis or <input>_<k> per sample); "
            "only weight-only round-to-nearest specs (w4-rtn-g128, w8-rtn) build without it"
        )
    if args.calib is not None and not args.calib.is_file():
        raise LmcError(f"--calib {args.calib}: no such file")
    return spec


def load_calibration(path: Path, names: list[str]) -> list[dict[str, np.ndarray]]:
    """The samples of a calibration .npz for a model with inputs `names` (see the module
    docstring), each a mapping input name -> array."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except (OSError, ValueError) as e:
        raise LmcError(f"--calib {path}: not a readable .npz file ({e})") from None
    per_input: dict[str, dict[int, np.ndarray]] = {}
    for name in names:
        if name in arrays:
            a = arrays.pop(name)
            if a.ndim == 0:
                raise LmcError(f"--calib {path}: {name!r} needs a leading sample axis (a scalar)")
            per_input[name] = dict(enumerate(a))
            continue
        pat = re.compile(re.escape(name) + r"_(\d+)")
        found = {int(m[1]): k for k in arrays if (m := pat.fullmatch(k))}
        per_input[name] = {i: arrays.pop(k) for i, k in found.items()}
    if arrays:
        raise LmcError(
            f"--calib {path}: arrays {sorted(arrays)} name no input; the model's inputs are "
            f"{names} (use <input> with a leading sample axis or <input>_<k> per sample)"
        )
    missing = [n for n in names if not per_input[n]]
    if missing:
        raise LmcError(
            f"--calib {path}: no samples for input(s) {missing} (expected an array {missing[0]!r} "
            f"with a leading sample axis, or {missing[0]!r}_0, _1, ...)"
        )
    ids = {n: sorted(per_input[n]) for n in names}
    first = ids[names[0]]
    bad = [n for n in names if ids[n] != first]
    if bad:
        raise LmcError(
            f"--calib {path}: inputs have different samples: {names[0]} has {len(first)}, "
            + ", ".join(f"{n} has {len(ids[n])}" for n in bad)
        )
    return [{n: per_input[n][i] for n in names} for i in first]


def quant_pipeline(g: Any, pipeline: Any, ctx: Any, spec: Any, calib: Path | None, say: Any):
    """The pipeline with the quantization passes appended (calibration set on ctx)."""
    from .passes.quant_spec import quantization_pipeline

    samples = None
    if calib is not None:
        samples = load_calibration(calib, [v.name or f"input{i}" for i, v in enumerate(g.inputs)])
    return quantization_pipeline(g, pipeline, ctx, spec, samples, say)


def quant_summary(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from .passes.quant_layers import quant_stats

    return quant_stats(stats)


def print_quant_stats(layers: dict[str, dict[str, Any]]) -> None:
    """One line per layer: kind, weight SQNR, output SQNR and cosine on the calibration data."""
    if not layers:
        return
    print(f"quantized layers ({len(layers)}):")
    print(f"  {'layer':<36} {'kind':<8} {'weight SQNR':>12} {'out SQNR':>10} {'cosine':>9}")
    for name, s in layers.items():
        label = textwrap.shorten(name, 36, placeholder="...")
        kind = str(s.get("kind", "?"))
        cols = [_db(s.get("weight_sqnr_db")), _db(s.get("output_sqnr_db"))]
        cos = s.get("output_cos")
        cos_text = f"{cos:.6f}" if isinstance(cos, float) else "-"
        note = f"  ({s['reason']})" if s.get("reason") else ""
        print(f"  {label:<36} {kind:<8} {cols[0]:>12} {cols[1]:>10} {cos_text:>9}{note}")


def _db(v: Any) -> str:
    return f"{v:.1f} dB" if isinstance(v, (int, float)) else "-"
