"""mDNS between two network namespaces joined by a veth pair (made here, as root; nothing leaves
the machine): a node announces itself and its homeserver, a new machine finds it with `cis nodes`,
joins through what it found, and is found in turn."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers_cisnode import Node, cis_env, wait_for
from helpers_synapse import Synapse, require_synapse, start_synapse

pytestmark = [pytest.mark.network, pytest.mark.slow]
T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NET = "10.213.77"


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that entered netns ``name``: its sockets, and the processes it
    starts, live there."""
    out: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def body() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            out.put((True, fn()))
        except BaseException as exc:
            out.put((False, exc))

    t = threading.Thread(target=body)
    t.start()
    t.join(300)
    ok, val = out.get(timeout=1)
    if not ok:
        raise val
    return val  # type: ignore[no-any-return]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        msg = "needs root and iproute2 to make network namespaces"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    tag = f"{os.getpid() % 100000}"
    a, b = f"cisA{tag}", f"cisB{tag}"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", f"va{tag}", "netns", a, "type", "veth", "peer", "name", f"vb{tag}", "netns", b)
        for ns, dev, host in ((a, f"va{tag}", 1), (b, f"vb{tag}", 2)):
            _ip("-n", ns, "addr", "add", f"{NET}.{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _node(hs_url: str, user: str, password: str, room: str, ws: Path, tmp: Path, caps: str) -> Node:
    home = tmp / f"home-{user}"
    home.mkdir()
    pw = tmp / f"{user}.pw"
    pw.write_text(password)
    log = tmp / f"node-{user}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cheng_build.cli.cis", "node",
                                 f"--homeserver:{hs_url}", f"--user:{user}", f"--password-file:{pw}",
                                 f"--room:{room}", f"--workspace:{ws}", f"--caps:{caps}", "--no-detect"],
                                stdout=fh, stderr=subprocess.STDOUT, env=cis_env(home),
                                start_new_session=True)
    return Node(user, proc, home, log)


def _nodes_seen(tmp: Path) -> list[dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "nodes", "--timeout:3",
                        "--format:json"], capture_output=True, text=True, timeout=60,
                       env=cis_env(tmp / "home-browse"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_nodes_in_two_namespaces_find_each_other_and_the_homeserver(
        netns_pair: tuple[str, str], tmp_path: Path) -> None:
    a, b = netns_pair
    python = require_synapse()
    ws = tmp_path / "ws"
    ws.mkdir()
    hs: Synapse = in_netns(a, lambda: start_synapse(tmp_path / "synapse", python, host=f"{NET}.1"))
    started: list[Node] = []
    try:
        pw = {u: in_netns(a, lambda u=u: hs.register(u)) for u in ("alpha", "beta")}  # type: ignore[misc]
        alpha = in_netns(a, lambda: _node(hs.url, "alpha", pw["alpha"], "lan", ws, tmp_path, "cuda"))
        started.append(alpha)
        wait_for(lambda: "caps" in alpha.text(), 60, "alpha up", started)
        # A new machine (namespace b) knows nothing but the LAN: it finds alpha and its homeserver.
        seen: list[dict[str, Any]] = []

        def found_alpha() -> bool:
            seen[:] = in_netns(b, lambda: _nodes_seen(tmp_path))
            return any(s["node"] == "@alpha:cis.test" for s in seen)

        wait_for(found_alpha, 60, "cis nodes in b seeing alpha", started)
        got = next(s for s in seen if s["node"] == "@alpha:cis.test")
        assert got["homeserver"] == hs.url and got["room"] == "lan" and got["caps"] == ["cuda"]
        assert got["address"] == f"{NET}.1"
        beta = in_netns(b, lambda: _node(got["homeserver"], "beta", pw["beta"], got["room"], ws, tmp_path,
                                         "metal"))
        started.append(beta)
        wait_for(lambda: "caps" in beta.text(), 60, "beta up through what it found", started)
        assert got["room_id"] in beta.text()  # the same room

        def found_beta() -> bool:
            seen[:] = in_netns(a, lambda: _nodes_seen(tmp_path))
            return any(s["node"] == "@beta:cis.test" and s["caps"] == ["metal"] for s in seen)

        wait_for(found_beta, 60, "cis nodes in a seeing beta", started)
    finally:
        for n in started:
            n.stop()
        hs.stop()
