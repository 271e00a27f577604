"""Configuration files from Jinja templates, rendered the way Ansible's template module does.

One template per file format: the lab's daemons (through their roles or the service
modules) and the probes' private daemons render the same file with the same settings
(StrictUndefined, trim_blocks, the trailing newline kept), so a setting cannot differ
between them.

    >>> render_string("a = {{ x }}\\n{% if y %}\\nb\\n{% endif %}\\n", x=1, y=True)
    'a = 1\\nb\\n'
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import paths


def _environment(filters: dict[str, Callable[..., Any]] | None = None):
    import jinja2
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                             autoescape=False)
    env.filters.update(filters or {})
    return env


def template_path(name: str | Path) -> Path:
    """A template named relative to the project root (as profiles/daemons.yml names them)."""
    path = Path(name)
    return path if path.is_absolute() else paths.ROOT / path


def render_string(text: str, *, filters: dict[str, Callable[..., Any]] | None = None, **values: Any) -> str:
    return _environment(filters).from_string(text).render(**values)


def render(template: str | Path, *, filters: dict[str, Callable[..., Any]] | None = None, **values: Any) -> str:
    """The text of `template` (a path, or relative to the project root) with `values`."""
    return render_string(template_path(template).read_text(), filters=filters, **values)
