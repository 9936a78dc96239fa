"""``_native/_cdef.py`` (the binding's hand-written C declarations) against the real headers.

The cdef is compiled after ``native/include/*.h`` in one translation unit: C accepts a second
declaration of a function only when its type is the same, so any drift in a return type, a
parameter or a typedef is a compile error here rather than memory corruption at run time. Every
function of the cdef must exist in a header, and the ABI versions must agree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cheng_build._native import _cdef

REPO = Path(__file__).resolve().parents[1]
INCLUDE = REPO / "native" / "include"
HEADERS = sorted(INCLUDE.glob("*.h"))
CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(CC is None and os.environ.get("CI") != "true",
                                reason="no C compiler")


def _compile(cdef: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CC is not None, "CI=true: a C compiler must be installed (scripts/test.sh)"
    src = tmp_path / "cdef_check.c"
    src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                   + "".join(f'#include "{h.name}"\n' for h in HEADERS)
                   + "\n/* the binding's declarations, again */\n" + cdef)
    return subprocess.run([CC, "-std=c11", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                           f"-I{INCLUDE}", str(src)], capture_output=True, text=True, timeout=60,
                          check=False)


def _functions(text: str) -> set[str]:
    return set(re.findall(r"\b(cb_\w+)\s*\(", re.sub(r"/\*.*?\*/", "", text, flags=re.S)))


def test_the_cdef_compiles_against_the_headers(tmp_path: Path) -> None:
    proc = _compile(_cdef.CDEF, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_drifted_declaration_is_caught(tmp_path: Path) -> None:
    drifted = _cdef.CDEF.replace("size_t cb_cdc_size(void);", "int cb_cdc_size(void);")
    assert drifted != _cdef.CDEF
    proc = _compile(drifted, tmp_path)
    assert proc.returncode != 0
    assert "cb_cdc_size" in proc.stderr


def test_every_cdef_function_is_in_a_header() -> None:
    declared = set().union(*(_functions(h.read_text()) for h in HEADERS))
    assert _functions(_cdef.CDEF) - declared == set()


def test_abi_versions_agree() -> None:
    header = (INCLUDE / "cheng_native.h").read_text()
    m = re.search(r"#define CB_ABI_VERSION (\d+)", header)
    assert m is not None
    assert int(m.group(1)) == _cdef.ABI_VERSION


def _norm(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = " ".join(text.split())
    return re.sub(r"\s*([(),;*\[\]])\s*", r"\1", text)


def test_every_cdef_declaration_is_in_a_header_word_for_word() -> None:
    headers = _norm("\n".join(p.read_text() for p in HEADERS))
    decls = [d.strip() for d in _norm(_cdef.CDEF).split(";") if d.strip()]
    assert len(decls) > 40
    missing = [d for d in decls if _norm(d) + ";" not in headers]
    assert not missing, missing
