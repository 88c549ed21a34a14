"""Error types of lmc: every error a user can see subclasses LmcError."""

from __future__ import annotations


class LmcError(Exception):
    """Base of every error lmc raises on purpose (bad input, bad IR, unsupported feature)."""


class IRTypeError(LmcError):
    """An op was applied to operands whose types its shape/dtype rule rejects."""


class ParseError(LmcError):
    """The text IR could not be parsed; the message carries line, column and a caret."""

    def __init__(self, msg: str, text: str, line: int, col: int) -> None:
        lines = text.splitlines() or [""]
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        super().__init__(f"{line}:{col}: {msg}\n  {src}\n  {' ' * (col - 1)}^")
        self.line, self.col, self.msg = line, col, msg


class VerifyError(LmcError):
    """The graph breaks an IR invariant (SSA, order, symbols, types)."""


class InterpreterError(LmcError):
    """The reference interpreter failed on a node or on the given inputs."""


class PassError(LmcError):
    """A pass pipeline is ill-formed (unknown pass, contract order) or a pass failed."""


def require(cond: bool, msg: str) -> None:
    """Raise IRTypeError(msg) unless cond; shape rules use this to reject operands."""
    if not cond:
        raise IRTypeError(msg)
