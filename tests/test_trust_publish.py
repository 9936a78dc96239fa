"""Publish-side holes of issue 13: SemVer from the manifest (16) and two-link symlink chains (2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_trust import Cli, tree_digest, write_tree

FS = "pkg://cheng/fs"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path, monkeypatch, capfd)
    assert c.registry("keygen", "--out:alice.json", "--author:node:alice")[0] == 0
    return c


def _publish(cli: Cli, src: Path, epoch: int, *flags: str) -> tuple[int, str, str]:
    return cli.registry("publish", f"--package:{FS}", "--channel:stable", f"--epoch:{epoch}",
                        f"--src:{src}", "--priv:alice.json", "--registry:registry.jsonl",
                        "--store:chengcache", *flags)


def test_manifest_version_is_held_to_semver_like_the_flag(cli: Cli) -> None:
    src = cli.tmp / "fs"
    write_tree(src, {"cheng-package.toml": f'package_id = "{FS}"\nversion = "1.0.0"\n',
                     "src/fs.cheng": "fn Add(a: int, b: int): int =\n    return a + b\n"
                                     "fn Sub(a: int, b: int): int =\n    return a - b\n"})
    rc, _, err = _publish(cli, src, 1)
    assert rc == 0, err
    assert '"version":"1.0.0"' in (cli.tmp / "registry.jsonl").read_text()
    # A minor release that removes fn Sub, its version only in the manifest.
    write_tree(src, {"cheng-package.toml": f'package_id = "{FS}"\nversion = "1.1.0"\n',
                     "src/fs.cheng": "fn Add(a: int, b: int): int =\n    return a + b\n"})
    before = (cli.tmp / "registry.jsonl").read_bytes()
    rc, _, err = _publish(cli, src, 2)
    assert rc == 1
    assert err.splitlines()[0] == "publish: version 1.1.0 breaks the API of 1.0.0"
    assert "Sub" in err and "how:" in err
    assert (cli.tmp / "registry.jsonl").read_bytes() == before
    # The same as with the flag, and a major release goes through.
    assert _publish(cli, src, 2, "--version:1.1.0")[2].splitlines()[0] == \
        "publish: version 1.1.0 breaks the API of 1.0.0"
    write_tree(src, {"cheng-package.toml": f'package_id = "{FS}"\nversion = "2.0.0"\n'})
    rc, _, err = _publish(cli, src, 2)
    assert rc == 0, err


def _two_link_chain(pkg: Path, secret: Path) -> None:
    """``d1/.../d30/l -> ../..(x30)`` (the package root, by a climb) and ``src/evil.cheng`` ->
    ``../d1/.../d30/l/../..(x31)/<secret>``: as text the ``l/..`` cancels and it stays inside;
    on the real tree ``l`` climbs 30 levels first, so 31 more reach ``/``."""
    import os

    write_tree(pkg, {"cheng-package.toml": f'package_id = "{FS}"\nversion = "1.0.0"\n',
                     "src/fs.cheng": "import cheng/fs/evil\nfn Read(): int32 = 1\n"})
    deep = pkg.joinpath(*[f"d{i}" for i in range(1, 31)])
    deep.mkdir(parents=True)
    os.symlink("/".join([".."] * 30), deep / "l")
    chain = "/".join(f"d{i}" for i in range(1, 31))
    os.symlink(f"../{chain}/l/" + "/".join([".."] * 31) + str(secret), pkg / "src" / "evil.cheng")
    assert (pkg / "src" / "evil.cheng").read_bytes() == secret.read_bytes()  # it does leak


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    s = tmp_path / "home" / ".ssh" / "id_ed25519"
    s.parent.mkdir(parents=True)
    s.write_text("-----BEGIN OPENSSH PRIVATE KEY----- SECRET\n")
    return s


def test_publish_refuses_a_two_link_chain_out_of_the_package(cli: Cli, secret: Path) -> None:
    _two_link_chain(cli.tmp / "fs", secret)
    rc, _out, err = _publish(cli, cli.tmp / "fs", 1)
    assert rc == 1, err
    assert err.splitlines()[0] == f"publish: symlink points outside the package: {cli.tmp}/fs/src/evil.cheng"
    assert f"leads to {secret}" in err
    assert not (cli.tmp / "registry.jsonl").exists()


def test_checkout_refuses_a_two_link_chain(cli: Cli, secret: Path) -> None:
    """Mallory builds the snapshot with her own tooling (no publish check); checkout must refuse."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import add_path

    _two_link_chain(cli.tmp / "fs", secret)
    cid = cid_str(add_path(Blockstore(cli.tmp / "chengcache"), cli.tmp / "fs"))
    before = tree_digest(cli.tmp / "chengcache" / "packages")
    rc, _out, err = cli.pkg("checkout", f"--cid:{cid}", "--pkg-cache:chengcache")
    assert rc == 1, err
    assert err.splitlines()[0] == f"checkout: symlink src/evil.cheng in {cid} points outside the snapshot"
    assert "following the links it meets" in err and "how:" in err
    assert tree_digest(cli.tmp / "chengcache" / "packages") == before
    assert not (cli.tmp / "chengcache" / "packages" / cid).exists()


def test_chengc_import_walker_refuses_a_two_link_chain(cli: Cli, secret: Path) -> None:
    """A package root already on disk (an old checkout, a PKG_ROOTS folder) holding the chain:
    the bundle must not carry the secret."""
    from helpers_chengc import install_fake

    cli.mp.setenv("CHENG_COMPILER", str(install_fake(cli.tmp / "bin")))
    _two_link_chain(cli.tmp / "roots" / "cheng-fs", secret)
    write_tree(cli.tmp, {"app.cheng": "import cheng/fs/fs\nfn main(): int32 = 0\n"})
    rc, _out, err = cli.chengc("app.cheng", "--pkg-roots:roots", "--emit:bundle", "--out:app.car")
    assert rc == 1, err
    assert err.splitlines()[0] == "chengc: import cheng/fs/evil leaves its package"
    assert str(secret) in err
    assert not (cli.tmp / "app.car").exists()
