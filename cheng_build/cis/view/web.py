"""The 6767 layer: runs, progress, the debt board and the decision workspace in a browser.

``cis web [--port:<n>]`` serves on ``127.0.0.1:6767``. Everything it shows comes from the run
database (:mod:`cheng_build.cis.run.control`), and every button acts through the same control API as
the CLI (``confirm``, ``run_now``, ``skip``, ``amend``, ``resolve``, ``retry``), so the engine of the
run stays the only writer of task state. Updates are pushed with Server-Sent Events: each open
page holds one ``/api/events`` stream and gets a fresh snapshot whenever the database changes
(``PRAGMA data_version``) and at least once a second (countdowns, CPU and memory move without a
database change).

Why the standard library (``http.server.ThreadingHTTPServer``) and not an async framework: the
server is local, serves one person, and its work is reading SQLite and /proc; a thread per open
page is cheap, SSE needs nothing but a flushed response, and no dependency is added.

Endpoints (JSON unless noted)::

    GET  /login?code=<one-time code>         opens a session (cookie), then redirects to /
    GET  /                                   the page (static/index.html, app.js, app.css)
    GET  /api/runs                           run summaries, newest first
    GET  /api/runs/<run>                     one run: tasks, ETA, current step, resources, decisions
    GET  /api/debt                           the debt board
    GET  /api/events?run=<run>               text/event-stream of {"runs", "run", "debt"} snapshots
    GET  /api/runs/<run>/tasks/<i>/log?stream=stdout|stderr   last 64 KiB of a task's log (text)
    GET  /api/runs/<run>/tasks/<i>/output?path=<p>            a declared output (report.png, .md)
    POST /api/runs/<run>/tasks/<i>/<action>  confirm | cancel | run-now | skip | change | continue |
                                             resolve | retry ; body JSON for change/resolve

A room run (one ``cis run --room:`` posted from this machine, mirrored into its store) has no local
engine: its confirm, skip and cancel are posted to its room as ``control`` events through the same
function as ``cis confirm --room:`` (:mod:`cheng_build.cis.node.decide`), as the Matrix user
``cis web`` was started with, which must already be a member of the room; 200 when the event is in
the room, 202 when the homeserver is unreachable and it waits in this machine's outbox (a
background thread sends it when the homeserver answers), 403 when the room refuses (not a member,
bad credentials), 409 without a Matrix connection or for an action a room run does not take.

Safety: it binds 127.0.0.1 only; only the browser that opened the one-time login link
``cis web`` printed gets in (a session cookie, see :mod:`websession`), so a task that can reach
127.0.0.1 cannot read the page nor approve its own gate; a POST must also carry the session's
token in ``X-CIS-Token`` and a ``Host`` of 127.0.0.1/localhost (so another web page in the same
browser cannot press the buttons, and DNS rebinding cannot reach it); logs are read without
following links (:mod:`tasklog`); outputs are served only when the task declares them in
``outputs`` and what is opened lies inside the task's directory.

CPU and memory per task: the engine records each running task's pid (the sandbox wrapper, which
leads the task's process group); the server sums ``utime+stime`` and RSS over that pid and all
its descendants from ``/proc`` and turns CPU time into a percentage between two snapshots.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cheng_build.cis.node.decide import RoomDecider
from cheng_build.cis.node.mirror import room_of
from cheng_build.cis.run import control
from cheng_build.cis.run.requests import Outcome
from cheng_build.cis.run.store import Store, TaskRecord
from cheng_build.cis.view.board import Sampler, act, debt_board, run_detail, run_summary, snapshot
from cheng_build.cis.view.webroom import room_action
from cheng_build.cis.view.websession import Sessions, cookie_name, cookie_value
from cheng_build.core.errors import ChengError

DEFAULT_PORT = 6767
STATIC = Path(__file__).with_name("web_static")
PUSH_EVERY_S = 1.0  # a snapshot at least this often (countdowns, CPU, memory)
POLL_S = 0.2  # how often a stream checks the database for news
LOG_TAIL = 64 * 1024
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".md": "text/markdown; charset=utf-8",
          ".json": "application/json", ".txt": "text/plain; charset=utf-8"}


# --- /proc sampling ------------------------------------------------------------------------------


# --- views ---------------------------------------------------------------------------------------


# --- actions -------------------------------------------------------------------------------------


# --- HTTP ----------------------------------------------------------------------------------------


class WebServer(ThreadingHTTPServer):
    """The HTTP server plus what its handlers share."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = DEFAULT_PORT, *, home: str | os.PathLike[str] | None = None,
                 host: str = "127.0.0.1", decider: RoomDecider | None = None) -> None:
        super().__init__((host, port), Handler)
        self.home = home
        self.sessions = Sessions()
        self.sampler = Sampler()
        self.local = threading.local()
        self.stopping = threading.Event()
        # Decisions on room runs go to their room through this (None: no Matrix connection given).
        self.decider = decider
        if decider is not None:
            from cheng_build.cis.node.decide import retry_forever

            threading.Thread(target=retry_forever, args=(decider, self.stopping), daemon=True,
                             name="cis-web-room-outbox").start()

    def store(self) -> Store:
        """One Store per thread (SQLite connections are per thread)."""
        st = getattr(self.local, "store", None)
        if st is None:
            st = self.local.store = control.open_store(self.home)
        return st

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def cookie(self) -> str:
        return cookie_name(int(self.server_address[1]))

    def issue_login(self) -> str:
        """A one-time login URL (``cis web`` prints one; only its terminal ever sees it)."""
        return f"{self.url}login?code={self.sessions.issue_code()}"

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: a local tool; errors reach the page as JSON

    # --- helpers ---

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, what: str, why: str | None = None, how: str | None = None) -> None:
        self._json({"error": what, "why": why, "how": how}, status)

    def _session_token(self) -> str | None:
        """The CSRF token of the request's session, or None without a valid session cookie."""
        sid = cookie_value(self.headers.get("Cookie"), self.server.cookie)
        return self.server.sessions.csrf(sid)

    def _login(self, code: str) -> None:
        sid = self.server.sessions.redeem(code)
        if sid is None:
            return self._error(HTTPStatus.FORBIDDEN, "login link unknown or already used",
                               why="each link printed by 'cis web' opens one browser session",
                               how="restart 'cis web' for a new link")
        cookie = f"{self.server.cookie}={sid}; HttpOnly; SameSite=Strict; Path=/"
        self._send(HTTPStatus.SEE_OTHER, b"", _TYPES[".txt"],
                   {"Location": "/", "Set-Cookie": cookie})

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in ("127.0.0.1", "localhost", "::1")

    # --- GET ---

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if not self._host_ok():
                return self._error(HTTPStatus.FORBIDDEN, "unexpected Host header")
            if parts == ["favicon.ico"]:
                return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            if parts == ["login"]:
                return self._login(q.get("code", ""))
            if parts and parts[0] == "static" and len(parts) == 2:
                return self._static(parts[1])
            token = self._session_token()
            if token is None:
                return self._error(HTTPStatus.UNAUTHORIZED, "no session",
                                   why="only the browser that opened the login link gets in",
                                   how="open the one-time link 'cis web' printed in its terminal")
            if not parts or parts == ["index.html"]:
                return self._index(token)
            if parts[:1] != ["api"]:
                return self._error(HTTPStatus.NOT_FOUND, f"no page {url.path}")
            store = self.server.store()
            if parts == ["api", "runs"]:
                return self._json([run_summary(store, r) for r, *_ in control.list_runs(store)])
            if parts == ["api", "debt"]:
                return self._json(debt_board(store))
            if parts == ["api", "events"]:
                return self._events(store, q.get("run"))
            if len(parts) == 3 and parts[1] == "runs":
                return self._json(run_detail(store, parts[2], self.server.sampler))
            if len(parts) == 6 and parts[1] == "runs" and parts[3] == "tasks":
                if parts[5] == "log":
                    return self._log(store, parts[2], parts[4], q.get("stream", "stderr"))
                if parts[5] == "output":
                    return self._output(store, parts[2], parts[4], q.get("path", ""))
            return self._error(HTTPStatus.NOT_FOUND, f"no endpoint {url.path}")
        except ChengError as exc:
            status = HTTPStatus.NOT_FOUND if exc.exit_code == 2 else HTTPStatus.CONFLICT
            self._error(status, exc.what, exc.why, exc.how)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _index(self, token: str) -> None:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{TOKEN}}", token)
        self._send(200, html.encode(), _TYPES[".html"])

    def _static(self, name: str) -> None:
        p = STATIC / name
        if "/" in name or name.startswith(".") or not p.is_file():
            return self._error(HTTPStatus.NOT_FOUND, f"no file {name}")
        self._send(200, p.read_bytes(), _TYPES.get(p.suffix, "application/octet-stream"))

    def _task(self, store: Store, run_id: str, task: str) -> TaskRecord:
        rid = store.resolve_run_id(run_id)
        idx = control.task_index(store, rid, task)
        return store.tasks(rid)[idx]

    def _log(self, store: Store, run_id: str, task: str, stream: str) -> None:
        if stream not in ("stdout", "stderr"):
            return self._error(HTTPStatus.BAD_REQUEST, "stream must be stdout or stderr")
        t = self._task(store, run_id, task)
        from cheng_build.cis.run.tasklog import LogRefusedError, read_tail

        data = b""
        if t.task_dir:
            try:
                data = read_tail(t.task_dir, f"{stream}.log", LOG_TAIL)
            except LogRefusedError as exc:
                return self._error(HTTPStatus.FORBIDDEN, f"log not served: {exc}",
                                   why="a task may replace its own log; links are not followed")
            except OSError:
                data = b""
        self._send(200, data, _TYPES[".txt"])

    def _output(self, store: Store, run_id: str, task: str, path: str) -> None:
        t = self._task(store, run_id, task)
        if path not in t.spec.get("outputs", []):
            return self._error(HTTPStatus.FORBIDDEN, f"{path!r} is not a declared output of {t.name}")
        run = store.get_run(run_id)
        cwd = t.spec.get("exec", {}).get("cwd")
        base = os.path.join(run.dag.base_dir, cwd) if cwd is not None else (t.task_dir or "")
        full = os.path.realpath(os.path.join(base, path))
        root = os.path.realpath(base) + os.sep
        if not full.startswith(root) or not os.path.isfile(full):
            return self._error(HTTPStatus.NOT_FOUND, f"{path} is not there (yet)")
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return self._error(HTTPStatus.NOT_FOUND, f"{path} is not there (yet)")
        with open(fd, "rb") as fh:
            # What was opened, not what was checked: a task may swap in a link in between.
            if not os.readlink(f"/proc/self/fd/{fd}").startswith(root) or \
                    not stat.S_ISREG(os.fstat(fd).st_mode):
                return self._error(HTTPStatus.FORBIDDEN, f"{path} leads outside the task's "
                                   "directory", why="links in outputs are not followed")
            self._send(200, fh.read(), _TYPES.get(Path(full).suffix, "application/octet-stream"))

    def _events(self, store: Store, run_id: str | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for payload in self._snapshots(store, run_id):
                self.wfile.write(b"event: snapshot\ndata: " + payload + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    def _snapshots(self, store: Store, run_id: str | None) -> Iterator[bytes]:
        last_version, last_sent, last_payload = -1, 0.0, b""
        while not self.server.stopping.is_set():
            version = store.data_version()
            now = time.monotonic()
            if version != last_version or now - last_sent >= PUSH_EVERY_S:
                last_version = version
                payload = json.dumps(snapshot(store, run_id, self.server.sampler)).encode()
                if payload != last_payload or now - last_sent >= PUSH_EVERY_S:
                    last_payload, last_sent = payload, now
                    yield payload
            self.server.stopping.wait(POLL_S)

    # --- POST ---

    def do_POST(self) -> None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        try:
            token = self._session_token()
            sent = self.headers.get("X-CIS-Token") or ""
            if not self._host_ok() or token is None or not secrets.compare_digest(sent, token):
                self.close_connection = True  # the body is not read
                return self._error(HTTPStatus.FORBIDDEN, "no session or wrong X-CIS-Token",
                                   why="only the browser that opened the login link may act",
                                   how="open the one-time link 'cis web' printed, then use its page")
            raw_len = (self.headers.get("Content-Length") or "0").strip()
            if not raw_len.isdigit() or not raw_len.isascii():
                self.close_connection = True  # the body's end is unknown: do not read on
                return self._error(HTTPStatus.BAD_REQUEST,
                                   f"bad Content-Length {raw_len[:40]!r}",
                                   why="it must be a decimal number of bytes",
                                   how="send the JSON body with its length in bytes")
            n = int(raw_len)
            if n > 65536:
                self.close_connection = True
                return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large",
                                   why=f"{n} bytes; at most 65536")
            raw = self.rfile.read(n) if n else b""
            try:
                body = json.loads(raw) if raw else {}
            except (ValueError, RecursionError):
                return self._error(HTTPStatus.BAD_REQUEST, "request body is not JSON")
            if not isinstance(body, dict):
                return self._error(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
            if len(parts) != 6 or parts[:2] != ["api", "runs"] or parts[3] != "tasks":
                return self._error(HTTPStatus.NOT_FOUND, "POST /api/runs/<run>/tasks/<task>/<action>")
            store = self.server.store()
            run_id = store.resolve_run_id(parts[2])
            ref = room_of(store, run_id)
            if ref is not None:  # no local engine drives a room run: decide in its room
                status, answer = room_action(self.server.decider, store, run_id, ref, parts[4],
                                             parts[5], body)
                return self._json(answer, status)
            cid = act(store, run_id, parts[4], parts[5], body)
            alive = store.engine_alive(run_id)
            started = None
            if not alive and (parts[5] == "retry" or not store.get_run(run_id).state.finished):
                # Nobody drives the run (finished, or its engine died): start one, as
                # 'cis retry' / 'cis resume' would, so the button takes effect.
                started = control.spawn_engine(store, run_id)
                alive = True
            result = control.wait_result(store, cid, timeout=5.0 if started else 3.0) if alive else None
            ok = result is None or not Outcome.parse(result).rejected
            self._json({"control_id": cid, "engine_alive": alive, "engine_started": started,
                        "result": result or ("queued: applies on 'cis resume " + run_id + "'"
                                             if not alive else "queued")},
                       200 if ok else HTTPStatus.CONFLICT)
        except ChengError as exc:
            status = HTTPStatus.NOT_FOUND if exc.exit_code == 2 and "no " in exc.what else \
                HTTPStatus.BAD_REQUEST
            self._error(status, exc.what, exc.why, exc.how)
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve(port: int = DEFAULT_PORT, *, home: str | os.PathLike[str] | None = None,
          on_ready: Any = None, decider: RoomDecider | None = None) -> None:
    """Serve until interrupted; ``on_ready(login_url)`` is called once listening, with a
    one-time login link (the only way in: see :mod:`websession`). ``decider``: how decisions on
    room runs reach their room (see :mod:`cheng_build.cis.node.decide`)."""
    srv = WebServer(port, home=home, decider=decider)
    if on_ready is not None:
        on_ready(srv.issue_login())
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.stopping.set()
        srv.server_close()


__all__ = ["DEFAULT_PORT", "Handler", "WebServer", "serve"]
