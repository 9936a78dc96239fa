"""resolve_manifest and verify_lock over generated signed registries and real dag snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_lock import World, graph_world

from cheng_build.core.errors import NotFoundError, PolicyError
from cheng_build.pkg.lock import Lock, LockedDep
from cheng_build.pkg.lock_errors import (
    DependencyCycleError,
    DevOnlyError,
    LockManifestMismatchError,
    RegistryMismatchError,
    SignatureFailedError,
    SingleVersionConflictError,
)
from cheng_build.pkg.manifest import (
    ensure_publishable,
    load_manifest,
    manifest_is_publishable,
    parse_manifest,
)
from cheng_build.pkg.resolve import resolve_manifest
from cheng_build.pkg.verify import ensure_lock_matches_manifest, verify_lock


def _m(deps: list[tuple[str, str]], overrides: dict[str, object] | None = None,
       pid: str = "pkg://cheng/app") -> object:
    data: dict[str, object] = {"package_id": pid, "dependencies": [
        {"package_id": p, "channel": c} for p, c in deps]}
    if overrides:
        data["overrides"] = overrides
    return parse_manifest(data)


def _fields(d: LockedDep) -> dict[str, object]:
    return {k: getattr(d, k) for k in d.__slots__}


def test_registry_fixture_is_a_valid_log(tmp_path: Path) -> None:
    world, _ = graph_world(tmp_path / "registry.jsonl", 12)
    registry = world.registry()
    registry.verify("L1")  # the registry's own verifier: chain, signatures, ownership


def test_transitive_closure_and_clean_verify(tmp_path: Path) -> None:
    world, ids = graph_world(tmp_path / "registry.jsonl", 40)
    registry = world.registry()
    lock = resolve_manifest(_m([(ids[0], "stable")]), registry, read_manifest=world.reader,
                            created_ts="5")
    assert sorted(d.package_id for d in lock.dependencies) == sorted(ids)
    assert lock.created_ts == "5" and lock.lock_version == 1
    assert verify_lock(lock, registry, "L1") == []


def test_head_is_the_highest_epoch(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    second = world.publish("pkg://cheng/fs", "stable", files={"src/fs.cheng": b"fn A(): int32 = 1\n"})
    lock = resolve_manifest(_m([("pkg://cheng/fs", "stable")]), world.registry(),
                            read_manifest=world.reader)
    assert lock.dependencies[0].cid == second["cid"] and lock.dependencies[0].epoch == 2


def _clash_world(tmp_path: Path) -> World:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    world.publish("pkg://cheng/fs", "edge", files={"x.cheng": b"fn New(): int32 = 2\n"})
    world.publish("pkg://cheng/net", "stable", [("pkg://cheng/fs", "stable")])
    world.publish("pkg://cheng/gui", "stable", [("pkg://cheng/fs", "edge")])
    world.publish("pkg://cheng/ide", "stable", [("pkg://cheng/fs", "edge")])
    return world


def test_single_version_conflict_names_every_dependent(tmp_path: Path) -> None:
    world = _clash_world(tmp_path)
    m = _m([("pkg://cheng/net", "stable"), ("pkg://cheng/gui", "stable"),
            ("pkg://cheng/ide", "stable")])
    with pytest.raises(SingleVersionConflictError) as info:
        resolve_manifest(m, world.registry(), read_manifest=world.reader)
    lines = info.value.lines("resolve")
    fs = {r["channel"]: r["cid"] for r in map(__import__("json").loads, world.lines)
          if r["package_id"] == "pkg://cheng/fs"}
    assert lines[0] == "resolve: single-version conflict"
    assert lines[1] == f"- pkg://cheng/fs: stable@1 {fs['stable']} [dag] vs edge@1 {fs['edge']} [dag]"
    assert lines[2] == "    stable@1 wanted by pkg://cheng/net"
    assert lines[3] == "    edge@1 wanted by pkg://cheng/gui, pkg://cheng/ide"
    assert any("[overrides]" in ln for ln in lines)


def test_top_level_override_settles_the_clash(tmp_path: Path) -> None:
    world = _clash_world(tmp_path)
    m = _m([("pkg://cheng/net", "stable"), ("pkg://cheng/gui", "stable")],
           {"pkg://cheng/fs": "stable"})
    registry = world.registry()
    lock = resolve_manifest(m, registry, read_manifest=world.reader)
    fs = lock.by_package()["pkg://cheng/fs"]
    assert fs.channel == "stable" and len(lock.dependencies) == 3
    assert verify_lock(lock, registry) == []
    ensure_lock_matches_manifest(lock, m)  # type: ignore[arg-type]


def test_override_in_a_dependency_is_ignored(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    world.publish("pkg://cheng/fs", "edge", files={"y": b"y"})
    world.publish("pkg://cheng/net", "stable", [("pkg://cheng/fs", "stable")],
                  files={"cheng-package.toml": b'package_id = "pkg://cheng/net"\n'
                         b'[[dependencies]]\npackage_id = "pkg://cheng/fs"\nchannel = "stable"\n'
                         b'[overrides]\n"pkg://cheng/fs" = "edge"\n'})
    lock = resolve_manifest(_m([("pkg://cheng/net", "stable")]), world.registry(),
                            read_manifest=world.reader)
    assert lock.by_package()["pkg://cheng/fs"].channel == "stable"


def test_dependency_cycle(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/a", "stable", [("pkg://cheng/b", "stable")])
    world.publish("pkg://cheng/b", "stable", [("pkg://cheng/a", "stable")])
    with pytest.raises(DependencyCycleError) as info:
        resolve_manifest(_m([("pkg://cheng/a", "stable")]), world.registry(),
                         read_manifest=world.reader)
    assert info.value.lines("resolve")[0] == (
        "resolve: dependency cycle: pkg://cheng/a -> pkg://cheng/b -> pkg://cheng/a")


def test_missing_channel_is_snapshot_not_found(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/a", "stable")
    with pytest.raises(NotFoundError) as info:
        resolve_manifest(_m([("pkg://cheng/a", "lts")]), world.registry(),
                         read_manifest=world.reader)
    assert info.value.what == "snapshot not found" and "lts" in (info.value.why or "")


def test_path_dependency_is_dev_only(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/fs", "stable")
    local = tmp_path / "work" / "gui"
    local.mkdir(parents=True)
    (local / "cheng-package.toml").write_text(
        'package_id = "pkg://cheng/gui"\n[[dependencies]]\npackage_id = "pkg://cheng/fs"\n'
        'channel = "stable"\n')
    app = tmp_path / "work" / "app"
    app.mkdir()
    (app / "cheng-package.toml").write_text(
        'package_id = "pkg://cheng/app"\nversion = "1.0.0"\n[[dependencies]]\n'
        'package_id = "pkg://cheng/gui"\nchannel = "stable"\npath = "../gui"\n')
    m = load_manifest(app / "cheng-package.toml")
    assert not manifest_is_publishable(m)
    with pytest.raises(PolicyError) as info:
        ensure_publishable(m)
    assert info.value.what == "dev-only manifest"
    registry = world.registry()
    lock = resolve_manifest(m, registry, read_manifest=world.reader)
    gui = lock.by_package()["pkg://cheng/gui"]
    assert (gui.path, gui.dev_only, gui.cid, gui.signature) == ("../gui", True, None, None)
    assert "pkg://cheng/fs" in lock.by_package()  # the local tree's own dependencies
    warnings = verify_lock(lock, registry, "L1")
    assert any("dev-only" in w for w in warnings)
    with pytest.raises(DevOnlyError):
        verify_lock(lock, registry, "L2")


def test_verify_reports_tampering(tmp_path: Path) -> None:
    world, ids = graph_world(tmp_path / "registry.jsonl", 5)
    registry = world.registry()
    lock = resolve_manifest(_m([(ids[0], "stable")]), registry, read_manifest=world.reader)
    dep = lock.dependencies[1]
    cid = dep.cid or ""
    bad = LockedDep(**{**_fields(dep), "cid": cid[:-1] + ("a" if cid[-1] != "a" else "b")})
    tampered = Lock(lock.package_id, lock.created_ts,
                    (lock.dependencies[0], bad, *lock.dependencies[2:]))
    with pytest.raises(SignatureFailedError) as info:
        verify_lock(tampered, registry)
    assert info.value.lines("verify")[0] == "verify: signature failed"
    assert info.value.lines("verify")[1].startswith(f"- {dep.package_id}: ")
    # Twice the same package: the A1.14 report.
    twice = Lock(lock.package_id, lock.created_ts, (*lock.dependencies, LockedDep(
        **{**_fields(dep), "channel": "edge", "epoch": 2, "format": "source"})))
    with pytest.raises(SingleVersionConflictError) as info2:
        verify_lock(twice, registry)
    assert info2.value.lines("verify")[:2] == [
        "verify: single-version conflict",
        f"- {dep.package_id}: stable@1 {cid} [dag] vs edge@2 {cid} [source]"]


def test_registry_mismatch_when_the_registry_differs(tmp_path: Path) -> None:
    world, ids = graph_world(tmp_path / "a" / "registry.jsonl", 3)
    lock = resolve_manifest(_m([(ids[0], "stable")]), world.registry(), read_manifest=world.reader)
    other = World(tmp_path / "b" / "registry.jsonl")
    other.publish(ids[0], "stable", author="node:a0", files={"z": b"other"})
    with pytest.raises(RegistryMismatchError) as info:
        verify_lock(lock, other.registry())
    lines = info.value.lines("verify")
    assert lines[0] == "verify: registry mismatch"
    assert lines[1].startswith(f"- {ids[0]}: cid ")
    assert any(f"- {ids[1]}: no stable@1 publish" in ln for ln in lines)


def test_local_placeholder_signatures_only_at_l0(tmp_path: Path) -> None:
    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/old", "stable", signature="local:legacy")
    registry = world.registry()
    lock = resolve_manifest(_m([("pkg://cheng/old", "stable")]), registry,
                            read_manifest=world.reader)
    with pytest.raises(SignatureFailedError):
        verify_lock(lock, registry, "L1")
    warnings = verify_lock(lock, registry, "L0")
    assert warnings and "L0" in warnings[0]


def test_lock_manifest_mismatch(tmp_path: Path) -> None:
    world = _clash_world(tmp_path)
    m = _m([("pkg://cheng/net", "stable")])
    lock = resolve_manifest(m, world.registry(), read_manifest=world.reader)
    changed = _m([("pkg://cheng/net", "edge"), ("pkg://cheng/gui", "stable")])
    with pytest.raises(LockManifestMismatchError) as info:
        ensure_lock_matches_manifest(lock, changed)  # type: ignore[arg-type]
    assert info.value.lines("verify")[1:3] == [
        "- pkg://cheng/net: manifest wants channel edge, lock has stable",
        "- pkg://cheng/gui: in the manifest but not in the lock"]


def test_source_snapshots_keep_their_addresses_as_v2(tmp_path: Path) -> None:
    from cheng_build.pkg.formats import parse_text
    from cheng_build.pkg.lock import lock_text, parse_lock

    world = World(tmp_path / "registry.jsonl")
    world.publish("pkg://cheng/gui", "stable", fmt="source",
                  source_addrs=["/ip4/127.0.0.1/tcp/4005"])
    world.publish("pkg://cheng/fs", "stable")
    registry = world.registry()
    m = _m([("pkg://cheng/gui", "stable"), ("pkg://cheng/fs", "stable")])
    lock = resolve_manifest(m, registry, read_manifest=lambda *a: None)
    assert lock.lock_version == 2
    assert lock.by_package()["pkg://cheng/gui"].source_addrs == ("/ip4/127.0.0.1/tcp/4005",)
    assert lock.by_package()["pkg://cheng/fs"].source_addrs == ()
    text = lock_text(lock)
    assert text.startswith("lock_version = 2\n")
    assert parse_lock(parse_text(text, "toml")) == lock
    assert verify_lock(lock, registry) == []
