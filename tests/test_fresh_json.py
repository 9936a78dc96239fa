"""``--format:json`` on the commands that lacked it: each prints one JSON document that says the
same as its text form (README.md lists every command that has the flag; test_fresh_readme checks
the list against the parsers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_fresh import FS, call, make_world

from cheng_build.cli import pkg as pkg_cli
from cheng_build.cli import registry as registry_cli


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    return make_world(tmp_path, monkeypatch, capsys)


def one_json(out: list[str]) -> object:
    assert len(out) == 1, out  # one document, nothing else on stdout
    return json.loads(out[0])


def test_lock_verify_log_and_fetch(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = call(capsys, pkg_cli.main, "verify", "--lock:app/cheng.lock.toml", "--format:json")
    assert rc == 0, err
    assert one_json(out) == {"ok": True, "lock": "app/cheng.lock.toml", "package_id": "pkg://cheng/app",
                             "dependencies": 1, "level": "L1", "warnings": []}
    rc, out, err = call(capsys, pkg_cli.main, "log", f"--package:{FS}", "--format:json")
    assert rc == 0, err
    (head,) = one_json(out)  # type: ignore[misc]
    rc, text, _ = call(capsys, pkg_cli.main, "log", f"--package:{FS}")
    assert text == [f"* head  {head['cid']}  stable  epoch=1  author=node:me"]
    assert head["head"] is True and head["epoch"] == 1 and head["channel"] == "stable"
    rc, out, err = call(capsys, pkg_cli.main, "fetch", "--lock:app/cheng.lock.toml", "--mode:local",
                        "--format:json")
    assert rc == 0, err
    doc = one_json(out)
    assert isinstance(doc, dict)
    (pkg,) = doc["packages"]
    assert pkg["package_id"] == FS and pkg["source"] == "cache" and Path(pkg["root"]).is_dir()
    assert doc["pkg_roots"] == pkg["root"] and doc["dropped"] == []


def test_registry_verify_and_key_commands(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = call(capsys, registry_cli.main, "verify", "--format:json", "--pkg-cache:cache",
                        f"--package:{FS}", "--channel:stable")
    assert rc == 0, err
    doc = one_json(out)
    assert isinstance(doc, dict)
    assert doc["ok"] is True and doc["lines"] == 1 and doc["publishes"] == 1
    assert doc["store"] == {"path": "cache", "checked": 1, "absent": 0}
    assert doc["head"]["package_id"] == FS and doc["head"]["line"] == 1
    assert doc["newest_checkpoint"] is None
    rc, out, err = call(capsys, registry_cli.main, "keygen", "--out:op.json", "--author:op:main",
                        "--format:json")
    assert rc == 0, err
    key = one_json(out)
    assert isinstance(key, dict) and key["author_id"] == "op:main" and key["pub_key"].startswith("ed25519:")
    rc, out, err = call(capsys, registry_cli.main, "checkpoint", "--priv:op.json", "--format:json")
    assert rc == 0, err
    cp = one_json(out)
    assert isinstance(cp, dict) and cp["line"] == 2 and cp["size"] == 1 and len(cp["root"]) == 64
    rc, out, err = call(capsys, registry_cli.main, "verify", "--format:json")
    assert rc == 0, err
    doc = one_json(out)
    assert isinstance(doc, dict) and doc["newest_checkpoint"]["root"] == cp["root"]


def test_diff_checkout_add_get(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = call(capsys, pkg_cli.main, "add", "fs", "--format:json")
    assert rc == 0, err
    first = one_json(out)
    assert isinstance(first, dict)
    (world / "fs" / "src" / "more.cheng").write_text("fn More(): int32 = 2\n")
    rc, out, err = call(capsys, pkg_cli.main, "add", "fs", "--format:json")
    second = one_json(out)
    assert isinstance(second, dict)
    rc, out, err = call(capsys, pkg_cli.main, "diff", f"--from:{first['root']}", f"--to:{second['root']}",
                        "--format:json")
    assert rc == 0, err
    assert one_json(out) == [{"kind": "added", "path": "src/more.cheng"}]
    rc, out, err = call(capsys, pkg_cli.main, "checkout", f"--cid:{second['root']}", "--format:json")
    assert rc == 0, err
    co = one_json(out)
    assert isinstance(co, dict) and (Path(co["root"]) / "src" / "more.cheng").is_file()
    rc, out, err = call(capsys, pkg_cli.main, "get", second["root"], "--out:copy", "--format:json")
    assert rc == 0, err
    assert one_json(out) == {"cid": second["root"], "path": "copy"}
    assert (world / "copy" / "src" / "more.cheng").read_text() == "fn More(): int32 = 2\n"


def test_cis_amend_reports_in_json(tmp_path: Path) -> None:
    from helpers_cis import cis, make_dag, sh, task

    from cheng_build.cis.run import control

    home = tmp_path / "home"
    store = control.open_store(home)
    base = tmp_path / "p"
    base.mkdir()
    rid = control.create_run(store, make_dag(base, [task(0, "a", sh("true"))]))  # no engine runs it
    r = cis(home, "amend", rid, "--task:0", "--env:K=V", "--format:json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["run_id"] == rid and doc["command"] == "amend task 0" and doc["state"] == "queued"
    r = cis(home, "amend", rid, "--task:0", "--env:K=W")
    assert r.stdout.startswith("amend task 0: queued; the run has no live engine")
