"""Run an arm64 artifact on this machine: its static harness executable (bin/lmc_harness, see
runtime/harness/lmc_harness.c) under qemu-aarch64, with inputs and outputs through LMCT tensor
files in a temporary folder. Input checks and dtype handling are the host runner's; errors of
the C runtime arrive as the same LmcError subclasses, carrying its message."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.dtypes import DType
from .errors import ArtifactError, KernelError, error_from_status
from .host import (
    CODE_DTYPES,
    DTYPE_CODES,
    TensorSpec,
    _code_of,
    arrange_inputs,
    c_storage,
    from_storage,
    prepare_input,
)

QEMU = "qemu-aarch64"
QEMU_HINT = "install it: Debian/Ubuntu `apt-get install qemu-user`"
HARNESS = "bin/lmc_harness"
LMCT_MAGIC = b"LMCT"
LMCT_VERSION = 1
EXIT_USAGE, EXIT_FILE = 64, 65  # the harness's own failures (lmc_harness.c)


def qemu_cpu(features: frozenset[str]) -> str:
    """The oldest qemu CPU model that has `features`, so a run also checks that the code uses
    nothing more: armv8.0 (cortex-a53) without extensions, cortex-a76 (armv8.2 with dotprod
    and fp16), else qemu's `max`."""
    if "i8mm" in features:
        return "max"
    if features & {"dotprod", "fp16"}:
        return "cortex-a76"
    return "cortex-a53"


# ---- LMCT tensor files: "LMCT", u32 version, i32 dtype, i32 rank, i64 dims[rank], raw data --


def write_tensor(path: str | os.PathLike[str], a: np.ndarray, code: int) -> None:
    """Write C-storage array `a` (bf16 as uint16 bits) with lmc_dtype `code`."""
    a = np.require(a, requirements="C")  # keeps 0-d arrays 0-d
    head = LMCT_MAGIC + struct.pack(f"<Iii{a.ndim}q", LMCT_VERSION, code, a.ndim, *a.shape)
    with open(path, "wb") as f:
        f.write(head)
        f.write(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def read_tensor(path: str | os.PathLike[str]) -> tuple[DType, np.ndarray]:
    """(dtype, C-storage array) of an LMCT file."""
    data = Path(path).read_bytes()
    if len(data) < 16 or data[:4] != LMCT_MAGIC:
        raise ArtifactError(f"{path} is not an LMCT tensor file")
    version, code, rank = struct.unpack_from("<Iii", data, 4)
    if version != LMCT_VERSION or code not in CODE_DTYPES or not 0 <= rank <= 64:
        raise ArtifactError(f"{path}: unsupported LMCT header ({version}, {code}, {rank})")
    dims = struct.unpack_from(f"<{rank}q", data, 16)
    dt = CODE_DTYPES[code]
    storage = c_storage(dt).newbyteorder("<")
    count = int(np.prod(dims, dtype=np.int64))
    offset = 16 + 8 * rank
    if len(data) - offset != count * storage.itemsize:
        raise ArtifactError(f"{path}: {len(data) - offset} data bytes for shape {dims} {dt}")
    arr = np.frombuffer(data, storage, count, offset).reshape(dims)
    return dt, arr.astype(storage.newbyteorder("="))


# ---- the runner --------------------------------------------------------------------------------


def _spec(io: Mapping[str, Any]) -> TensorSpec:
    return TensorSpec(io["name"], DType(io["dtype"]), tuple(io["shape"]))


class Arm64Runner:
    """An arm64 artifact run through its harness under qemu-aarch64. Each `run` starts one
    emulator process; `run_many` runs several input sets in one process (the weights are
    loaded once). Nothing is held between runs, so `close` has nothing to free."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        num_threads: int = 0,
        cpu: str | None = None,
    ) -> None:
        from ..backends.targets import parse_target

        self.directory = Path(directory)
        self.inputs = [_spec(io) for io in manifest["inputs"]]
        self.outputs = [_spec(io) for io in manifest["outputs"]]
        self.symbols = {k: (lo, hi) for k, (lo, hi) in manifest.get("symbols", {}).items()}
        self.harness = self.directory / manifest.get("harness", HARNESS)
        self.weights = self.directory / manifest.get("weights", {}).get(
            "file", "weights.safetensors"
        )
        self.cpu = cpu or qemu_cpu(parse_target(manifest["target"]).features)
        self.num_threads = int(num_threads)
        if not self.harness.is_file():
            raise ArtifactError(
                f"{self.directory}: no harness {HARNESS} (was it built without the cross "
                f"compiler? `make -C {self.directory / 'src'}` builds it)"
            )
        qemu = shutil.which(QEMU)
        if qemu is None:
            raise ArtifactError(
                f"{QEMU} not found: running arm64 artifacts on this machine needs it; {QEMU_HINT}"
            )
        self.qemu = qemu

    def command(self, jobs: Sequence[str | os.PathLike[str]]) -> list[str]:
        """The emulator command line that runs the harness over job folders."""
        return [self.qemu, "-cpu", self.cpu, str(self.harness), "-t", str(self.num_threads),
                str(self.weights), *map(str, jobs)]  # fmt: skip

    def run(
        self, inputs: Sequence[Any] | Mapping[str, Any], *, check: bool = True
    ) -> list[np.ndarray]:
        """Outputs for inputs by position or by name (check=False: only the C runtime
        checks them)."""
        return self.run_many([inputs], check=check)[0]

    def run_many(
        self, batches: Sequence[Sequence[Any] | Mapping[str, Any]], *, check: bool = True
    ) -> list[list[np.ndarray]]:
        """The outputs of each input set, all computed in one emulator process."""
        if not batches:
            return []
        with tempfile.TemporaryDirectory(prefix="lmc-arm64-") as tmp:
            jobs = []
            for j, inputs in enumerate(batches):
                job = Path(tmp) / f"job{j}"
                job.mkdir()
                for i, (spec, x) in enumerate(
                    zip(self.inputs, arrange_inputs(self.inputs, inputs))
                ):
                    a = prepare_input(spec, x, check)
                    code = DTYPE_CODES[spec.dtype] if check else _code_of(a)
                    write_tensor(job / f"in{i}.lmct", a, code)
                jobs.append(job)
            res = subprocess.run(self.command(jobs), capture_output=True, text=True)
            if res.returncode != 0:
                raise self._error(res.returncode, res.stderr, tmp)
            return [self._outputs(job) for job in jobs]

    def _outputs(self, job: Path) -> list[np.ndarray]:
        outs = []
        for i, spec in enumerate(self.outputs):
            _, arr = read_tensor(job / f"out{i}.lmct")
            outs.append(from_storage(spec, arr))
        return outs

    def _error(self, code: int, stderr: str, tmp: str) -> Exception:
        lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("lmc_harness: ")]
        msg = lines[-1][len("lmc_harness: ") :] if lines else stderr.strip()[-2000:]
        msg = msg.replace(tmp + os.sep, "")  # job folder names, not temporary paths
        if 1 <= code <= 7:
            # "jobN: message" -> the runtime's message alone, like the host runner's errors
            head, sep, rest = msg.partition(": ")
            return error_from_status(code, rest if sep and head.startswith("job") else msg)
        if code in (EXIT_USAGE, EXIT_FILE):
            return ArtifactError(f"the arm64 harness failed ({code}): {msg}")
        return KernelError(
            f"the arm64 harness under {QEMU} -cpu {self.cpu} failed with status {code}"
            f"{' (killed by a signal)' if code < 0 else ''}: {msg or '(no message)'}"
        )

    def close(self) -> None:
        """Nothing to free (each run is its own process)."""

    def __enter__(self) -> Arm64Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def arm64_runner(directory: Path, manifest: Mapping[str, Any], num_threads: int = 0) -> Arm64Runner:
    """The runner of an arm64 artifact folder (used by loader.load and lmc.compile)."""
    return Arm64Runner(directory, manifest, num_threads)
