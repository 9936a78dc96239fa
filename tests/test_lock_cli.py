"""cheng-pkg resolve / verify / meta / log end to end, against packages published for real.

Packages are published with the registry area's ``publish`` (signed, hash-chained, snapshots in a
real blockstore) as ``tar`` snapshots; resolve reads each dependency's manifest out of them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cheng_build.cli.pkg import main as pkg_main
from cheng_build.pkg.lock import load_lock
from cheng_build.pkg.manifest import parse_manifest
from cheng_build.pkg.verify import verify_lock
from cheng_build.trust.registry_log import RegistryLog

REPO = Path(__file__).resolve().parent.parent


def _pkg(root: Path, name: str, deps: list[tuple[str, str]], body: str) -> Path:
    d = root / name
    (d / "src").mkdir(parents=True, exist_ok=True)
    lines = [f'package_id = "pkg://cheng/{name}"', 'version = "1.0.0"', ""]
    for dep, ch in deps:
        lines += ["[[dependencies]]", f'package_id = "pkg://cheng/{dep}"', f'channel = "{ch}"', ""]
    (d / "cheng-package.toml").write_text("\n".join(lines))
    (d / "src" / f"{name}.cheng").write_text(body)
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    tmp = tmp_path_factory.mktemp("lockcli")
    reg = tmp / "registry.jsonl"
    store_root = tmp / "cache"
    store = Blockstore(store_root)
    src = tmp / "src"
    keys = {n: KeyPair.generate(f"node:{n}") for n in ("alice", "bob")}
    now = 1730000000

    def pub(name: str, channel: str, epoch: int, deps: list[tuple[str, str]], body: str,
            who: str = "alice") -> Any:
        d = _pkg(src / f"{name}-{channel}-{epoch}", name, deps, body)
        return publish(registry=reg, key=keys[who], package_id=f"pkg://cheng/{name}",
                       channel=channel, epoch=epoch, src=d, format="tar", store=store, now=now)

    fs1 = pub("fs", "stable", 1, [], "fn ReadFile(path: str): str =\n    return path\n")
    fs2 = pub("fs", "edge", 2, [], "fn ReadFile(path: str, n: int32): str =\n    return path\n")
    pub("net", "stable", 1, [("fs", "stable")], "fn Dial(addr: str): int32 =\n    return 0\n",
        who="bob")
    pub("gui", "stable", 1, [("fs", "edge")], "fn Window(): int32 =\n    return 1\n",
        who="bob")
    apps = tmp / "apps"
    return {"tmp": tmp, "reg": reg, "store": store_root, "fs1": fs1, "fs2": fs2, "apps": apps}


def _manifest(world: dict[str, Any], name: str, text: str) -> Path:
    d = world["apps"] / name
    d.mkdir(parents=True, exist_ok=True)
    p = d / "cheng-package.toml"
    p.write_text(text)
    return p


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = pkg_main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


APP = """package_id = "pkg://cheng/app-demo"

[[dependencies]]
package_id = "pkg://cheng/net"
channel = "stable"
"""


def test_resolve_verify_meta_log(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    man = _manifest(world, "app", APP)
    lock_path = man.parent / "cheng.lock.toml"
    rc, out, err = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                        f"--store:{world['store']}")
    assert rc == 0, err
    assert out.startswith('package_id = "pkg://cheng/app-demo"\ncreated_ts = "')
    assert "\n\n[[dependencies]]\npackage_id = \"pkg://cheng/net\"\nchannel = \"stable\"\nepoch = 1\n" in out
    rc, _, err = _run(capsys, "resolve", f"--manifest={man}", f"--registry={world['reg']}",
                      "--store", str(world["store"]), f"--out:{lock_path}")
    assert rc == 0, err
    lock = load_lock(lock_path)
    assert [d.package_id for d in lock.dependencies] == ["pkg://cheng/net", "pkg://cheng/fs"]
    assert lock.by_package()["pkg://cheng/fs"].cid == world["fs1"].cid  # transitive, via net
    rc, out, _ = _run(capsys, "verify", f"--lock:{lock_path}", f"--registry:{world['reg']}",
                      f"--manifest:{man}")
    assert (rc, out) == (0, "ok\n")
    for fmt in ("yaml", "json"):
        rc, out, _ = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                          f"--store:{world['store']}", f"--format:{fmt}")
        assert rc == 0 and ("package_id: \"pkg://cheng/app-demo\"" in out if fmt == "yaml"
                            else out.startswith('{\n  "package_id": "pkg://cheng/app-demo",'))
    rc, out, err = _run(capsys, "meta", f"--lock:{lock_path}", "--package:pkg://cheng/app-demo",
                        "--channel:stable", f"--registry:{world['reg']}")
    assert (rc, err.splitlines()[0]) == (2, "meta: snapshot not found") or rc == 1
    rc, out, err = _run(capsys, "log", "--package:pkg://cheng/fs", f"--registry:{world['reg']}")
    assert rc == 0, err
    assert out.splitlines() == [
        f"* head  {world['fs2'].cid}  edge  epoch=2  author=node:alice",
        f"* head  {world['fs1'].cid}  stable  epoch=1  author=node:alice",
    ]


def test_meta_of_a_published_package(world: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    man = _manifest(world, "net-meta", APP.replace("app-demo", "net").replace(
        'package_id = "pkg://cheng/net"\nchannel', 'package_id = "pkg://cheng/fs"\nchannel'))
    lock_path = tmp_path / "cheng.lock.toml"
    assert _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                f"--store:{world['store']}", f"--out:{lock_path}")[0] == 0
    out_path = tmp_path / "cheng.meta.toml"
    rc, _, err = _run(capsys, "meta", f"--lock:{lock_path}", "--package:pkg://cheng/net",
                      "--channel:stable", f"--registry:{world['reg']}", f"--out:{out_path}")
    assert rc == 0, err
    text = out_path.read_text()
    assert text.startswith('package_id = "pkg://cheng/net"\nchannel = "stable"\nepoch = 1\n')
    assert "author_id = \"node:bob\"" in text and "[[dependencies]]" in text
    rc, _, err = _run(capsys, "meta", f"--lock:{lock_path}", "--package:pkg://cheng/gui",
                      "--channel:stable", f"--registry:{world['reg']}")
    assert (rc, err.splitlines()[0]) == (1, "meta: package mismatch")


CONFLICT = """package_id = "pkg://cheng/app-demo"

[[dependencies]]
package_id = "pkg://cheng/net"
channel = "stable"

[[dependencies]]
package_id = "pkg://cheng/gui"
channel = "stable"
"""


def test_single_version_conflict_report_and_override(world: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    man = _manifest(world, "clash", CONFLICT)
    rc, out, err = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                        f"--store:{world['store']}")
    lines = err.splitlines()
    assert rc == 1 and out == ""
    assert lines[0] == "resolve: single-version conflict"
    assert lines[1] == (f"- pkg://cheng/fs: stable@1 {world['fs1'].cid} [tar] vs "
                        f"edge@2 {world['fs2'].cid} [tar]")
    assert lines[2].strip() == "stable@1 wanted by pkg://cheng/net"
    assert lines[3].strip() == "edge@2 wanted by pkg://cheng/gui"
    man.write_text(CONFLICT + '\n[overrides]\n"pkg://cheng/fs" = "edge"\n')
    rc, out, err = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                        f"--store:{world['store']}")
    assert rc == 0, err
    assert f'cid = "{world["fs2"].cid}"' in out and world["fs1"].cid not in out


def test_tampered_cid_fails_signature(world: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    man = _manifest(world, "tamper", APP)
    lock_path = tmp_path / "cheng.lock.toml"
    assert _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                f"--store:{world['store']}", f"--out:{lock_path}")[0] == 0
    text = lock_path.read_text()
    cid = world["fs1"].cid
    bad = cid[:-1] + ("a" if cid[-1] != "a" else "b")
    lock_path.write_text(text.replace(cid, bad))
    rc, out, err = _run(capsys, "verify", f"--lock:{lock_path}", f"--registry:{world['reg']}")
    assert (rc, out) == (1, "")
    assert err.splitlines()[0] == "verify: signature failed"
    assert err.splitlines()[1].startswith("- pkg://cheng/fs: signature of pkg://cheng/fs does not verify")


def test_registry_mismatch(world: dict[str, Any], tmp_path: Path) -> None:
    registry = RegistryLog.load(world["reg"])
    m = parse_manifest({"package_id": "pkg://cheng/x",
                        "dependencies": [{"package_id": "pkg://cheng/fs", "channel": "stable"}]})
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.lock import Lock, LockedDep
    from cheng_build.pkg.lock_errors import RegistryMismatchError
    from cheng_build.pkg.resolve import resolve_manifest

    lock = resolve_manifest(m, registry, Blockstore(world["store"]))
    dep = lock.dependencies[0]
    # A genuine signed publish, but claimed for another epoch than the registry records.
    moved = Lock(lock.package_id, lock.created_ts, (LockedDep(**{
        **{k: getattr(dep, k) for k in dep.__slots__}, "channel": "edge", "epoch": 2}),))
    with pytest.raises(Exception) as info:
        verify_lock(moved, registry, "L1")
    assert info.value.what in ("signature failed", "registry mismatch")
    # Signature intact but the registry has something else there: a mismatch.
    other = RegistryLog.from_bytes(b"", "empty.jsonl")
    with pytest.raises(RegistryMismatchError) as info2:
        verify_lock(lock, other, "L1")
    assert info2.value.lines("verify")[:2] == [
        "verify: registry mismatch", "- pkg://cheng/fs: no stable@1 publish in the registry"]


@pytest.mark.parametrize("argv,first", [
    (["resolve"], "resolve: missing --manifest"),
    (["resolve", "--manifest:x.toml", "--format:xml"], "resolve: unknown format"),
    (["resolve", "--manifest:/nonexistent/cheng-package.toml"], "resolve: load manifest failed"),
    (["verify"], "verify: missing --lock"),
    (["verify", "--lock:/nonexistent/cheng.lock.toml"], "verify: load lock failed"),
    (["meta"], "meta: missing --lock"),
    (["meta", "--lock:l.toml"], "meta: missing --package"),
    (["meta", "--lock:l.toml", "--package:pkg://cheng/a"], "meta: missing --channel"),
    (["meta", "--lock:l", "--package:p", "--channel:stable", "--format:ini"], "meta: unknown format"),
    (["log"], "log: missing --package"),
    (["diff", "--to:bafy"], "diff: missing --from"),
    (["checkout"], "checkout: missing --cid"),
])
def test_usage_errors(argv: list[str], first: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.splitlines()[0] == first


def test_missing_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    man = tmp_path / "cheng-package.toml"
    man.write_text('package_id = "pkg://cheng/a"\n')
    rc, _, err = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{tmp_path / 'no.jsonl'}")
    assert (rc, err.splitlines()[0]) == (2, "resolve: missing --registry")


def test_subprocess_verify_prints_ok(world: dict[str, Any], tmp_path: Path) -> None:
    man = _manifest(world, "sub", APP)
    lock_path = tmp_path / "cheng.lock.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "resolve", f"--manifest:{man}",
                        f"--registry:{world['reg']}", f"--store:{world['store']}",
                        f"--out:{lock_path}"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert lock_path.read_text().startswith('{\n  "package_id": "pkg://cheng/app-demo"')
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "verify", f"--lock:{lock_path}",
                        f"--registry:{world['reg']}"], capture_output=True, text=True, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")


def test_dag_snapshots_diff_and_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    reg, cache = tmp_path / "registry.jsonl", tmp_path / "cache"
    store = Blockstore(cache)
    key = KeyPair.generate("node:carol")
    v1 = _pkg(tmp_path / "v1", "kv", [], "fn Get(k: str): str =\n    return k\n")
    (v1 / "src" / "old.cheng").write_text("fn Old(): int32 = 0\n")
    (v1 / "vendor").mkdir()
    (v1 / "vendor" / "big.cheng").write_text("fn Big(): int32 = 0\n" * 200)
    e1 = publish(registry=reg, key=key, package_id="pkg://cheng/kv", channel="stable", epoch=1,
                 src=v1, store=store, now=1)
    v2 = tmp_path / "v2" / "kv"
    shutil.copytree(v1, v2)
    (v2 / "src" / "old.cheng").unlink()
    (v2 / "src" / "kv.cheng").write_text("fn Get(k: str): str =\n    return k\n# v2\n")
    (v2 / "src" / "util").mkdir()
    (v2 / "src" / "util" / "net.cheng").write_text("fn Net(): int32 = 1\n")
    mf = v2 / "cheng-package.toml"  # removing fn Old is a major release (the manifest's version counts)
    mf.write_text(re.sub(r'version = "[^"]*"', 'version = "2.0.0"', mf.read_text()))
    e2 = publish(registry=reg, key=key, package_id="pkg://cheng/kv", channel="stable", epoch=2,
                 src=v2, store=store, now=2)
    assert e2.format == "dag"
    rc, out, err = _run(capsys, "diff", f"--from:{e1.cid}", f"--to:{e2.cid}", f"--store:{cache}")
    assert rc == 0, err
    assert out.splitlines() == ["changed: cheng-package.toml", "changed: src/kv.cheng",
                                "added:   src/util/net.cheng",
                                "removed: src/old.cheng"]
    rc, out, err = _run(capsys, "checkout", f"--cid:{e2.cid}", f"--store:{cache}",
                        f"--pkg-cache:{cache}")
    assert rc == 0, err
    root = Path(out.strip().removeprefix("root: "))
    assert out.startswith("root: ") and root == cache / "packages" / e2.cid
    assert (root / "src" / "util" / "net.cheng").read_text() == "fn Net(): int32 = 1\n"
    rc, out, _ = _run(capsys, "log", "--package:pkg://cheng/kv", f"--registry:{reg}")
    assert out.splitlines()[:2] == [f"* head  {e2.cid}  stable  epoch=2  author=node:carol",
                                    f"  prev  {e1.cid}"]
    man = tmp_path / "app" / "cheng-package.toml"
    man.parent.mkdir()
    man.write_text('package_id = "pkg://cheng/app"\n[[dependencies]]\n'
                   'package_id = "pkg://cheng/kv"\nchannel = "stable"\n')
    rc, out, err = _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{reg}",
                        f"--store:{cache}")
    assert rc == 0, err
    assert f'cid = "{e2.cid}"' in out and 'format = "dag"' in out


def test_l0_verifies_signatures_without_a_registry(world: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    man = _manifest(world, "l0", APP)
    lock_path = tmp_path / "cheng.lock.toml"
    assert _run(capsys, "resolve", f"--manifest:{man}", f"--registry:{world['reg']}",
                f"--store:{world['store']}", f"--out:{lock_path}")[0] == 0
    missing = f"--registry:{tmp_path / 'none.jsonl'}"
    assert _run(capsys, "verify", f"--lock:{lock_path}", "--level:L0", missing)[:2] == (0, "ok\n")
    rc, _, err = _run(capsys, "verify", f"--lock:{lock_path}", missing)
    assert (rc, err.splitlines()[0]) == (2, "verify: missing --registry")
    rc, _, err = _run(capsys, "verify", f"--lock:{lock_path}", "--level:L9")
    assert (rc, err.splitlines()[0]) == (2, "verify: unknown security level 'L9'")
