"""Atomic writes and locked appends."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from cheng_build.core.atomic import append_line_locked, atomic_write_bytes, file_lock


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f.txt"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def _appender(path: str, who: int) -> None:
    for i in range(50):
        with file_lock(path):
            append_line_locked(path, f"{who}:{i}:".encode() + b"x" * 200)


def test_concurrent_appends_never_interleave(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    procs = [multiprocessing.Process(target=_appender, args=(os.fspath(log), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = log.read_bytes().splitlines()
    assert len(lines) == 200
    assert all(ln.endswith(b"x" * 200) and ln.count(b":") == 2 for ln in lines)


def _fill_past_limit(path: str, limit: int, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import resource
    import signal

    from cheng_build.core.atomic import append_or_roll_back

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        append_or_roll_back(fd, os.fstat(fd).st_size, b"y" * 4 * limit)
        q.put("written")
    except OSError as exc:
        q.put(f"error {exc.errno}")
    finally:
        os.close(fd)


def test_append_past_the_size_limit_is_rolled_back(tmp_path: Path) -> None:
    """The shared durable append (registry and ledger): a write that fails part way (the real
    file-size limit) leaves the file as it was and reports the write's own error."""
    import errno

    log = tmp_path / "ledger.jsonl"
    log.write_bytes(b'{"seq":0}\n')
    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    p = multiprocessing.Process(target=_fill_past_limit, args=(os.fspath(log), 64, q))
    p.start()
    p.join(60)
    assert q.get(timeout=5) == f"error {errno.EFBIG}"
    assert log.read_bytes() == b'{"seq":0}\n'
