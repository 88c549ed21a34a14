"""The jinja2 environment of the C backend: templates/c/*.j2 with StrictUndefined, trim_blocks
and lstrip_blocks. Templates substitute and loop over what Python prepared; nothing else."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
C_TEMPLATES = TEMPLATES / "c"


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(C_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(template: str, /, **context: Any) -> str:
    """Render templates/c/<template> with `context`."""
    return environment().get_template(template).render(**context)
