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
import shlex
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cheng_build.cis.dag.model import TaskState
from cheng_build.cis.run import control
from cheng_build.cis.run.store import Store, TaskRecord
from cheng_build.cis.view.websession import Sessions, cookie_name, cookie_value
from cheng_build.core.errors import ChengError

DEFAULT_PORT = 6767
STATIC = Path(__file__).with_name("web_static")
PUSH_EVERY_S = 1.0  # a snapshot at least this often (countdowns, CPU, memory)
POLL_S = 0.2  # how often a stream checks the database for news
LOG_TAIL = 64 * 1024
# The debt board's fix-time estimate: minutes per item (a rule of thumb, shown as such).
FIX_MINUTES = {"auto": 1, "person": 10}
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".md": "text/markdown; charset=utf-8",
          ".json": "application/json", ".txt": "text/plain; charset=utf-8"}


# --- /proc sampling ------------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime+stime ticks, rss pages) for every process we can read."""
    out: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()  # fields after "(comm)"; comm may hold spaces
        try:
            out[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[21]))
        except (IndexError, ValueError):
            continue
    return out


def tree_usage(root: int, table: dict[int, tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """(CPU ticks, RSS bytes, process count) of ``root`` and its descendants; None if gone."""
    if root not in table:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _t, _r) in table.items():
        children.setdefault(ppid, []).append(pid)
    ticks = rss = n = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        _ppid, t, r = table[pid]
        ticks, rss, n = ticks + t, rss + r * _PAGE, n + 1
        todo.extend(children.get(pid, ()))
    return ticks, rss, n


@dataclass
class Sampler:
    """CPU percentages from successive /proc readings (shared by all streams, thread-safe)."""

    last: dict[int, tuple[float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def usage(self, pids: list[int]) -> dict[int, dict[str, Any]]:
        if not pids or not os.path.isdir("/proc"):
            return {}
        table = _proc_table()
        now = time.monotonic()
        out: dict[int, dict[str, Any]] = {}
        with self.lock:
            for pid in pids:
                u = tree_usage(pid, table)
                if u is None:
                    continue
                ticks, rss, n = u
                cpu = None
                prev = self.last.get(pid)
                if prev is not None and now - prev[0] > 0.05:
                    cpu = max(0.0, (ticks - prev[1]) / _CLK_TCK / (now - prev[0]) * 100.0)
                if prev is None or now - prev[0] > 0.05:
                    self.last[pid] = (now, ticks)
                out[pid] = {"cpu_percent": None if cpu is None else round(cpu, 1),
                            "cpu_seconds": round(ticks / _CLK_TCK, 2), "rss_bytes": rss,
                            "processes": n}
        return out


# --- views ---------------------------------------------------------------------------------------


def _dependents(spec_deps: list[list[int]], idx: int) -> list[int]:
    out, todo = set(), [idx]
    while todo:
        i = todo.pop()
        for j, deps in enumerate(spec_deps):
            if i in deps and j not in out:
                out.add(j)
                todo.append(j)
    return sorted(out)


def risk_summary(t: TaskRecord, names: list[str], spec_deps: list[list[int]], sandbox: str,
                 base_dir: str) -> list[str]:
    """What confirming this task lets happen, in plain lines (shown beside confirm/cancel)."""
    ex = t.spec.get("exec", {})
    sb = ex.get("sandbox", {})
    cwd = ex.get("cwd")
    lines = [f"runs: {shlex.join(ex.get('cmd', []))}"]
    writes = [os.path.normpath(os.path.join(base_dir, cwd))] if cwd is not None else []
    writes += [os.path.normpath(os.path.join(base_dir, w)) for w in sb.get("writable", [])]
    lines.append("writes: " + (", ".join(writes) if writes else "only its own task directory"))
    lines.append("network: " + ("allowed" if sb.get("network") else "none"))
    lines.append(f"sandbox: {'none (isolation = none)' if sb.get('isolation') == 'none' else sandbox}")
    if ex.get("env"):
        lines.append("env: " + ", ".join(f"{k}={v}" for k, v in sorted(ex["env"].items()))[:300])
    down = _dependents(spec_deps, t.idx)
    lines.append(f"unblocks: {len(down)} task(s)" + (f" ({', '.join(names[d] for d in down[:6])})"
                                                     if down else ""))
    lines.append("rollback: " + (" ".join(t.spec["rollback"]) if t.spec.get("rollback") else "none"))
    lines.append("rerun-safe (idempotent): " + ("yes" if t.spec.get("idempotent", True) else "no"))
    if ex.get("timeout"):
        lines.append(f"timeout: {ex['timeout']} s")
    return lines


def _level(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    lv = spec.get("level", "Confirmed")
    if isinstance(lv, str):
        return lv, {}
    (kind, params), = lv.items()
    return kind, dict(params or {})


def _auto_fixable(t: TaskRecord) -> bool:
    """A retry alone may fix it: killed by a timeout or a signal, or a task marked needs-rerun."""
    what = (t.error or {}).get("what", "")
    return t.spec.get("idempotent", True) and ("timed out" in what or "killed by signal" in what
                                               or "timeout" in what)


def task_view(t: TaskRecord, names: list[str], spec_deps: list[list[int]], run_sandbox: str,
              base_dir: str, usage: dict[int, dict[str, Any]], now: float) -> dict[str, Any]:
    kind, params = _level(t.spec)
    v: dict[str, Any] = {
        "idx": t.idx, "name": t.name, "state": t.state.value, "level": kind, "level_params": params,
        "deps": t.spec.get("deps", []), "cmd": t.spec.get("exec", {}).get("cmd", []),
        "attempt": t.attempt, "gate": t.gate, "gate_until": t.gate_until or None,
        "needs_rerun": t.needs_rerun, "note": t.note, "exit_code": t.exit_code,
        "started": t.started, "finished": t.finished, "error": t.error,
        "elapsed": (now - t.started) if t.state is TaskState.RUNNING and t.started else
                   ((t.finished - t.started) if t.started and t.finished else None),
        "outputs": t.spec.get("outputs", []), "ignorable": t.spec.get("ignorable", False),
        "pid": t.pid, "usage": usage.get(t.pid) if t.pid else None, "choice": t.choice,
    }
    if t.state is TaskState.PENDING and t.gate in ("confirm", "answer"):
        v["risk"] = risk_summary(t, names, spec_deps, run_sandbox, base_dir)
    if t.state is TaskState.ARBITRATED or (kind == "Arbitrated" and t.state is TaskState.FAILED):
        v["side_by_side"] = _side_by_side(t)
    return v


def _side_by_side(t: TaskRecord) -> dict[str, Any]:
    """Left: what the task was asked to do. Right: what happened (or what it asks)."""
    ex = t.spec.get("exec", {})
    left = {"cmd": ex.get("cmd", []), "env": ex.get("env", {}), "inputs": t.spec.get("inputs", []),
            "outputs": t.spec.get("outputs", []),
            "stakeholders": _level(t.spec)[1].get("stakeholders", [])}
    err = t.error or {}
    right = {"what": err.get("what") or t.note or "waiting for a decision",
             "why": err.get("why", []), "how": err.get("how", []),
             "exit_code": err.get("context", {}).get("exit_code", t.exit_code),
             "open": (t.choice or {}).get("open") or [],
             "suggestion": (t.choice or {}).get("suggestion") or {}}
    return {"asked": left, "happened": right}


def run_summary(store: Store, run_id: str) -> dict[str, Any]:
    v = control.get_run(store, run_id)
    counts = {s.value: n for s, n in v.counts.items()}
    return {"run_id": v.run.run_id, "name": v.run.name, "state": v.run.state.value,
            "created": v.run.created, "finished": v.run.finished, "engine_alive": v.engine_alive,
            "counts": counts, "total": len(v.tasks),
            "waiting": sum(1 for t in v.tasks if t.state is TaskState.ARBITRATED or
                           (t.state is TaskState.PENDING and t.gate in ("confirm", "answer")))}


_PREVIEWS: dict[str, list[str]] = {}  # run id -> the preview ``cis run`` printed (never changes)


def _preview(store: Store, run_id: str) -> list[str]:
    """The lines ``cis run`` printed before starting the run (a sketch's intent, capabilities,
    skips; closedloop's work directory and compiler), kept as the run's ``preview`` event."""
    if run_id not in _PREVIEWS:
        lines: list[str] = []
        for _id, _idx, _ts, kind, data in control.events(store, run_id):
            if kind == "preview" and isinstance(data, dict):
                lines = [str(x) for x in data.get("lines", [])]
                break
            if kind in ("engine-started", "started"):
                break  # the preview is written before the engine starts
        _PREVIEWS[run_id] = lines
    return _PREVIEWS[run_id]


def run_detail(store: Store, run_id: str, sampler: Sampler) -> dict[str, Any]:
    v = control.get_run(store, run_id)
    now = time.time()
    names = [t.name for t in v.tasks]
    spec_deps = [list(t.spec.get("deps", [])) for t in v.tasks]
    usage = sampler.usage([t.pid for t in v.tasks if t.state is TaskState.RUNNING and t.pid])
    tasks = [task_view(t, names, spec_deps, v.run.sandbox, v.run.dag.base_dir, usage, now)
             for t in v.tasks]
    from cheng_build.cis.node.mirror import task_nodes

    for t, node in task_nodes(store, v.run.run_id).items():  # a room run: who ran each task
        tasks[t]["node"] = node
    done = sum(1 for t in v.tasks if t.state.terminal)
    running = [t for t in tasks if t["state"] == TaskState.RUNNING.value]
    decisions = {
        "recommended": [t for t in tasks if t["state"] == "Pending" and t["gate"] == "countdown"],
        "confirmed": [t for t in tasks if t["state"] == "Pending" and t["gate"] in ("confirm", "answer")],
        "arbitrated": [t for t in tasks if "side_by_side" in t],
    }
    eta = control.eta_seconds(store, v)
    return {**run_summary(store, run_id), "now": now, "sandbox": v.run.sandbox,
            "preview": _preview(store, v.run.run_id),
            "note": v.run.note, "base_dir": v.run.dag.base_dir, "policy": v.run.dag.policy.value,
            "eta_s": eta, "progress": done / len(tasks) if tasks else 1.0,
            "current": [{"idx": t["idx"], "name": t["name"], "note": t["note"],
                         "elapsed": t["elapsed"], "usage": t["usage"]} for t in running],
            "tasks": tasks, "decisions": decisions}


def debt_board(store: Store) -> dict[str, Any]:
    """Accumulated debt of all runs, split into auto-fixable (a retry may do) and needs-a-person."""
    items = []
    for run_id, dag, idx, task, err in store.all_debt():
        rec = next((t for t in store.tasks(run_id) if t.idx == idx), None)
        if rec is None:
            continue
        err = err or {}
        items.append({"run_id": run_id, "dag": dag, "idx": idx, "task": task,
                      "state": rec.state.value, "what": err.get("what", "failed"),
                      "why": err.get("why", []), "how": err.get("how", []),
                      "kind": "auto" if _auto_fixable(rec) else "person"})
    auto = sum(1 for i in items if i["kind"] == "auto")
    person = len(items) - auto
    return {"items": items, "total": len(items), "auto_fixable": auto, "needs_person": person,
            "estimate_minutes": auto * FIX_MINUTES["auto"] + person * FIX_MINUTES["person"],
            "estimate_rule": f"{FIX_MINUTES['auto']} min per auto-fixable item, "
                             f"{FIX_MINUTES['person']} min per item needing a person"}


def snapshot(store: Store, run_id: str | None, sampler: Sampler) -> dict[str, Any]:
    runs = [run_summary(store, r) for r, *_ in control.list_runs(store, limit=30)]
    detail = None
    if run_id:
        try:
            detail = run_detail(store, run_id, sampler)
        except ChengError:
            detail = None
    from cheng_build.cis.coffee import read_status

    return {"runs": runs, "run": detail, "debt": debt_board(store), "now": time.time(),
            "coffee": read_status(store.home)}


# --- actions -------------------------------------------------------------------------------------

ACTIONS = ("confirm", "cancel", "run-now", "skip", "change", "continue", "resolve", "retry")


# The fields each action's JSON body may hold, with their types (bool is refused where an int is
# asked: JSON true is not a number of seconds).
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "resolve": {"action": (str,), "value": (str,), "item": (str,)},
    "change": {"env": (dict,), "cmd": (list,), "timeout": (int,)},
}


def check_body(action: str, body: dict[str, Any]) -> None:
    """Refuse unknown fields and fields of the wrong type before anything acts on them.

    Raises:
        ChengError: exit code 2 (the server answers 400 with the reason).
    """
    fields = _FIELDS.get(action, {})
    for key, value in body.items():
        if key not in fields:
            allowed = ", ".join(fields) or "none (send {})"
            raise ChengError(f"{action}: unknown field {key!r}", why=f"fields: {allowed}",
                             exit_code=2)
        if value is None:
            continue
        types = fields[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = {str: "a string", dict: "an object", list: "a list", int: "an integer"}[types[0]]
            raise ChengError(f"{action}: {key} must be {want}, not {json.dumps(value)[:40]}",
                             exit_code=2)


def act(store: Store, run_id: str, task: str, action: str, body: dict[str, Any]) -> int:
    """Apply a button press through the control API; return the control id.

    Raises:
        ChengError: bad action or arguments (NotFoundError for an unknown run or task).
    """
    if action not in ACTIONS:
        raise ChengError(f"unknown action {action!r}", why=f"actions: {', '.join(ACTIONS)}",
                         exit_code=2)
    check_body(action, body)
    if action == "confirm":
        return control.confirm(store, run_id, task)
    if action == "run-now":
        return control.run_now(store, run_id, task)
    if action in ("skip", "cancel"):  # cancel a Confirmed task = do not run it
        return control.skip(store, run_id, task)
    if action == "continue":
        return control.resolve(store, run_id, task, action="run")
    if action == "resolve":
        choice = body.get("action")
        if choice not in (None, "run", "retry", "skip", "complete", "fail", "rollback"):
            raise ChengError(f"unknown resolve action {choice!r}", exit_code=2)
        return control.resolve(store, run_id, task, action=choice, value=body.get("value"),
                               item=body.get("item"))
    if action == "retry":
        return control.retry(store, run_id, task)
    env = body.get("env") or {}
    cmd = body.get("cmd")
    timeout = body.get("timeout")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ChengError("change: env must map names to strings", exit_code=2)
    if cmd is not None and (not cmd or not all(isinstance(a, str) for a in cmd)):
        raise ChengError("change: cmd must be a non-empty list of strings (argv)", exit_code=2)
    if timeout is not None and not 0 <= timeout <= 65535:
        raise ChengError(f"change: timeout {timeout} out of range 0..65535 seconds", exit_code=2)
    if not env and cmd is None and timeout is None:
        raise ChengError("change: nothing to change", how="give env, cmd or timeout", exit_code=2)
    return control.change(store, run_id, task, env=env, cmd=cmd, timeout=timeout)


# --- HTTP ----------------------------------------------------------------------------------------


class WebServer(ThreadingHTTPServer):
    """The HTTP server plus what its handlers share."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = DEFAULT_PORT, *, home: str | os.PathLike[str] | None = None,
                 host: str = "127.0.0.1") -> None:
        super().__init__((host, port), Handler)
        self.home = home
        self.sessions = Sessions()
        self.sampler = Sampler()
        self.local = threading.local()
        self.stopping = threading.Event()

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
            cid = act(store, run_id, parts[4], parts[5], body)
            alive = store.engine_alive(run_id)
            started = None
            if not alive and (parts[5] == "retry" or not store.get_run(run_id).state.finished):
                # Nobody drives the run (finished, or its engine died): start one, as
                # 'cis retry' / 'cis resume' would, so the button takes effect.
                started = control.spawn_engine(store, run_id)
                alive = True
            result = control.wait_result(store, cid, timeout=5.0 if started else 3.0) if alive else None
            ok = result is None or not result.startswith("rejected")
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
          on_ready: Any = None) -> None:
    """Serve until interrupted; ``on_ready(login_url)`` is called once listening, with a
    one-time login link (the only way in: see :mod:`websession`)."""
    srv = WebServer(port, home=home)
    if on_ready is not None:
        on_ready(srv.issue_login())
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.stopping.set()
        srv.server_close()


__all__ = ["ACTIONS", "DEFAULT_PORT", "Sampler", "WebServer", "act", "debt_board", "risk_summary",
           "run_detail", "serve", "snapshot", "tree_usage"]
