"""The C toolchain: compiler discovery, flags per target, compiling sources (in parallel, with an
optional object cache), linking the shared and static libraries, and clear errors: a missing
compiler says what to install; a compile error quotes the generated file, line and source."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
# Cross compilers by target arch: (default compiler, its archiver, Debian packages to install).
CROSS = {
    "aarch64": (
        "aarch64-linux-gnu-gcc",
        "aarch64-linux-gnu-ar",
        "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    ),
}
# -march per arm64 feature set: the base architecture the features need, then the extensions.
ARM64_EXTENSIONS = ("dotprod", "i8mm", "fp16")


class ToolchainError(LmcError):
    """The C toolchain is missing or failed; the message says what to do or quotes the error."""


@dataclass(frozen=True)
class Toolchain:
    cc: str  # the compiler command (resolved path)
    version: str  # first line of `cc --version`
    cflags: tuple[str, ...]
    ldlibs: tuple[str, ...] = LDLIBS
    ar: str | None = None  # the archiver (None: `ar` from PATH)
    ldflags: tuple[str, ...] = ()  # link flags (wasm32: the reactor module and its exports)
    per_source: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (source, extra cflags) pairs


def source_cflags(tc: Toolchain, source: str) -> tuple[str, ...]:
    """The flags that compile `source`: the toolchain's, then that source's extras."""
    return tc.cflags + dict(tc.per_source).get(source, ())


def isa_flags(target: Target) -> list[str]:
    """-D/-m flags selecting the kernel library's SIMD path for the target's features."""
    f = target.features
    if target.arch == "aarch64":
        return arm64_flags(target)
    if target.arch == "wasm32":
        return wasm_flags(target)
    if target.arch != "x86_64":
        return []
    out: list[str] = []
    if "avx512f" in f and "fma" in f:
        out += ["-DLMC_AVX512", "-mavx512f", "-mavx2", "-mfma"]
        out += ["-mavx512bw"] if "avx512bw" in f else []
        out += ["-mavx512vl"] if "avx512vl" in f else []
        out += ["-mavx512vnni"] if "avx512vnni" in f else []  # the W8A8 vpdpbusd kernel
    elif "avx2" in f and "fma" in f:
        out += ["-DLMC_AVX2", "-mavx2", "-mfma"]
    if "f16c" in f:
        out.append("-mf16c")
    return out


KERNEL_PATHS = {
    "-DLMC_AVX512": "avx512",
    "-DLMC_AVX2": "avx2",
    "-DLMC_NEON": "neon",
    "-DLMC_WASM_SIMD": "wasm",
}


def kernel_path(target: Target) -> str:
    """The kernel library's SIMD path that isa_flags selects for `target` (avx512, avx2, neon,
    wasm, or portable without one of their macros)."""
    flags = isa_flags(target)
    return next((p for m, p in KERNEL_PATHS.items() if m in flags), "portable")


def make_tools(target: Target) -> tuple[str, str]:
    """(compiler, archiver) that an artifact's Makefile uses by default for `target`."""
    if target.arch in CROSS:
        return CROSS[target.arch][0], CROSS[target.arch][1]
    return "cc", "ar"


def arm64_flags(target: Target) -> list[str]:
    """-march and the kernel library's macros for an arm64 target: armv8-a with NEON
    (LMC_NEON) by default; +dotprod / +i8mm / +fp16 raise the base to armv8.2-a and add the
    extension (LMC_DOTPROD selects the int8 sdot kernel). Without the `neon` feature the
    library takes its portable C paths (AArch64 ABIs all have Advanced SIMD, so the compiler
    may still vectorize them; gcc's +nosimd is not used: it emits SIMD moves for f16 anyway)."""
    f = target.features
    if "neon" not in f:
        return ["-march=armv8-a"]
    ext = [e for e in ARM64_EXTENSIONS if e in f]
    out = ["-march=" + ("armv8.2-a" if ext else "armv8-a") + "".join("+" + e for e in ext)]
    out.append("-DLMC_NEON")
    out += ["-DLMC_DOTPROD"] if "dotprod" in f else []
    out += ["-DLMC_I8MM"] if "i8mm" in f else []
    return out


def _find_cross(target: Target, cc: str | None) -> Toolchain:
    """The cross compiler of an arm64 target, checked to run and to have its C library."""
    default, ar, packages = CROSS[target.arch]
    hint = f"install it: Debian/Ubuntu `apt-get install {packages}`"
    if target.runner:
        hint += f" (running {target.name} artifacts here also needs `apt-get install qemu-user`)"
    name = cc or default
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"cross compiler {name!r} not found (needed to build target {target}); {hint}"
        )
    try:
        res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        libc = subprocess.run(
            [path, "-print-file-name=libc.a"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolchainError(
            f"cross compiler {name!r} ({path}) does not run: {e}; {hint}"
        ) from None
    if res.returncode != 0:
        raise ToolchainError(f"cross compiler {name!r} ({path}) failed `--version`; {hint}")
    if not os.path.isabs(libc.stdout.strip()):
        raise ToolchainError(
            f"cross compiler {name!r} has no C library for {target.arch} (libc.a); {hint}"
        )
    version = (res.stdout or res.stderr).strip().splitlines()[0]
    ar_path = shutil.which(ar) if cc is None else None
    return Toolchain(path, version, BASE_CFLAGS + tuple(isa_flags(target)), ar=ar_path)


def find_toolchain(target: Target, cc: str | None = None) -> Toolchain:
    """The compiler for `target` (`cc`, else $CC, else `cc`; cross targets: `cc`, else their
    cross compiler; wasm32: `cc`, else clang with a WASI sysroot), checked to run."""
    if target.arch in CROSS:
        return _find_cross(target, cc)
    if target.arch == "wasm32":
        return find_wasm_toolchain(target, cc)
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
    for part in (tc.cc, tc.version, " ".join(source_cflags(tc, src.name)), src.name):
        h.update(part.encode() + b"\0")
    for p in [src, *sorted(headers)]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    """The object cache `lmc build` and `lmc.compile` share: $LMC_CACHE_DIR when set, else
    $XDG_CACHE_HOME/lmc/objects (default ~/.cache/lmc/objects)."""
    if os.environ.get("LMC_CACHE_DIR"):
        return Path(os.environ["LMC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lmc" / "objects"


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
        cmd = [tc.cc, *source_cflags(tc, s), "-c", s, "-o", os.path.join(rel, o.name)]
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
    # every symbol resolved now (the build compiles only the sources the model links)
    strict = ["-Wl,--no-undefined"] if sys.platform.startswith("linux") else []
    res = subprocess.run(
        [tc.cc, "-shared", *strict, "-o", str(shared), *names, *tc.ldlibs],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise ToolchainError(f"linking {shared.name} failed:\n{res.stderr.strip()[-2000:]}")
    ar = tc.ar or shutil.which("ar") or shutil.which("gcc-ar")
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


def link_executable(
    tc: Toolchain,
    sources: Sequence[Path],
    static_lib: Path,
    out: Path,
    include: Path,
    progress: Progress | None = None,
) -> None:
    """A static executable from `sources` and the artifact's static library (the harness that
    runs cross-compiled artifacts under an emulator)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"linking {out.name}")
    cmd = [tc.cc, "-static", "-O2", f"-I{include}", *map(str, sources), str(static_lib)]
    res = subprocess.run([*cmd, *tc.ldlibs, "-o", str(out)], capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(f"linking {out.name} failed:\n{res.stderr.strip()[-2000:]}")


# ---- wasm32: clang --target=wasm32-wasi with wasi-libc, linked as a reactor module ----------

WASM_PACKAGES = "clang lld wasi-libc libclang-rt-14-dev-wasm32"
WASM_HINT = (
    f"install them: Debian/Ubuntu `apt-get install {WASM_PACKAGES}` (clang, its wasm-ld linker, "
    "the WASI C library and clang's wasm32 runtime builtins), or pass cc= a clang that targets "
    "wasm32-wasi (e.g. wasi-sdk's)"
)
# Where WASI C libraries live: Debian's wasi-libc (multiarch dirs under /usr), wasi-sdk.
WASI_SYSROOTS = ("/usr", "/usr/share/wasi-sysroot", "/opt/wasi-sdk/share/wasi-sysroot")
WASM_CFLAGS = (
    "--target=wasm32-wasi", "-std=gnu11", "-O3", "-fwrapv", "-fvisibility=hidden",
    "-fno-math-errno", "-fno-trapping-math", "-DLMC_NO_THREADS", "-DLMC_NO_MMAP",
)  # fmt: skip
# The module's exports: the C API minus the file loader (WASI file imports) and malloc/free
# for the JavaScript side. Nothing else is exported; wasm-ld drops everything unreachable.
WASM_EXPORTS = (
    "lmc_model_load_memory", "lmc_model_free", "lmc_num_inputs", "lmc_num_outputs",
    "lmc_num_symbols", "lmc_input_info", "lmc_output_info", "lmc_symbol_info", "lmc_arena_bytes",
    "lmc_set_input", "lmc_run", "lmc_get_output", "lmc_last_error", "lmc_set_num_threads",
    "malloc", "free",
)  # fmt: skip
WASM_STACK_BYTES = 1 << 20
# The generated model.c without loop unrolling: its per-layer copies of the same kernels are
# most of the module's code, and unrolled copy / elementwise loops (already vectorized) grow it
# by ~45% for no measurable speed; the library keeps -O3's unrolled micro-kernel loops.
WASM_MODEL_SOURCE = "model.c"
WASM_MODEL_CFLAGS = ("-fno-unroll-loops",)


def wasm_flags(target: Target) -> list[str]:
    """SIMD128 and the kernel library's LMC_WASM_SIMD path when the target has simd128
    (`wasm32`); none for `wasm32-nosimd` (portable C, scalar wasm)."""
    return ["-msimd128", "-DLMC_WASM_SIMD"] if "simd128" in target.features else []


def wasm_ldflags(sysroot: str, exports: Sequence[str] = WASM_EXPORTS) -> tuple[str, ...]:
    """Link flags of the reactor module: _initialize instead of main, the C API exported, a
    1 MiB stack, no debug or name sections (the code size users download)."""
    return (
        "--target=wasm32-wasi",
        f"--sysroot={sysroot}",
        "-mexec-model=reactor",
        "-O3",
        f"-Wl,-z,stack-size={WASM_STACK_BYTES}",
        "-Wl,--gc-sections",
        "-Wl,--strip-all",
        *(f"-Wl,--export={name}" for name in exports),
    )


def find_wasm_toolchain(target: Target, cc: str | None = None) -> Toolchain:
    """clang (or `cc`) with a WASI sysroot, checked by compiling and linking a tiny reactor
    module; anything missing gives the packages to install."""
    name = cc or "clang"
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"C compiler {name!r} not found (needed to build target {target}); {WASM_HINT}"
        )
    sysroot = next(
        (r for r in WASI_SYSROOTS if _wasi_headers(r)),
        None,
    )
    if sysroot is None:
        raise ToolchainError(
            f"no WASI C library found (looked for wasm32-wasi headers under "
            f"{', '.join(WASI_SYSROOTS)}; needed to build target {target}); {WASM_HINT}"
        )
    version = _probe_wasm(path, sysroot)
    cflags = (*WASM_CFLAGS, f"--sysroot={sysroot}", *wasm_flags(target))
    return Toolchain(
        path,
        version,
        cflags,
        ldlibs=(),
        ldflags=wasm_ldflags(sysroot),
        per_source=((WASM_MODEL_SOURCE, WASM_MODEL_CFLAGS),),
    )


def _wasi_headers(root: str) -> bool:
    return any(
        os.path.isfile(os.path.join(root, sub, "stdlib.h"))
        for sub in ("include/wasm32-wasi", "include")
    ) and any(
        os.path.isfile(os.path.join(root, sub, "libc.a")) for sub in ("lib/wasm32-wasi", "lib")
    )


_PROBE_C = (
    "#include <stdlib.h>\nint lmc_probe(int n) { return n > 0 ? (int)(size_t)malloc(n) : 0; }\n"
)


@functools.cache
def _probe_wasm(cc: str, sysroot: str) -> str:
    """Compile and link a small reactor module with `cc` (once per process); its version."""
    try:
        ver = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60)
        with tempfile.TemporaryDirectory(prefix="lmc-wasm-probe-") as tmp:
            src = Path(tmp) / "probe.c"
            src.write_text(_PROBE_C)
            cmd = [cc, *WASM_CFLAGS, f"--sysroot={sysroot}", "-msimd128", str(src)]
            cmd += [*wasm_ldflags(sysroot, ["lmc_probe", "malloc"]), "-o", str(src) + ".wasm"]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolchainError(f"C compiler {cc!r} does not run: {e}; {WASM_HINT}") from None
    if ver.returncode != 0 or res.returncode != 0:
        out = (res.stderr or res.stdout or ver.stderr).strip()[-1500:]
        raise ToolchainError(
            f"{cc} cannot build wasm32-wasi modules (sysroot {sysroot}):\n{out}\n{WASM_HINT}"
        )
    return (ver.stdout or ver.stderr).strip().splitlines()[0]


def link_wasm(
    tc: Toolchain, objs: Sequence[Path], out: Path, progress: Progress | None = None
) -> None:
    """The reactor module `out` (.wasm) from `objs`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(f"linking {out.name}")
    cmd = [tc.cc, *map(str, objs), *tc.ldflags, *tc.ldlibs, "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolchainError(
            f"linking {out.name} failed:\n{res.stderr.strip()[-2000:]}\n{WASM_HINT}"
        )
