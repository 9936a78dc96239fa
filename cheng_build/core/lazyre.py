"""Regular expressions compiled on first use, for module-level patterns that start-up paths skip.

Compiling a large pattern costs up to ~1 ms (the reference tokenizers of ``pkg.originality`` and
``pkg.api`` compile ~2.5 ms between them), and a module that only needs them on rare paths (the
tests' Python oracles, a fallback without the native library) should not pay that on import.

``_TOKEN = lazy(globals(), "_TOKEN", r"...")`` binds a stand-in under that global name. The first
attribute looked up on it (``_TOKEN.match``, ``.finditer``, ...) compiles the pattern and puts the
compiled :class:`re.Pattern` in the module's globals under the same name, so from then on the
functions that name ``_TOKEN`` find the real pattern, at no extra cost per call.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any, AnyStr

__all__ = ["lazy"]


class _Lazy:
    __slots__ = ("_flags", "_name", "_namespace", "_pattern")

    def __init__(self, namespace: dict[str, Any], name: str, pattern: str | bytes, flags: int) -> None:
        self._namespace = namespace
        self._name = name
        self._pattern = pattern
        self._flags = flags

    def __getattr__(self, attr: str) -> Any:
        compiled = re.compile(self._pattern, self._flags)
        if self._namespace.get(self._name) is self:
            self._namespace[self._name] = compiled  # later look-ups of the global find it directly
        return getattr(compiled, attr)

    def __repr__(self) -> str:
        return f"lazy({self._pattern!r})"


def lazy(namespace: dict[str, Any], name: str, pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """A stand-in for ``re.compile(pattern, flags)`` bound as ``namespace[name]``; see the module."""
    return _Lazy(namespace, name, pattern, flags)  # type: ignore[return-value]
