"""core.lazyre: a lazily compiled pattern behaves as the compiled one and replaces itself."""

from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from cheng_build.core.lazyre import lazy

_PATTERN = r"(?P<word>[a-z]+)|(?P<num>\d+)"


@given(st.text(alphabet="ab1 2Z", max_size=30))
def test_same_results_as_re_compile_and_rebinds_the_global(text: str) -> None:
    ns: dict[str, object] = {}
    ns["P"] = lazy(ns, "P", _PATTERN)
    stand_in = ns["P"]
    assert not isinstance(stand_in, re.Pattern)
    want = [(m.lastgroup, m.group()) for m in re.compile(_PATTERN).finditer(text)]
    assert [(m.lastgroup, m.group()) for m in stand_in.finditer(text)] == want  # type: ignore[attr-defined]
    assert isinstance(ns["P"], re.Pattern) and ns["P"].pattern == _PATTERN  # type: ignore[attr-defined]
    assert stand_in.sub("x", text) == re.sub(_PATTERN, "x", text)  # type: ignore[attr-defined]


def test_flags_and_bytes() -> None:
    ns: dict[str, object] = {}
    ns["B"] = p = lazy(ns, "B", rb"a.b", re.DOTALL)
    assert p.fullmatch(b"a\nb") is not None and ns["B"] == re.compile(rb"a.b", re.DOTALL)


def test_reference_patterns_are_not_compiled_on_import() -> None:
    """The publish path imports pkg.api and pkg.originality; their reference tokenizers' patterns
    wait for first use (and then are the real compiled patterns)."""
    code = (
        "import re\n"
        "from cheng_build.pkg import api, originality\n"
        "assert not isinstance(originality._TOKEN, re.Pattern)\n"
        "assert not isinstance(api._TOKEN, re.Pattern)\n"
        "originality.tokenize('fn main() = 1')\n"
        "assert isinstance(originality._TOKEN, re.Pattern)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
