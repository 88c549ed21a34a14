"""pytest configuration shared by the whole suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# lmc.compile reuses runtime and kernel-library objects from an object cache; the suite keeps
# its own (keyed by compiler, flags and source bytes, so entries never go stale) instead of
# the user's ~/.cache/lmc/objects.
os.environ.setdefault(
    "LMC_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"lmc-test-objects-{os.getuid()}")
)


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden .lmc/.expected files from the current output",
    )
