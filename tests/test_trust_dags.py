"""Hostile DAGs against the commands that read them (issue 13, holes 10, 11, 12 and the extras).

Each DAG is built block by block with the real codecs and stored in a real blockstore (or CAR),
then the CLI is run on it: deep nesting (10), a small DAG expanding to gigabytes (11), a pinned
root that does not decode (12), names that forge ``ls`` lines, and ``car import`` of a FIFO.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from helpers_trust import Cli, tree_digest


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capfd)


def _store(cli: Cli):  # type: ignore[no-untyped-def]
    from cheng_build.cas.blockstore import Blockstore

    return Blockstore(cli.tmp / "chengcache")


def _node(store, links, data):  # type: ignore[no-untyped-def]
    from cheng_build.cas import dagpb, unixfs
    from cheng_build.cas.cid import make_cid

    raw = dagpb.encode(dagpb.PBNode(tuple(links), unixfs.encode(data)))
    cid = make_cid(raw, "dag-pb")
    store.put(cid, raw)
    return cid


def _leaf(store, body: bytes):  # type: ignore[no-untyped-def]
    from cheng_build.cas.cid import make_cid

    cid = make_cid(body)
    store.put(cid, body)
    return cid


def _deep_dirs(store, depth: int):  # type: ignore[no-untyped-def]
    from cheng_build.cas import dagpb, unixfs

    cid = _node(store, [dagpb.PBLink(_leaf(store, b"bottom\n"), "f", 7)],
                unixfs.Data(unixfs.NodeType.DIRECTORY))
    for _ in range(depth):
        cid = _node(store, [dagpb.PBLink(cid, "d", 1)], unixfs.Data(unixfs.NodeType.DIRECTORY))
    return cid


def _deep_file(store, depth: int):  # type: ignore[no-untyped-def]
    from cheng_build.cas import dagpb, unixfs

    cid = _leaf(store, b"x")
    for _ in range(depth):
        cid = _node(store, [dagpb.PBLink(cid, "", 1)],
                    unixfs.Data(unixfs.NodeType.FILE, filesize=1, blocksizes=(1,)))
    return cid


def test_deep_directories_are_refused_with_a_clear_error(cli: Cli) -> None:
    from cheng_build.cas.exporter import MAX_DEPTH

    with _store(cli).batch() as b:  # one fsync for all blocks
        cid = str(_deep_dirs(b, 1500))
    for argv in (("get", cid, "--out:out", "--pkg-cache:chengcache"),
                 ("checkout", f"--cid:{cid}", "--pkg-cache:chengcache")):
        rc, _, err = cli.pkg(*argv)
        assert rc == 1, err
        assert err.splitlines()[0] == (f"{argv[0]}: directory tree {cid} nests deeper than "
                                       f"{MAX_DEPTH} levels")
        assert "Traceback" not in err and "how:" in err
    assert not (cli.tmp / "out").exists()
    assert not (cli.tmp / "chengcache" / "packages" / cid).exists()
    # A deep but legitimate tree still works.
    ok = str(_deep_dirs(_store(cli), 100))
    rc, _, err = cli.pkg("get", ok, "--out:ok", "--pkg-cache:chengcache")
    assert rc == 0, err
    assert (cli.tmp / "ok" / Path(*["d"] * 100) / "f").read_bytes() == b"bottom\n"


def test_deep_file_dags_are_refused_by_cat_and_get(cli: Cli) -> None:
    from cheng_build.cas.exporter import MAX_DEPTH

    with _store(cli).batch() as b:
        cid = str(_deep_file(b, 3000))
        ok = str(_deep_file(b, 300))
    rc, out, err = cli.pkg("cat", cid, "--pkg-cache:chengcache")
    assert rc == 1 and err.splitlines()[0] == f"cat: file {cid} nests deeper than {MAX_DEPTH} levels"
    rc, _, err = cli.pkg("get", cid, "--out:f", "--pkg-cache:chengcache")
    assert rc == 1 and err.splitlines()[0] == f"get: file {cid} nests deeper than {MAX_DEPTH} levels"
    assert not (cli.tmp / "f").exists()
    rc, out, err = cli.pkg("cat", ok, "--pkg-cache:chengcache")
    assert rc == 0 and out == "x", err


def _bomb(cli: Cli) -> str:
    """One 1 MiB block, linked 80 times by a middle node, linked 60 times by the root: a CAR of
    ~1 MiB that declares a 4.7 GiB file."""
    from cheng_build.cas import dagpb, unixfs

    store = _store(cli)
    mib = 1 << 20
    leaf = _leaf(store, b"\0" * mib)
    mid = _node(store, [dagpb.PBLink(leaf, "", mib)] * 80,
                unixfs.Data(unixfs.NodeType.FILE, filesize=80 * mib, blocksizes=(mib,) * 80))
    root = _node(store, [dagpb.PBLink(mid, "", 80 * mib)] * 60,
                 unixfs.Data(unixfs.NodeType.FILE, filesize=4800 * mib,
                             blocksizes=(80 * mib,) * 60))
    top = _node(store, [dagpb.PBLink(root, "big.bin", 4800 * mib)],
                unixfs.Data(unixfs.NodeType.DIRECTORY))
    rc, _out, err = cli.pkg("car", "export", str(top), "--out:bomb.car", "--pkg-cache:chengcache")
    assert rc == 0, err
    assert (cli.tmp / "bomb.car").stat().st_size < 2 * mib
    return str(top)


def test_get_caps_what_a_dag_expands_to_before_writing(cli: Cli) -> None:
    cid = _bomb(cli)
    rc, _out, err = cli.pkg("car", "import", "bomb.car", "--pkg-cache:fresh")
    assert rc == 0, err
    for argv in (("get", cid, "--out:big", "--pkg-cache:fresh"),
                 ("checkout", f"--cid:{cid}", "--pkg-cache:fresh")):
        rc, _, err = cli.pkg(*argv)
        assert rc == 1, err
        assert err.splitlines()[0] == f"{argv[0]}: {cid} expands past the export limits"
        assert "--max-bytes" in err
    (cli.tmp / "cheng.lock.toml").write_text(
        'package_id = "pkg://cheng/app"\n\n[[dependencies]]\npackage_id = "pkg://cheng/bomb"\n'
        f'channel = "edge"\nepoch = 1\ncid = "{cid}"\nformat = "dag"\nauthor_id = "node:x"\n'
        'signature = "local:x"\n')
    rc, _, err = cli.pkg("fetch", "--lock:cheng.lock.toml", "--mode:local", "--pkg-cache:fresh")
    assert rc == 1 and err.splitlines()[0] == f"fetch: {cid} expands past the export limits"
    assert not (cli.tmp / "big").exists()
    assert tree_digest(cli.tmp / "fresh" / "packages") == {}
    # The cap is a flag: lowered, a small tree is refused; raised, it is written.
    small = str(_deep_dirs(_store(cli), 2))
    rc, _, err = cli.pkg("get", small, "--out:s1", "--pkg-cache:chengcache", "--max-bytes:3B")
    assert rc == 1 and err.splitlines()[0] == f"get: {small} expands past the export limits"
    rc, _, err = cli.pkg("get", small, "--out:s2", "--pkg-cache:chengcache", "--max-bytes:1KiB",
                         "--max-entries:10")
    assert rc == 0, err
    rc, _, err = cli.pkg("get", small, "--out:s3", "--pkg-cache:chengcache", "--max-bytes:lots")
    assert rc == 2 and err.splitlines()[0] == "get: --max-bytes: 'lots' is not a size"


def test_an_undecodable_root_is_not_pinned_and_unpin_unwedges_gc(cli: Cli) -> None:
    from cheng_build.cas import varint
    from cheng_build.cas.car import encode_header
    from cheng_build.cas.cid import cid_bytes, make_cid

    junk = b"\xff\xff\xff not dag-pb"
    bad = make_cid(junk, "dag-pb")
    header = encode_header([bad])
    section = cid_bytes(bad) + junk  # a CARv1 written by hand: header, then one block
    (cli.tmp / "bad.car").write_bytes(varint.encode(len(header)) + header
                                      + varint.encode(len(section)) + section)
    rc, _, err = cli.pkg("car", "import", "bad.car", "--pkg-cache:chengcache")
    assert rc == 1, err
    assert err.splitlines()[0] == f"car: cannot pin {bad}: it is not a valid dag-pb node"
    assert "--no-pin" in err
    assert not (cli.tmp / "chengcache" / "pins" / str(bad)).exists()
    rc, _, err = cli.pkg("gc", "--pkg-cache:chengcache")
    assert rc == 0, err
    # A store pinned by an older version is unwedged by unpin.
    _store(cli).put(bad, junk)
    (cli.tmp / "chengcache" / "pins").mkdir(exist_ok=True)
    (cli.tmp / "chengcache" / "pins" / str(bad)).write_bytes(b"")
    rc, _, err = cli.pkg("gc", "--pkg-cache:chengcache")
    assert rc == 1 and err.splitlines()[0] == f"gc: pinned DAG {bad} has a block that is not valid dag-pb"
    assert f"cheng-pkg unpin {bad}" in err
    rc, out, err = cli.pkg("unpin", str(bad), "--pkg-cache:chengcache")
    assert rc == 0 and out.strip() == f"unpinned {bad}", err
    assert cli.pkg("gc", "--pkg-cache:chengcache")[0] == 0
    rc, _, err = cli.pkg("unpin", str(bad), "--pkg-cache:chengcache")
    assert rc == 1 and err.splitlines()[0] == f"unpin: {bad} is not pinned"


def test_ls_escapes_names_that_would_forge_lines(cli: Cli) -> None:
    from cheng_build.cas import dagpb, unixfs

    store = _store(cli)
    leaf = _leaf(store, b"hi")
    forged = "a\nbafkreifake 999 evil.cheng\x1b[2J"
    top = _node(store, [dagpb.PBLink(leaf, forged, 2), dagpb.PBLink(leaf, "b\\n", 2)],
                unixfs.Data(unixfs.NodeType.DIRECTORY))
    rc, out, err = cli.pkg("ls", str(top), "--pkg-cache:chengcache")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" a\\nbafkreifake 999 evil.cheng\\x1b[2J")
    assert lines[1].endswith(" b\\\\n")  # a real backslash stays distinguishable
    rc, out, _ = cli.pkg("ls", str(top), "--pkg-cache:chengcache", "--format:json")
    assert rc == 0 and '"a\\nbafkreifake 999 evil.cheng\\u001b[2J"' in out


def test_car_import_refuses_a_fifo_instead_of_blocking(cli: Cli) -> None:
    fifo = cli.tmp / "in.car"
    os.mkfifo(fifo)
    result: list[tuple[int, str, str]] = []
    t = threading.Thread(target=lambda: result.append(
        cli.pkg("car", "import", str(fifo), "--pkg-cache:chengcache")), daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():  # unblock the stuck reader so the test process can end, then fail
        with open(fifo, "wb"):
            pass
        t.join(10)
        pytest.fail("car import blocked on a FIFO")
    rc, _, err = result[0]
    assert rc == 2 and err.splitlines()[0] == f"car: {fifo} is a FIFO, not a CAR file"
    assert "how:" in err


def test_the_next_fetch_removes_what_a_killed_fetch_left(cli: Cli) -> None:
    """A fetch killed mid-batch (SIGKILL, for real, in a child process) leaves staged block
    blocks in a pack and a half checkout; the next ``cheng-pkg fetch`` removes them at once."""
    import signal
    import subprocess
    import sys

    import cheng_build
    from cheng_build.cas.blockstore import Blockstore

    cache = cli.tmp / "chengcache"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from cheng_build.cas.blockstore import Blockstore\n"
        "from cheng_build.cas.cid import make_cid\n"
        "from cheng_build.cas.materialize import _checkout_lock\n"
        "root = Path(sys.argv[1])\n"
        "b = Blockstore(root).batch().__enter__()\n"
        "for i in range(20):\n"
        "    data = os.urandom(300_000)\n"
        "    b.put(make_cid(data), data)\n"
        "with _checkout_lock(root, exclusive=False):\n"
        "    half = root / 'packages' / '.bafyhalf.tmp-0123456789ab' / 'src'\n"
        "    half.mkdir(parents=True)\n"
        "    (half / 'a.cheng').write_bytes(b'x' * 1000)\n"
        "    os.chmod(half / 'a.cheng', 0o444)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(cheng_build.__file__).resolve().parent.parent))
    p = subprocess.run([sys.executable, "-c", code, str(cache)], env=env, timeout=60)
    assert p.returncode == -signal.SIGKILL
    # The killed batch appended 20 blocks to a pack it never committed: bytes nothing points at.
    packs = list((cache / "packs").glob("*.pack"))
    assert len(packs) == 1 and packs[0].stat().st_size > 20 * 300_000
    assert Blockstore(cache).stats().blocks == 0
    left = packs[0].stat().st_size + 1000
    assert (cache / "packages" / ".bafyhalf.tmp-0123456789ab").is_dir()
    (cli.tmp / "cheng.lock.toml").write_text('package_id = "pkg://cheng/app"\n')
    rc, _out, err = cli.pkg("fetch", "--lock:cheng.lock.toml", f"--pkg-cache:{cache}", "--mode:local")
    assert rc == 0, err
    assert f"fetch: note: removed 2 temp files ({left} bytes) an interrupted fetch had left" in err
    assert not list((cache / "packs").glob("*.pack"))
    assert not (cache / "packages" / ".bafyhalf.tmp-0123456789ab").exists()
