"""The lock hooks for real: a temporary git repository, the pre-commit framework and our
``.pre-commit-hooks.yaml`` fetched from a hook repository like any user's would be.

A good lock commits; a lock with one CID character changed is refused with the verify error; a
manifest changed without re-resolving is refused too; ``hooks/ci-verify-lock`` agrees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_lock import World
from helpers_parts import require_part

from cheng_build.pkg.lock import dump_lock
from cheng_build.pkg.manifest import load_manifest
from cheng_build.pkg.resolve import resolve_manifest

REPO = Path(__file__).resolve().parent.parent
PRE_COMMIT = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which(
    "pre-commit")



@pytest.fixture(autouse=True)
def _needs_pre_commit() -> None:
    if PRE_COMMIT is None:
        require_part("pre-commit", "pip install '.[test]' (scripts/test.sh does)")


def _git(cwd: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=check)


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    e.update({"PRE_COMMIT_HOME": str(tmp_path / "pc-home"), "CHENG_PYTHON": sys.executable,
              "PATH": f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}",
              "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
              "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
              "HOME": str(tmp_path)})
    return e


def _hook_repo(tmp: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A git repository holding our hook files, as pre-commit would clone from GitHub."""
    repo = tmp / "hook-repo"
    repo.mkdir()
    shutil.copy(REPO / ".pre-commit-hooks.yaml", repo)
    shutil.copytree(REPO / "hooks", repo / "hooks")
    shutil.copytree(REPO / "cheng_build", repo / "cheng_build",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    _git(repo, "init", "-q", env=env)
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "-m", "hooks", env=env)
    return repo, _git(repo, "rev-parse", "HEAD", env=env).stdout.strip()


def test_pre_commit_blocks_a_bad_lock(tmp_path: Path, env: dict[str, str]) -> None:
    world = World(tmp_path / "reg" / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    world.publish("pkg://cheng/net", "stable", [("pkg://cheng/fs", "stable")])
    registry = world.registry()
    hook_repo, rev = _hook_repo(tmp_path, env)

    user = tmp_path / "user"
    user.mkdir()
    _git(user, "init", "-q", env=env)
    manifest = user / "cheng-package.toml"
    manifest.write_text('package_id = "pkg://cheng/app"\n\n[[dependencies]]\n'
                        'package_id = "pkg://cheng/net"\nchannel = "stable"\n')
    lock_path = user / "cheng.lock.toml"
    dump_lock(resolve_manifest(load_manifest(manifest), registry, read_manifest=world.reader),
              lock_path)
    (user / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n"
        f"      - id: cheng-lock-verify\n        args: ['--registry:{world.path}']\n")
    subprocess.run([PRE_COMMIT, "install"], cwd=user, env=env, check=True, capture_output=True)

    _git(user, "add", "-A", env=env)
    ok = _git(user, "commit", "-m", "good lock", env=env, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cheng lock verify" in ok.stdout + ok.stderr

    text = lock_path.read_text()
    cid = registry.head("pkg://cheng/fs", "stable").cid
    lock_path.write_text(text.replace(cid, cid[:-1] + ("a" if cid[-1] != "a" else "b")))
    _git(user, "add", "-A", env=env)
    bad = _git(user, "commit", "-m", "tampered", env=env, check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert "verify: signature failed" in out and "- pkg://cheng/fs:" in out
    assert _git(user, "rev-list", "--count", "HEAD", env=env).stdout.strip() == "1"

    lock_path.write_text(text)
    manifest.write_text(manifest.read_text().replace('"stable"', '"edge"'))
    _git(user, "add", "-A", env=env)
    stale = _git(user, "commit", "-m", "manifest changed, lock not", env=env, check=False)
    assert stale.returncode != 0
    assert "verify: lock does not match manifest" in stale.stdout + stale.stderr

    # The CI script checks the whole tree the same way.
    ci = [sys.executable, str(REPO / "hooks" / "ci-verify-lock"), f"--registry:{world.path}"]
    r = subprocess.run(ci, cwd=user, env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "verify: lock does not match manifest" in r.stderr
    manifest.write_text(manifest.read_text().replace('"edge"', '"stable"'))
    r = subprocess.run(ci, cwd=user, env=env, capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (0, "ok"), r.stderr
