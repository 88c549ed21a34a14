"""Quantization specs: the `quantize=` strings of `lmc.compile` / `lmc build --quantize`,
parsed into a QuantSpec that names the pass pipeline and carries its options.

Grammar: `w<bits>[a8][-<word>]...[,key=value]...` with bits 4 or 8 (`a8`: int8 activations too,
`w8a8` per output channel, `w4a8` with the int4 weights' groups) and words `rtn`,
`gptq`, `g<N>` (group size; `g0` = per output channel), `sym` / `asym`, `clip` / `noclip`
(search a clipping ratio per group row minimizing the rounding error; on by default for W4
GPTQ), `actorder`, `static` (static per-tensor activation scales instead of dynamic
per-token) and `smooth` (SmoothQuant). Options: `skip=<glob>` (repeatable, or `a|b`; matched
anywhere in the weight's param key), `alpha=<float>` (smoothing strength), `damp=<float>`
(GPTQ damping as a fraction of mean(diag H), default 0.1), `budget=<float>` (largest
relative output error a quantized layer may keep before it is reverted to float;
`budget=none` turns the check off).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ..ir.errors import LmcError

VALID_FORMS = (
    "w4-gptq-g128",
    "w4-gptq-g128-actorder",
    "w4-gptq-g128-noclip,damp=0.01",
    "w4-rtn-g128-clip",
    "w4-rtn-g64",
    "w4-rtn-g128-sym",
    "w8-rtn",
    "w8-gptq",
    "w8a8",
    "w8a8-static",
    "w8a8-smooth",
    "w8a8-static-smooth,alpha=0.8",
    "w8a8,skip=lm_head",
    "w4a8-gptq-g128",
    "w4a8-rtn-g128-static",
    "w4-gptq-g128,budget=0.1",
)
DEFAULT_BUDGET = 0.25
DEFAULT_DAMP = 0.1  # GPTQ damping, a fraction of mean(diag H)


class QuantSpecError(LmcError):
    """A quantization spec that lmc cannot do; the message lists the valid forms."""


@dataclass(frozen=True)
class QuantSpec:
    """What to quantize and how. `group` 0 means one group per output channel."""

    bits: int = 4
    method: str = "rtn"  # "rtn" | "gptq"
    group: int = 128
    sym: bool = False
    clip: bool = False
    act_order: bool = False
    act_bits: int | None = None  # 8: W8A8
    act_static: bool = False
    smooth: bool = False
    alpha: float = 0.5
    damp: float = DEFAULT_DAMP
    budget: float | None = DEFAULT_BUDGET
    skip: tuple[str, ...] = field(default=())
    text: str = ""

    @property
    def needs_calibration(self) -> bool:
        return self.method == "gptq" or self.act_static or self.smooth

    def skips(self, key: str) -> bool:
        """Whether the weight under param key `key` stays float (a skip glob matches)."""
        return any(fnmatch.fnmatchcase(key, f"*{p}*") for p in self.skip)

    def passes(self, calibrated: bool) -> list[str]:
        """The quantization passes in pipeline order (after the default passes)."""
        out = ["collect_calibration"] if calibrated else []
        if self.smooth:
            out.append("smooth_activations")
        out.append(f"quantize_weights_{self.method}")
        if self.act_bits:
            out.append("quantize_activations")
        if calibrated and self.budget is not None:
            out.append("keep_sensitive_float")
        return out

    def __str__(self) -> str:
        return self.text or f"w{self.bits}-{self.method}-g{self.group}"


def _fail(spec: str, why: str) -> QuantSpecError:
    forms = "\n  ".join(VALID_FORMS)
    return QuantSpecError(
        f"quantization spec {spec!r}: {why}.\nValid forms (words joined by '-', options by ','):"
        f"\n  {forms}\nwords: rtn, gptq, g<N> (group size, g0 = per channel), sym, asym, "
        f"clip, noclip, actorder, static, smooth; options: skip=<glob>, alpha=<0..1>, "
        f"damp=<float>, budget=<float|none>"
    )


def parse_quant_spec(spec: str | QuantSpec) -> QuantSpec:
    """`w4-gptq-g128` etc. into a QuantSpec; QuantSpecError listing the valid forms."""
    if isinstance(spec, QuantSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise _fail(str(spec), "expected a non-empty string")
    text = spec.strip()
    head, *opts = [p.strip() for p in text.split(",")]
    words = head.lower().split("-")
    m = re.fullmatch(r"w(\d+)(?:a(\d+))?", words[0])
    if not m:
        raise _fail(text, f"{words[0]!r} does not start with w4, w8 or w8a8")
    bits, act = int(m.group(1)), m.group(2)
    if bits not in (4, 8):
        raise _fail(text, f"{bits}-bit weights are not supported (4 or 8)")
    if act is not None and int(act) != 8:
        raise _fail(text, f"w{bits}a{act} has no kernel: activations quantize only to 8 bits")
    s = QuantSpec(
        bits=bits,
        group=128 if bits == 4 else 0,
        sym=bits == 8,
        act_bits=8 if act else None,
        text=text,
    )
    for w in words[1:]:
        s = _word(s, w, text)
    if s.method == "gptq" and s.bits == 4 and "noclip" not in words:
        s = replace(s, clip=True)  # W4 GPTQ searches clip ratios unless told not to
    for o in opts:
        s = _option(s, o, text)
    return _check(s, text)


def _word(s: QuantSpec, w: str, text: str) -> QuantSpec:
    if w in ("rtn", "gptq"):
        return replace(s, method=w)
    if re.fullmatch(r"g\d+", w):
        return replace(s, group=int(w[1:]))
    if w in ("sym", "asym"):
        return replace(s, sym=w == "sym")
    if w in ("clip", "mse"):
        return replace(s, clip=True)
    if w == "noclip":
        return replace(s, clip=False)
    if w in ("actorder", "act_order"):
        return replace(s, act_order=True)
    if w == "static":
        return replace(s, act_static=True)
    if w == "dynamic":
        return replace(s, act_static=False)
    if w == "smooth":
        return replace(s, smooth=True)
    raise _fail(text, f"unknown word {w!r}")


def _option(s: QuantSpec, o: str, text: str) -> QuantSpec:
    key, eq, value = o.partition("=")
    key, value = key.strip().lower(), value.strip()
    if not eq or not value:
        raise _fail(text, f"option {o!r} is not key=value")
    try:
        if key == "skip":
            return replace(s, skip=s.skip + tuple(p for p in value.split("|") if p))
        if key == "alpha":
            return replace(s, alpha=float(value))
        if key == "damp":
            return replace(s, damp=float(value))
        if key == "budget":
            return replace(s, budget=None if value.lower() == "none" else float(value))
    except ValueError:
        raise _fail(text, f"option {key}={value!r} needs a number") from None
    raise _fail(text, f"unknown option {key!r}")


def _check(s: QuantSpec, text: str) -> QuantSpec:
    if s.act_bits and s.bits == 8 and not s.sym:
        raise _fail(text, "w8a8 weights are symmetric (no asym)")
    if s.act_bits and s.bits == 8 and s.group != 0:
        raise _fail(text, "w8a8 weights are per output channel (no g<N>)")
    if (s.act_static or s.smooth) and not s.act_bits:
        raise _fail(
            text, "static / smooth quantize activations: use w8a8-static / w4a8-smooth etc."
        )
    if s.act_order and s.method != "gptq":
        raise _fail(text, "actorder is a GPTQ option (w4-gptq-g128-actorder)")
    if s.group < 0 or (s.group and s.group % 2):
        raise _fail(text, f"group size {s.group} must be even (or g0 for per channel)")
    if not 0.0 <= s.alpha <= 1.0:
        raise _fail(text, f"alpha={s.alpha} must lie in 0..1")
    if s.damp <= 0:
        raise _fail(text, f"damp={s.damp} must be positive")
    if s.budget is not None and s.budget <= 0:
        raise _fail(text, f"budget={s.budget} must be positive (or none)")
    return s


def spec_option(options: dict[str, Any], default: str) -> QuantSpec:
    """The spec a pass runs with: `options["quantize"]` (a string or QuantSpec) or default."""
    return parse_quant_spec(options.get("quantize") or default)


def quantization_pipeline(
    graph: Any,
    base: Any,
    ctx: Any,
    quantize: str | QuantSpec | None,
    calibration: Any,
    progress: Any = None,
) -> Any:
    """The pipeline `lmc.compile(quantize=..., calibration=...)` runs: the base passes, then
    fusing pre-quantized (Q/DQ) layers -> calibration -> smoothing (if asked) -> weight
    quantization -> activation quantization -> mixed precision. Sets ctx.options["quantize"]
    and ctx.calibration (the validated samples)."""
    from .calibration import CalibrationError, make_calibration
    from .manager import Pipeline

    if quantize is None:
        raise QuantSpecError("calibration data was given without quantize=SPEC")
    spec = parse_quant_spec(quantize)
    if calibration is None and spec.needs_calibration:
        raise CalibrationError(
            f"quantize={str(spec)!r} needs calibration data: pass calibration=[samples, ...] "
            f"(each sample the model's inputs)"
        )
    if calibration is not None:
        ctx.calibration = make_calibration(graph, calibration, progress)
    ctx.options["quantize"] = spec
    # Layers the model already carries quantized (ONNX Q/DQ) become quantized ops first.
    quant = ["fuse_quantized_linear", *spec.passes(calibrated=calibration is not None)]
    return Pipeline(list(base.passes) + quant)
