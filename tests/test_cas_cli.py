"""``cheng-pkg add/cat/get/ls/car/gc`` end to end through the real dispatcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_packstore import tamper_block

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.cli.pkg import main

REPO = Path(__file__).resolve().parents[1]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    d = tmp_path / "pkg"
    (d / "src").mkdir(parents=True)
    (d / "src" / "main.cheng").write_text("fn main() {}\n")
    (d / "README").write_text("readme\n")
    (d / "build").mkdir()
    (d / "build" / "junk").write_text("x")
    return d


def test_add_ls_cat_get_round_trip(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = f"--pkg-cache:{tmp_path / 'cache'}"
    rc, out, err = cli(capsys, "add", str(tree), cache)
    assert rc == 0 and err == ""
    root = out.strip().splitlines()[-1]
    assert root.startswith("bafybei")
    rc, out, _ = cli(capsys, "ls", root, cache, "--format:json")
    assert [e["name"] for e in json.loads(out)] == ["README", "build", "src"]
    rc, out, _ = cli(capsys, "cat", f"{root}/src/main.cheng", cache)
    assert rc == 0 and out == "fn main() {}\n"
    rc, out, _ = cli(capsys, "get", root, cache, f"--out:{tmp_path / 'copy'}")
    assert rc == 0 and (tmp_path / "copy" / "src" / "main.cheng").read_text() == "fn main() {}\n"
    rc, snap, _ = cli(capsys, "add", str(tree), "--snapshot", "--only-hash")
    assert snap.strip() != root


def test_car_and_gc(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = f"--pkg-cache:{tmp_path / 'a'}", f"--pkg-cache:{tmp_path / 'b'}"
    root = cli(capsys, "add", str(tree), a)[1].strip()
    (tmp_path / "loose").write_bytes(b"not in the tree")
    loose = cli(capsys, "add", str(tmp_path / "loose"), a, "--no-pin")[1].strip()
    rc, out, _ = cli(capsys, "car", "export", root, a, f"--out:{tmp_path / 'x.car'}")
    assert rc == 0 and "blocks" in out
    rc, out, _ = cli(capsys, "car", "import", str(tmp_path / "x.car"), b)
    assert rc == 0 and out.strip() == root
    rc, out, _ = cli(capsys, "gc", a, "--format:json")
    assert rc == 0 and json.loads(out)["removed"] == 1
    assert cli(capsys, "cat", loose, a)[0] == 1  # gone
    assert cli(capsys, "cat", f"{root}/README", a)[0] == 0  # pinned, kept
    rc, out, _ = cli(capsys, "cat", f"{root}/README", b)
    assert out == "readme\n"


@pytest.mark.parametrize("argv,first,code", [
    (["add", "/no/such/x"], "add: no such file: /no/such/x", 2),
    (["cat", "bafyxx"], "cat: not a valid CID: 'bafyxx'", 2),
    (["add", ".", "--chunker:rabin"], "add: unknown chunker 'rabin'", 2),
    (["cat", "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"],
     "cat: block bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq is not in the store", 1),
    (["car", "export", "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"],
     "car: car export needs --out:<file>", 2),
])
def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], first: str,
                code: int) -> None:
    rc, _, err = cli(capsys, *argv, f"--pkg-cache:{tmp_path}")
    assert rc == code
    assert err.splitlines()[0] == first
    assert "Traceback" not in err


def test_corrupt_block_names_cid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "f"
    f.write_bytes(os.urandom(1000))
    cache = f"--pkg-cache:{tmp_path / 'c'}"
    cid = cli(capsys, "add", str(f), cache)[1].strip()
    tamper_block(Blockstore(tmp_path / "c"), parse_cid(cid), b"\x00" * 1000)
    rc, _, err = cli(capsys, "cat", cid, cache)
    assert rc == 1 and err.splitlines()[0] == f"cat: block {cid} is corrupt"


def test_piped_add_prints_only_the_cid(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PKG_CACHE": str(tmp_path / "c")}
    res = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", "add", str(f)],
                         capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq\n"
    assert (tmp_path / "c" / "index.sqlite").is_file()
