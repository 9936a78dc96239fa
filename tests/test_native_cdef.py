"""The cffi declarations (``_native/_cdef.py``) say what the C headers say: every function and
type the binding declares is declared the same way in ``native/include/*.h`` (a drifted
signature would be called with the wrong arguments, not refused)."""

from __future__ import annotations

import re
from pathlib import Path

from cheng_build._native._cdef import ABI_VERSION, CDEF

INCLUDE = Path(__file__).resolve().parents[1] / "native" / "include"


def _norm(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = " ".join(text.split())
    return re.sub(r"\s*([(),;*\[\]])\s*", r"\1", text)


def test_every_cdef_declaration_is_in_a_header() -> None:
    headers = _norm("\n".join(p.read_text() for p in sorted(INCLUDE.glob("*.h"))))
    decls = [d.strip() for d in _norm(CDEF).split(";") if d.strip()]
    assert len(decls) > 40
    missing = [d for d in decls if _norm(d) + ";" not in headers]
    assert not missing, missing


def test_abi_version_matches_the_header() -> None:
    m = re.search(r"#define CB_ABI_VERSION (\d+)", (INCLUDE / "cheng_native.h").read_text())
    assert m is not None and int(m.group(1)) == ABI_VERSION
