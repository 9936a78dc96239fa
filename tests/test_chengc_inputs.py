"""The stat cache (git-index style racy check) and the read-back check of inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cheng_build.build.errors import InputChangedError
from cheng_build.build.imports import FileRole, GraphFile
from cheng_build.build.inputs import RACY_NS, StatCache, listing_digest, read_inputs


def _age(cache_path: Path) -> None:
    doc = json.loads(cache_path.read_text())
    for rec in doc["files"].values():
        rec["at"] += 10 * RACY_NS
    cache_path.write_text(json.dumps(doc))


def test_fresh_records_are_racy_until_old_enough(tmp_path: Path) -> None:
    f = tmp_path / "m.cheng"
    f.write_text("import cheng/a/b\n")
    db = tmp_path / "stat.json"
    c = StatCache(db)
    assert c.module_facts(f)[2][0].path == "cheng/a/b" and c.reads == 1
    c.save()
    c = StatCache(db)
    c.module_facts(f)
    assert c.reads == 1, "recorded within the racy window: read again"
    c.save()
    _age(db)
    c = StatCache(db)
    size, digest, _ = c.module_facts(f)
    assert c.reads == 0 and size == f.stat().st_size
    assert digest == hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_text("import cheng/a/c\n")  # same size, new content (and new ctime)
    c2 = StatCache(db)
    assert c2.module_facts(f)[2][0].path == "cheng/a/c" and c2.reads == 1


def test_nothing_written_when_nothing_changed(tmp_path: Path) -> None:
    f = tmp_path / "m.cheng"
    f.write_text("")
    db = tmp_path / "stat.json"
    c = StatCache(db)
    c.module_facts(f)
    c.save()
    _age(db)
    before = db.stat().st_mtime_ns
    c = StatCache(db)
    c.module_facts(f)
    c.save()
    assert db.stat().st_mtime_ns == before


def test_unreadable_cache_is_empty(tmp_path: Path) -> None:
    db = tmp_path / "stat.json"
    db.write_text("{broken")
    f = tmp_path / "m.cheng"
    f.write_text("")
    c = StatCache(db)
    c.module_facts(f)
    assert c.reads == 1


def test_read_inputs_refuses_a_file_that_changed(tmp_path: Path) -> None:
    f = tmp_path / "m.cheng"
    f.write_text("one")
    g = GraphFile(f, "m.cheng", FileRole.ENTRY, 3, hashlib.sha256(b"one").hexdigest())
    assert read_inputs([g]) == {"m.cheng": b"one"}
    f.write_text("two")
    with pytest.raises(InputChangedError) as ei:
        read_inputs([g])
    assert ei.value.lines("chengc")[0] == f"chengc: input changed during the build: {f}"


def test_listing_digest_depends_on_names_sizes_and_digests(tmp_path: Path) -> None:
    a = GraphFile(tmp_path / "a", "a", FileRole.ENTRY, 1, "00" * 32)
    b = GraphFile(tmp_path / "b", "b", FileRole.MODULE, 1, "11" * 32)
    assert listing_digest([a, b]) == listing_digest([b, a])
    assert listing_digest([a, b]) != listing_digest([a, GraphFile(b.source, "c", b.role, 1, b.sha256)])
    assert listing_digest([a, b]) != listing_digest([a, GraphFile(b.source, "b", b.role, 2, b.sha256)])
