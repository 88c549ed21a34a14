"""The C toolchain: compiler discovery, flags per target, compiling sources (in parallel, with an
optional object cache), linking the shared and static libraries, and clear errors: a missing
compiler says what to install; a compile error quotes the generated file, line and source."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...ir.errors import LmcError
from ..targets import Target

Progress = Callable[[str], None]

INSTALL_HINT = (
    "install a C compiler: Debian/Ubuntu `apt-get install gcc` (or build-essential), Fedora "
    "`dnf install gcc`, Alpine `apk add gcc musl-dev`, macOS `xcode-select --install`; or point "
    "CC at one"
)
BASE_CFLAGS = (
    "-std=gnu11", "-O3", "-fPIC", "-fwrapv", "-fvisibility=hidden", "-fno-math-errno",
    "-fno-trapping-math",
)  # fmt: skip
LDLIBS = ("-lm", "-lpthread")


class ToolchainError(LmcError):
    """The C toolchain is missing or failed; the message says what to do or quotes the error."""


@dataclass(frozen=True)
class Toolchain:
    cc: str  # the compiler command (resolved path)
    version: str  # first line of `cc --version`
    cflags: tuple[str, ...]
    ldlibs: tuple[str, ...] = LDLIBS


def isa_flags(target: Target) -> list[str]:
    """-D/-m flags selecting the kernel library's SIMD path for the target's features."""
    f = target.features
    if target.arch != "x86_64":
        return []
    out: list[str] = []
    if "avx512f" in f and "fma" in f:
        out += ["-DLMC_AVX512", "-mavx512f", "-mavx2", "-mfma"]
        out += ["-mavx512bw"] if "avx512bw" in f else []
        out += ["-mavx512vl"] if "avx512vl" in f else []
    elif "avx2" in f and "fma" in f:
        out += ["-DLMC_AVX2", "-mavx2", "-mfma"]
    if "f16c" in f:
        out.append("-mf16c")
    return out


def find_toolchain(target: Target, cc: str | None = None) -> Toolchain:
    """The compiler for `target` (`cc`, else $CC, else `cc`), checked to run."""
    name = cc or os.environ.get("CC") or "cc"
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"C compiler {name!r} not found (needed to build target {target}); {INSTALL_HINT}"
        )
    try:
        res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolchainError(
            f"C compiler {name!r} ({path}) does not run: {e}; {INSTALL_HINT}"
        ) from None
    if res.returncode != 0:
        raise ToolchainError(
            f"C compiler {name!r} ({path}) failed `--version`: "
            f"{(res.stderr or res.stdout).strip()[:400]}; {INSTALL_HINT}"
        )
    version = (
        (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr) else ""
    )
    return Toolchain(path, version, BASE_CFLAGS + tuple(isa_flags(target)))


_DIAG = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<msg>.*)$", re.M
)


def explain_failure(stderr: str, src_dir: Path, what: str) -> str:
    """A compiler failure as a message quoting each error's file:line and the source line."""
    lines = [f"C compilation of {what} failed:"]
    for m in list(_DIAG.finditer(stderr))[:5]:
        path = Path(m["file"])
        if not path.is_absolute():
            path = src_dir / path
        loc = f"{m['file']}:{m['line']}" + (f":{m['col']}" if m["col"] else "")
        lines.append(f"  {loc}: error: {m['msg']}")
        try:
            src = path.read_text(errors="replace").splitlines()[int(m["line"]) - 1]
            lines.append(f"    {int(m['line'])} | {src.strip()[:200]}")
        except (OSError, IndexError):
            pass
    tail = stderr.strip()[-2000:]
    lines.append("compiler output:\n" + tail if tail else "(the compiler printed nothing)")
    return "\n".join(lines)


def _key(tc: Toolchain, src: Path, headers: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for part in (tc.cc, tc.version, " ".join(tc.cflags), src.name):
        h.update(part.encode() + b"\0")
    for p in [src, *sorted(headers)]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def compile_objects(
    tc: Toolchain,
    src_dir: Path,
    sources: Sequence[str],
    obj_dir: Path,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    cacheable: Callable[[str], bool] = lambda s: False,
    jobs: int | None = None,
) -> list[Path]:
    """Compile src_dir/<s> for each source into obj_dir (cwd src_dir, relative names, so
    objects do not depend on where the build runs). Sources `cacheable` says yes to are
    reused from cache_dir when the compiler, flags and their bytes (headers included) match.
    At most `jobs` compilers run at once (default: one per core)."""
    obj_dir.mkdir(parents=True, exist_ok=True)
    headers = sorted(src_dir.glob("*.h"))
    rel = os.path.relpath(obj_dir, src_dir)
    objs = [obj_dir / (Path(s).stem + ".o") for s in sources]
    todo = []
    for s, o in zip(sources, objs):
        if cache_dir is not None and cacheable(s):
            cached = cache_dir / f"{Path(s).stem}-{_key(tc, src_dir / s, headers)}.o"
            if cached.is_file():
                shutil.copyfile(cached, o)
                continue
            todo.append((s, o, cached))
        else:
            todo.append((s, o, None))

    lock, started = threading.Lock(), [0]

    def one(item: tuple[str, Path, Path | None]) -> None:
        s, o, cached = item
        if progress:
            with lock:
                started[0] += 1
                progress(f"compiling {s} ({started[0]}/{len(todo)})")
        cmd = [tc.cc, *tc.cflags, "-c", s, "-o", os.path.join(rel, o.name)]
        res = subprocess.run(cmd, cwd=src_dir, capture_output=True, text=True)
        if res.returncode != 0:
            raise ToolchainError(
                explain_failure(res.stderr, src_dir, s)
                + f"\ncommand: {' '.join(cmd)} (in {src_dir})"
            )
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            shutil.copyfile(o, tmp)
            os.replace(tmp, cached)

    workers = max(1, min(len(todo), jobs or os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for fut in [pool.submit(one, item) for item in todo]:
            fut.result()
    return objs


def link(
    tc: Toolchain,
    objs: Sequence[Path],
    shared: Path,
    static: Path,
    progress: Progress | None = None,
) -> None:
    """The shared library (and a deterministic static archive) from `objs`."""
    shared.parent.mkdir(parents=True, exist_ok=True)
    names = [str(o) for o in objs]
    if progress:
        progress(f"linking {shared.name}")
    res = subprocess.run(
        [tc.cc, "-shared", "-o", str(shared), *names, *tc.ldlibs], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise ToolchainError(f"linking {shared.name} failed:\n{res.stderr.strip()[-2000:]}")
    ar = shutil.which("ar") or shutil.which("gcc-ar")
    if ar is None:
        raise ToolchainError(
            "`ar` not found (binutils); install binutils to build the static library"
        )
    if static.exists():
        static.unlink()
    if progress:
        progress(f"archiving {static.name}")
    res = subprocess.run([ar, "rcsD", str(static), *names], capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(f"archiving {static.name} failed:\n{res.stderr.strip()[-2000:]}")
