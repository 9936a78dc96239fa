"""Attack fixtures for the end-to-end trust tests (tests/test_trust_*.py).

Each attack is set up with the real library (publish, blockstore, CAR), then performed and
checked through the CLI entry points in-process (``cheng_build.cli.<tool>.main``), so the first
line, the exit code and what was (not) written are what a user would see.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

PKG_ENV = ("PKG_LEVEL", "PKG_MODE", "PKG_REGISTRY", "PKG_REQUIRE_SIGNATURE",
           "PKG_REQUIRE_REGISTRY_MATCH", "PKG_ROOTS", "PKG_ROOT", "PKG_CACHE", "PKG_CONFIG",
           "PKG_OPERATOR_KEY", "PKG_PEERS", "SOURCE_DATE_EPOCH")


class Cli:
    """Runs ``cheng-pkg``, ``cheng-registry`` and ``chengc`` in-process in one project folder."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch,
                 capfd: pytest.CaptureFixture[str]) -> None:
        self.tmp = tmp
        self.mp = monkeypatch
        self.capfd = capfd
        monkeypatch.chdir(tmp)
        for k in PKG_ENV:
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("HOME", str(tmp / "home"))
        monkeypatch.setenv("PKG_TRUST_DIR", str(tmp / "trust"))  # this test's own memory

    def _run(self, main: Any, argv: Sequence[str]) -> tuple[int, str, str]:
        self.capfd.readouterr()
        rc = main(list(argv))
        out, err = self.capfd.readouterr()
        return rc, out, err

    def pkg(self, *argv: str) -> tuple[int, str, str]:
        from cheng_build.cli import pkg

        return self._run(pkg.main, argv)

    def registry(self, *argv: str) -> tuple[int, str, str]:
        from cheng_build.cli import registry

        return self._run(registry.main, argv)

    def chengc(self, *argv: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        from cheng_build.cli import chengc

        for k, v in (env or {}).items():
            self.mp.setenv(k, v)
        return self._run(chengc.main, argv)


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            p.write_bytes(body)
        else:
            p.write_text(body)


def key(author: str) -> Any:
    from cheng_build.trust.keys import KeyPair

    return KeyPair.from_seed(author, hashlib.sha256(author.encode()).digest())


def forged_publish(registry: Path, signer: Any, package_id: str, cid: str, *, epoch: int,
                   channel: str = "stable", fmt: str = "dag") -> dict[str, Any]:
    """Append a publish line by hand, as an attacker with write access to the file would: correctly
    hash-chained (seq, prev) and validly signed, but by ``signer``, who need not own the namespace.
    No rule is checked (that is the point)."""
    from cheng_build.trust import canonical

    lines = registry.read_bytes().splitlines()
    rec: dict[str, Any] = {"type": "publish", "seq": len(lines) + 1,
                           "prev": "sha256:" + hashlib.sha256(lines[-1]).hexdigest(),
                           "package_id": package_id, "author_id": signer.author_id,
                           "channel": channel, "epoch": epoch, "cid": cid, "format": fmt,
                           "ast_simhash64": "0123456789abcdef", "originality_score": 0.9,
                           "pub_key": signer.pub_key, "created_ts": "1730000999"}
    rec["signature"] = signer.sign(canonical.publish_payload(rec))
    with registry.open("ab") as f:
        f.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
    return rec


def publish_dir(tmp: Path, registry: Path, signer: Any, package_id: str, files: Mapping[str, str],
                *, epoch: int = 1, version: str | None = "1.0.0", flag_version: str | None = None,
                now: int = 1730000000) -> str:
    """Publish a package folder for real (snapshot into ``tmp/chengcache``); returns its CID."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.pkg.publish import publish

    name = package_id.rsplit("/", 1)[1]
    src = tmp / "src" / f"{name}-{epoch}"
    body = {"cheng-package.toml": f'package_id = "{package_id}"\n'
            + (f'version = "{version}"\n' if version else "")}
    body.update(files)
    write_tree(src, body)
    e = publish(registry=registry, key=signer, package_id=package_id, channel="stable",
                epoch=epoch, src=src, store=Blockstore(tmp / "chengcache"), now=now,
                version=flag_version)
    return str(e.cid)


def snapshot(tmp: Path, name: str, files: Mapping[str, str]) -> str:
    """Snapshot a folder into ``tmp/chengcache`` (what an attacker's publish would store)."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import add_path

    src = tmp / "src" / name
    write_tree(src, files)
    return cid_str(add_path(Blockstore(tmp / "chengcache"), src, snapshot=True))


def app_manifest(tmp: Path, deps: Sequence[str], imports: Sequence[str]) -> None:
    write_tree(tmp, {
        "cheng-package.toml": 'package_id = "pkg://cheng/app"\n' + "".join(
            f'[[dependencies]]\npackage_id = "{d}"\nchannel = "stable"\n' for d in deps),
        "app.cheng": "".join(f"import {i}\n" for i in imports) + "fn main(): int32 = 0\n",
    })


def tree_digest(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (for 'nothing was written' checks)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} if root.exists() else {}
