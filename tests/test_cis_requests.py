"""A request's outcome: the text stored with it and the value the CLI and views read back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cheng_build.cis.run.requests import OK, Outcome, Verdict, ok, rejected


def test_the_stored_text_is_unchanged() -> None:
    assert str(OK) == "ok"
    assert str(ok("stopping it")) == "ok: stopping it"
    assert str(rejected("task 3 is running")) == "rejected: task 3 is running"


@given(st.sampled_from(list(Verdict)), st.text().map(str.strip))
def test_parse_reads_back_what_str_wrote(verdict: Verdict, detail: str) -> None:
    out = Outcome(verdict, detail)
    back = Outcome.parse(str(out))
    assert back == out
    assert back.rejected is (verdict is Verdict.REJECTED)


def test_parse_reads_an_older_engines_text() -> None:
    assert Outcome.parse("rejected: no task 9").rejected
    assert not Outcome.parse("ok: 2 task(s) reset").rejected
