"""pytest configuration shared by the whole suite."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden .lmc/.expected files from the current output",
    )
