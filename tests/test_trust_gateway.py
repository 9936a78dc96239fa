"""Hole 7 of issue 13: a hostile HTTP gateway cannot exhaust the fetcher's memory or time.

A real HTTP server on 127.0.0.1 plays the gateway; ``cheng-pkg fetch --mode:http`` runs against
it through the CLI. It answers with 1.5 GiB bodies (an error page, a "block") or trickles bytes;
the fetch must stop early, say why, and leave no package behind.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers_trust import Cli, write_tree

PKG = "pkg://cheng/demo"
HUGE = 1536 * 1024 * 1024
CHUNK = b"\0" * 65536


class _Gateway:
    """A gateway that misbehaves as ``mode`` says; counts the body bytes it got out."""

    def __init__(self, mode: str, car: bytes) -> None:
        self.mode, self.car, self.sent, self.done = mode, car, 0, threading.Event()
        gw = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _spew(self, status: int, length: bool) -> None:
                self.send_response(status)
                if length:
                    self.send_header("Content-Length", str(HUGE))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while gw.sent < HUGE:
                        self.wfile.write(CHUNK)
                        gw.sent += len(CHUNK)
                except OSError:
                    pass
                finally:
                    gw.done.set()

            def do_GET(self) -> None:
                car = "format=car" in self.path
                if gw.mode == "huge-error":
                    return self._spew(500, length=True)
                if gw.mode == "huge-block":
                    if car:  # the header and the root block only: the rest is asked as raw
                        head = gw.car[:gw.car_root_end]
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(head)))
                        self.end_headers()
                        self.wfile.write(head)
                        return None
                    return self._spew(200, length=False)
                # slow: a byte at a time, for at most 60 s
                self.send_response(200)
                self.send_header("Content-Length", str(len(gw.car)))
                self.end_headers()
                try:
                    for i in range(240):
                        self.wfile.write(gw.car[i:i + 1])
                        self.wfile.flush()
                        time.sleep(0.25)
                except OSError:
                    pass
                finally:
                    gw.done.set()
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.car_root_end = 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capfd)


def _package(cli: Cli) -> tuple[str, bytes, int]:
    """A 3 MB package in a provider store; its CID, its CAR, and where the root section ends."""
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.car import export_car
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import add_path

    write_tree(cli.tmp / "src", {"cheng-package.toml": f'package_id = "{PKG}"\n',
                                 "data.bin": bytes(range(256)) * 12000})
    store = Blockstore(cli.tmp / "provider")
    root = add_path(store, cli.tmp / "src", snapshot=True)
    export_car(store, root, cli.tmp / "pkg.car")
    car = (cli.tmp / "pkg.car").read_bytes()
    hlen, p = _uvarint(car, 0)
    slen, q = _uvarint(car, p + hlen)
    (cli.tmp / "cheng.lock.toml").write_text(
        'package_id = "pkg://cheng/app"\n\n[[dependencies]]\n'
        f'package_id = "{PKG}"\nchannel = "edge"\nepoch = 1\ncid = "{cid_str(root)}"\n'
        'format = "dag"\nauthor_id = "node:test"\nsignature = "local:test"\n')
    return cid_str(root), car, q + slen


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fetch(cli: Cli, gw: _Gateway) -> tuple[int, str, str]:
    return cli.pkg("fetch", "--lock:cheng.lock.toml", "--mode:http", f"--peers:{gw.url}",
                   "--pkg-cache:dst")


@pytest.mark.parametrize("mode", ["huge-error", "huge-block"])
def test_a_gateway_cannot_push_a_huge_body(cli: Cli, mode: str) -> None:
    cid, car, root_end = _package(cli)
    gw = _Gateway(mode, car)
    gw.car_root_end = root_end
    try:
        rc, out, err = _fetch(cli, gw)
        gw.done.wait(30)
    finally:
        gw.stop()
    assert rc == 1, out
    assert err.splitlines()[0] == f"fetch: {PKG}: snapshot {cid} could not be fetched"
    if mode == "huge-error":
        assert f"gateway {gw.url} answered 500" in err
    else:
        assert f"gateway {gw.url} answers" in err and "more than 4194304 bytes" in err
    assert gw.sent < 64 * 1024 * 1024, "the body was read, not refused"
    assert not (cli.tmp / "dst" / "packages" / cid).exists()


def test_a_gateway_trickling_bytes_hits_the_deadline(cli: Cli) -> None:
    cid, car, _ = _package(cli)
    cli.mp.setenv("PKG_HTTP_DEADLINE_S", "2")
    gw = _Gateway("slow", car)
    try:
        rc, out, err = _fetch(cli, gw)
    finally:
        gw.stop()
    assert rc == 1, out
    assert err.splitlines()[0] == f"fetch: {PKG}: snapshot {cid} could not be fetched"
    assert f"http: gateway {gw.url} too slow" in err
    assert not (cli.tmp / "dst" / "packages" / cid).exists()
