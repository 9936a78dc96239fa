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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def login(login_url: str) -> tuple[str, str]:
    """Open a session the way a browser does: follow the one-time link, keep the cookie, read
    the session's token from the page. Returns (Cookie header value, X-CIS-Token)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(login_url, timeout=10)
        raise AssertionError("login did not redirect")
    except urllib.error.HTTPError as e:
        assert e.code == 303, e.code
        cookie = e.headers["Set-Cookie"].split(";", 1)[0]
    base = login_url.split("login?", 1)[0]
    req = urllib.request.Request(base, headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        page = r.read().decode()
    token = page.split('name="cis-token" content="', 1)[1].split('"', 1)[0]
    return cookie, token


@contextmanager
def web_server(home: Path, decider: Any = None) -> Iterator[WebServer]:
    """A server with one open session: ``srv.cookie_header`` and ``srv.token`` are what the
    browser that opened the login link holds; :func:`get` and :func:`post` send the cookie.
    ``decider``: how decisions on room runs reach their room (none: no Matrix connection)."""
    srv = WebServer(0, home=home, decider=decider)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        srv.cookie_header, srv.token = login(srv.issue_login())  # type: ignore[attr-defined]
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


def get(srv: WebServer, path: str, headers: dict[str, str] | None = None, *,
        session: bool = True) -> tuple[int, bytes]:
    hdrs = {"Cookie": srv.cookie_header} if session else {}  # type: ignore[attr-defined]
    req = urllib.request.Request(srv.url.rstrip("/") + path, headers={**hdrs, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post(srv: WebServer, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
         headers: dict[str, str] | None = None, session: bool = True) -> tuple[int, dict[str, Any]]:
    hdrs = {"Content-Type": "application/json"}
    if session:
        hdrs["Cookie"] = srv.cookie_header  # type: ignore[attr-defined]
    hdrs.update(headers or {})
    if token is not None:
        hdrs["X-CIS-Token"] = token
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=json.dumps(body or {}).encode(),
                                 headers=hdrs, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
