"""The one error a DAG raises: its own module so the reader (``toml_io``), the rules
(``validate``) and the input checks (``ambiguity``) can all raise it without importing each other.
"""

from __future__ import annotations

from cheng_build.core.errors import InputError


class DagError(InputError):
    """A DAG file or object is malformed or breaks a rule; ``what`` names the task."""


__all__ = ["DagError"]
