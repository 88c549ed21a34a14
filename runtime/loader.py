"""`lmc.load(dir)`: open an artifact folder and run it with the runner its target needs.
Needs numpy and the artifact only (never imports torch)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..backends.targets import TargetError, host_features, parse_target
from .artifact import IR_FILE, read_manifest, sha256_file
from .errors import ArtifactError


class Runner(Protocol):
    """What a target's runner offers the loaded model."""

    def run(self, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def _host(directory: Path, manifest: dict[str, Any], num_threads: int) -> Runner:
    from .host import host_runner

    target = parse_target(manifest["target"])
    can, why = target.can_run()
    if not can:
        raise ArtifactError(f"{directory}: a {manifest['target']} artifact cannot run here: {why}")
    lacking = sorted(target.features - host_features())
    if lacking:
        raise ArtifactError(
            f"{directory}: built for {manifest['target']}, but this CPU lacks "
            f"{', '.join(lacking)}; rebuild it here with target='host'"
        )
    return host_runner(directory, manifest, num_threads)


def _arm64(directory: Path, manifest: dict[str, Any], num_threads: int) -> Runner:
    from .arm64 import arm64_runner

    return arm64_runner(directory, manifest, num_threads)


def _wasm32(directory: Path, manifest: dict[str, Any], num_threads: int) -> Runner:
    from .wasm import wasm_runner

    return wasm_runner(directory, manifest, num_threads)


# target name (Target.name, after aliases) -> runner factory
RUNNERS: dict[str, Callable[[Path, dict[str, Any], int], Runner]] = {
    "host": _host,
    "arm64": _arm64,
    "wasm32": _wasm32,
}
# target name -> what to install when its runner's tools (Target.runner) are missing
RUN_HINTS: dict[str, str] = {
    "arm64": "install qemu-aarch64: Debian/Ubuntu `apt-get install qemu-user`"
}


class LoadedModel:
    """An artifact ready to run: `m(*inputs)` -> array (one output) or list, `m.run(inputs)` ->
    list (inputs by position or by name), `.manifest`, `.ir` (the final IR text)."""

    def __init__(self, directory: Path, manifest: dict[str, Any], runner: Runner) -> None:
        self.path = directory
        self.manifest = manifest
        self.runner = runner

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def ir(self) -> str:
        path = self.path / IR_FILE
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            raise ArtifactError(f"{self.path}: cannot read {IR_FILE}: {e.strerror}") from None

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.manifest["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.manifest["outputs"]]

    def __call__(self, *inputs: Any) -> np.ndarray | list[np.ndarray]:
        outs = self.run(list(inputs))
        return outs[0] if len(outs) == 1 else outs

    def run(self, inputs: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
        if not isinstance(inputs, Mapping):
            inputs = [_to_numpy(x) for x in inputs]
        else:
            inputs = {k: _to_numpy(v) for k, v in inputs.items()}
        return self.runner.run(inputs)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LoadedModel({str(self.path)!r}, target={self.target!r})"


def load(
    directory: str | os.PathLike[str], *, num_threads: int = 0, verify_sha256: bool = False
) -> LoadedModel:
    """Open artifact folder `directory`. The runtime checks the weights' size and digest on
    load; verify_sha256 also checks the weights file against the manifest's sha256."""
    d = Path(directory)
    manifest = read_manifest(d)
    try:
        name = parse_target(manifest["target"]).name
    except (TargetError, AttributeError, TypeError) as e:
        raise ArtifactError(
            f"{d}: unknown target {manifest['target']!r} in the manifest: {e}"
        ) from None
    if name not in RUNNERS:
        raise ArtifactError(
            f"{d}: this lmc cannot run {manifest['target']!r} artifacts yet; "
            f"it runs: {', '.join(sorted(RUNNERS))}"
        )
    if verify_sha256:
        _verify_sha256(d, manifest)
    return LoadedModel(d, manifest, RUNNERS[name](d, manifest, num_threads))


def _verify_sha256(d: Path, manifest: dict[str, Any]) -> None:
    w = manifest.get("weights", {})
    path = d / w.get("file", "weights.safetensors")
    got = sha256_file(path)
    if got != w.get("sha256"):
        raise ArtifactError(f"{path}: sha256 {got} differs from the manifest's {w.get('sha256')}")


def _to_numpy(x: Any) -> Any:
    """numpy stays; a torch tensor (duck-typed: no torch import) becomes its numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    return x
