"""Bad manifests and locks of every kind end in one clear error line and exit 1 or 2.

Hypothesis mutates valid documents (wrong types, missing fields, duplicates, unknown keys) and
writes them in every format, or writes raw bytes (invalid UTF-8); the CLI runs in-process
(``cheng_build.cli.pkg.main``) and must never show a traceback. A few runs go through a real
subprocess, and one through a file larger than the size limit.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_lock import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.cli.pkg import main as pkg_main
from cheng_build.pkg.formats import MAX_DOCUMENT_BYTES, dump_text

REPO = Path(__file__).resolve().parent.parent
CID = "bafybeibx62obrkybp46hx3ivh53q4rnptgkunpgtwiib5lfelfgt2ekihm"

GOOD_MANIFEST: dict[str, Any] = {
    "package_id": "pkg://cheng/app", "version": "1.2.3",
    "dependencies": [{"package_id": "pkg://cheng/fs", "channel": "stable"},
                     {"package_id": "pkg://cheng/net", "channel": "edge"}],
    "overrides": {"pkg://cheng/fs": "stable"},
}
GOOD_LOCK: dict[str, Any] = {
    "package_id": "pkg://cheng/app", "created_ts": "1730000000",
    "dependencies": [{"package_id": "pkg://cheng/fs", "channel": "stable", "epoch": 1, "cid": CID,
                      "format": "tar", "author_id": "node:a", "pub_key": "ed25519:AAAA",
                      "signature": "ed25519:BBBB"}],
}

_wrong = st.one_of(st.integers(-5, 5), st.booleans(), st.floats(allow_nan=False),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
                   ).filter(lambda v: v not in ([], {}))  # an empty list/table may be valid


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    kind = draw(st.sampled_from(["wrong_type", "missing", "unknown", "duplicate", "dep_wrong",
                                 "dep_missing", "dep_unknown", "deps_not_list"]))
    deps = doc["dependencies"]
    if kind == "wrong_type":
        doc[draw(st.sampled_from(sorted(doc)))] = draw(_wrong)
    elif kind == "missing":
        del doc["package_id"]
    elif kind == "unknown":
        doc[draw(st.from_regex(r"\A[a-z]{3,8}_x\Z"))] = draw(_wrong)
    elif kind == "duplicate":
        deps.append(copy.deepcopy(deps[0]))
    elif kind == "dep_wrong":
        deps[0][draw(st.sampled_from(sorted(deps[0])))] = draw(_wrong)
    elif kind == "dep_missing":
        del deps[0][draw(st.sampled_from(sorted(deps[0])))]
    elif kind == "dep_unknown":
        deps[0][draw(st.from_regex(r"\A[a-z]{3,8}_x\Z"))] = draw(_wrong)
    else:
        doc["dependencies"] = draw(_wrong)
    return doc


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = World(tmp_path_factory.mktemp("bad") / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    return world.save()


def _check(argv: list[str], capsys: pytest.CaptureFixture[str], allowed: tuple[str, ...]) -> int:
    rc = pkg_main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    if rc != 0:
        assert rc in (1, 2), (rc, err)
        first = err.splitlines()[0]
        assert first.startswith(allowed), first
        assert len(first) < 300
    return rc


def _write(path: Path, doc: dict[str, Any], fmt: str) -> None:
    try:
        text = dump_text(doc, fmt)
    except Exception:  # a value TOML cannot hold (e.g. a float key): fall back to JSON
        text = json.dumps(doc)
        path = path.with_suffix(".json")
    path.write_text(text)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=_mutated(GOOD_MANIFEST), fmt=st.sampled_from(["toml", "yaml", "json"]))
def test_bad_manifests(doc: dict[str, Any], fmt: str, tmp_path: Path, registry: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"cheng-package.{fmt}"
    _write(path, doc, fmt)
    _check(["resolve", f"--manifest:{path}", f"--registry:{registry}",
            f"--store:{tmp_path / 'store'}"], capsys,
           ("resolve: load manifest failed", "resolve: snapshot not found"))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=_mutated(GOOD_LOCK), fmt=st.sampled_from(["toml", "yaml", "json"]))
def test_bad_locks(doc: dict[str, Any], fmt: str, tmp_path: Path, registry: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"cheng.lock.{fmt}"
    _write(path, doc, fmt)
    rc = _check(["verify", f"--lock:{path}", f"--registry:{registry}"], capsys,
                ("verify: load lock failed", "verify: single-version conflict",
                 "verify: signature failed"))
    assert rc != 0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), fmt=st.sampled_from(["toml", "yaml", "json"]))
def test_arbitrary_bytes(raw: bytes, fmt: str, tmp_path: Path, registry: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    man = tmp_path / f"cheng-package.{fmt}"
    man.write_bytes(raw)
    _check(["resolve", f"--manifest:{man}", f"--registry:{registry}",
            f"--store:{tmp_path / 'store'}"], capsys,
           ("resolve: load manifest failed", "resolve: snapshot not found"))
    lock = tmp_path / f"cheng.lock.{fmt}"
    lock.write_bytes(raw)
    _check(["verify", f"--lock:{lock}", f"--registry:{registry}"], capsys,
           ("verify: load lock failed",))


def test_invalid_utf8_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / "cheng.lock.toml"
    lock.write_bytes(b'package_id = "pkg://cheng/\xff"\n')
    assert pkg_main(["verify", f"--lock:{lock}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "verify: load lock failed"
    assert "not valid UTF-8 (byte 26" in err[1]


def test_huge_file_is_refused_without_reading_it_all(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    man = tmp_path / "cheng-package.toml"
    with open(man, "wb") as fh:
        fh.write(b'package_id = "pkg://cheng/a"\n# ')
        fh.truncate(MAX_DOCUMENT_BYTES + 10)
    assert pkg_main(["resolve", f"--manifest:{man}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "resolve: load manifest failed" and "file too large" in err[1]


def test_v1_unknown_key_names_the_v2_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = copy.deepcopy(GOOD_LOCK)
    doc["dependencies"][0]["source_mode"] = "p2p"
    lock = tmp_path / "cheng.lock.toml"
    lock.write_text(dump_text(doc, "toml"))
    assert pkg_main(["verify", f"--lock:{lock}"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'source_mode'" in err and "lock_version = 2" in err


@pytest.mark.parametrize("text", [
    'package_id = "pkg://cheng/app"\n[[dependencies]]\npackage_id = "pkg://cheng/fs"\n'
    'channel = "beta"\n',
    'package_id = "pkg://cheng/app"\npackage_id = "pkg://cheng/app"\n',
    '\x00\x01\x02',
])
def test_subprocess_bad_manifest(text: str, tmp_path: Path) -> None:
    man = tmp_path / "cheng-package.toml"
    man.write_text(text)
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "resolve",
                        f"--manifest:{man}", f"--registry:{tmp_path / 'r.jsonl'}"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[0] == "resolve: load manifest failed"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("name,text", [
    ("cheng.lock.toml", "a = " + "[" * 100000 + "]" * 100000 + "\n"),
    ("cheng.lock.json", "[" * 100000 + "]" * 100000),
    ("cheng.lock.yaml", "a: " + "[" * 100000 + "]" * 100000 + "\n"),
])
def test_deep_nesting(name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / name
    lock.write_text(text)
    assert _check(["verify", f"--lock:{lock}"], capsys, ("verify: load lock failed",)) == 2
