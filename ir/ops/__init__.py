"""The op set. Importing this package registers every op (explicit imports, no scanning)."""

from . import elementwise, source  # noqa: F401
