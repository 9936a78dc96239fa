"""cheng_build.core.record against dataclasses itself: the same classes declared both ways must
behave the same (construction, defaults, repr, equality, hashing, frozen-ness, slots, replace,
asdict), and what the record does not support is refused, not ignored."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.core import record

REPO = Path(__file__).resolve().parent.parent


def _pair(frozen: bool, slots: bool) -> tuple[Any, Any]:
    made = []
    for deco, fld in ((dataclasses.dataclass, dataclasses.field), (record.dataclass, record.field)):
        @deco(frozen=frozen, slots=slots)
        class Rec:
            """A record."""

            kind: ClassVar[str] = "not a field"
            a: int
            b: str = "b"
            c: tuple[int, ...] = fld(default=())
            d: list[int] = fld(default_factory=list)

            def total(self) -> int:
                return self.a + len(self.d)

        made.append(Rec)
    return made[0], made[1]


CASES = [(f, s) for f in (False, True) for s in (False, True)]


@pytest.mark.parametrize(("frozen", "slots"), CASES)
def test_behaves_as_dataclass(frozen: bool, slots: bool) -> None:
    dc, rec = _pair(frozen, slots)
    calls = (((1,), {}), ((1, "x"), {"d": [3]}), ((), {"a": 2, "c": (1,)}), ((1, "y", (2,), [4]), {}))
    for args, kwargs in calls:
        x, y = dc(*args, **kwargs), rec(*args, **kwargs)
        assert repr(x).split(".")[-1] == repr(y).split(".")[-1]
        assert [getattr(x, n) for n in "abcd"] == [getattr(y, n) for n in "abcd"]
        assert y == rec(*args, **kwargs) and y != rec(9) and (y == x) is False
        assert y.total() == x.total() and rec.kind == "not a field"
        assert rec.__match_args__ == dc.__match_args__
        if frozen:
            with pytest.raises(TypeError):  # a list field: unhashable in both
                hash(x)
            with pytest.raises(TypeError):
                hash(y)
            with pytest.raises(AttributeError):
                y.a = 5
            with pytest.raises(record.FrozenInstanceError):
                del y.a
        else:
            assert rec.__hash__ is None and dc.__hash__ is None
            y.a = 5
            assert y.a == 5
        assert hasattr(y, "__dict__") == hasattr(x, "__dict__")
    assert rec(1).d is not rec(1).d  # a fresh default per record
    for bad_args, bad_kwargs in (((), {}), ((1, "x", (), [], 5), {}), ((1,), {"a": 1}), ((1,), {"zz": 1})):
        with pytest.raises(TypeError):
            dc(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError, match="__init__"):
            rec(*bad_args, **bad_kwargs)


@pytest.mark.parametrize(("frozen", "slots"), CASES)
def test_replace_and_asdict(frozen: bool, slots: bool) -> None:
    dc, rec = _pair(frozen, slots)
    x, y = dc(1, "q", (2,), [3]), rec(1, "q", (2,), [3])
    assert record.asdict(y) == dataclasses.asdict(x) == record.asdict(x)
    assert record.replace(y, b="r") == rec(1, "r", (2,), [3])
    assert record.replace(x, b="r") == dataclasses.replace(x, b="r")
    with pytest.raises(TypeError):
        record.replace(y, nope=1)


@pytest.mark.parametrize(("frozen", "slots"), CASES)
def test_copy_and_pickle(frozen: bool, slots: bool) -> None:
    import copy
    import pickle

    y = _pair(frozen, slots)[1](1, "q", (2,), [3])
    for again in (copy.copy(y), copy.deepcopy(y)):
        assert again == y and again is not y
    p = _Point(1, (2, 3))
    assert pickle.loads(pickle.dumps(p)) == p and copy.copy(p) == p


@record.dataclass(frozen=True, slots=True)
class _Point:
    x: int
    rest: tuple[int, ...] = ()


@given(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=4))
def test_equality_and_hash_follow_the_fields(a: int, b: str, d: list[int]) -> None:
    made = []
    for deco in (dataclasses.dataclass, record.dataclass):
        @deco(frozen=True, slots=True)
        class Key:
            a: int
            b: str
            c: tuple[int, ...] = ()

        made.append(Key)
    dc, rec = made
    y1, y2 = rec(a, b, tuple(d)), rec(a, b, tuple(d))
    assert y1 == y2 and hash(y1) == hash(y2) and (y1 == rec(a, b + "x")) is False
    assert hash(y1) == hash(dc(a, b, tuple(d)))  # both hash the tuple of the fields
    assert repr(y1).split(".")[-1] == repr(dc(a, b, tuple(d))).split(".")[-1]


def test_unsupported_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported"):
        record.dataclass(order=True)
    with pytest.raises(TypeError, match="not supported"):
        @record.dataclass
        class Post:
            a: int

            def __post_init__(self) -> None:
                pass
    with pytest.raises(TypeError, match="follows default"):
        @record.dataclass
        class Order:
            a: int = 1
            b: int  # type: ignore[misc]


def test_miss_path_does_not_import_dataclasses() -> None:
    # The modules a cache-miss chengc build imports (cli, driver, package flow, checkpoint
    # memory) must not pull in dataclasses (and inspect with it): that is why records exist.
    code = ("import sys\n"
            "import cheng_build.cli.chengc, cheng_build.cli.app, cheng_build.build.driver\n"
            "import cheng_build.build.packages, cheng_build.trust.checkpoint, cheng_build.build.repro\n"
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(("frozen", "slots"), CASES)
@given(st.integers(), st.integers(), st.binary(max_size=3), st.binary(max_size=3))
def test_repr_false_and_compare_false_as_dataclasses(frozen: bool, slots: bool, a1: int, a2: int,
                                                      r1: bytes, r2: bytes) -> None:
    made = []
    for deco, fld in ((dataclasses.dataclass, dataclasses.field), (record.dataclass, record.field)):
        @deco(frozen=frozen, slots=slots)
        class Rec:
            a: int
            raw: bytes = fld(repr=False)
            data: dict[str, int] = fld(repr=False, compare=False)  # unhashable: out of __hash__
            hot: int | None = fld(default=None, repr=False, compare=False)

        made.append(Rec)
    dc, rec = made
    for cls in (dc, rec):
        x, y = cls(a1, r1, {"k": 1}), cls(a2, r2, {"k": 2}, hot=7)
        assert repr(x).split(".")[-1] == f"Rec(a={a1!r})"
        assert (x == y) == (a1 == a2 and r1 == r2)  # data and hot are not compared
        if frozen:
            assert (hash(x) == hash(y)) or x != y
            assert hash(x) == hash(cls(a1, r1, {"other": 3}))
