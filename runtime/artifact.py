"""Artifact folders: manifest.json, the output-folder policy and the runtime sources an artifact
carries; the weights file API (runtime/weights.py) is re-exported here.

Manifest (`manifest.json`, sorted keys, 2-space indent): `format` ("lmc-artifact"),
`format_version` (1), `lmc_version`, `target` (a target string), `inputs` / `outputs` (lists of
`{"name", "dtype", "shape": [int | "symbolic text"]}`), and what the builder records: `symbols`
(name -> [lo, hi]), `weights` ({"file", "digest64": "0x%016x", "sha256", "bytes"}), `passes`,
`build`, `compiler`, `library` (default "lib/liblmc_model.so"). Deterministic: same inputs,
same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .weights import (  # noqa: F401  (the artifact API includes the weights file's)
    ALIGN,
    PLAIN,
    WEIGHTS_FORMAT_KEY,
    WeightEntry,
    WeightsFile,
    WrittenWeights,
    blob,
    digest64,
    format_digest,
    read_weights,
    sha256_file,
    write_weights,
)

FORMAT = "lmc-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
IR_FILE = "model.lmc"
LIBRARY = "lib/liblmc_model.so"
REQUIRED_KEYS = ("format", "format_version", "lmc_version", "target", "inputs", "outputs")

RUNTIME_DIR = Path(__file__).resolve().parent
RUNTIME_SOURCES = ("lmc_runtime.c", "lmc_digest.c", "lmc_threads.c")
RUNTIME_HEADERS = ("lmc_model.h", "lmc_internal.h")


# ---- manifest and folders ----------------------------------------------------------------------


def _manifest_text(manifest: Mapping[str, Any]) -> str:
    try:
        return (
            json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
            + "\n"
        )
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"manifest is not plain JSON data: {e}") from None


def _check_manifest(m: Any, where: str) -> dict[str, Any]:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise ArtifactError(
            f"{where} is not an lmc artifact manifest (format {got!r}, expected {FORMAT!r})"
        )
    v = m.get("format_version")
    if v != FORMAT_VERSION:
        raise ArtifactError(
            f"{where}: artifact format version {v!r} is not supported by this lmc "
            f"(it reads version {FORMAT_VERSION}); rebuild the artifact"
        )
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise ArtifactError(f"{where}: manifest lacks {', '.join(missing)}")
    return m


def write_manifest(directory: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write manifest.json (format and format_version filled in; lmc_version defaulted)."""
    from .. import __version__

    m = {"format": FORMAT, "format_version": FORMAT_VERSION, "lmc_version": __version__}
    m.update(manifest)
    path = Path(directory) / MANIFEST
    _check_manifest(m, str(path))
    write_text(path, _manifest_text(m))
    return path


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of artifact folder `directory`, checked (ArtifactError otherwise)."""
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"{d} is not an lmc artifact: no such folder")
    path = d / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{d} is not an lmc artifact: it has no {MANIFEST}")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None
    return _check_manifest(m, str(path))


def is_artifact(directory: str | os.PathLike[str]) -> bool:
    """True when `directory` holds a manifest.json of format lmc-artifact (any version)."""
    try:
        m = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(m, dict) and m.get("format") == FORMAT


def prepare_output_dir(directory: str | os.PathLike[str], force: bool = False) -> Path:
    """An empty folder to build an artifact in. Creates it; empties a previous artifact only
    with force=True; never touches a non-empty folder that is not an lmc artifact."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ArtifactError(f"{d} exists and is not a folder")
    if not d.exists():
        d.mkdir(parents=True)
        return d
    children = list(d.iterdir())
    if not children:
        return d
    if not is_artifact(d):
        raise ArtifactError(
            f"{d} is not empty and is not an lmc artifact; refusing to write "
            "into it (choose an empty or new folder)"
        )
    if not force:
        raise ArtifactError(f"{d} already holds an lmc artifact; pass force=True to overwrite it")
    for c in children:
        if c.is_dir() and not c.is_symlink():
            shutil.rmtree(c)
        else:
            c.unlink()
    return d


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8, '\\n' line ends, whatever the platform (byte-identical artifacts)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def copy_runtime(src_dir: str | os.PathLike[str], include_dir: str | os.PathLike[str]) -> None:
    """Copy the runtime's C sources and headers into an artifact's src/ and the public header
    into its include/."""
    src, inc = Path(src_dir), Path(include_dir)
    src.mkdir(parents=True, exist_ok=True)
    inc.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_SOURCES:
        shutil.copyfile(RUNTIME_DIR / "src" / name, src / name)
    for name in RUNTIME_HEADERS:
        shutil.copyfile(RUNTIME_DIR / "include" / name, src / name)
    shutil.copyfile(RUNTIME_DIR / "include" / "lmc_model.h", inc / "lmc_model.h")
