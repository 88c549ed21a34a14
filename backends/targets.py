"""The target registry: named targets, aliases, feature flags and the numbers cost models need.

Target strings are TVM-style: a name or alias, then `+feature` / `-feature` modifiers, e.g.
`arm64+dotprod+i8mm`, `android-arm64`, `cuda-sm90`, `wasm32-nosimd`.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
from dataclasses import dataclass, field

from ..ir.errors import LmcError


class TargetError(LmcError):
    """An unknown target name or feature, or a target this machine cannot build or run."""


@dataclass(frozen=True)
class Target:
    """A code-generation target and its machine model."""

    name: str
    kind: str  # backend family: "c", "cuda", "hls", "reference"
    arch: str  # x86_64, aarch64, wasm32, nvptx, fpga
    features: frozenset[str] = frozenset()
    known_features: frozenset[str] = frozenset()
    aliases: tuple[str, ...] = ()
    description: str = ""
    # machine model (per device; for CPUs per socket as configured)
    mem_bandwidth_gbs: float = 0.0
    peak_gflops: dict[str, float] = field(default_factory=dict)  # dtype -> GFLOP/s (or GOP/s)
    vector_bits: int = 0
    cache_bytes: dict[str, int] = field(default_factory=dict)  # l1/l2/l3/shared/onchip
    fpga: dict[str, float] = field(default_factory=dict)  # dsp, bram36, uram, lut, hbm_channels...
    toolchain: tuple[str, ...] = ()  # executables needed to build
    runner: tuple[str, ...] = ()  # executables needed to run here

    def has(self, feature: str) -> bool:
        return feature in self.features

    def __str__(self) -> str:
        if self.name != "host" and _BASE[self.name].features - self.features:
            for alias, (name, feats) in sorted(_ALIASES.items()):
                if name == self.name and feats == self.features:
                    return alias  # e.g. wasm32-nosimd rather than wasm32-simd128
        extra = sorted(self.features - _BASE[self.name].features)
        missing = sorted(_BASE[self.name].features - self.features)
        return self.name + "".join("+" + f for f in extra) + "".join("-" + f for f in missing)

    def can_build(self) -> tuple[bool, str]:
        missing = [t for t in self.toolchain if shutil.which(t) is None]
        return (not missing, "missing " + ", ".join(missing) if missing else "ok")

    def can_run(self) -> tuple[bool, str]:
        if self.kind == "reference":
            return True, "ok"
        if self.arch == "x86_64" and platform.machine() not in ("x86_64", "AMD64"):
            return False, f"this machine is {platform.machine()}"
        missing = [t for t in self.runner if shutil.which(t) is None]
        return (not missing, "missing " + ", ".join(missing) if missing else "ok")


_BASE: dict[str, Target] = {}
_ALIASES: dict[str, tuple[str, frozenset[str]]] = {}


def _add(t: Target, aliases: dict[str, frozenset[str]] | None = None) -> None:
    _BASE[t.name] = t
    for a, feats in (aliases or {}).items():
        _ALIASES[a] = (t.name, feats)


def host_features() -> frozenset[str]:
    """SIMD features of this CPU (x86_64 /proc/cpuinfo flags we generate code for)."""
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        return frozenset()
    wanted = {
        "avx2": "avx2",
        "fma": "fma",
        "avx512f": "avx512f",
        "avx512bw": "avx512bw",
        "avx512vl": "avx512vl",
        "avx512_vnni": "avx512vnni",
        "avx_vnni": "avxvnni",
        "avx512_bf16": "avx512bf16",
        "amx_int8": "amxint8",
        "f16c": "f16c",
    }
    return frozenset(v for k, v in wanted.items() if k in flags)


_X86 = frozenset(
    {
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avxvnni",
        "avx512bf16",
        "amxint8",
    }
)

_add(Target("reference", "reference", "numpy", description="the numpy reference interpreter"))
_add(
    Target(
        "host",
        "c",
        "x86_64",
        known_features=_X86,
        description="this machine's CPU, C99 + SIMD",
        mem_bandwidth_gbs=20.0,
        peak_gflops={"f32": 150.0},
        vector_bits=256,
        cache_bytes={"l1": 32 << 10, "l2": 1 << 20, "l3": 32 << 20},
        toolchain=("cc",),
    )
)
_add(
    Target(
        "arm64",
        "c",
        "aarch64",
        features=frozenset({"neon"}),
        known_features=frozenset({"neon", "dotprod", "i8mm", "fp16"}),
        description="64-bit ARM (NEON), cross-compiled; runs here under qemu-aarch64",
        mem_bandwidth_gbs=30.0,
        peak_gflops={"f32": 100.0, "i8": 400.0},
        vector_bits=128,
        cache_bytes={"l1": 64 << 10, "l2": 512 << 10, "l3": 4 << 20},
        toolchain=("aarch64-linux-gnu-gcc",),
        runner=("qemu-aarch64",),
    ),
    {
        "android-arm64": frozenset({"neon", "dotprod"}),
        "ios-arm64": frozenset({"neon", "dotprod"}),
        "arm64-nosimd": frozenset(),
    },
)
_add(
    Target(
        "wasm32",
        "c",
        "wasm32",
        features=frozenset({"simd128"}),
        known_features=frozenset({"simd128", "relaxed-simd"}),
        description="WebAssembly (wasm32-wasi) with SIMD128; runs here in wasmtime/node",
        mem_bandwidth_gbs=10.0,
        peak_gflops={"f32": 30.0},
        vector_bits=128,
        toolchain=("clang", "wasm-ld"),
    ),
    {"wasm32-nosimd": frozenset()},
)
_add(
    Target(
        "cuda",
        "cuda",
        "nvptx",
        features=frozenset({"sm80"}),
        known_features=frozenset({"sm80", "sm86", "sm89", "sm90"}),
        description="NVIDIA GPU (CUDA C++ via nvcc)",
        mem_bandwidth_gbs=3350.0,
        peak_gflops={"f16": 989e3, "bf16": 989e3, "i8": 1979e3, "f32": 67e3},
        cache_bytes={"shared": 228 << 10, "l2": 50 << 20},
        toolchain=("nvcc",),
        runner=("nvidia-smi",),
    ),
    {"cuda-sm80": frozenset({"sm80"}), "cuda-sm90": frozenset({"sm90"})},
)
_add(
    Target(
        "fpga-u280",
        "hls",
        "fpga",
        description="AMD/Xilinx Alveo U280 (Vitis HLS C++; C-sim here)",
        mem_bandwidth_gbs=460.0,
        peak_gflops={"i8": 5400.0},
        cache_bytes={"onchip": 45 << 20},
        fpga={
            "dsp": 9024,
            "bram36": 2016,
            "uram": 960,
            "lut": 1_303_680,
            "slr": 3,
            "hbm_channels": 32,
            "hbm_channel_gbs": 14.375,
            "hbm_gb": 8,
            "clock_mhz": 300,
        },
        toolchain=("g++",),
        runner=("g++",),
    ),
    {"u280": frozenset()},
)


def parse_target(spec: str | Target) -> Target:
    """`"arm64+dotprod"` -> Target. Unknown names or features raise TargetError."""
    if isinstance(spec, Target):
        return spec
    head, mods = _split_modifiers(spec.strip())
    if head in _BASE:
        base, feats = _BASE[head], set(_BASE[head].features)
    elif head in _ALIASES:
        name, fs = _ALIASES[head]
        base, feats = _BASE[name], set(fs)
    else:
        known = sorted(set(_BASE) | set(_ALIASES))
        raise TargetError(f"unknown target {head!r}; known targets: {', '.join(known)}")
    if base.name == "host":
        feats |= host_features()
    for sign, f in mods:
        if f not in base.known_features:
            raise TargetError(
                f"target {base.name} has no feature {f!r}; known: "
                f"{', '.join(sorted(base.known_features)) or 'none'}"
            )
        feats.add(f) if sign == "+" else feats.discard(f)
    return dataclasses.replace(base, features=frozenset(feats))


def _split_modifiers(spec: str) -> tuple[str, list[tuple[str, str]]]:
    """Split `name+a-b` into ("name", [("+", "a"), ("-", "b")]); aliases may contain '-'."""
    for cut in range(len(spec), 0, -1):
        head = spec[:cut]
        if (head in _BASE or head in _ALIASES) and (cut == len(spec) or spec[cut] in "+-"):
            rest, mods = spec[cut:], []
            while rest:
                sign, rest = rest[0], rest[1:]
                nxt = min([i for i in (rest.find("+"), rest.find("-")) if i >= 0] or [len(rest)])
                mods.append((sign, rest[:nxt]))
                rest = rest[nxt:]
            return head, mods
    return spec.split("+")[0], []


def all_targets() -> list[Target]:
    return [parse_target(n) for n in _BASE]


def alias_names() -> dict[str, str]:
    return {a: n for a, (n, _) in _ALIASES.items()}
