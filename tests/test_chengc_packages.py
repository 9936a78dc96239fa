"""The package flow: lock -> verify -> (cached) fetch -> PKG_ROOTS -> compile -> cheng.meta.toml."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers_chengc import Runner, write_tree

N = 3


def _published(tmp: Path, *, in_store: bool = False, key: Any = None) -> dict[str, str]:
    """Publish N signed packages. ``in_store``: their blocks go to the cache's blockstore (for
    resolve and fetch to find); else only CIDs are computed and the snapshots are laid out in the
    package cache as the fetcher leaves them."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    store = Blockstore(tmp / "chengcache") if in_store else None
    key = key or KeyPair.generate("node:alice")

    cids: dict[str, str] = {}
    for i in range(N):
        src = tmp / "src" / f"dep{i}"
        write_tree(src, {"cheng-package.toml": f'package_id = "pkg://cheng/dep{i}"\nversion = "1.0.0"\n',
                         "src/api.cheng": f"import cheng/dep{i}/impl\nfn Api{i}(): int32 = {i}\n",
                         "src/impl.cheng": f"fn impl{i}(): int32 = {i}\n"})
        e = publish(registry=tmp / "registry.jsonl", key=key, package_id=f"pkg://cheng/dep{i}",
                    channel="stable", epoch=1, src=src, store=store, now=1730000000)
        cids[f"pkg://cheng/dep{i}"] = str(e.cid)
        if not in_store:
            # The layout the fetcher leaves behind (cas.materialize): <cache>/packages/<cid>/.
            shutil.copytree(src, tmp / "chengcache" / "packages" / str(e.cid))
    write_tree(tmp, {
        "cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
            f'[[dependencies]]\npackage_id = "pkg://cheng/dep{i}"\nchannel = "stable"\n' for i in range(N)),
        "app.cheng": "".join(f"import cheng/dep{i}/api\n" for i in range(N)) + "fn main(): int32 = 0\n",
    })
    return cids


def _lock(tmp: Path) -> Path:
    """Resolve the app's manifest to a lock (dependency manifests read from their sources)."""
    from cheng_build.pkg.lock import dump_lock
    from cheng_build.pkg.manifest import load_manifest
    from cheng_build.pkg.resolve import resolve_manifest
    from cheng_build.trust.registry_log import RegistryLog

    def read(pid: str, cid: str, fmt: str) -> tuple[bytes, str]:
        return (tmp / "src" / pid.rsplit("/", 1)[1] / "cheng-package.toml").read_bytes(), "cheng-package.toml"

    registry = RegistryLog.load(tmp / "registry.jsonl")
    lock = resolve_manifest(load_manifest(tmp / "cheng-package.toml"), registry, None,
                            read_manifest=read, created_ts="1731111111")
    dump_lock(lock, tmp / "cheng.lock.toml", "toml")
    return tmp / "cheng.lock.toml"


@pytest.fixture
def cc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Runner:
    r = Runner(tmp_path, monkeypatch, capfd)
    monkeypatch.delenv("PKG_ROOTS")  # the roots come from the lock alone
    for k in ("PKG_LEVEL", "PKG_MODE", "PKG_REGISTRY", "PKG_REQUIRE_SIGNATURE", "PKG_REQUIRE_REGISTRY_MATCH"):
        monkeypatch.delenv(k, raising=False)
    return r


def test_lock_flow_builds_with_locked_roots_and_writes_meta(cc: Runner) -> None:
    cids = _published(cc.tmp)
    _lock(cc.tmp)
    # A stale development copy on PKG_ROOTS must not shadow the locked snapshot.
    write_tree(cc.tmp / "stale", {"cheng-dep0/src/api.cheng": "fn Stale(): int32 = 0\n"})
    rc, out, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl",
                      env={"PKG_ROOTS": str(cc.tmp / "stale"), "PKG_ROOT": str(cc.tmp / "stale")})
    assert rc == 0, err
    assert "compiled 7 modules" in out
    assert b"Stale" not in (cc.tmp / "artifacts/chengc/app").read_bytes()
    art = (cc.tmp / "artifacts/chengc/app").read_bytes()
    assert b"epoch 1731111111\n" in art, "SOURCE_DATE_EPOCH comes from the lock's created_ts"
    meta = tomllib.loads((cc.tmp / "artifacts/chengc/cheng.meta.toml").read_text())
    assert meta["package_id"] == "pkg://cheng/app" and meta["channel"] == "stable"
    assert meta["created_ts"] == "1731111111"
    assert meta["lock"]["path"] == "cheng.lock.toml" and meta["lock"]["format"] == "toml"
    import hashlib

    assert meta["lock"]["sha256"] == hashlib.sha256((cc.tmp / "cheng.lock.toml").read_bytes()).hexdigest()
    assert {d["package_id"]: d["cid"] for d in meta["dependencies"]} == cids
    assert all(d["signature"].startswith("ed25519:") for d in meta["dependencies"])
    assert meta["build"]["created_ts"] == "1731111111"
    # The inputs came from the package cache, staged as pkgroots/<n>/ (rule 1: the root is the package).
    env_roots = {c["cwd"] for c in cc.calls()}
    assert len(env_roots) == 1
    # Second build: a hit, and verify is remembered (no registry read needed).
    rc, _, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl", "--explain")
    assert rc == 0 and "cache hit" in err and len(cc.calls()) == 1
    assert "chengc: package flow: ran none" in err
    # A new registry line (a release of another package) means the lock is verified again.
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    other = cc.tmp / "src/other"
    write_tree(other, {"cheng-package.toml": 'package_id = "pkg://cheng/other"\nversion = "1.0.0"\n',
                       "src/o.cheng": "fn O(): int32 = 0\n"})
    publish(registry=cc.tmp / "registry.jsonl", key=KeyPair.generate("node:bob"), package_id="pkg://cheng/other",
            channel="stable", epoch=1, src=other, store=None, now=1730000001)
    rc, _, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl", "--explain")
    assert rc == 0 and "chengc: package flow: ran verify" in err and len(cc.calls()) == 1


def test_compiler_from_config_toolchain_with_the_package_flow(cc: Runner) -> None:
    """``[toolchain] compiler`` (DESIGN.md section 4) names the compiler, and the same file is
    the trust configuration the package flow loads: both must accept it."""
    _published(cc.tmp)
    _lock(cc.tmp)
    cc.mp.delenv("CHENG_COMPILER")
    (cc.tmp / "cheng-pkg-config.toml").write_text(
        '[security]\nlevel = "L1"\n\n[toolchain]\ncompiler = "bin/chengc"\n')
    rc, out, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl")
    assert rc == 0, err
    assert "compiled 7 modules" in out and len(cc.calls()) == 1


def test_manifest_resolve_verify_fetch_compile(cc: Runner) -> None:
    """The whole seed A3 loop: publish -> resolve (manifest) -> verify -> fetch -> compile."""
    cids = _published(cc.tmp, in_store=True)
    assert not (cc.tmp / "chengcache/packages").exists()
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl")
    assert rc == 0, err
    lock = cc.tmp / "chengcache/app.lock.toml"
    assert lock.is_file()
    for cid in cids.values():
        assert (cc.tmp / "chengcache/packages" / cid / "src/api.cheng").is_file()  # fetched
    meta = tomllib.loads((cc.tmp / "artifacts/chengc/cheng.meta.toml").read_text())
    assert meta["lock"]["path"] == "chengcache/app.lock.toml"
    assert {d["package_id"]: d["cid"] for d in meta["dependencies"]} == cids
    # Nothing changed: a hit, and the lock is not rewritten.
    before = lock.stat().st_mtime_ns
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl", "--explain")
    assert rc == 0 and "cache hit" in err and lock.stat().st_mtime_ns == before
    # The manifest changes (a dependency dropped): resolve runs again, the lock follows.
    m = cc.tmp / "cheng-package.toml"
    m.write_text(m.read_text().rsplit("[[dependencies]]", 1)[0])
    (cc.tmp / "app.cheng").write_text("import cheng/dep0/api\n")
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl")
    assert rc == 0, err
    assert "dep2" not in lock.read_text()


def test_tampered_lock_fails_at_verify(cc: Runner) -> None:
    _published(cc.tmp)
    lock = _lock(cc.tmp)
    text = lock.read_text()
    lock.write_text(text.replace('epoch = 1', 'epoch = 7', 1))
    rc, _, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0].startswith("chengc: verify: ")
    assert cc.calls() == []


def test_missing_lock_and_registry_each_name_their_step(cc: Runner) -> None:
    _published(cc.tmp)
    rc, _, err = cc("app.cheng", "--lock:nope.lock.toml", "--registry:registry.jsonl")
    assert rc == 2 and err.splitlines()[0] == "chengc: verify: lock not found: nope.lock.toml"
    _lock(cc.tmp)
    rc, _, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:missing.jsonl")
    assert rc == 2 and err.splitlines()[0] == "chengc: verify: missing --registry"
    rc, _, err = cc("app.cheng", "--manifest:none.toml", "--registry:registry.jsonl")
    assert rc == 2 and err.splitlines()[0] == "chengc: resolve: manifest not found: none.toml"


def test_missing_snapshot_goes_to_the_fetcher(cc: Runner) -> None:
    cids = _published(cc.tmp)
    _lock(cc.tmp)
    shutil.rmtree(cc.tmp / "chengcache/packages" / cids["pkg://cheng/dep1"])
    rc, _, err = cc("app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl")
    assert rc != 0
    assert err.splitlines()[0].startswith("chengc: fetch: ")
    assert cc.calls() == []


def test_skip_pkg_uses_the_environment_roots(cc: Runner) -> None:
    _published(cc.tmp)
    rc, _, err = cc("app.cheng", "--lock:nope.toml", "--skip-pkg", f"--pkg-roots:{cc.tmp / 'src'}")
    assert rc == 0, err


def test_published_app_gets_the_a110_fields_and_other_lock_formats(cc: Runner) -> None:
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    _published(cc.tmp, in_store=True)
    app_src = cc.tmp / "appsrc"
    write_tree(app_src, {"cheng-package.toml": 'package_id = "pkg://cheng/app"\nversion = "2.0.0"\n',
                         "src/main.cheng": "fn main(): int32 = 0\n"})
    entry = publish(registry=cc.tmp / "registry.jsonl", key=KeyPair.generate("node:carol"),
                    package_id="pkg://cheng/app", channel="stable", epoch=3, src=app_src, store=None,
                    now=1730000003)
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl",
                    "--lock-format:json", "--package:pkg://cheng/app", "--meta-out:out/cheng.meta.toml")
    assert rc == 0, err
    assert (cc.tmp / "chengcache/app.lock.json").is_file()
    meta = tomllib.loads((cc.tmp / "out/cheng.meta.toml").read_text())
    assert meta["package_id"] == "pkg://cheng/app" and meta["epoch"] == 3
    assert meta["cid"] == str(entry.cid) and meta["author_id"] == "node:carol"
    assert meta["signature"].startswith("ed25519:") and meta["pub_key"].startswith("ed25519:")
    assert meta["lock"]["format"] == "json"
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--registry:registry.jsonl",
                    "--lock-format:json", "--package:pkg://cheng/other")
    assert rc == 1 and err.splitlines()[0] == "chengc: meta: package mismatch"


def test_a_lock_made_elsewhere_pins_the_build(cc: Runner) -> None:
    """A committed lock (fresh clone: no stamp) is used as it is while it satisfies the manifest,
    even though the registry has a newer release by now."""
    from cheng_build.pkg.publish import publish
    from cheng_build.trust.keys import KeyPair

    key = KeyPair.generate("node:alice")
    _published(cc.tmp, key=key)
    lock = _lock(cc.tmp)
    before = lock.read_bytes()
    src = cc.tmp / "src/dep0"
    (src / "src/api.cheng").write_text("import cheng/dep0/impl\nfn Api0(): int32 = 42\n")
    (src / "cheng-package.toml").write_text('package_id = "pkg://cheng/dep0"\nversion = "1.0.1"\n')
    publish(registry=cc.tmp / "registry.jsonl", key=key, package_id="pkg://cheng/dep0",
            channel="stable", epoch=2, src=src, store=None, now=1730000009)
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--lock:cheng.lock.toml",
                    "--registry:registry.jsonl", "--explain")
    assert rc == 0, err
    assert lock.read_bytes() == before
    assert "chengc: package flow: ran verify (" in err
    # Editing the manifest is asking for a new resolution: the lock then follows the registry
    # (here resolve needs the snapshots in the store, which this test never put there).
    m = cc.tmp / "cheng-package.toml"
    m.write_text(m.read_text() + "# edited\n")
    rc, _, err = cc("app.cheng", "--manifest:cheng-package.toml", "--lock:cheng.lock.toml",
                    "--registry:registry.jsonl")
    assert rc == 1 and err.splitlines()[0] == "chengc: resolve: snapshot not found"
    assert lock.read_bytes() == before, "a failed resolve leaves the lock alone"
