"""Checkpoint announcements on gossipsub: a mirror learns a new head without polling.

P serves its registry; M serves a copy and has P as its sync source. P's operator appends a
checkpoint after a new publish: P's serve announces it on the operator's topic, M verifies the
announcement and syncs (everything verified again from P). Forged announcements are ignored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers_net import Machine, Serve, publish_world
from helpers_registry import World

from cheng_build.pkg.remote.gossip import announcement, check_announcement, topic_for
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.registry_ops import append_checkpoint

pytestmark = pytest.mark.timeout(180)


def test_announcements_carry_only_a_verified_checkpoint(tmp_path: Path) -> None:
    op, evil = KeyPair.generate("op:main"), KeyPair.generate("op:evil")
    w = World(tmp_path)
    w.publish("pkg://cheng/a", "node:alice", 1)
    cp = append_checkpoint(w.registry, op, ttl_s=3600)
    head = {"size": 2, "checkpoint_at": 2, "checkpoint": cp.raw.decode()}
    msg = announcement(head)
    assert msg is not None and len(msg) < 1024 and b"pkg://cheng/a" not in msg
    assert check_announcement(msg, op.pub_key) == 2
    assert check_announcement(msg, evil.pub_key) is None  # another operator's topic
    doc = json.loads(msg)
    doc["checkpoint"] = doc["checkpoint"].replace('"size":1', '"size":5')
    assert check_announcement(json.dumps(doc).encode(), op.pub_key) is None  # signature broken
    pub = json.loads(w.lines()[0])
    assert check_announcement(json.dumps({"line": 1, "checkpoint": json.dumps(pub)}).encode(),
                              pub["pub_key"]) is None  # not a checkpoint
    assert check_announcement(b"\xff" * 10, op.pub_key) is None
    assert announcement({"size": 0, "checkpoint_at": 0, "checkpoint": None}) is None
    assert topic_for(op.pub_key).endswith(op.pub_key)


def test_a_mirror_syncs_when_a_new_head_is_announced(tmp_path: Path) -> None:
    author, op = KeyPair.generate("node:alice"), KeyPair.generate("op:main")
    p = Machine(tmp_path / "P")
    publish_world(p, author, op, n=2)
    sp = Serve(p, http=False)
    sm = None
    try:
        m = Machine(tmp_path / "M", PKG_OPERATOR_KEY=op.pub_key, PKG_REGISTRY_FROM=sp.p2p)
        r = m.run("cheng-registry", "sync")
        assert r.returncode == 0, r.stderr
        sm = Serve(m, http=False)
        time.sleep(2)  # the gossip mesh forms on the first heartbeats (1 s)
        from cheng_build.cas.blockstore import Blockstore
        from cheng_build.pkg.publish import publish

        src = p.root / "src" / "dep0"
        (src / "src" / "impl.cheng").write_text("fn impl0(): int32 = 7\n")
        manifest = src / "cheng-package.toml"
        manifest.write_text(manifest.read_text().replace('"1.0.0"', '"1.0.1"'))
        publish(registry=p.registry, key=author, package_id="pkg://cheng/dep0", channel="stable",
                epoch=2, src=src, store=Blockstore(p.cache), version="1.0.1")
        append_checkpoint(p.registry, op, ttl_s=3600)
        deadline = time.monotonic() + 90  # announcements repeat every 30 s
        while time.monotonic() < deadline and m.registry.read_bytes() != p.registry.read_bytes():
            time.sleep(0.5)
        assert m.registry.read_bytes() == p.registry.read_bytes(), "".join(sm.errors)[-2000:]
    finally:
        if sm is not None:
            sm.stop()
        sp.stop()
