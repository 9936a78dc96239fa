"""SimHash originality: tokenizer abstraction, copy detection at publish, search folding."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers_registry import World, sample_source
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.pkg import originality
from cheng_build.pkg.search import search
from cheng_build.trust.registry_log import RegistryLog

SRC = '''import std/strutils
import cheng/libp2p/main as libp2p

# Probe a host.
fn p2pProbe(listenAddr: str): bool =
    let hostRes = libp2p.newHostWithAddressText(listenAddr, 4001, "x")
    if result.IsErr(hostRes):
        return false
    var host = result.Value(hostRes)  // keep it
    libp2p.hostStop(host)
    return true
'''


def rename_and_recomment(src: str) -> str:
    """What a plagiarist does: new names, new comments, new constants."""
    out = re.sub(r"#.*", "# totally original work", src)
    out = out.replace("//", "# ").replace("p2pProbe", "checkPeer").replace("listenAddr", "a")
    out = out.replace("hostRes", "r").replace("host", "h").replace("4001", "99")
    return out.replace('"x"', '"different"')


def test_tokenizer_abstracts_names_comments_literals() -> None:
    toks = originality.tokenize(SRC)
    assert toks == originality.tokenize(rename_and_recomment(SRC))
    assert "std" not in " ".join(toks)  # std imports dropped
    assert toks[:2] == ["import", "ID"] and "INDENT" in toks and "DEDENT" in toks
    assert toks.count("STR") == 1 and "fn" in toks and "return" in toks


def test_tokenizer_literal_kinds() -> None:
    src = ('let a = r"raw\\" \nlet b = f"{x}"\nlet c = """multi\nline"""\n'
           "let d = 'c'\nlet e = 0x1F'u8 + 1_000.5e3")
    toks = originality.tokenize(src)
    assert toks.count("STR") == 3 and toks.count("CHR") == 1 and toks.count("NUM") == 2


@settings(deadline=None)  # shared CI machines: timing is not what these test
@given(st.text(max_size=300))
def test_tokenizer_never_raises(text: str) -> None:
    toks = originality.tokenize(text)
    assert all(isinstance(t, str) and t for t in toks)


def test_fingerprint_stable_under_renaming_and_far_for_other_code() -> None:
    a = originality.fingerprint({"src/a.cheng": SRC})
    b = originality.fingerprint({"src/a.cheng": rename_and_recomment(SRC)})
    c = originality.fingerprint({"src/a.cheng": sample_source("unrelated", 3)})
    assert a is not None and b is not None and c is not None
    assert originality.hamming(a.simhash, b.simhash) == 0
    assert originality.hamming(a.simhash, c.simhash) > originality.COPY_DISTANCE
    assert originality.fingerprint({"x.bin": b"\xff\xfe"}) is None


def test_copy_detection_at_publish(tmp_path: Path) -> None:
    w = World(tmp_path)
    orig = w.publish("pkg://cheng/net", "node:alice", 1, body=SRC)
    assert orig.originality_score == 1.0 and "similar_to" not in orig.data
    copy = w.publish("pkg://cheng/net2", "node:mallory", 1, body=rename_and_recomment(SRC))
    assert copy.originality_score == 0.0
    assert copy.data["similar_to"] == "pkg://cheng/net" and copy.data["similar_line"] == 1
    other = w.publish("pkg://cheng/other", "node:bob", 1, body=sample_source("other"))
    assert other.originality_score == 1.0
    # Versions of the same package never compete; the original stays original even though a
    # copy of it now exists.
    again = w.publish("pkg://cheng/net", "node:alice", 2, body=SRC)
    assert again.originality_score == 1.0
    # The copy's verdict is signed: the lock can check it.
    assert copy.lock_fields()["originality_score"] == 0.0
    hits = search(RegistryLog.load(w.registry), "net")
    assert [h.package_id for h in hits] == ["pkg://cheng/net"]
    assert [c.package_id for c in hits[0].copies] == ["pkg://cheng/net2"]
    everything = search(RegistryLog.load(w.registry))
    assert [h.package_id for h in everything] == ["pkg://cheng/net", "pkg://cheng/other"]


def test_search_cli_folds_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from cheng_build.cli.pkg import main

    w = World(tmp_path)
    w.publish("pkg://cheng/net", "node:alice", 1, body=SRC)
    w.publish("pkg://cheng/net2", "node:mallory", 1, body=rename_and_recomment(SRC))
    monkeypatch.setenv("PKG_TRUST_DIR", str(w.trust))
    assert main(["search", "net", f"--registry:{w.registry}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("pkg://cheng/net  edge@1") and "1 high-similarity copy hidden" in out[1]
    assert main(["search", "net", "--show-copies", f"--registry:{w.registry}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].strip().startswith("pkg://cheng/net2") and "copy of pkg://cheng/net" in out[1]


def test_search_judges_lines_without_a_verdict(tmp_path: Path) -> None:
    """Lines of older tooling carry a fingerprint but no verdict: the native kernel decides."""
    import json

    def line(pkg: str, fp: int) -> bytes:
        return json.dumps({"type": "publish", "package_id": pkg, "author_id": "node:x",
                           "channel": "edge", "epoch": 1, "cid": "bafkreixyz", "format": "tar",
                           "ast_simhash64": f"{fp:016x}", "signature": "local:x"}).encode()

    base = 0x0123456789ABCDEF
    data = b"".join(x + b"\n" for x in (line("pkg://cheng/orig", base),
                                        line("pkg://cheng/near", base ^ 0b111),  # 3 bits away
                                        line("pkg://cheng/far", base ^ 0xFFFF)))  # 16 bits away
    log = RegistryLog.from_bytes(data, tmp_path / "r.jsonl")
    hits = search(log)
    assert [h.package_id for h in hits] == ["pkg://cheng/orig", "pkg://cheng/far"]
    assert [c.package_id for c in hits[0].copies] == ["pkg://cheng/near"]
