"""Storage proofs: codec properties, a cheater's detection rate against the math, and libp2p end to end."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from helpers_packstore import drop_block
from helpers_storage import IO_VARS, StorageNode
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cas.cid import RAW, cid_str, parse_cid
from cheng_build.cas.importer import add_bytes
from cheng_build.cas.walk import walk_dag
from cheng_build.cli.storage import main
from cheng_build.ledger.log import iter_events
from cheng_build.storage import proof as P
from cheng_build.storage.store import open_root


@pytest.fixture(autouse=True)
def _no_io_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in IO_VARS:
        monkeypatch.delenv(var, raising=False)


def _store_with_file(root: Path, leaves: int, leaf: int = 1024, seed: int = 0):  # type: ignore[no-untyped-def]
    store = open_root(root, create=True)
    data = random.Random(seed).randbytes(leaves * leaf)
    cid = add_bytes(store, data, chunker=f"size-{leaf}")
    return store, cid


def test_honest_provider_always_passes(tmp_path: Path) -> None:
    store, root = _store_with_file(tmp_path / "r", 300)  # two levels: 174 + 126 leaves
    for i in range(40):
        req = P.Request(root, f"seed-{i}".encode(), 8)
        v = P.verify(req, P.encode_response(P.prove(store.get, req)))
        assert v.ok and v.passed == 8, v.reason
    # a directory DAG too
    d = tmp_path / "tree"
    (d / "a").mkdir(parents=True)
    (d / "a" / "x").write_bytes(random.Random(1).randbytes(50_000))
    (d / "y").write_bytes(b"small")
    from cheng_build.cas.importer import add_path

    droot = add_path(store, d, chunker="size-4096")
    req = P.Request(droot, b"s", 16)
    assert P.verify(req, P.encode_response(P.prove(store.get, req))).ok


def test_missing_fraction_fails_as_predicted(tmp_path: Path) -> None:
    """A provider holding a fraction 1-f of equal leaves passes k challenges w.p. (1-f)^k."""
    store, root = _store_with_file(tmp_path / "r", 64)
    leaves = sorted(cid_str(c) for c in walk_dag(store.get, root) if c.codec.code == RAW)
    assert len(leaves) == 64
    rnd = random.Random(7)
    f, k, trials = 0.25, 4, 600
    for name in rnd.sample(leaves, int(f * 64)):  # the cheater deleted 16 of 64 leaves
        drop_block(store, parse_cid(name))
    passed = 0
    for t in range(trials):
        req = P.Request(root, f"epoch-{t}".encode(), k)
        v = P.verify(req, P.encode_response(P.prove(store.get, req)))
        passed += v.ok
        if not v.ok:
            assert "block missing" in v.reason
    p = (1 - f) ** k
    sigma = math.sqrt(p * (1 - p) / trials)
    assert abs(passed / trials - p) < 4 * sigma, (passed / trials, p)


def _forge(store, root, mutate):  # type: ignore[no-untyped-def]
    req = P.Request(root, b"x", 4)
    resp = P.prove(store.get, req)
    return req, P.encode_response(mutate(resp))


def test_wrong_block_wrong_path_none(tmp_path: Path) -> None:
    store, root = _store_with_file(tmp_path / "r", 20)

    def flip(r: P.Response) -> P.Response:
        return P.Response(r.status, (r.blocks[0], *(b[:-1] + b"\x00" for b in r.blocks[1:])), r.paths)

    req, data = _forge(store, root, flip)
    v = P.verify(req, data)
    assert not v.ok and "wrong block" in v.reason
    req, data = _forge(store, root, lambda r: P.Response(r.status, r.blocks,
                                                         tuple(tuple(reversed(p)) for p in r.paths)))
    assert not P.verify(req, data).ok
    req, data = _forge(store, root, lambda r: P.Response(r.status, r.blocks, tuple((0,) for _ in r.paths)))
    v = P.verify(req, data)
    assert not v.ok and "above the challenged leaf" in v.reason
    assert P.verify(req, None).reason == "no answer (timeout)"
    assert not P.verify(req, b"\x01\x00").ok


# --- codec properties --------------------------------------------------------------------------


@given(st.binary(max_size=400))
@settings(max_examples=400)
def test_decoders_raise_only_format_error(data: bytes) -> None:
    for dec in (P.decode_request, P.decode_response):
        try:
            dec(data)
        except P.ProofFormatError:
            pass


@given(st.lists(st.binary(max_size=50), max_size=5), st.data())
@settings(max_examples=200)
def test_response_round_trip(blocks: list[bytes], data: st.DataObject) -> None:
    n = len(blocks)
    paths = data.draw(st.lists(st.lists(st.integers(0, max(n - 1, 0)), max_size=5 if n else 0),
                               max_size=5))
    resp = P.Response(0, tuple(blocks), tuple(tuple(p) for p in paths))
    assert P.decode_response(P.encode_response(resp)) == resp


@given(st.binary(max_size=64), st.integers(1, P.MAX_K))
def test_request_round_trip(seed: bytes, k: int) -> None:
    from cheng_build.cas.cid import make_cid

    req = P.Request(make_cid(seed, "raw"), seed, k)
    assert P.decode_request(P.encode_request(req)) == req


# --- over libp2p, through the CLI ---------------------------------------------------------------


@pytest.mark.network
def test_proof_over_libp2p_honest_then_cheating(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    provider = tmp_path / "provider"
    store, root = _store_with_file(provider, 40, leaf=4096)
    verifier = f"--root:{tmp_path / 'verifier'}"
    node = StorageNode(provider)
    try:
        rc = main(["proof", f"--cid:cid://{root}", "--provider:node:store-1", f"--peer:{node.addr}",
                   "--challenges:16", "--epoch:3", verifier])
        out, err = capsys.readouterr()
        assert rc == 0 and out.startswith("proof ok: proof-"), err
        # p2p read from the same node (free: no lease), then the provider loses half its leaves
        rc = main(["get", f"--cid:{root}", f"--out:{tmp_path / 'copy'}", "--mode:p2p",
                   f"--peer:{node.addr}", verifier])
        out, err = capsys.readouterr()
        assert rc == 0 and out.startswith("get ok:"), err
        leaves = [c for c in walk_dag(store.get, root) if c.codec.code == RAW]
        for c in leaves[::2]:
            drop_block(store, c)
        rc = main(["proof", f"--cid:{root}", "--provider:node:store-1", f"--peer:{node.addr}",
                   "--challenges:16", "--seed:round-2", verifier])
        out, err = capsys.readouterr()
        assert rc == 1 and out == ""
        assert err.splitlines()[0].startswith("proof: proof failed: challenge")
    finally:
        node.stop()
    events = list(iter_events(tmp_path / "verifier" / "ledger.jsonl"))
    proofs = [e for e in events if e["type"] == "storage_proof"]
    assert [e["status"] for e in proofs] == ["ok", "missing"]
    assert proofs[0]["epoch"] == 3 and proofs[1]["penalty"] == 100_000_000
    assert proofs[1]["seed"] == b"round-2".hex() and proofs[1]["passed"] < 16
    rc = main(["store-repute", "--provider:node:store-1", verifier, "--compat"])
    out = capsys.readouterr().out
    assert json.loads(out) == {"provider_id": "node:store-1", "proof_ok_count": 1,
                               "proof_missing_count": 1, "score": 0.5, "level": "warn"}


@pytest.mark.network
def test_unanswered_challenge_is_a_failed_proof(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A node that speaks libp2p but not the proof protocol (cheng-pkg serve) cannot prove."""
    from helpers_net import Provider

    provider = tmp_path / "cache"
    _, root = _store_with_file(provider, 4)
    node = Provider(provider)
    try:
        rc = main(["proof", f"--cid:{root}", "--provider:node:x", f"--peer:{node.p2p}",
                   f"--root:{tmp_path / 'v'}", "--timeout:20"])
        _, err = capsys.readouterr()
    finally:
        node.stop()
    assert rc == 1 and "does not answer storage proofs" in err.splitlines()[0]
    [ev] = list(iter_events(tmp_path / "v" / "ledger.jsonl"))
    assert ev["status"] == "missing" and ev["penalty"] == 100_000_000
    assert "does not answer storage proofs" in str(ev["reason"])


@pytest.mark.network
def test_silent_provider_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers_storage import SilentNode

    provider = tmp_path / "p"
    _, root = _store_with_file(provider, 4)
    node = SilentNode(provider)
    try:
        rc = main(["proof", f"--cid:{root}", "--provider:node:slow", f"--peer:{node.addr}",
                   f"--root:{tmp_path / 'v'}", "--timeout:3"])
        _, err = capsys.readouterr()
    finally:
        node.stop()
    assert rc == 1 and err.splitlines()[0] == "proof: proof failed: no answer (timeout)"
    [ev] = list(iter_events(tmp_path / "v" / "ledger.jsonl"))
    assert ev["status"] == "missing" and ev["reason"] == "no answer (timeout)"
