"""Fixtures for the web tests: a real ``cis web`` server on a free loopback port, runs with
detached engines, and small HTTP helpers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers_cis import make_dag, sh, task

from cheng_build.cis.dag.model import TaskLevel
from cheng_build.cis.run import control
from cheng_build.cis.view.web import WebServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def web_server(home: Path) -> Iterator[WebServer]:
    srv = WebServer(0, home=home)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(10)


def confirm_dag(base: Path, *, work: float = 1.0) -> Any:
    """prepare -> deploy (Confirmed) -> announce (Recommended, 30 s countdown)."""
    return make_dag(base, [
        task(0, "prepare", sh("echo ready"), cwd="."),
        task(1, "deploy", sh(f"sleep {work}; echo deployed > deployed.txt"), deps=[0], cwd=".",
             level=TaskLevel.confirmed()),
        task(2, "announce", sh("echo announced"), deps=[1], level=TaskLevel.recommended(timeout=30)),
    ], name="webdemo")


def start_run(home: Path, dag: Any) -> str:
    store = control.open_store(home)
    rid = control.create_run(store, dag)
    control.spawn_engine(store, rid)
    return rid


def get(srv: WebServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(srv.url.rstrip("/") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(srv: WebServer, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["X-CIS-Token"] = token
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=json.dumps(body or {}).encode(),
                                 headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
