"""Persistence: every run's state in one embedded SQLite database in WAL mode.

(Over 400 lines because the schema, its migration and every query that touches it stay in one
place, as ninja keeps its log format beside the code that writes it.)

Location: ``$CIS_HOME/state.db`` (default ``~/.cis/state.db``); task directories live beside it
under ``$CIS_HOME/runs/<run_id>/``.

On-disk format (schema version 1, kept in ``meta(key='schema', value='1')``)::

    meta(key TEXT PRIMARY KEY, value TEXT)
    runs(run_id TEXT PRIMARY KEY,      -- a ULID, so runs sort by creation time
         name TEXT, dag TEXT,          -- the DAG as JSON (model.dag_to_json) + base_dir column;
                                       -- its tasks are the tasks table's (kept once, not twice)
         base_dir TEXT, state TEXT,    -- RunState value
         jobs INTEGER, sandbox TEXT,   -- sandbox mode the run uses ("bubblewrap", ...)
         engine_pid INTEGER, created REAL, updated REAL, finished REAL, note TEXT)
    tasks(run_id TEXT, idx INTEGER, name TEXT,
          spec TEXT,                   -- the task as JSON; hot amendment rewrites it
          state TEXT,                  -- TaskState value
          attempt INTEGER,             -- starts made so far
          gate TEXT, gate_until REAL,  -- why a Pending task waits: countdown|confirm|answer|backoff
          needs_rerun INTEGER,         -- completed, then amended: not rerun by itself
          started REAL, finished REAL, exit_code INTEGER,
          pid INTEGER, pid_start TEXT, -- to find and kill a task orphaned by a dead engine:
                                       -- "<lo>-<hi>" boot-time clock ticks around its launch
          task_dir TEXT, error TEXT,   -- FriendlyError as JSON (what/why/how/context)
          choice TEXT, note TEXT,      -- ambiguity decisions (JSON), last human-readable event
          PRIMARY KEY (run_id, idx))
    events(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, idx INTEGER, ts REAL,
           kind TEXT, data TEXT)       -- append-only history; `cis attach` tails it
    controls(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, idx INTEGER, kind TEXT,
             payload TEXT, created REAL, done REAL, result TEXT)
                                       -- requests from other processes (confirm, amend, ...)
    durations(key TEXT, seconds REAL, ts REAL)   -- finished-task durations, for the ETA

Durability rule: every state change is one transaction. WAL with ``synchronous=NORMAL`` keeps
committed transactions across a crash of the process (``kill -9``); only a power cut can lose the
last few, and then the database still opens consistent. Replay is not needed: the tables *are*
the state; a resuming engine reads them and treats ``Running`` rows whose process is gone as not
finished. Two engines on one run are prevented by an exclusive ``flock`` on the run's
directory ``runs/<run_id>/`` held for the engine's life (released by the kernel on ``kill -9``).
Other processes (CLI, web) never change task state directly: they append to ``controls`` and the
engine applies them in order, so there is a single writer of task state per run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cheng_build.cis.dag.model import Dag, RunState, Task, TaskState, dag_to_json, task_to_json
from cheng_build.core.errors import NotFoundError, StoreError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, name TEXT, dag TEXT, base_dir TEXT,
    state TEXT, jobs INTEGER, sandbox TEXT, engine_pid INTEGER, created REAL, updated REAL,
    finished REAL, note TEXT);
CREATE TABLE IF NOT EXISTS tasks(run_id TEXT, idx INTEGER, name TEXT, spec TEXT, state TEXT,
    attempt INTEGER DEFAULT 0, gate TEXT DEFAULT '', gate_until REAL DEFAULT 0,
    needs_rerun INTEGER DEFAULT 0, started REAL, finished REAL, exit_code INTEGER, pid INTEGER,
    pid_start TEXT, task_dir TEXT, error TEXT, choice TEXT, note TEXT,
    PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT,
    idx INTEGER, ts REAL, kind TEXT, data TEXT);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS controls(id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT,
    idx INTEGER, kind TEXT, payload TEXT, created REAL, done REAL, result TEXT);
CREATE INDEX IF NOT EXISTS controls_run ON controls(run_id, done);
CREATE TABLE IF NOT EXISTS durations(key TEXT, seconds REAL, ts REAL);
CREATE INDEX IF NOT EXISTS durations_key ON durations(key, ts);
"""

_TASK_COLS = ("state", "attempt", "gate", "gate_until", "needs_rerun", "started", "finished",
              "exit_code", "pid", "pid_start", "task_dir", "error", "choice", "note", "spec")
_RUN_COLS = ("state", "engine_pid", "updated", "finished", "note", "dag", "jobs", "sandbox")


def cis_home() -> Path:
    """``$CIS_HOME`` or ``~/.cis``."""
    env = os.environ.get("CIS_HOME")
    return Path(env) if env else Path.home() / ".cis"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task's row, decoded."""

    idx: int
    name: str
    state: TaskState
    attempt: int
    gate: str
    gate_until: float
    needs_rerun: bool
    started: float | None
    finished: float | None
    exit_code: int | None
    pid: int | None
    pid_start: str | None
    task_dir: str | None
    error: dict[str, Any] | None
    choice: dict[str, Any] | None
    note: str | None
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run's row, decoded (the DAG as stored, including amendments to its tasks)."""

    run_id: str
    name: str
    dag: Dag
    state: RunState
    jobs: int
    sandbox: str
    engine_pid: int | None
    created: float
    updated: float
    finished: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Control:
    """A request from another process, applied by the engine in ``id`` order."""

    id: int
    run_id: str
    idx: int | None
    kind: str
    payload: dict[str, Any]
    created: float


def _dumps(v: Any) -> str | None:
    return None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"))


def _loads(v: str | None) -> Any:
    return None if v is None else json.loads(v)


def _encode_task(fields: dict[str, Any]) -> dict[str, Any]:
    """Task columns as stored (states by value, JSON columns as text)."""
    bad = set(fields) - set(_TASK_COLS)
    if bad:
        raise RuntimeError(f"unknown task columns {bad}")
    enc = {}
    for k, v in fields.items():
        if isinstance(v, TaskState):
            v = v.value
        elif k in ("error", "choice", "spec"):
            v = _dumps(v)
        enc[k] = v
    return enc


def _event_data(data: dict[str, Any] | None, enc: dict[str, Any]) -> str | None:
    payload = dict(data or {})
    if "state" in enc:
        payload["state"] = enc["state"]
    return _dumps(payload)


def _update_task(db: sqlite3.Connection, run_id: str, idx: int, event: str | None,
                 data: dict[str, Any] | None, fields: dict[str, Any], now: float) -> None:
    enc = _encode_task(fields)
    if enc:
        cols = ", ".join(f"{k}=?" for k in enc)
        db.execute(f"UPDATE tasks SET {cols} WHERE run_id=? AND idx=?", (*enc.values(), run_id, idx))
    if event:
        db.execute("INSERT INTO events(run_id, idx, ts, kind, data) VALUES(?,?,?,?,?)",
                   (run_id, idx, now, event, _event_data(data, enc)))


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to store: its id, DAG, jobs and sandbox mode. ``engine_pid``: an engine of this
    process drives it from the start (``Engine(fresh=...)``): the row says so at once, with the
    ``engine-started`` event the engine would otherwise write in a transaction of its own."""

    run_id: str
    dag: Dag
    jobs: int
    sandbox: str
    engine_pid: int | None = None


def _insert_run(db: sqlite3.Connection, new: NewRun, now: float) -> None:
    run_id, dag = new.run_id, new.dag
    events = [(run_id, None, now, "run-created", _dumps({"name": dag.name}))]
    if new.engine_pid is not None:
        events.append((run_id, None, now, "engine-started", _dumps({"state": RunState.RUNNING.value})))
    db.execute("INSERT INTO runs VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
               (run_id, dag.name, _dumps(dag_to_json(replace(dag, tasks=()))), dag.base_dir,
                RunState.RUNNING.value, new.jobs, new.sandbox, new.engine_pid, now, now, None, None))
    db.executemany("INSERT INTO tasks(run_id, idx, name, spec, state) VALUES(?,?,?,?,?)",
                   [(run_id, t.idx, t.name, _dumps(task_to_json(t)), TaskState.PENDING.value)
                    for t in dag.tasks])
    db.executemany("INSERT INTO events(run_id, idx, ts, kind, data) VALUES(?,?,?,?,?)", events)


def _update_run(db: sqlite3.Connection, run_id: str, event: str | None, fields: dict[str, Any]) -> None:
    bad = set(fields) - set(_RUN_COLS)
    if bad:
        raise RuntimeError(f"unknown run columns {bad}")
    fields.setdefault("updated", time.time())
    if "state" in fields and isinstance(fields["state"], RunState):
        fields["state"] = fields["state"].value
    cols = ", ".join(f"{k}=?" for k in fields)
    db.execute(f"UPDATE runs SET {cols} WHERE run_id=?", (*fields.values(), run_id))
    if event:
        db.execute("INSERT INTO events(run_id, idx, ts, kind, data) VALUES(?,?,?,?,?)",
                   (run_id, None, time.time(), event, _dumps(
                       {k: v for k, v in fields.items() if k in ("state", "note")})))


class Store:
    """The run database. One instance per process (connections are not shared across threads).

    Raises:
        StoreError: the database cannot be opened or has a schema we do not know.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home) if home is not None else cis_home()
        self.path = self.home / "state.db"
        self.controls_added = 0
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            # Openers take turns (a file lock: threads and processes alike): two connections
            # switching a new database to WAL at once can get "database is locked" at once,
            # as SQLite does not wait on that lock upgrade; nodes and runs start together.
            opening = os.open(self.home / "state.db.open-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the run database {self.path}", why=str(exc),
                             how="check CIS_HOME and its permissions") from None
        try:
            fcntl.flock(opening, fcntl.LOCK_EX)
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            with self.tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self.db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
                elif row[0] != SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: schema version {row[0]}, this cis knows "
                                     f"{SCHEMA_VERSION}", how="use the cis that wrote it, or "
                                     "point CIS_HOME at a fresh directory")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the run database {self.path}", why=str(exc),
                             how="check CIS_HOME and the file's permissions") from None
        finally:
            os.close(opening)  # releases the lock

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE so writers queue instead of deadlocking)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?" check."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # --- paths ---------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.home / "runs" / run_id

    @contextmanager
    def engine_lock(self, run_id: str) -> Iterator[None]:
        """Hold the run's engine lock; raise if another engine drives the run.

        The lock is the run's directory itself (``flock`` works on a directory's descriptor):
        a lock file beside the task directories cost a file creation per run, and a ``cis
        node`` makes a run per task it wins. A run directory that still holds the
        ``engine.lock`` file of an earlier version is locked through that file as well, so an
        engine of that version, still alive, keeps this one off its run.
        """
        d = self.run_dir(run_id)
        d.mkdir(parents=True, exist_ok=True)
        fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
        try:
            with contextlib.suppress(FileNotFoundError):
                fds.append(os.open(d / "engine.lock", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW))
            for fd in fds:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise StoreError(f"run {run_id} is already being driven by a live engine",
                                     how=f"follow it with 'cis attach {run_id}'") from None
            yield
        finally:
            for fd in fds:
                os.close(fd)

    def engine_alive(self, run_id: str) -> bool:
        """Is an engine holding this run's lock right now?"""
        d = self.run_dir(run_id)
        for path, flags in ((d, os.O_DIRECTORY), (d / "engine.lock", os.O_NOFOLLOW)):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)
        return False

    # --- runs ----------------------------------------------------------------------------------

    def create_run(self, run_id: str, dag: Dag, *, jobs: int, sandbox: str,
                   engine_pid: int | None = None) -> None:
        """Store a new run, every task Pending (``engine_pid``: see :class:`NewRun`)."""
        with self.tx() as db:
            _insert_run(db, NewRun(run_id, dag, jobs, sandbox, engine_pid), time.time())

    def get_run(self, run_id: str) -> RunRecord:
        """Load a run (a unique prefix of its id is enough).

        Raises:
            NotFoundError: no run has that id or prefix, or the prefix is ambiguous.
        """
        from cheng_build.cis.dag.toml_io import dag_from_mapping

        rid = self.resolve_run_id(run_id)
        row = self.db.execute(
            "SELECT run_id, name, dag, base_dir, state, jobs, sandbox, engine_pid, created, "
            "updated, finished, note FROM runs WHERE run_id=?", (rid,)).fetchone()
        dag_json = _loads(row[2])
        specs = [json.loads(r[0]) for r in self.db.execute(
            "SELECT spec FROM tasks WHERE run_id=? ORDER BY idx", (rid,))]
        dag_json["tasks"] = specs
        dag = dag_from_mapping(dag_json, base_dir=row[3])
        return RunRecord(row[0], row[1], dag, RunState(row[4]), row[5], row[6], row[7], row[8],
                         row[9], row[10], row[11])

    def resolve_run_id(self, run_id: str) -> str:
        rows = self.db.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ORDER BY run_id",
                               (run_id.upper() + "%",)).fetchall()
        exact = [r[0] for r in rows if r[0] == run_id.upper()]
        if exact:
            return str(exact[0])
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise NotFoundError(f"no run {run_id!r}", how="list runs with 'cis status'",
                                exit_code=2)
        raise NotFoundError(f"run id {run_id!r} is ambiguous ({len(rows)} runs match)",
                            how="give more characters of the run id", exit_code=2)

    def list_runs(self, limit: int = 50) -> list[tuple[str, str, RunState, float, float | None]]:
        """(run_id, name, state, created, finished), newest first."""
        return [(r[0], r[1], RunState(r[2]), r[3], r[4]) for r in self.db.execute(
            "SELECT run_id, name, state, created, finished FROM runs ORDER BY run_id DESC LIMIT ?",
            (limit,))]

    def latest_run_id(self) -> str | None:
        row = self.db.execute("SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def set_run(self, run_id: str, event: str | None = None, **fields: Any) -> None:
        with self.tx() as db:
            _update_run(db, run_id, event, fields)

    # --- tasks ---------------------------------------------------------------------------------

    def tasks(self, run_id: str) -> list[TaskRecord]:
        rows = self.db.execute(
            "SELECT idx, name, state, attempt, gate, gate_until, needs_rerun, started, finished, "
            "exit_code, pid, pid_start, task_dir, error, choice, note, spec FROM tasks "
            "WHERE run_id=? ORDER BY idx", (run_id,)).fetchall()
        return [TaskRecord(r[0], r[1], TaskState(r[2]), r[3] or 0, r[4] or "", r[5] or 0.0,
                           bool(r[6]), r[7], r[8], r[9], r[10], r[11], r[12], _loads(r[13]),
                           _loads(r[14]), r[15], json.loads(r[16])) for r in rows]

    def set_task(self, run_id: str, idx: int, event: str | None = None,
                 data: dict[str, Any] | None = None, *,
                 duration: tuple[str, float] | None = None,
                 run: tuple[str, dict[str, Any]] | None = None, create: NewRun | None = None,
                 **fields: Any) -> None:
        """Update one task's columns and append an event (and a duration), in one transaction;
        ``run``: (event, columns) of the run's row, changed in the same transaction (a fresh
        run ends with its last task: see ``Engine``); ``create``: the run, stored first in
        the same transaction (a fresh run is stored with its first transition)."""
        now = time.time()
        with self.tx() as db:
            if create is not None:
                _insert_run(db, create, now)
            _update_task(db, run_id, idx, event, data, fields, now)
            if duration is not None:
                db.execute("INSERT INTO durations VALUES(?,?,?)", (duration[0], duration[1], now))
            if run is None:
                db.execute("UPDATE runs SET updated=? WHERE run_id=?", (now, run_id))
            else:
                _update_run(db, run_id, run[0], {"updated": now, **run[1]})

    def set_tasks(self, run_id: str,
                  updates: Sequence[tuple[int, str | None, dict[str, Any] | None, dict[str, Any]]]) -> None:
        """Many :meth:`set_task` updates, ``(idx, event, data, fields)``, in one transaction (a
        mirror of a room run applies a whole read's worth at once)."""
        if not updates:
            return
        now = time.time()
        # Consecutive updates of the same columns go as one executemany, and the events as one
        # (a node's copy of a busy room run writes hundreds a second; the order is kept).
        groups: list[tuple[tuple[str, ...], list[tuple[Any, ...]]]] = []
        events: list[tuple[Any, ...]] = []
        for idx, event, data, fields in updates:
            enc = _encode_task(fields)
            cols = tuple(enc)
            if not groups or groups[-1][0] != cols:
                groups.append((cols, []))
            groups[-1][1].append((*enc.values(), run_id, idx))
            if event:
                events.append((run_id, idx, now, event, _event_data(data, enc)))
        with self.tx() as db:
            for cols, rows in groups:
                if cols:
                    db.executemany(f"UPDATE tasks SET {', '.join(f'{k}=?' for k in cols)} "
                                   "WHERE run_id=? AND idx=?", rows)
            db.executemany("INSERT INTO events(run_id, idx, ts, kind, data) VALUES(?,?,?,?,?)", events)
            db.execute("UPDATE runs SET updated=? WHERE run_id=?", (now, run_id))

    def set_spec(self, run_id: str, task: Task) -> None:
        self.set_task(run_id, task.idx, spec=task_to_json(task))

    def add_event(self, run_id: str, idx: int | None, kind: str, data: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO events(run_id, idx, ts, kind, data) VALUES(?,?,?,?,?)",
                       (run_id, idx, time.time(), kind, _dumps(data)))

    def events(self, run_id: str, after: int = 0) -> list[tuple[int, int | None, float, str, Any]]:
        return [(r[0], r[1], r[2], r[3], _loads(r[4])) for r in self.db.execute(
            "SELECT id, idx, ts, kind, data FROM events WHERE run_id=? AND id>? ORDER BY id",
            (run_id, after))]

    # --- controls ------------------------------------------------------------------------------

    def add_control(self, run_id: str, kind: str, idx: int | None,
                    payload: dict[str, Any] | None = None) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO controls(run_id, idx, kind, payload, created) VALUES(?,?,?,?,?)",
                (run_id, idx, kind, _dumps(payload or {}), time.time()))
        # data_version only moves for *other* connections' commits; count our own so an engine
        # sharing this Store (the terminal view's keys) notices them too.
        self.controls_added += 1
        return int(cur.lastrowid or 0)

    def pending_controls(self, run_id: str) -> list[Control]:
        return [Control(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in self.db.execute(
            "SELECT id, run_id, idx, kind, payload, created FROM controls "
            "WHERE run_id=? AND done IS NULL ORDER BY id", (run_id,))]

    def finish_control(self, control_id: int, result: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE controls SET done=?, result=? WHERE id=?",
                       (time.time(), result, control_id))

    def control_result(self, control_id: int) -> str | None:
        row = self.db.execute("SELECT result FROM controls WHERE id=?", (control_id,)).fetchone()
        return None if row is None else row[0]

    # --- durations (ETA) -----------------------------------------------------------------------

    def record_duration(self, key: str, seconds: float) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO durations VALUES(?,?,?)", (key, seconds, time.time()))

    def typical_durations(self, keys: Sequence[str]) -> dict[str, float]:
        """The median of the last 5 recorded durations per key (keys never seen are absent)."""
        out: dict[str, float] = {}
        for k in set(keys):
            vals = sorted(r[0] for r in self.db.execute(
                "SELECT seconds FROM durations WHERE key=? ORDER BY ts DESC LIMIT 5", (k,)))
            if vals:
                out[k] = vals[len(vals) // 2]
        return out

    # --- debt ----------------------------------------------------------------------------------

    def all_debt(self) -> list[tuple[str, str, int, str, dict[str, Any] | None]]:
        """(run_id, dag name, idx, task name, error) of every task in Debt or Failed state."""
        return [(r[0], r[1], r[2], r[3], _loads(r[4])) for r in self.db.execute(
            "SELECT t.run_id, r.name, t.idx, t.name, t.error FROM tasks t JOIN runs r "
            "ON r.run_id=t.run_id WHERE t.state IN (?, ?) ORDER BY t.run_id DESC, t.idx",
            (TaskState.DEBT.value, TaskState.FAILED.value))]
