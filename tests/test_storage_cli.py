"""``cheng-storage`` init/put/put-text/get/cat/lease/leasegen end to end, with every token attack.

Each attack runs through the CLI and checks the one-line error, exit 1, and that nothing at all was
written (no block, no lease record, no ledger line).
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from helpers_storage import IO_VARS, Keys, tree_snapshot

from cheng_build.cli.storage import main
from cheng_build.ledger.log import iter_events, verify_ledger
from cheng_build.ledger.money import read_money
from cheng_build.storage.store import legacy_cid

HELLO = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


@pytest.fixture(autouse=True)
def _no_io_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in IO_VARS:
        monkeypatch.delenv(var, raising=False)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def test_init_put_cat_get(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    rc, out, _ = cli(capsys, "init", f"--root:{root}", "--mode:local")
    assert rc == 0 and out.splitlines() == [f"storage ok: {root}", f"blocks: {root}/blocks", "mode: local"]
    rc, out, _ = cli(capsys, "put-text", "--text:hello", f"--root:{root}")
    assert rc == 0 and out == HELLO + "\n"
    for ref in (HELLO, f"cid://{HELLO}", f"cid:{HELLO}"):
        rc, out, _ = cli(capsys, "cat", f"--cid:{ref}", f"--root={root}")
        assert rc == 0 and out == "hello\n"
    rc, out, _ = cli(capsys, "cat", "--path", HELLO, "--raw", "--root", str(root))
    assert out == "hello"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("A")
    (tree / "b.bin").write_bytes(os.urandom(700_000))
    rc, out, _ = cli(capsys, "put", f"--file:{tree}", f"--root:{root}")
    dcid = out.strip()
    assert rc == 0 and dcid.startswith("bafybei")
    rc, out, _ = cli(capsys, "cat", f"--cid:cid://{dcid}/sub/a.txt", f"--root:{root}")
    assert out == "A\n"
    rc, out, _ = cli(capsys, "get", f"--cid:{dcid}", f"--out:{tmp_path / 'copy'}", f"--root:{root}")
    assert rc == 0 and out == f"get ok: {tmp_path / 'copy'}\n"
    assert (tmp_path / "copy" / "b.bin").read_bytes() == (tree / "b.bin").read_bytes()
    # unleased local puts are pinned (nothing else would protect them from gc)
    assert {p.name for p in (root / "pins").iterdir()} == {HELLO, dcid}


def test_put_text_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = f"--root:{tmp_path / 'r'}"
    (tmp_path / "t.txt").write_bytes(b"hello")
    assert cli(capsys, "put-text", f"--file:{tmp_path / 't.txt'}", root)[1] == HELLO + "\n"
    assert cli(capsys, "put-text", f"--in:{tmp_path / 't.txt'}", root)[1] == HELLO + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"hello")))
    assert cli(capsys, "put-text", "--stdin", root)[1] == HELLO + "\n"
    rc, _, err = cli(capsys, "put-text", "--text:a", "--stdin", root)
    assert rc == 2 and err.startswith("put-text: give exactly one of")


def test_legacy_flat_store_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    (root / "blocks").mkdir(parents=True)
    data = os.urandom(400_000)  # larger than a chunk: the original kept whole objects
    cid = str(legacy_cid(data))
    (root / "blocks" / cid).write_bytes(data)
    rc, _, _ = cli(capsys, "get", f"--cid:cid://{cid}", f"--out:{tmp_path / 'o'}", f"--root:{root}")
    assert rc == 0 and (tmp_path / "o").read_bytes() == data
    (root / "blocks" / cid).write_bytes(data[:-1] + b"!")
    rc, _, err = cli(capsys, "cat", f"--cid:{cid}", f"--root:{root}")
    assert rc == 1 and err.startswith(f"cat: legacy object {cid} is corrupt")


def test_bad_read_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    cli(capsys, "init", f"--root:{root}")
    rc, _, err = cli(capsys, "get", f"--root:{root}", "--out:x")
    assert rc == 2 and err.splitlines()[0] == "get: missing cid"
    rc, _, err = cli(capsys, "cat", "--cid:cid://nope", f"--root:{root}")
    assert rc == 2 and err.splitlines()[0] == "cat: not a valid CID: 'cid://nope'"
    rc, _, err = cli(capsys, "cat", f"--cid:{HELLO}", f"--root:{root}")
    assert rc == 1 and err.splitlines()[0].startswith(f"cat: {HELLO} is not in")
    rc, _, err = cli(capsys, "cat", f"--cid:{HELLO}", f"--root:{tmp_path / 'none'}")
    assert rc == 2 and "does not exist" in err.splitlines()[0]
    assert "Traceback" not in err


def _leasegen(capsys: pytest.CaptureFixture[str], keys: Keys, out: Path, *extra: str,
              signer: str = "alice") -> str:
    rc, o, err = cli(capsys, "leasegen", "--package:pkg://cheng/demo", "--author:node:alice",
                     "--provider:node:store-1", "--bytes:1048576", "--days:30", "--replicas:1",
                     "--price:0.25", "--royalty:0.12", "--treasury:0.03",
                     f"--priv:{keys.files[signer]}", f"--out:{out}", f"--root:{keys.root / 'r'}", *extra)
    assert rc == 0, err
    return o


def test_leased_put_records_the_lease(keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    root = keys.root / "r"
    tok = keys.root / "tok.json"
    _leasegen(capsys, keys, tok)
    rc, out, err = cli(capsys, "put-text", "--text:hello lease", f"--lease:{tok}", "--mode:p2p",
                       f"--registry:{keys.registry}", f"--root:{root}", "--epoch:4")
    assert rc == 0, err
    cid = out.strip()
    [ev] = list(iter_events(root / "ledger.jsonl"))
    assert ev["type"] == "lease" and ev["cid"] == cid and ev["epoch"] == 4
    assert (read_money(ev, "storage_cost"), read_money(ev, "royalty"), read_money(ev, "treasury"),
            read_money(ev, "provider")) == (244141, 29297, 7324, 207520)
    assert list(ev)[:17] == ["type", "mode", "lease_id", "package_id", "author_id", "provider_id",
                             "bytes", "duration_days", "replicas", "price_per_gb_month",
                             "royalty_rate", "treasury_rate", "start_ts", "storage_cost", "royalty",
                             "treasury", "provider"]
    rec = json.loads((root / "leases" / f"{ev['lease_id']}.json").read_text())
    assert rec["status"] == "pinned" and rec["cid"] == cid
    assert not (root / "pins").exists() or not any((root / "pins").iterdir())
    assert verify_ledger(root / "ledger.jsonl").ok


def _attack(keys: Keys, capsys: pytest.CaptureFixture[str], tok: Path, *extra: str,
            text: str = "hello lease") -> str:
    root = keys.root / "r"
    before = tree_snapshot(root)
    rc, out, err = cli(capsys, "put-text", f"--text:{text}", f"--lease:{tok}", "--mode:p2p",
                       f"--registry:{keys.registry}", f"--root:{root}", *extra)
    assert rc == 1 and out == "", err
    assert "Traceback" not in err
    assert tree_snapshot(root) == before, "a refused write left something behind"
    return err.splitlines()[0]


def test_token_attacks_write_nothing(keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    root = keys.root / "r"
    tok = keys.root / "tok.json"
    _leasegen(capsys, keys, tok)
    good = json.loads(tok.read_text())
    # edited price
    (keys.root / "price.json").write_text(json.dumps(dict(good, price_per_gb_month=1)))
    assert "does not verify" in _attack(keys, capsys, keys.root / "price.json")
    # truncated
    (keys.root / "trunc.json").write_text(tok.read_text()[:-20])
    assert _attack(keys, capsys, keys.root / "trunc.json") == "put-text: token is not valid JSON"
    # foreign key: mallory's key, labelled as alice's
    from cheng_build.trust.keys import KeyPair, write_keyfile

    fake = keys.root / "fake.key"
    write_keyfile(KeyPair("node:alice", keys.mallory.seed, keys.mallory.public), fake)
    keys.files["fake"] = fake
    _leasegen(capsys, keys, keys.root / "foreign.json", signer="fake")
    assert _attack(keys, capsys, keys.root / "foreign.json") == \
        "put-text: lease token key is not registered to node:alice"
    # wrong CID
    (keys.root / "content.txt").write_text("the paid content")
    _leasegen(capsys, keys, keys.root / "bound.json", f"--file:{keys.root / 'content.txt'}")
    assert _attack(keys, capsys, keys.root / "bound.json", text="other").startswith(
        "put-text: lease token is for ")
    # expired: issued a day ago for one hour
    from cheng_build.storage.token import issue, token_json

    old = issue(keys.alice, package_id="pkg://cheng/demo", author_id="node:alice",
                provider_id="node:store-1", nbytes=1 << 20, duration_days=1, replicas=1,
                price_per_gb_month=1, royalty_rate=0, treasury_rate=0, now=int(time.time()) - 86400,
                expires_ts=int(time.time()) - 82800)
    (keys.root / "short.json").write_text(token_json(old))
    assert _attack(keys, capsys, keys.root / "short.json").startswith("put-text: lease token expired")
    # too many bytes
    _leasegen(capsys, keys, keys.root / "small.json", "--bytes:3", "--file:" + str(keys.root / "content.txt"))
    assert _attack(keys, capsys, keys.root / "small.json", text="the paid content") == \
        "put-text: lease: bytes insufficient"
    # replay: a good token works once
    rc, _, err = cli(capsys, "put-text", "--text:hello lease", f"--lease:{tok}", "--mode:p2p",
                     f"--registry:{keys.registry}", f"--root:{root}")
    assert rc == 0, err
    assert _attack(keys, capsys, tok, text="another write").startswith("put-text: lease token already used")
    # a missing token file is a usage problem
    rc, _, err = cli(capsys, "put-text", "--text:x", f"--lease:{keys.root / 'nope.json'}", f"--root:{root}")
    assert rc == 2 and "not found" in err.splitlines()[0]


def test_v1_token_only_in_compat(keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    tok = keys.root / "v1.json"
    _leasegen(capsys, keys, tok, "--token-version:1")
    assert _attack(keys, capsys, tok) == "put-text: v1 lease token refused"
    rc, out, err = cli(capsys, "put-text", "--text:hello", f"--lease:{tok}", "--compat", "--mode:p2p",
                       f"--registry:{keys.registry}", f"--root:{keys.root / 'r'}")
    assert rc == 0 and out.strip() == HELLO, err
    assert _attack(keys, capsys, tok, "--compat").startswith("put-text: lease token already used")


def test_require_lease_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "r"
    cli(capsys, "init", f"--root:{root}")
    before = tree_snapshot(root)
    rc, _, err = cli(capsys, "put-text", "--text:x", "--mode:p2p", f"--root:{root}")
    assert rc == 1 and err.splitlines()[0] == "put-text: missing --lease"
    monkeypatch.setenv("IO_REQUIRE_LEASE", "yes")
    monkeypatch.setenv("IO_MODE", "p2p")
    rc, _, err = cli(capsys, "put-text", "--text:x", "--no-lease", f"--root:{root}")
    assert rc == 1 and err.splitlines()[0] == "put-text: lease required"
    assert tree_snapshot(root) == before
    # local mode: IO_REQUIRE_LEASE does not apply (as the original's backend)
    rc, _, _ = cli(capsys, "put-text", "--text:x", "--mode:local", f"--root:{root}")
    assert rc == 0


def test_lease_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    cid = cli(capsys, "put-text", "--text:hello", f"--root:{root}")[1].strip()
    args = ["--package:pkg://cheng/fs", "--author:node:alice", "--provider:node:store-1",
            "--bytes:1048576", "--price:0.25", "--royalty:0.12", "--treasury:0.03", f"--root:{root}"]
    rc, out, _ = cli(capsys, "lease", *args)
    assert rc == 0 and out.startswith("lease ok: lease-b")
    rc, out, _ = cli(capsys, "lease", *args, f"--cid:cid:{cid}", "--epoch:2", "--format:json")
    res = json.loads(out)
    assert res["status"] == "pinned" and res["event"]["epoch"] == 2
    missing = "bafkreiejt3fioeno5st2phz4c3pucc65zfvgm3s3xxlx56bl7sua4bnosu"
    rc, out, _ = cli(capsys, "lease", *args, f"--cid:{missing}")
    assert rc == 0 and out.splitlines()[1] == "status: queued"
    rc, out, _ = cli(capsys, "lease", *args, "--legacy-ids", "--format:json")
    assert json.loads(out)["lease_id"].startswith("lease-bafkrei")
    events = list(iter_events(root / "ledger.jsonl"))
    assert len({e["lease_id"] for e in events}) == 4
    rc, _, err = cli(capsys, "lease", "--author:a", f"--root:{root}")
    assert rc == 2 and err.splitlines()[0] == "lease: missing --package, --provider"
    rc, _, err = cli(capsys, "lease", *args, "--price:abc")
    assert rc == 2 and err.splitlines()[0] == "lease: --price 'abc' is not a decimal number"


def test_import_legacy_flat_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    (root / "blocks").mkdir(parents=True)
    small, big = b"hello", os.urandom(700_000)
    bad = b"tampered"
    for data in (small, big):
        (root / "blocks" / str(legacy_cid(data))).write_bytes(data)
    bad_name = str(legacy_cid(b"original"))
    (root / "blocks" / bad_name).write_bytes(bad)
    rc, out, err = cli(capsys, "import-legacy", f"--root:{root}", "--format:json")
    assert rc == 1 and err.splitlines()[0] == f"import-legacy: 1 legacy objects are corrupt: {bad_name}"
    res = json.loads(out)
    assert res["imported"][HELLO] == HELLO  # one chunk: the same CID in both stores
    big_old = str(legacy_cid(big))
    assert res["imported"][big_old].startswith("bafybei")
    assert not (root / "blocks" / big_old).exists() and (root / "blocks" / bad_name).exists()
    # the old CIDs still read (the big one through legacy-map.json), and gc keeps them (pinned)
    assert main(["gc", f"--root:{root}"]) == 0
    rc, _, _ = cli(capsys, "get", f"--cid:{big_old}", f"--out:{tmp_path / 'big'}", f"--root:{root}")
    assert rc == 0 and (tmp_path / "big").read_bytes() == big
    rc, out, _ = cli(capsys, "cat", f"--cid:cid://{HELLO}", f"--root:{root}", "--raw")
    assert out == "hello"


@pytest.mark.parametrize("damage", ["torn", "edited"])
def test_leased_put_refuses_a_damaged_ledger(keys: Keys, capsys: pytest.CaptureFixture[str],
                                             damage: str) -> None:
    root = keys.root / "r"
    tok = keys.root / "tok.json"
    cli(capsys, "lease", "--package:p", "--author:a", "--provider:b", "--bytes:5", f"--root:{root}")
    cli(capsys, "lease", "--package:p", "--author:a", "--provider:b", "--bytes:6", f"--root:{root}")
    ledger = root / "ledger.jsonl"
    if damage == "torn":
        with open(ledger, "ab") as fh:
            fh.write(b'{"type":"lea')
    else:
        ledger.write_bytes(ledger.read_bytes().replace(b'"bytes":5', b'"bytes":9'))
    _leasegen(capsys, keys, tok)
    first = _attack(keys, capsys, tok)
    assert first.startswith(f"put-text: {ledger}: line ")
    assert ("torn" in first) if damage == "torn" else ("chain broken" in first)
