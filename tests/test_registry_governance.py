"""Issue 20 end to end through the CLI: tags, promotion by a trusted party, quarantine, merges,
appeals — each with its refusals, and each new line checked by every consumer (a hand-appended,
correctly chained line signed by the wrong key is refused by resolve as by verify)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers_trust import Cli, write_tree

FS = "pkg://cheng/fs"
NET = "pkg://cheng/net"
REG = "--registry:registry.jsonl"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, monkeypatch, capfd)
    for who in ("alice", "bob", "mallory", "op"):
        rc, _, err = c.registry("keygen", f"--out:{who}.key", f"--author:node:{who}")
        assert rc == 0, err
    return c


def _pub(cli: Cli, package: str, channel: str, epoch: int, version: str, body: str,
         *extra: str, who: str = "alice") -> str:
    name = package.rsplit("/", 1)[1]
    src = cli.tmp / "src" / f"{name}-{epoch}"
    write_tree(src, {"cheng-package.toml": f'package_id = "{package}"\nversion = "{version}"\n',
                     f"{name}.cheng": body})
    rc, out, err = cli.registry("publish", f"--package:{package}", f"--channel:{channel}",
                                f"--epoch:{epoch}", f"--src:{src}", f"--priv:{who}.key", REG,
                                "--store:chengcache", *extra)
    assert rc == 0, err
    return out.splitlines()[-1]


def _world(cli: Cli) -> dict[str, str]:
    """fs 1.0.0 and 2.0.0 on edge, 1.0.0 also on stable; net on edge; an operator checkpoint."""
    c = {"v1": _pub(cli, FS, "edge", 1, "1.0.0", "fn Read(): int32 = 1\n"),
         "v2": _pub(cli, FS, "edge", 2, "2.0.0", "fn Read2(): int32 = 2\n"),
         "net": _pub(cli, NET, "edge", 1, "1.0.0", "fn Dial(): int32 = 3\n")}
    c["s1"] = _pub(cli, FS, "stable", 1, "1.0.0", "fn Read(): int32 = 1\n")
    assert c["s1"] == c["v1"]
    rc, _, err = cli.registry("checkpoint", "--priv:op.key", REG)
    assert rc == 0, err
    return c


def _manifest(cli: Cli, dep: str) -> None:
    write_tree(cli.tmp, {"cheng-package.toml": 'package_id = "pkg://cheng/app"\n'
                         f'[[dependencies]]\npackage_id = "{FS}"\n{dep}\n'})


def _resolve(cli: Cli, *flags: str) -> tuple[int, str, str]:
    return cli.pkg("resolve", "--manifest:cheng-package.toml", REG, "--store:chengcache",
                   "--out:cheng.lock.toml", *flags)


def _forge(cli: Cli, kind: str, signer: str, **fields: object) -> None:
    """Append a correctly chained governance line signed by ``signer`` (bypassing the CLI)."""
    import hashlib

    from cheng_build.trust import canonical
    from cheng_build.trust.keys import load_key

    reg = cli.tmp / "registry.jsonl"
    lines = reg.read_bytes().split(b"\n")[:-1]
    key = load_key(str(cli.tmp / f"{signer}.key"))
    body: dict[str, object] = {"type": kind, "seq": len(lines) + 1,
                               "prev": "sha256:" + hashlib.sha256(lines[-1]).hexdigest(),
                               **fields, "created_ts": "1", "pub_key": key.pub_key}
    body["signature"] = key.sign(canonical.gov_payload(body))
    with reg.open("ab") as fh:
        fh.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")


# --- tags ------------------------------------------------------------------------------------


def test_tag_pins_a_snapshot_forever(cli: Cli) -> None:
    c = _world(cli)
    rc, out, err = cli.registry("tag", f"--package:{FS}", f"--cid:{c['v1']}", "--tag:v1.0.0",
                                "--priv:alice.key", REG)
    assert rc == 0 and out.splitlines()[-1] == "ok", err
    # Re-tagging, to another snapshot or the same one, is refused and writes nothing.
    before = (cli.tmp / "registry.jsonl").read_bytes()
    for cid in (c["v2"], c["v1"]):
        rc, _, err = cli.registry("tag", f"--package:{FS}", f"--cid:{cid}", "--tag:v1.0.0",
                                  "--priv:alice.key", REG)
        assert rc == 1
        assert err.splitlines()[0] == (f"tag: tag v1.0.0 of {FS} already names {c['v1']} "
                                       "(line 6)")
    assert (cli.tmp / "registry.jsonl").read_bytes() == before
    # Only the owner tags; only its own package's snapshots.
    rc, _, err = cli.registry("tag", f"--package:{FS}", f"--cid:{c['v2']}", "--tag:evil",
                              "--priv:mallory.key", REG)
    assert rc == 1 and "not signed by its owner" in err.splitlines()[0]
    rc, _, err = cli.registry("tag", f"--package:{FS}", f"--cid:{c['net']}", "--tag:v9",
                              "--priv:alice.key", REG)
    assert rc == 1 and f"is not a published snapshot of {FS}" in err.splitlines()[0]
    rc, _, err = cli.registry("tag", f"--package:{FS}", f"--cid:{c['v1']}", "--tag:-bad",
                              "--priv:alice.key", REG)
    assert rc == 1 and "is not a tag name" in err

    # A tag dependency resolves to the tagged snapshot, although edge's head is v2.
    _manifest(cli, 'tag = "v1.0.0"')
    rc, _, err = _resolve(cli)
    assert rc == 0, err
    lock = (cli.tmp / "cheng.lock.toml").read_text()
    assert c["v1"] in lock and 'tag = "v1.0.0"' in lock and "lock_version = 2" in lock
    rc, out, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG,
                           "--manifest:cheng-package.toml")
    assert rc == 0 and out.strip() == "ok", err
    # log shows it.
    rc, out, _ = cli.pkg("log", f"--package:{FS}", REG)
    assert rc == 0 and f"  tag   v1.0.0  {c['v1']}" in out.splitlines()
    # A lock whose tag marker points elsewhere is refused.
    (cli.tmp / "cheng.lock.toml").write_text(lock.replace('tag = "v1.0.0"', 'tag = "v7"'))
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG)
    assert rc == 1 and "the lock says tag v7 is" in err
    # An unknown tag: snapshot not found.
    _manifest(cli, 'tag = "v3.0.0"')
    rc, _, err = _resolve(cli)
    assert rc == 1 and err.splitlines()[0] == "resolve: snapshot not found" and "no tag v3.0.0" in err


def test_forged_tag_line_is_refused_by_every_consumer(cli: Cli) -> None:
    c = _world(cli)
    _forge(cli, "tag", "mallory", package_id=FS, cid=c["v2"], tag="v1.0.0")
    _manifest(cli, 'tag = "v1.0.0"')
    for level in ("L1", "L2"):
        rc, _, err = _resolve(cli, f"--level:{level}")
        assert rc == 1
        assert err.splitlines()[0] == ("resolve: registry does not verify: line 6: tag: tag of "
                                       f"{FS} not signed by its owner")
    rc, _, err = cli.registry("verify", REG)
    assert rc == 1 and "line 6: tag: tag of" in err
    assert not (cli.tmp / "cheng.lock.toml").exists()


# --- promotion -------------------------------------------------------------------------------


def test_promotion_by_owner_and_maintainer_and_refusals(cli: Cli) -> None:
    c = _world(cli)
    # Mallory is no maintainer: refused at append...
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v2']}", "--to:stable",
                              "--priv:mallory.key", REG)
    assert rc == 1 and "neither its owner nor a maintainer" in err.splitlines()[0]
    # ...and a hand-appended promotion of hers is refused by resolve.
    _manifest(cli, 'channel = "stable"')
    good = (cli.tmp / "registry.jsonl").read_bytes()
    _forge(cli, "promote", "mallory", package_id=FS, cid=c["v2"], channel="stable")
    rc, _, err = _resolve(cli)
    assert rc == 1 and "neither its owner nor a maintainer" in err.splitlines()[0]
    (cli.tmp / "registry.jsonl").write_bytes(good)

    # Only the operator registers maintainers.
    rc, _, err = cli.registry("maintainer", "--key:bob.key", "--id:bob", "--channel:stable",
                              f"--package:{FS}", "--priv:alice.key", REG)
    assert rc == 1 and err.splitlines()[0] == "maintainer: not signed by the operator"
    rc, _, err = cli.registry("maintainer", "--key:bob.key", "--id:bob", "--channel:stable",
                              f"--package:{FS}", "--priv:op.key", REG)
    assert rc == 0, err
    # Bob may not move lts, nor a package he was not given.
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v2']}", "--to:lts",
                              "--priv:bob.key", REG)
    assert rc == 1 and err.splitlines()[0] == f"promote: maintainer bob may not move {FS}@lts"
    rc, _, err = cli.registry("promote", f"--package:{NET}", f"--cid:{c['net']}", "--to:stable",
                              "--priv:bob.key", REG)
    assert rc == 1 and f"maintainer bob may not move {NET}@stable" in err.splitlines()[0]
    # Bob moves stable to 2.0.0 (no new content).
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v2']}", "--to:stable",
                              "--priv:bob.key", REG)
    assert rc == 0, err
    rc, _, err = _resolve(cli)
    assert rc == 0, err
    lock = (cli.tmp / "cheng.lock.toml").read_text()
    # The lock carries the snapshot's own signed publish (edge@2) and the promotion marker.
    assert c["v2"] in lock and 'promoted_to = "stable"' in lock and 'channel = "edge"' in lock
    rc, out, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG, "--level:L2",
                           "--manifest:cheng-package.toml")
    assert rc == 0 and out.strip() == "ok", err
    rc, out, _ = cli.pkg("log", f"--package:{FS}", REG)
    assert f"* head  {c['v2']}  stable  epoch=2  author=node:alice" in out.splitlines()
    # SemVer: the owner cannot move stable back to 1.0.0.
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v1']}", "--to:stable",
                              "--priv:alice.key", REG)
    assert rc == 1 and "version 1.0.0 is not above 2.0.0" in err.splitlines()[0]
    # The API half of the SemVer gate: 1.1.0 on lts dropped Read2, so it may not follow 2.0.0
    # (precedence alone would allow it: 1.1.0 < 2.0.0 is refused anyway; use lts's own head).
    drop = _pub(cli, FS, "lts", 1, "2.1.0", "fn Other(): int32 = 9\n")
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{drop}", "--to:stable",
                              "--priv:alice.key", REG, "--store:chengcache")
    assert rc == 1, err
    assert err.splitlines()[0] == "promote: promotion: version 2.1.0 breaks the API of 2.0.0"
    # A lock claiming a promotion that never happened is refused.
    (cli.tmp / "cheng.lock.toml").write_text(lock.replace('"stable"', '"lts"'))
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG)
    assert rc == 1 and "no valid promotion in the registry says so" in err
    # The operator takes Bob's grant away: his next promotion is refused.
    rc, _, err = cli.registry("maintainer", "--remove", "--key:bob.key", "--id:bob",
                              "--priv:op.key", REG)
    assert rc == 0, err
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v1']}", "--to:lts",
                              "--priv:bob.key", REG)
    assert rc == 1 and "neither its owner nor a maintainer" in err


# --- quarantine ------------------------------------------------------------------------------


def test_quarantine_refuses_resolve_verify_fetch_until_released(cli: Cli) -> None:
    c = _world(cli)
    _manifest(cli, 'channel = "edge"')
    rc, _, err = _resolve(cli)
    assert rc == 0, err
    good_lock = (cli.tmp / "cheng.lock.toml").read_text()
    (cli.tmp / "cheng.lock.toml").unlink()
    # Not the operator: refused.
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:looks bad", "--priv:alice.key", REG)
    assert rc == 1 and err.splitlines()[0] == "quarantine: not signed by the operator"
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:audit found fraudulent results", "--priv:op.key", REG)
    assert rc == 0, err
    for level in ("L1", "L2"):
        rc, _, err = _resolve(cli, f"--level:{level}")
        lines = err.splitlines()
        assert rc == 1 and lines[0] == "resolve: quarantined snapshot", err
        assert f"{FS} {c['v2']}: audit found fraudulent results" in err
        assert "--allow-quarantined" in err and "cheng-registry release" in err
        assert not (cli.tmp / "cheng.lock.toml").exists()
    rc, _, err = _resolve(cli, "--level:L2", "--allow-quarantined")
    assert rc == 1 and err.splitlines()[0] == "resolve: quarantined snapshot refused at L2"
    # L1 with the flag (no terminal here: the flag is the confirmation): a warning per use.
    rc, _, err = _resolve(cli, "--allow-quarantined")
    assert rc == 0 and "resolve: warning: using a quarantined snapshot" in err
    # An existing lock naming it: verify and fetch refuse before a byte is fetched.
    (cli.tmp / "cheng.lock.toml").write_text(good_lock)
    rc, _, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG)
    assert rc == 1 and err.splitlines()[0] == "verify: quarantined snapshot"
    rc, _, err = cli.pkg("fetch", "--lock:cheng.lock.toml", REG, "--mode:local",
                         "--pkg-cache:chengcache")
    assert rc == 1 and err.splitlines()[0] == "fetch: quarantined snapshot"
    # Releasing needs a reason and the operator; then all is well again.
    rc, _, err = cli.registry("release", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:re-checked", "--priv:mallory.key", REG)
    assert rc == 1 and "release: not signed by the operator" in err
    rc, _, err = cli.registry("release", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:re-checked at a 3x threshold", "--priv:op.key", REG)
    assert rc == 0, err
    rc, out, err = cli.pkg("verify", "--lock:cheng.lock.toml", REG)
    assert rc == 0 and out.strip() == "ok", err
    rc, _, err = cli.registry("release", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:again", "--priv:op.key", REG)
    assert rc == 1 and "is not quarantined" in err


def _on_a_terminal(cli: Cli, answer: bytes, *argv: str) -> tuple[int, str]:
    """Run ``cheng-pkg <argv>`` in a real process on a pseudo-terminal; answer its prompt."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.pkg", *argv], cwd=cli.tmp,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"type 'yes'" in seen:
                    os.write(master, answer)
                    answered = True
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, seen.decode("utf-8", "replace").replace("\r\n", "\n")


def test_quarantine_prompt_on_a_terminal(cli: Cli) -> None:
    """On a terminal --allow-quarantined asks; anything but 'yes' refuses."""
    c = _world(cli)
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:fraud", "--priv:op.key", REG)
    assert rc == 0, err
    _manifest(cli, 'channel = "edge"')
    argv = ("resolve", "--manifest:cheng-package.toml", REG, "--store:chengcache",
            "--out:cheng.lock.toml", "--allow-quarantined")
    rc, text = _on_a_terminal(cli, b"no\n", *argv)
    assert rc == 1 and "resolve: quarantined snapshot: not confirmed" in text, text
    assert f"{FS} {c['v2']}: fraud" in text and not (cli.tmp / "cheng.lock.toml").exists()
    rc, text = _on_a_terminal(cli, b"yes\n", *argv)
    assert rc == 0 and "warning: using a quarantined snapshot" in text, text
    assert c["v2"] in (cli.tmp / "cheng.lock.toml").read_text()


def test_fraud_record_becomes_a_quarantine_proposal(cli: Cli) -> None:
    c = _world(cli)
    (cli.tmp / "fraud.json").write_text(json.dumps({
        "type": "fraud_report", "report_id": "fraud-7", "package_id": FS, "code_cid": c["v2"],
        "reason": "recompute audit disagrees"}))
    rc, out, err = cli.registry("propose-quarantine", "--fraud:fraud.json", "--out:prop.json")
    assert rc == 0, err
    rc, out, err = cli.registry("quarantine", "--proposal:prop.json", "--priv:op.key", REG)
    assert rc == 0, err
    assert "source: fraud_report:fraud-7" in out
    _manifest(cli, 'channel = "edge"')
    rc, _, err = _resolve(cli)
    assert rc == 1 and "fraud report fraud-7: recompute audit disagrees" in err
    # From a real compute ledger: the fraud report names the request, the request the snapshot.
    from cheng_build.ledger.log import Ledger

    ledger = Ledger(cli.tmp / "ledger.jsonl")
    req = ledger.append({"type": "exec_request", "task_id": "t1", "package_id": FS,
                         "code_cid": c["v1"], "executor_id": "node:cheat", "epoch": 1})
    rep = ledger.append({"type": "fraud_report", "task_id": "t1",
                         "request_id": req["request_id"], "executor_id": "node:cheat",
                         "reason": "result differs from 2 of 3 replicas", "epoch": 1})
    rc, out, err = cli.registry("propose-quarantine", "--ledger:ledger.jsonl",
                                f"--report:{rep['report_id']}")
    assert rc == 0, err
    prop = json.loads(out)
    assert (prop["package_id"], prop["cid"]) == (FS, c["v1"])
    assert prop["reason"].endswith("result differs from 2 of 3 replicas")
    rc, _, err = cli.registry("propose-quarantine", "--ledger:ledger.jsonl", "--report:fraud-nope")
    assert rc == 2 and "no fraud report fraud-nope" in err.splitlines()[0]
    (cli.tmp / "bad.json").write_text(json.dumps({"type": "fraud_report", "report_id": "x"}))
    rc, _, err = cli.registry("propose-quarantine", "--fraud:bad.json")
    assert rc == 2 and "names no package snapshot" in err.splitlines()[0]


# --- merges and the graph --------------------------------------------------------------------


def test_merge_parents_and_log_graph(cli: Cli) -> None:
    c = _world(cli)
    side = _pub(cli, FS, "lts", 1, "2.0.1", "fn Read2(): int32 = 2\nfn Side(): int32 = 5\n")
    merged = _pub(cli, FS, "edge", 3, "2.1.0",
                  "fn Read2(): int32 = 2\nfn Side(): int32 = 5\nfn M(): int32 = 6\n",
                  f"--parent:{side}", f"--parent:{c['v2']}")
    rc, out, err = cli.pkg("log", f"--package:{FS}", REG, "--graph")
    assert rc == 0, err
    rows = out.splitlines()
    assert rows[0].startswith("*  " + merged) and "(head: edge)" in rows[0]
    assert rows[1] == "|\\"
    assert any(r.startswith("| *  " + side) or r.startswith("* |  " + side) for r in rows), rows
    assert rows[-1].startswith("*  " + c["v1"])
    rc, out, _ = cli.pkg("log", f"--package:{FS}", REG)  # a merge exists: the graph by default
    assert out.splitlines() == rows
    rc, out, _ = cli.pkg("log", f"--package:{FS}", REG, "--format:json")
    node = json.loads(out)[0]
    assert node["cid"] == merged and set(node["parents"]) == {c["v2"], side}
    # A merge naming another package's snapshot is refused (at publish and in the log).
    src = cli.tmp / "src" / "fs-9"
    write_tree(src, {"cheng-package.toml": f'package_id = "{FS}"\nversion = "2.2.0"\n',
                     "fs.cheng": "fn Read2(): int32 = 2\nfn Side(): int32 = 5\nfn M(): int32 = 6\n"})
    rc, _, err = cli.registry("publish", f"--package:{FS}", "--channel:edge", "--epoch:9",
                              f"--src:{src}", "--priv:alice.key", REG, f"--parent:{c['net']}")
    assert rc == 1
    assert err.splitlines()[0] == f"publish: parent {c['net']} is not an earlier snapshot of {FS}"
    assert f"it is a snapshot of {NET}" in err
    # diff works between any two snapshots of the DAG.
    rc, out, err = cli.pkg("diff", f"--from:{side}", f"--to:{c['v1']}", "--store:chengcache")
    assert rc == 0 and "changed: fs.cheng" in out.splitlines(), (out, err)


# --- appeals ---------------------------------------------------------------------------------


def test_appeal_and_decision(cli: Cli) -> None:
    c = _world(cli)
    (cli.tmp / "report.md").write_text("fs 2.0.0 reimplements Read from scratch; see diff.\n")
    rc, out, err = cli.registry("appeal", f"--package:{FS}", f"--cid:{c['s1']}",
                                "--report:report.md", "--priv:alice.key", REG,
                                "--store:chengcache", "--format:json")
    assert rc == 0, err
    report_cid = json.loads(out)["report_cid"]
    rc, out, err = cli.pkg("cat", report_cid, "--pkg-cache:chengcache")
    assert rc == 0 and "reimplements" in out, err
    rc, out, _ = cli.pkg("search", "fs", REG)
    assert "appeal=open" in out
    # Only the owner appeals; one open appeal at a time.
    rc, _, err = cli.registry("appeal", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--report:report.md", "--priv:mallory.key", REG)
    assert rc == 1 and "not signed by its owner" in err
    rc, _, err = cli.registry("appeal", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--report:report.md", "--priv:alice.key", REG)
    assert rc == 1 and "already has an open appeal" in err
    # A decision signed by anyone but the operator: refused by the CLI and by every consumer.
    rc, _, err = cli.registry("decide", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--outcome:restore", "--score:0.9", "--reason:ok",
                              "--priv:alice.key", REG)
    assert rc == 1 and err.splitlines()[0] == "decide: not signed by the operator"
    good = (cli.tmp / "registry.jsonl").read_bytes()
    _forge(cli, "decision", "alice", package_id=FS, cid=c["s1"], outcome="restore",
           reason="self-approved", originality_score=1.0)
    rc, _, err = cli.pkg("search", "fs", REG)
    assert rc == 1 and "decision: not signed by the operator" in err.splitlines()[0]
    (cli.tmp / "registry.jsonl").write_bytes(good)
    rc, _, err = cli.registry("decide", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--outcome:restore", "--reason:ok", "--priv:op.key", REG)
    assert rc == 2 and "needs --score" in err
    rc, _, err = cli.registry("decide", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--outcome:restore", "--score:0.7",
                              "--reason:independent implementation", "--priv:op.key", REG)
    assert rc == 0, err
    rc, out, _ = cli.pkg("search", "fs", REG, "--format:json")
    hit = json.loads(out)[0]
    assert hit["appeal"] == "restored" and hit["originality_score"] == 0.7
    rc, _, err = cli.registry("decide", f"--package:{FS}", f"--cid:{c['s1']}",
                              "--outcome:confirm", "--reason:again", "--priv:op.key", REG)
    assert rc == 1 and "has no open appeal" in err


def test_registry_resolve_shows_promotion_and_quarantine(cli: Cli) -> None:
    c = _world(cli)
    rc, _, err = cli.registry("promote", f"--package:{FS}", f"--cid:{c['v2']}", "--to:stable",
                              "--priv:alice.key", REG)
    assert rc == 0, err
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:fraud", "--priv:op.key", REG)
    assert rc == 0, err
    rc, out, err = cli.registry("resolve", f"--package:{FS}", "--channel:stable", REG,
                                "--format:json")
    doc = json.loads(out)
    assert rc == 0 and doc["cid"] == c["v2"] and doc["promoted_to"] == "stable", err
    assert doc["quarantined"].startswith("fraud (line ")
    rc, out, _ = cli.pkg("log", f"--package:{FS}", REG, "--graph")
    assert "head: edge, stable" in out and "QUARANTINED" in out


def test_chengc_refuses_a_quarantined_snapshot(cli: Cli) -> None:
    from helpers_chengc import install_fake
    from helpers_trust import app_manifest

    cli.mp.setenv("CHENG_COMPILER", str(install_fake(cli.tmp / "bin")))
    c = _world(cli)
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v2']}",
                              "--reason:fraud found by audit", "--priv:op.key", REG)
    assert rc == 0, err
    app_manifest(cli.tmp, [], [])
    _manifest(cli, 'channel = "edge"')
    (cli.tmp / "app.cheng").write_text("fn main(): int32 = 0\n")
    base = ("app.cheng", "--manifest:cheng-package.toml", REG, "--emit:check",
            "--pkg-cache:chengcache")
    rc, _, err = cli.chengc(*base)
    assert rc == 1 and err.splitlines()[0] == "chengc: resolve: quarantined snapshot", err
    rc, _, err = cli.chengc(*base, "--allow-quarantined", env={"PKG_LEVEL": "L2"})
    assert rc == 1 and "quarantined snapshot refused at L2" in err.splitlines()[0], err
    rc, _, err = cli.chengc(*base, "--allow-quarantined", env={"PKG_LEVEL": "L1"})
    assert rc == 0 and "using a quarantined snapshot" in err, err
    # The lock now exists; without the flag the (not remembered) verify refuses it.
    rc, _, err = cli.chengc(*base)
    assert rc == 1 and err.splitlines()[0] == "chengc: verify: quarantined snapshot", err


@pytest.mark.parametrize("kind,fields", [
    ("maintainer", {"op": "grant", "maintainer_id": "node:mallory", "channels": ["stable"],
                    "packages": [FS]}),
    ("quarantine", {"reason": "sabotage"}),
    ("appeal", {"report_cid": "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"}),
])
def test_forged_governance_lines_break_the_log_for_consumers(cli: Cli, kind: str,
                                                             fields: dict[str, object]) -> None:
    """Mallory (neither operator nor owner) hand-appends a chained, self-signed line."""
    from cheng_build.trust.keys import load_key

    c = _world(cli)
    mallory = load_key(str(cli.tmp / "mallory.key")).pub_key
    extra = {"maintainer_key": mallory} if kind == "maintainer" else {"package_id": FS,
                                                                      "cid": c["v1"]}
    _forge(cli, kind, "mallory", **extra, **fields)
    _manifest(cli, 'channel = "stable"')
    rc, _, err = _resolve(cli)
    assert rc == 1 and err.splitlines()[0].startswith(
        f"resolve: registry does not verify: line 6: {kind}: "), err
    assert not (cli.tmp / "cheng.lock.toml").exists()
    rc, _, err = _resolve(cli, "--level:L0")  # development: used, with the warning
    assert rc == 0 and f"line 6: {kind}: " in err


def test_a_pinned_operator_key_is_the_only_operator(cli: Cli) -> None:
    """With operator_key pinned and no checkpoint yet, the first operator line cannot claim it."""
    from cheng_build.trust.keys import load_key

    c = {"v1": _pub(cli, FS, "edge", 1, "1.0.0", "fn Read(): int32 = 1\n")}
    cli.mp.setenv("PKG_OPERATOR_KEY", load_key(str(cli.tmp / "op.key")).pub_key)
    rc, _, err = cli.registry("quarantine", f"--package:{FS}", f"--cid:{c['v1']}",
                              "--reason:x", "--priv:mallory.key", REG)
    assert rc == 2 and err.splitlines()[0] == "quarantine: --priv is not the pinned operator key"
    _forge(cli, "quarantine", "mallory", package_id=FS, cid=c["v1"], reason="x")
    rc, _, err = cli.registry("verify", REG)
    assert rc == 1 and err.splitlines()[0] == "verify: line 2: quarantine: not signed by the operator"
