"""The registry log under attack: every attack or fault is refused with a clear message."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
from helpers_packstore import tamper_block
from helpers_registry import World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.cas.cid import parse_cid
from cheng_build.core.errors import DigestMismatchError
from cheng_build.pkg.publish import PublishError
from cheng_build.pkg.snapshot import check_snapshot_content
from cheng_build.trust import canonical
from cheng_build.trust.checkpoint import CheckpointMemory
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_log import (
    GENESIS_PREV,
    ChainError,
    CheckpointError,
    ExpiredCheckpointError,
    ForkError,
    RegistryError,
    RegistryFormatError,
    RegistryLog,
    RollbackError,
    UnsignedError,
    verify_entry_signature,
)
from cheng_build.trust.registry_ops import RefusedError, append_checkpoint, revoke_key, rotate_key


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def verify(w: World, level: str = "L1", now: float | None = None):  # type: ignore[no-untyped-def]
    return RegistryLog.load(w.registry).verify(level, memory=CheckpointMemory(w.trust), now=now)


def test_publish_chain_and_heads(world: World) -> None:
    for epoch in (1, 2, 5):
        world.publish("pkg://cheng/a", "node:alice", epoch)
    world.publish("pkg://cheng/a", "node:alice", 1, channel="stable")
    log = RegistryLog.load(world.registry)
    assert [e.seq for e in log.entries] == [1, 2, 3, 4]
    assert log.entries[0].prev == GENESIS_PREV
    head = log.head("pkg://cheng/a", "edge")
    assert head is not None and head.epoch == 5 and head.line == 3
    assert log.entries[2].parent == log.entries[1].cid
    assert log.find("pkg://cheng/a", "edge", 2) is log.entries[1]
    report = verify(world)
    assert report.lines == 4 and report.warnings == ()


def test_rollback_lower_epoch_refused(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 3)
    with pytest.raises(PublishError) as exc:
        world.publish("pkg://cheng/a", "node:alice", 2)
    assert exc.value.what == "epoch 2 is not above epoch 3 of pkg://cheng/a@edge (line 1)"
    with pytest.raises(PublishError):
        world.publish("pkg://cheng/a", "node:alice", 3)  # equal is a replay, refused too
    assert len(world.lines()) == 1


def test_rollback_line_in_file_refused_by_verify(world: World) -> None:
    k = world.key("node:alice")
    world.publish("pkg://cheng/a", "node:alice", 3)
    world.publish("pkg://cheng/a", "node:alice", 4)
    # A malicious operator appends a correctly chained, correctly signed older epoch.
    lines = world.lines()
    prev = json.loads(lines[0])
    fields = {k2: prev[k2] for k2 in canonical.PUBLISH_SIGNED_FIELDS if k2 in prev}
    fields["epoch"] = 2
    import hashlib
    body = {"type": "publish", "seq": 3, "prev": "sha256:" + hashlib.sha256(lines[1]).hexdigest(),
            **fields, "pub_key": k.pub_key, "signature": k.sign(canonical.publish_payload(fields))}
    world.write_lines([*lines, json.dumps(body, separators=(",", ":")).encode()])
    with pytest.raises(RollbackError) as exc:
        verify(world)
    assert exc.value.line == 3
    assert "epoch 2 is not above epoch 4" in exc.value.what


def test_namespace_hijack_refused(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    with pytest.raises(PublishError) as exc:
        world.publish("pkg://cheng/a", "node:mallory", 2)
    assert exc.value.lines("publish")[0] == "publish: namespace owned by node:alice"
    # Same author id, another key: still refused (the key owns the namespace, not the name).
    impostor = KeyPair.generate("node:alice")
    with pytest.raises(PublishError) as exc:
        world.publish("pkg://cheng/a", "node:alice", 2, key=impostor)
    assert exc.value.what == "namespace owned by node:alice"
    assert len(world.lines()) == 1


def test_rotation_moves_ownership_and_needs_old_key(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    new = KeyPair.generate("node:alice")
    with pytest.raises(RefusedError):  # signed by someone else
        rotate_key(world.registry, world.key("node:mallory"), "pkg://cheng/a", new.pub_key)
    rotate_key(world.registry, world.key("node:alice"), "pkg://cheng/a", new.pub_key)
    with pytest.raises(PublishError):  # the old key no longer owns it
        world.publish("pkg://cheng/a", "node:alice", 2)
    world.publish("pkg://cheng/a", "node:alice", 3, key=new)
    assert verify(world).lines == 3


def test_revoked_key_cannot_publish(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    revoke_key(world.registry, world.key("node:alice"))
    with pytest.raises(PublishError) as exc:
        world.publish("pkg://cheng/a", "node:alice", 2)
    assert exc.value.what == "key revoked at line 2"
    verify(world)  # the revocation itself is a valid line


def test_revoked_key_line_in_file_refused(world: World) -> None:
    k = world.key("node:alice")
    world.publish("pkg://cheng/a", "node:alice", 1)
    world.publish("pkg://cheng/a", "node:alice", 2)
    lines = world.lines()
    # Forge history: put a revocation before the second publish and re-chain everything.
    first = lines[0]
    import hashlib

    def digest(b: bytes) -> str:
        return "sha256:" + hashlib.sha256(b).hexdigest()
    rev = {"type": "key", "seq": 2, "prev": digest(first), "op": "revoke",
           "revoked_key": k.pub_key, "author_id": k.author_id, "created_ts": "1"}
    rev["pub_key"] = k.pub_key
    rev["signature"] = k.sign(canonical.key_payload(rev))
    rev_raw = json.dumps(rev, separators=(",", ":")).encode()
    pub = json.loads(lines[1])
    pub["seq"], pub["prev"] = 3, digest(rev_raw)
    world.write_lines([first, rev_raw, json.dumps(pub, separators=(",", ":")).encode()])
    with pytest.raises(RegistryError) as exc:
        verify(world)
    assert exc.value.line == 3 and "revoked at line 2" in exc.value.what


def test_edited_middle_line_breaks_chain_exactly_there(world: World) -> None:
    for e in range(1, 6):
        world.publish("pkg://cheng/a", "node:alice", e)
    lines = world.lines()
    # Edit an unsigned field of line 3: its signature still verifies, the chain does not.
    d = json.loads(lines[2])
    d["created_ts"] = "1"
    lines[2] = json.dumps(d, separators=(",", ":")).encode()
    world.write_lines(lines)
    with pytest.raises(ChainError) as exc:
        verify(world)
    assert exc.value.line == 4
    assert exc.value.what == "line 4: chain broken: prev does not match the digest of line 3"


def test_edited_signed_field_fails_signature(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    world.publish("pkg://cheng/a", "node:alice", 2)
    lines = world.lines()
    lines[1] = lines[1].replace(b'"cid":"baf', b'"cid":"bag', 1)
    world.write_lines(lines)
    with pytest.raises(UnsignedError) as exc:
        verify(world)
    assert exc.value.line == 2 and exc.value.what.startswith("line 2: signature failed")


def test_truncated_last_line_reported(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    world.publish("pkg://cheng/a", "node:alice", 2)
    data = world.registry.read_bytes()
    world.registry.write_bytes(data[:-40])
    with pytest.raises(RegistryFormatError) as exc:
        RegistryLog.load(world.registry)
    assert exc.value.what == "line 2: truncated last line (no newline at the end)"
    good = len(data.split(b"\n")[0]) + 1
    assert f"truncate -s {good} " in (exc.value.how or "")
    # ... and nobody appends after a torn tail.
    with pytest.raises(RegistryFormatError):
        world.publish("pkg://cheng/a", "node:alice", 3)


def legacy_line(pkg: str, author: str, epoch: int) -> bytes:
    """A line as the existing Cheng tooling writes it: no chain, local: placeholder signature."""
    return json.dumps({"type": "publish", "package_id": pkg, "author_id": author, "channel": "edge",
                       "epoch": epoch, "cid": "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
                       "format": "tar", "ast_simhash64": 12345, "originality_score": 1.0,
                       "pub_key": "local:node", "signature": "local:deadbeef",
                       "created_ts": "1730000000"}).encode()


def test_local_signed_lines_only_at_l0(world: World) -> None:
    world.write_lines([legacy_line("pkg://cheng/old", "node:alice", 1),
                       legacy_line("pkg://cheng/old", "node:alice", 2)])
    log = RegistryLog.load(world.registry)
    assert log.head("pkg://cheng/old", "edge").epoch == 2  # type: ignore[union-attr]
    assert log.entries[0].ast_simhash64 == f"{12345:016x}"
    report = verify(world, "L0")
    assert report.warnings[0].startswith("line 1: unsigned (the existing tooling's local:")
    with pytest.raises(UnsignedError) as exc:
        verify(world, "L1")
    assert exc.value.line == 1 and "unsigned" in exc.value.what
    # Our tooling extends such a log: the chain starts after the legacy lines.
    world.publish("pkg://cheng/new", "node:bob", 1)
    assert RegistryLog.load(world.registry).entries[2].seq == 3
    verify(world, "L0")
    # ... and a legacy line may not follow the chain.
    world.write_lines([*world.lines(), legacy_line("pkg://cheng/old", "node:alice", 3)])
    with pytest.raises(ChainError) as exc2:
        verify(world, "L0")
    assert exc2.value.line == 4


def test_lock_signature_checks_on_its_own(world: World) -> None:
    e = world.publish("pkg://cheng/a", "node:alice", 1)
    fields = e.lock_fields()
    # A lock written as TOML carries the simhash as an int or string; both check.
    verify_entry_signature(fields)
    verify_entry_signature({**fields, "ast_simhash64": int(fields["ast_simhash64"], 16)})
    with pytest.raises(Exception, match="does not verify"):
        verify_entry_signature({**fields, "epoch": 2})
    with pytest.raises(UnsignedError):
        verify_entry_signature({**fields, "signature": "local:x"})


def test_checkpoint_freeze_and_fork(world: World) -> None:
    op = KeyPair.generate("op:main")
    world.publish("pkg://cheng/a", "node:alice", 1)
    now = int(time.time())
    append_checkpoint(world.registry, op, ttl_s=3600, now=now)
    verify(world, now=now + 10)  # remembered from here on
    # Freeze: the same log shown after its newest checkpoint expired.
    with pytest.raises(ExpiredCheckpointError) as exc:
        verify(world, now=now + 7200)
    assert exc.value.lines("verify")[0] == "verify: registry checkpoint expired"
    assert verify(world, "L0", now=now + 7200).warnings  # L0 only warns
    saved = world.registry.read_bytes()
    # Fork by rollback: the log cut before the remembered checkpoint.
    world.write_lines(world.lines()[:1])
    with pytest.raises(ForkError) as exc2:
        verify(world, now=now + 10)
    assert exc2.value.lines("verify")[0] == "verify: registry forked"
    # Fork by rewrite: a different history, even one with a fresh valid checkpoint.
    world.registry.unlink()
    world.publish("pkg://cheng/b", "node:alice", 1)
    world.publish("pkg://cheng/b", "node:alice", 2)
    append_checkpoint(world.registry, op, ttl_s=3600, now=now + 20)
    with pytest.raises(ForkError):
        verify(world, now=now + 30)
    # The genuine log extended is fine.
    world.registry.write_bytes(saved)
    world.publish("pkg://cheng/a", "node:alice", 2)
    append_checkpoint(world.registry, op, ttl_s=3600, now=now + 40)
    report = verify(world, now=now + 50)
    assert report.remembered is not None and report.remembered.size == 3


def test_checkpoint_root_and_operator_checked(world: World) -> None:
    op = KeyPair.generate("op:main")
    world.publish("pkg://cheng/a", "node:alice", 1)
    append_checkpoint(world.registry, op, ttl_s=3600)
    with pytest.raises(RefusedError, match="unknown operator key"):
        append_checkpoint(world.registry, KeyPair.generate("op:evil"), ttl_s=3600)
    lines = world.lines()
    d = json.loads(lines[1])
    d["root"] = "0" * 64
    body = {k: v for k, v in d.items() if k != "signature"}
    d["signature"] = op.sign(canonical.checkpoint_payload(body))
    world.write_lines([lines[0], json.dumps(d, separators=(",", ":")).encode()])
    with pytest.raises(CheckpointError) as exc:
        verify(world)
    assert exc.value.line == 2 and "root does not match lines 1-1" in exc.value.what


def test_l2_requires_a_checkpoint(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        verify(world, "L2")


def test_arbitrary_package_content_refused(world: World) -> None:
    e = world.publish("pkg://cheng/a", "node:alice", 1, body="fn Main(): int =\n    return 1\n")
    assert check_snapshot_content(world.store, e.cid, e.format) >= 1
    # Swap the stored bytes for other content: the block no longer hashes to the signed CID.
    cid = parse_cid(e.cid)
    body = b"fn Main(): int =\n    return 666\n"
    if world.store.locate(cid) is not None and world.store.locate(cid).length == len(body):
        tamper_block(world.store, cid, body)
    else:  # a directory root (or another size): corrupt a block below it
        tamper_block(world.store, cid if world.store.locate(cid) else next(iter(world.store.iter_cids())))
    with pytest.raises(DigestMismatchError):
        check_snapshot_content(world.store, e.cid, e.format)


GARBAGE = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                 | st.text(max_size=20),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"type": st.sampled_from(["publish", "key", "checkpoint", "x"]),
                           "package_id": st.one_of(st.text(max_size=20), st.integers()),
                           "epoch": st.one_of(st.integers(), st.text(max_size=3), st.none()),
                           "seq": st.one_of(st.integers(), st.none()),
                           "channel": st.sampled_from(["edge", "stable", "nope"]),
                           "cid": st.text(max_size=10), "author_id": st.text(max_size=5),
                           "ast_simhash64": st.one_of(st.integers(), st.text(max_size=20))},
                          ).map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=GARBAGE, where=st.integers(min_value=0, max_value=2))
def test_garbage_lines_give_a_line_numbered_error(tmp_path: Path, garbage: bytes, where: int) -> None:
    good = [legacy_line("pkg://cheng/g", "node:g", i) for i in (1, 2)]
    lines = [*good[:where], garbage.replace(b"\n", b" "), *good[where:]]
    data = b"".join(x + b"\n" for x in lines)
    try:
        log = RegistryLog.from_bytes(data, tmp_path / "r.jsonl")
        log.verify("L0", memory=False)
    except RegistryError as exc:
        assert exc.line is not None and 1 <= exc.line <= 3
        assert exc.what.startswith(f"line {exc.line}: ")


def _publisher(root: str, who: int, count: int) -> None:
    w = World(Path(root))
    key = KeyPair.generate(f"node:p{who}")
    f = Path(root) / f"file{who}.txt"
    for i in range(1, count + 1):
        f.write_text(f"publisher {who} snapshot {i}\n")
        w.publish(f"pkg://cheng/p{who}", f"node:p{who}", i, key=key, src=f)


def test_concurrent_publishers_leave_a_valid_chain(tmp_path: Path) -> None:
    procs = [multiprocessing.get_context("fork").Process(target=_publisher, args=(str(tmp_path), w, 50))
             for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    w = World(tmp_path)
    log = RegistryLog.load(w.registry)
    assert len(log.entries) == 400
    assert [e.seq for e in log.entries] == list(range(1, 401))
    report = log.verify("L1", memory=False)
    assert report.publishes == 400
    for who in range(8):
        head = log.head(f"pkg://cheng/p{who}", "edge")
        assert head is not None and head.epoch == 50


def test_memory_from_l0_does_not_excuse_signatures_at_l1(world: World) -> None:
    op = KeyPair.generate("op:main")
    world.write_lines([legacy_line("pkg://cheng/old", "node:alice", 1)])
    world.publish("pkg://cheng/new", "node:bob", 1)
    append_checkpoint(world.registry, op, ttl_s=3600)
    report = verify(world, "L0")
    assert report.remembered is not None and not report.remembered.verified_with_signatures
    with pytest.raises(UnsignedError) as exc:
        verify(world, "L1")  # the remembered prefix was only checked at L0
    assert exc.value.line == 1


def test_warm_verify_still_catches_a_rewritten_prefix(world: World) -> None:
    op = KeyPair.generate("op:main")
    for e in (1, 2, 3):
        world.publish("pkg://cheng/a", "node:alice", e)
    append_checkpoint(world.registry, op, ttl_s=3600)
    assert verify(world).remembered.verified_with_signatures  # type: ignore[union-attr]
    lines = world.lines()
    lines[0] = lines[0].replace(b'"epoch":1', b'"epoch":0')  # breaks line 1's signature
    world.write_lines(lines)
    with pytest.raises((ForkError, ChainError)):
        verify(world)


def test_register_claims_a_namespace_before_publishing(world: World) -> None:
    from cheng_build.trust.registry_ops import register_namespace

    register_namespace(world.registry, world.key("node:alice"), "pkg://cheng/claimed")
    with pytest.raises(RefusedError, match="namespace owned by node:alice"):
        register_namespace(world.registry, world.key("node:bob"), "pkg://cheng/claimed")
    with pytest.raises(PublishError, match="namespace owned by node:alice"):
        world.publish("pkg://cheng/claimed", "node:bob", 1)
    world.publish("pkg://cheng/claimed", "node:alice", 1)
    assert verify(world).lines == 2


def test_publish_onto_a_broken_log_names_the_bad_line(world: World) -> None:
    world.publish("pkg://cheng/a", "node:alice", 1)
    world.write_lines([*world.lines(), b"{not json"])
    with pytest.raises(RegistryFormatError) as exc:
        world.publish("pkg://cheng/a", "node:alice", 2)
    assert exc.value.what.startswith("line 2: not JSON")
    assert not isinstance(exc.value, PublishError)


def _scan_head(log: RegistryLog, pkg: str, channel: str):  # type: ignore[no-untyped-def]
    """The registry's rule, as a linear scan: highest epoch, a tie going to the later line."""
    best = None
    for e in log.publishes(pkg):
        if e.channel == channel and (best is None or e.epoch >= best.epoch):
            best = e
    return best


def _scan_find(log: RegistryLog, pkg: str, channel: str, epoch: int):  # type: ignore[no-untyped-def]
    found = None
    for e in log.publishes(pkg):
        if e.channel == channel and e.epoch == epoch:
            found = e
    return found


_PKGS = ("pkg://cheng/a", "pkg://cheng/b", "pkg://other/c")
_CHANNELS = ("edge", "stable", "lts")


@st.composite
def _lines(draw: st.DrawFn) -> list[bytes]:
    out = []
    for i in range(draw(st.integers(0, 40))):
        pkg, channel = draw(st.sampled_from(_PKGS)), draw(st.sampled_from(_CHANNELS))
        if draw(st.integers(0, 9)) == 0:  # a key line names a package but is no publish
            out.append(json.dumps({"type": "key", "seq": i + 1, "prev": GENESIS_PREV,
                                   "op": "register", "package_id": pkg,
                                   "author_id": "node:x", "pub_key": "local:x",
                                   "signature": "local:x", "created_ts": "1"}).encode())
            continue
        line = json.loads(legacy_line(pkg, "node:alice", draw(st.integers(0, 4))))
        line["channel"] = channel
        line["created_ts"] = str(i)  # tells tied lines apart
        out.append(json.dumps(line).encode())
    return out


@given(_lines())
@settings(max_examples=150, deadline=None)
def test_head_and_find_index_equals_a_linear_scan(lines: list[bytes]) -> None:
    log = RegistryLog.from_bytes(b"".join(x + b"\n" for x in lines))
    for pkg in (*_PKGS, "pkg://cheng/none"):
        for channel in _CHANNELS:
            assert log.head(pkg, channel) is _scan_head(log, pkg, channel)
            for epoch in range(6):
                assert log.find(pkg, channel, epoch) is _scan_find(log, pkg, channel, epoch)


def test_lookups_walk_the_log_once(world: World) -> None:
    """Resolving N packages asks for N heads: each must not rescan the log (quadratic)."""
    walks = [0]

    class Counting(tuple):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            walks[0] += 1
            return super().__iter__()

    for epoch in (1, 2):
        world.publish("pkg://cheng/a", "node:alice", epoch)
    log = RegistryLog.load(world.registry)
    log.entries = Counting(log.entries)
    for _ in range(20):
        assert log.head("pkg://cheng/a", "edge").epoch == 2  # type: ignore[union-attr]
        assert log.find("pkg://cheng/a", "edge", 1).line == 1  # type: ignore[union-attr]
        assert log.head("pkg://cheng/zz", "edge") is None
    assert walks[0] == 1
