"""Errors of artifacts and of the C runtime: one LmcError subclass per lmc_status code."""

from __future__ import annotations

from ..ir.errors import LmcError


class ArtifactError(LmcError):
    """A folder is not an lmc artifact, has an unsupported format, a malformed manifest or
    weights file, or would be overwritten without `force=True`."""


class RuntimeLmcError(LmcError):
    """An error reported by the lmc C runtime; `code` is its lmc_status value."""

    code: int = 0
    status: str = "LMC_OK"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArgumentError(RuntimeLmcError):
    """LMC_ERR_ARGUMENT: a NULL pointer or an index out of range."""

    code, status = 1, "LMC_ERR_ARGUMENT"


class WeightsIOError(RuntimeLmcError):
    """LMC_ERR_IO: the weights file cannot be opened or read."""

    code, status = 2, "LMC_ERR_IO"


class WeightsFormatError(RuntimeLmcError):
    """LMC_ERR_FORMAT: the weights file is truncated or not this model's."""

    code, status = 3, "LMC_ERR_FORMAT"


class DigestError(RuntimeLmcError):
    """LMC_ERR_DIGEST: the weights digest does not match the compiled model."""

    code, status = 4, "LMC_ERR_DIGEST"


class RuntimeMemoryError(RuntimeLmcError):
    """LMC_ERR_MEMORY: an allocation failed."""

    code, status = 5, "LMC_ERR_MEMORY"


class InputError(RuntimeLmcError):
    """LMC_ERR_INPUT: an input has the wrong dtype, rank or dims, or is missing."""

    code, status = 6, "LMC_ERR_INPUT"


class KernelError(RuntimeLmcError):
    """LMC_ERR_INTERNAL: a kernel reported an error, or the model definition is inconsistent."""

    code, status = 7, "LMC_ERR_INTERNAL"


ERRORS_BY_CODE: dict[int, type[RuntimeLmcError]] = {
    cls.code: cls
    for cls in (
        ArgumentError,
        WeightsIOError,
        WeightsFormatError,
        DigestError,
        RuntimeMemoryError,
        InputError,
        KernelError,
    )
}


def error_from_status(code: int, message: str) -> RuntimeLmcError:
    """The exception for lmc_status `code` carrying the runtime's message."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return KernelError(f"unknown lmc_status {code}: {message}")
    return cls(message or cls.status)
