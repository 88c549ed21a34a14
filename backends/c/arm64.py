"""What an arm64 artifact has beyond the common C artifact: the harness executable (a static
aarch64 program that runs the model with inputs and outputs through files, so qemu-aarch64
runs it here) and a README with the lines that link the library into Android (CMake / NDK)
and iOS (Xcode) apps."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...runtime import artifact as art
from ..targets import Target
from .render import render
from .toolchain import Progress, Toolchain, link_executable

HARNESS_SOURCE = art.RUNTIME_DIR / "harness" / "lmc_harness.c"
HARNESS = "bin/lmc_harness"  # in the artifact folder
README = "README.md"


def is_arm64(t: Target) -> bool:
    return t.arch == "aarch64"


def copy_harness_source(src: Path) -> None:
    shutil.copyfile(HARNESS_SOURCE, src / HARNESS_SOURCE.name)


def build_harness(out: Path, tc: Toolchain, say: Progress) -> None:
    """bin/lmc_harness from src/lmc_harness.c and lib/liblmc_model.a."""
    src = out / "src"
    link_executable(
        tc, [src / HARNESS_SOURCE.name], out / "lib" / "liblmc_model.a", out / HARNESS, src, say
    )


def write_readme(out: Path, t: Target, flags: list[str]) -> None:
    """README.md: what the folder holds and how to link it on Linux, Android and iOS."""
    from ... import __version__

    march = next((f for f in flags if f.startswith("-march=")), "-march=armv8-a")
    defines = [f for f in flags if f.startswith("-D")]
    art.write_text(
        out / README,
        render(
            "README.arm64.md.j2",
            version=__version__,
            target=str(t),
            march=march,
            defines=" ".join(defines),
            cmake_defines=" ".join(d[2:] for d in defines),
            cflags=" ".join(flags),
        ),
    )
