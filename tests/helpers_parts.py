"""Tests that need a part of the machine (a program, a package, a build) and do not find it.

Locally a missing part skips the test with the reason. In CI (``CI=true``) it fails the test,
naming the part and how ``scripts/test.sh`` installs it: CI must never go green by skipping what
it was meant to run. Call these where you would call ``pytest.skip``/``pytest.importorskip``, in
the test (or its fixture), never at module level, so one missing oracle does not take a whole
module's known-answer tests with it::

    if shutil.which("bwrap") is None:
        require_part("bubblewrap", "scripts/test.sh: apt-get install bubblewrap")
    blake3 = import_part("blake3", "pip install '.[test]' (scripts/test.sh)")

``tests/conftest.py`` backs this up: with ``CI=true`` any other skip fails too, unless its reason
starts with :data:`NOT_APPLICABLE` (a test that does not apply to this machine at all, such as
one that needs the absence of a GPU).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

NOT_APPLICABLE = "not applicable here: "


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to true/1/yes, as GitHub Actions and most CIs do)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_part(name: str, how: str) -> NoReturn:
    """Stop this test because ``name`` is missing: skip locally, fail in CI.

    Args:
        name: the part, as a user would look for it ("bubblewrap", "node and npm").
        how: how scripts/test.sh (or the user) installs it.
    """
    if in_ci():
        pytest.fail(f"missing part: {name} (with CI=true a missing part fails, it does not skip)\n"
                    f"  how: {how}", pytrace=False)
    pytest.skip(f"missing part: {name} ({how})")


def import_part(module: str, how: str) -> ModuleType:
    """``importlib.import_module(module)``, or :func:`require_part` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        require_part(f"Python module {module} ({exc})", how)


def not_applicable(why: str) -> NoReturn:
    """Skip a test that cannot apply to this machine (allowed in CI too); not for missing parts."""
    pytest.skip(NOT_APPLICABLE + why)


__all__ = ["NOT_APPLICABLE", "import_part", "in_ci", "not_applicable", "require_part"]
