"""Registry sync in one process: consistency proofs, the verify-before-append rules, lying and
forked sources, the HTTP door of the registry protocol, and blocks on demand for resolve."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers_net import forge
from helpers_registry import World
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.core.errors import StoreError, TransportError
from cheng_build.pkg.remote.registry_proto import RegistryView, http_answer
from cheng_build.pkg.remote.registry_sources import HttpRegistrySource, open_sources
from cheng_build.pkg.serve import Gateway
from cheng_build.trust.checkpoint import CheckpointMemory
from cheng_build.trust.config import Config, load_config
from cheng_build.trust.consistency import consistency_proof, verify_consistency
from cheng_build.trust.keys import KeyPair
from cheng_build.trust.merkle import ProofError, leaf_hash, root_of
from cheng_build.trust.registry_errors import ForkError
from cheng_build.trust.registry_ops import append_checkpoint
from cheng_build.trust.sync import RemoteHead, SourceLiedError, sync_registry

# --- RFC 6962 consistency proofs -------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 70), st.data())
def test_consistency_proofs_verify_and_any_change_fails(n: int, data: Any) -> None:
    leaves = [leaf_hash(b"line %d" % i) for i in range(n)]
    m = data.draw(st.integers(0, n))
    proof = consistency_proof(leaves, m)
    old, new = root_of(leaves[:m]), root_of(leaves)
    verify_consistency(m, n, old, new, proof)
    if 0 < m < n:
        i = data.draw(st.integers(0, len(proof) - 1)) if proof else None
        bad = list(proof)
        if i is not None:
            bad[i] = bytes(32)
            with pytest.raises(ProofError):
                verify_consistency(m, n, old, new, bad)
        with pytest.raises(ProofError):  # another old history
            verify_consistency(m, n, root_of([leaf_hash(b"x"), *leaves[1:m]]), new, proof)
        with pytest.raises(ProofError):  # another new history
            verify_consistency(m, n, old, root_of([*leaves[:-1], leaf_hash(b"y")]), proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old, new, proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(m, n, old, new, [*proof, bytes(32)])


def test_consistency_proof_sizes_follow_rfc6962_example() -> None:
    # RFC 6962 section 2.1.3: PROOF(3, D[7]) = [c, d, g, l]: four nodes; PROOF(4, D[7]) = [l]
    # (the old root is a node of the new tree); PROOF(6, D[7]) = [i, j, k].
    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    assert len(consistency_proof(leaves, 3)) == 4
    assert consistency_proof(leaves, 4) == [root_of(leaves[4:7])]
    assert len(consistency_proof(leaves, 6)) == 3


# --- sync over HTTP ---------------------------------------------------------------------------


class Mirror:
    """A registry served over the HTTP gateway (the registry protocol's GETs)."""

    def __init__(self, w: World) -> None:
        self.view = RegistryView(w.registry)
        self.gw = Gateway(w.store, extra=lambda p, q: http_answer(self.view, p, q))
        self.url = self.gw.url

    def close(self) -> None:
        self.gw.close()


@pytest.fixture
def env(tmp_path: Path) -> Any:
    class Env:
        op = KeyPair.generate("op:main")
        p = World(tmp_path / "p")
        trust = CheckpointMemory(tmp_path / "ctrust")
        local = tmp_path / "c" / "registry.jsonl"
        cfg: Config = load_config({"registry": str(tmp_path / "c" / "registry.jsonl"),
                                   "operator_key": op.pub_key}, env={})

        def sync(self, *urls: str) -> Any:
            with open_sources(list(urls)) as srcs:
                return sync_registry(self.local, srcs, self.cfg, memory=self.trust)

    e = Env()
    for i in range(3):
        e.p.publish(f"pkg://cheng/p{i}", "node:alice", 1)
    append_checkpoint(e.p.registry, e.op, ttl_s=3600)
    m = Mirror(e.p)
    e.mirror = m  # type: ignore[attr-defined]
    yield e
    m.close()


def test_sync_appends_verified_lines_then_only_new_ones(env: Any) -> None:
    url = env.mirror.url
    r = env.sync(url)
    assert (r.appended, r.size, r.checkpoint.line) == (4, 4, 4)
    assert env.local.read_bytes() == env.p.registry.read_bytes()
    assert env.trust.recall(env.local).size == 3
    env.p.publish("pkg://cheng/p0", "node:alice", 2)
    append_checkpoint(env.p.registry, env.op, ttl_s=3600)
    r = env.sync(url)
    assert (r.appended, r.size) == (2, 6)
    assert env.trust.recall(env.local).line == 6
    calls: list[str] = []

    class Counting(HttpRegistrySource):
        def _get(self, path: str, limit: int) -> Any:
            calls.append(path)
            return super()._get(path, limit)

    src = Counting(url)
    assert sync_registry(env.local, [src], env.cfg, memory=env.trust).appended == 0
    assert calls == ["/registry/v1/head"]  # current: one round trip, nothing appended
    src.close()


def test_a_forked_source_is_refused_naming_both_checkpoints(env: Any, tmp_path: Path) -> None:
    env.sync(env.mirror.url)
    before, remembered = env.local.read_bytes(), env.trust.recall(env.local)
    x = World(tmp_path / "x")
    x.write_lines(forge(env.p.lines(), KeyPair.generate("node:mallory"), "bafkqaaa"))
    mx = Mirror(x)
    try:
        with pytest.raises(ForkError) as exc:
            env.sync(mx.url)
        lines = exc.value.lines("sync")
        assert lines[0] == "sync: registry forked"
        text = "\n".join(lines)
        assert remembered.root[:16] in text and f"{remembered.size} lines" in text
        assert env.local.read_bytes() == before and env.trust.recall(env.local) == remembered
        # The fork first, a good source second: the good one is used and the fork named.
        r = env.sync(mx.url, env.mirror.url)
        assert r.source == env.mirror.url and r.refused[0][0] == mx.url
        assert "registry forked" in r.refused[0][1]
    finally:
        mx.close()


class Tampered:
    """A source that serves the real head and proofs but alters one new line."""

    def __init__(self, real: HttpRegistrySource) -> None:
        self.real = real
        self.name = "tampered"

    def head(self) -> RemoteHead:
        return self.real.head()

    def proof(self, old: int, new: int) -> list[bytes]:
        return self.real.proof(old, new)

    def lines(self, after: int, limit: int) -> list[bytes]:
        out = self.real.lines(after, limit)
        d = json.loads(out[0])
        d["epoch"] = 99  # a signed field: the author's signature no longer covers it
        out[0] = json.dumps(d, separators=(",", ":")).encode()
        return out


def test_a_source_whose_lines_do_not_verify_is_named_and_the_next_used(env: Any) -> None:
    real = HttpRegistrySource(env.mirror.url)
    with pytest.raises(SourceLiedError) as exc:
        sync_registry(env.local, [Tampered(real)], env.cfg, memory=env.trust)
    assert "tampered: its lines do not verify" in exc.value.what
    assert not env.local.exists() or env.local.read_bytes() == b""
    assert env.trust.recall(env.local) is None
    r = sync_registry(env.local, [Tampered(real), real], env.cfg, memory=env.trust)
    assert r.appended == 4 and r.refused[0][0] == "tampered"
    real.close()


def test_a_checkpoint_not_signed_by_the_pinned_operator_is_refused(env: Any, tmp_path: Path) -> None:
    # A fresh client (nothing remembered) pinned to the operator: a self-made checkpoint fails.
    x = World(tmp_path / "x")
    x.write_lines(forge(env.p.lines(), KeyPair.generate("node:mallory"), "bafkqaaa"))
    mx = Mirror(x)
    try:
        with pytest.raises(SourceLiedError) as exc:
            env.sync(mx.url)
        assert "not signed by the operator" in exc.value.what
        assert not env.local.exists() or env.local.read_bytes() == b""
    finally:
        mx.close()


def test_an_unreachable_source_is_named(env: Any) -> None:
    with pytest.raises(TransportError) as exc:
        env.sync("http://127.0.0.1:9")
    assert "127.0.0.1:9" in exc.value.what


def test_a_failed_append_is_rolled_back(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env.local.parent.mkdir(parents=True)
    env.local.write_bytes(b"")
    real_write = os.write

    def full_disk(fd: int, data: Any) -> int:
        if len(data) > 100:
            real_write(fd, bytes(data[:50]))  # part of it reached the file
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StoreError) as exc:
        env.sync(env.mirror.url)
    assert "rolled back" in (exc.value.why or "")
    assert env.local.read_bytes() == b""
    assert env.trust.recall(env.local) is None


def test_registry_protocol_http_answers(env: Any) -> None:
    import http.client

    gw = env.mirror.gw
    host, port = gw._server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)

    def get(path: str) -> tuple[int, bytes, Any]:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read(), r

    code, body, _ = get("/registry/v1/head")
    head = json.loads(body)
    assert code == 200 and head["size"] == 4 and head["checkpoint_at"] == 4
    code, body, r = get("/registry/v1/lines?after=1&limit=2")
    assert code == 200 and r.getheader("X-Registry-Count") == "2"
    assert body == b"".join(x + b"\n" for x in env.p.lines()[1:3])
    assert get("/registry/v1/lines?after=9")[0] == 400
    assert get("/registry/v1/proof?old=3&new=2")[0] == 400
    assert get("/registry/v1/nope")[0] == 404
    assert get("/registry/v1/lines?after=x")[0] == 400
    code, body, _ = get("/registry/v1/proof?old=1&new=3")
    assert code == 200 and len(json.loads(body)["hashes"]) >= 1


# --- resolve reads only the manifest's blocks ---------------------------------------------------


def test_fetching_store_brings_only_the_manifest_path(env: Any, tmp_path: Path) -> None:
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.cid import parse_cid
    from cheng_build.pkg.fetch.blocks import walk
    from cheng_build.pkg.remote.blocks import FetchingStore
    from cheng_build.pkg.resolve import store_manifest_reader

    src = tmp_path / "pkg"
    (src / "src").mkdir(parents=True)
    (src / "cheng-package.toml").write_text('package_id = "pkg://cheng/big"\nversion = "1.0.0"\n')
    (src / "src" / "a.cheng").write_text("fn a(): int32 = 1\n")
    (src / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    e = env.p.publish("pkg://cheng/big", "node:alice", 1, src=src)
    total = sum(1 for _ in walk(env.p.store, bytes(parse_cid(str(e.cid)))))
    empty = Blockstore(tmp_path / "empty")
    with FetchingStore(empty, [], [env.mirror.url]) as fs:
        raw, name = store_manifest_reader(fs)("pkg://cheng/big", str(e.cid), "dag")  # type: ignore[misc]
        assert name == "cheng-package.toml" and b"pkg://cheng/big" in raw
        assert 1 <= fs.fetched <= 2 < total  # the root directory and the manifest file only
        fetched = fs.fetched
        store_manifest_reader(fs)("pkg://cheng/big", str(e.cid), "dag")
        assert fs.fetched == fetched  # stored: never asked for again


def test_sync_cli_bad_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from cheng_build.cli.registry import main

    monkeypatch.delenv("PKG_REGISTRY_FROM", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["sync", f"--registry:{tmp_path / 'r.jsonl'}"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "sync: no source to sync from"
    assert main(["sync", "--from:not-an-address", f"--registry:{tmp_path / 'r.jsonl'}"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "sync: bad registry source 'not-an-address'"
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--help"])
    assert exc.value.code == 0 and "registry forked" in capsys.readouterr().out


def test_cheng_pkg_resolve_syncs_first_and_reads_manifests_over_http(
        env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An empty machine: ``cheng-pkg resolve`` with only a mirror's URL (L0: HTTP allowed)."""
    from cheng_build.cli.pkg import main

    for name, dep in (("r", ""), ("q", '[[dependencies]]\npackage_id = "pkg://cheng/r"\n'
                                        'channel = "edge"\n')):
        src = tmp_path / name
        src.mkdir()
        (src / "cheng-package.toml").write_text(f'package_id = "pkg://cheng/{name}"\n'
                                                f'version = "1.0.0"\n{dep}')
        (src / f"{name}.cheng").write_text("fn q(): int32 = 1\n")
        env.p.publish(f"pkg://cheng/{name}", "node:alice", 1, src=src)
    append_checkpoint(env.p.registry, env.op, ttl_s=3600)
    app = tmp_path / "app"
    app.mkdir()
    (app / "cheng-package.toml").write_text(
        'package_id = "pkg://cheng/app"\n[[dependencies]]\npackage_id = "pkg://cheng/q"\n'
        'channel = "edge"\n')
    for k in [k for k in os.environ if k.startswith("PKG_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(app)
    monkeypatch.setenv("PKG_REGISTRY_FROM", env.mirror.url)
    monkeypatch.setenv("PKG_OPERATOR_KEY", env.op.pub_key)
    monkeypatch.setenv("PKG_LEVEL", "L0")
    monkeypatch.setenv("PKG_TRUST_DIR", str(tmp_path / "trust"))
    monkeypatch.setenv("PKG_CACHE", str(tmp_path / "cache"))
    reg = tmp_path / "reg.jsonl"
    assert main(["resolve", "--manifest:cheng-package.toml", f"--registry:{reg}"]) == 0
    out = capsys.readouterr().out
    assert 'package_id = "pkg://cheng/r"' in out  # q's own dependency: q's manifest was read
    assert reg.read_bytes() == env.p.registry.read_bytes()
