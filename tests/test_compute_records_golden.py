"""Golden bytes of the six compute records: what ``to_event`` / ``to_compat_event`` write (the
ledger line's object, key order included) and what ``digest`` binds, frozen in
``tests/data/compute_records_golden.json``. Any change to the records' shape that moves a key,
drops one or changes a value's text fails here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from cheng_build.compute.records import RECORDS, Record

GOLDEN = json.loads((Path(__file__).parent / "data" / "compute_records_golden.json").read_text())


def _full(cls: type[Record]) -> Record:
    """Every field set, each value derived from the field's name only (not its position)."""
    kw: dict[str, Any] = {}
    for f in fields(cls):
        if f.name == "mode":
            kw[f.name] = "p2p"
        elif f.type == "str":
            kw[f.name] = f"{f.name}-\u00e9"
        elif f.type == "int":
            kw[f.name] = int.from_bytes(hashlib.sha256(f.name.encode()).digest()[:5], "big")
        else:
            kw[f.name] = 0.125 * (len(f.name) % 7 + 1)
    return cls(**kw)


def _line(ev: dict[str, Any]) -> str:
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


def test_golden_covers_every_record() -> None:
    assert sorted(GOLDEN) == sorted(RECORDS)


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_written_bytes_are_golden(kind: str) -> None:
    cls, want = RECORDS[kind], GOLDEN[kind]
    rec = _full(cls)
    assert _line(rec.to_event()) == want["full"]
    assert _line(rec.to_compat_event()) == want["compat"]
    assert rec.digest() == want["digest"]
    assert _line(cls().to_event()) == want["empty"]


@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_golden_lines_read_back(kind: str) -> None:
    cls, want = RECORDS[kind], GOLDEN[kind]
    rec = _full(cls)
    if not cls.has_mode():
        rec = rec.replace(mode="")  # a type without mode neither writes nor reads it
    assert cls.from_event(json.loads(want["full"]), money_nano=True) == rec
    assert cls.from_event(json.loads(want["compat"]), money_nano=False).to_event() == \
        json.loads(want["full"])
