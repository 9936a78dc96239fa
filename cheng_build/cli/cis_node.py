"""``cis node`` (an agent that claims and runs tasks from a Matrix room), ``cis nodes`` (who is on
the LAN, by mDNS), and ``cis run <dag> --room:<alias>`` (post a run to the room and follow it).

Connection: ``--homeserver: --user: --password-file:`` (or ``--token-file:``), else the
environment (``CIS_MATRIX_HOMESERVER``, ``CIS_MATRIX_USER``, ``CIS_MATRIX_PASSWORD_FILE``,
``CIS_MATRIX_TOKEN_FILE``), else ``$CIS_HOME/matrix.toml`` (``homeserver = ``, ``user = ``,
``password_file = ``, ``token_file = ``, ``room = ``). See docs/cisnodes.md.

(Over 400 lines on purpose: the three commands share one Matrix connection (flags, environment,
``matrix.toml``) and the room protocol they speak.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.errors import ChengError, InputError, UsageError

_ENV = {"homeserver": "CIS_MATRIX_HOMESERVER", "user": "CIS_MATRIX_USER",
        "password_file": "CIS_MATRIX_PASSWORD_FILE", "token_file": "CIS_MATRIX_TOKEN_FILE",
        "room": "CIS_MATRIX_ROOM"}


class RoomFailure(ChengError):
    """The homeserver or the room refused or could not be reached."""


def add_connection_flags(p: Parser | argparse.ArgumentParser, *, run: bool = False,
                         room: bool = True) -> None:
    """The flags ``cis node`` and ``cis run --room:`` share (``run``: and the origin's own;
    ``room=False``: no ``--room``, for ``cis web``, whose runs each know their room)."""
    p.add_argument("--homeserver", default=None, help="Matrix homeserver URL (env CIS_MATRIX_HOMESERVER)")
    p.add_argument("--user", default=None, help="Matrix user, @name:server or name (env CIS_MATRIX_USER)")
    p.add_argument("--password-file", default=None,
                   help="file holding the password (env CIS_MATRIX_PASSWORD_FILE)")
    p.add_argument("--token-file", default=None,
                   help="file holding an access token instead (env CIS_MATRIX_TOKEN_FILE)")
    if room:
        p.add_argument("--room", default=None,
                       help="room alias, e.g. cis or #cis:example.org (created by the first node)")
    if run:
        p.add_argument("--grace", type=float, default=15.0,
                       help="with --room: seconds to wait for a capable node before a task no live "
                       "node can take is skipped")
        p.add_argument("--follow-run", default=None, help=argparse.SUPPRESS)


def register(name: str, p: Parser) -> None:
    if name == "node":
        add_connection_flags(p)
        p.add_argument("--workspace", required=True,
                       help="the local checkout this node runs tasks in (same commit as the origin's)")
        p.add_argument("--caps", default="", help="capabilities to add, comma-separated: cuda,metal,...")
        p.add_argument("--no-detect", action="store_true",
                       help="only the --caps given (skip NVML / nvcc / Metal / CPU detection)")
        p.add_argument("--jobs", type=int, default=None, help="tasks at once (default: core count)")
        p.add_argument("--lease", type=float, default=10.0,
                       help="seconds a claim holds without renewal before others take it over")
        p.add_argument("--no-mdns", action="store_true", help="do not announce this node on the LAN")
    elif name == "nodes":
        p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen")
        add_format_flag(p)


@dataclass(frozen=True, slots=True)
class Connection:
    homeserver: str
    user: str
    password: str | None
    token: str | None
    room: str


def _read_secret(path: str, what: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror or exc}",
                         how=f"give --{what}-file:<a readable file>") from None
    if not text:
        raise InputError(f"the {what} file {path} is empty")
    return text


def connection(args: argparse.Namespace, *, env: dict[str, str] | None = None,
               need_room: bool = True) -> Connection:
    """Flags > environment > ``$CIS_HOME/matrix.toml`` (``need_room=False``: the room may be
    absent, e.g. ``cis web``, which takes each run's room from the run).

    Raises:
        UsageError: something needed is given nowhere.
    """
    import tomllib

    env = dict(os.environ) if env is None else env
    home = Path(env.get("CIS_HOME") or Path.home() / ".cis")
    cfg: dict[str, Any] = {}
    cfg_path = home / "matrix.toml"
    if cfg_path.is_file():
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{cfg_path}: not valid TOML", why=str(exc)) from None
    vals: dict[str, str | None] = {}
    for key, var in _ENV.items():
        flag = getattr(args, key, None)
        vals[key] = flag or env.get(var) or (str(cfg[key]) if cfg.get(key) else None)
    missing = [k for k in ("homeserver", "user", "room")[:3 if need_room else 2] if not vals[k]]
    if missing:
        raise UsageError(f"no {', '.join('--' + m.replace('_', '-') for m in missing)} given",
                         how="pass the flags, or set " + ", ".join(_ENV[m] for m in missing)
                         + f", or write them in {cfg_path}")
    if not vals["password_file"] and not vals["token_file"]:
        raise UsageError("no --password-file or --token-file given",
                         how="pass one, or set CIS_MATRIX_PASSWORD_FILE / CIS_MATRIX_TOKEN_FILE")
    hs = str(vals["homeserver"])
    if not hs.startswith(("http://", "https://")):
        raise UsageError(f"--homeserver {hs!r} is not an http(s) URL", how="e.g. http://127.0.0.1:8008")
    return Connection(hs, str(vals["user"]),
                      _read_secret(str(vals["password_file"]), "password") if vals["password_file"] else None,
                      _read_secret(str(vals["token_file"]), "token") if vals["token_file"] else None,
                      str(vals["room"] or ""))


def has_connection(args: argparse.Namespace, *, env: dict[str, str] | None = None) -> bool:
    """Is a homeserver given anywhere (flags, environment, ``matrix.toml``)? ``cis web`` then
    acts in rooms, and a half-given connection is a usage error rather than silently none."""
    env = dict(os.environ) if env is None else env
    if getattr(args, "homeserver", None) or env.get(_ENV["homeserver"]):
        return True
    cfg_path = Path(env.get("CIS_HOME") or Path.home() / ".cis") / "matrix.toml"
    return cfg_path.is_file() and "homeserver" in cfg_path.read_text(encoding="utf-8", errors="replace")


def room_connector(conn: Connection) -> Any:
    """A :data:`decide.Connector` for ``conn``'s user that never joins (membership is checked)."""
    import logging

    from cheng_build.cis.node import matrix

    logging.getLogger("mau").setLevel(logging.CRITICAL)

    async def connect(room: str) -> Any:
        return await matrix.connect(conn.homeserver, conn.user, password=conn.password,
                                    token=conn.token, room=room, create=False, join=False,
                                    session_file=session_file(conn))

    return connect


def session_file(conn: Connection, home: Path | None = None) -> Path:
    """Where a password login's access token is kept for the next run: per homeserver, user and
    password (a changed password logs in again), in ``$CIS_HOME/matrix/`` (0600 files), or in
    ``home``'s."""
    import hashlib

    from cheng_build.cis.run.store import cis_home

    key = hashlib.sha256("\0".join((conn.homeserver, conn.user, conn.password or "")).encode())
    return (home or cis_home()) / "matrix" / f"{key.hexdigest()[:32]}.json"


async def _connect(conn: Connection, *, create: bool) -> Any:
    import logging

    from cheng_build.cis.node import matrix
    from cheng_build.cis.node.room import RoomError

    # mautrix logs its own retries with tracebacks; our one-line errors say what matters.
    logging.getLogger("mau").setLevel(logging.CRITICAL)
    try:
        return await matrix.connect(conn.homeserver, conn.user, password=conn.password,
                                    token=conn.token, room=conn.room, create=create,
                                    session_file=session_file(conn))
    except RoomError as exc:
        raise RoomFailure(exc.what, how=exc.how or None) from None


def _say(msg: str) -> None:
    print(f"cis node: {msg}", file=sys.stderr, flush=True)


def _caps(args: argparse.Namespace) -> tuple[str, ...]:
    from cheng_build.cis.node.protocol import valid_cap

    extra = [c.strip().lower() for c in args.caps.split(",") if c.strip()]
    bad = [c for c in extra if not valid_cap(c)]
    if bad:
        raise UsageError(f"--caps: {', '.join(map(repr, bad))} is not a capability name",
                         how="lower-case names like cuda, metal, cpu")
    found: list[str] = []
    if not args.no_detect:
        from cheng_build.cis.targets.capabilities import detect

        have = detect()
        found = [n for n in have.items if have.has(n)]
    return tuple(dict.fromkeys([*found, *extra]))


def run(name: str, args: argparse.Namespace) -> int:
    if name == "node":
        return _node(args)
    return _nodes(args)


def _node(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from cheng_build.cis.node import mirror, workspace
    from cheng_build.cis.node.agent import Agent, NodeConfig
    from cheng_build.cis.node.room import RoomError
    from cheng_build.cis.run import control

    conn = connection(args)
    ws = Path(args.workspace)
    try:
        wid = workspace.identity(ws)
    except workspace.WorkspaceError as exc:
        raise InputError(str(exc)) from None
    if (args.jobs is not None and args.jobs < 1) or args.lease <= 0:
        raise UsageError("--jobs and --lease must be positive")
    caps = _caps(args)
    home = Path(os.environ.get("CIS_HOME") or Path.home() / ".cis")
    cfg = NodeConfig(home=home, workspace=ws.resolve(), workspace_id=wid, caps=caps,
                     jobs=args.jobs or os.cpu_count() or 1, lease_s=args.lease)

    async def main() -> int:
        room = await _connect(conn, create=True)
        agent = Agent(room, cfg, _say)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        announcer = None
        if not args.no_mdns:
            from cheng_build.cis.node import mdns

            try:
                announcer = await mdns.announce(agent.node, conn.homeserver, room.room_id, conn.room,
                                                caps, wid)
            except (OSError, RuntimeError) as exc:  # no multicast here: the room still works
                _say(f"mDNS announce failed ({exc}); continuing without it")
        store = control.open_store(home)
        copies = mirror.NodeMirror(store, mirror.RoomRef(conn.room, room.room_id))
        keeper = loop.create_task(copies.follow(agent, stop))
        try:
            await agent.start()
            _say(f"{agent.node} in {room.room_id} ({conn.room}); caps {', '.join(caps) or 'none'}; "
                 f"workspace {wid}; {cfg.jobs} jobs")
            await agent.serve(stop)
        except RoomError as exc:
            raise RoomFailure(exc.what, how=exc.how or None) from None
        finally:
            stop.set()
            await keeper
            copies.sync(agent.ledger, agent.parsed)  # the last states the node saw
            store.close()
            if announcer is not None:
                await announcer.close()
            await room.close()
        c = agent.counters
        _say(f"stopped: claimed {c.claimed}, won {c.won}, lost {c.lost}, ran {c.ran}, "
             f"took over {c.takeovers}, dropped {len(c.dropped)} bad event(s)")
        return 0

    return asyncio.run(main())


def _nodes(args: argparse.Namespace) -> int:
    from cheng_build.cis.node import mdns

    found = mdns.browse(args.timeout)
    if args.format == "json":
        from dataclasses import asdict

        print(json.dumps([asdict(f) for f in found], indent=2))
        return 0
    if not found:
        print(f"no cis nodes answered on the LAN within {args.timeout:g} s")
    for f in found:
        print(f"{f.node}  {f.address}  caps {','.join(f.caps) or '-'}  homeserver {f.homeserver}  "
              f"room {f.room}")
    return 0


# --- cis run <dag> --room: ------------------------------------------------------------------------


def run_in_room(args: argparse.Namespace) -> int:
    """``cis run <dag> --room:``: post the run, mirror it into the local store, follow it."""
    import asyncio

    from cheng_build.cis.dag.model import RunState
    from cheng_build.cis.node import protocol, workspace
    from cheng_build.cis.node.ledger import TaskView
    from cheng_build.cis.node.localrun import parse_run
    from cheng_build.cis.node.protocol import Kind, ProtocolError
    from cheng_build.cis.node.room import RoomError
    from cheng_build.cis.run import control

    conn = connection(args)
    path = Path(args.target)
    if path.is_dir():
        path = path / "cis.toml"
    if not path.is_file():
        raise InputError(f"{args.target}: no such DAG file", how="cis run --room: takes a cis.toml path")
    text = path.read_text(encoding="utf-8")
    parsed = parse_run(text, path.resolve().parent)
    root = workspace.find_root(path)
    try:
        wid = workspace.identity(root)
    except workspace.WorkspaceError as exc:
        raise InputError(str(exc)) from None
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    following = getattr(args, "follow_run", None)
    run_id = following or control.new_run_id()
    fields = {"run": run_id, "name": parsed.dag.name, "workspace": wid, "dag_file": rel,
              "dag_z": protocol.pack_dag(text)}
    try:  # before connecting: an oversize DAG never reaches the homeserver
        protocol.content(Kind.RUN, "@" + "x" * 254, **fields)
    except ProtocolError as exc:
        raise InputError(f"{path}: the run event is too large for the room ({exc})",
                         why="a room event carries the DAG's text, never files; the limit is 16 KB",
                         how="split the DAG, or shorten commands/env (move data into files)") from None
    store = control.open_store()
    quiet = bool(getattr(args, "quiet", False))
    fmt = getattr(args, "format", "text")

    def out(line: str) -> None:
        if not quiet and fmt != "json":
            print(line, file=sys.stderr, flush=True)

    async def main() -> int:
        from cheng_build.cis.node import mirror
        from cheng_build.cis.node.origin import Follower
        from cheng_build.cis.node.trace import mark

        mark("origin_main")
        room = await _connect(conn, create=False)
        mark("origin_connected")
        try:
            content = None if following else protocol.content(Kind.RUN, room.user_id, **fields)
            if content is not None:
                store.create_run(run_id, parsed.dag, jobs=1, sandbox="room")
                # Where the run lives: the web view sends its decisions there.
                mirror.record_room(store, run_id, mirror.RoomRef(conn.room, room.room_id))
                out(f"run {run_id}: {parsed.dag.name}, {len(parsed.dag.tasks)} tasks, posted to "
                    f"{conn.room} (workspace {wid})")
            if args.detach and content is not None:
                await room.send(Kind.RUN.etype, content, f"run-{run_id}")
                pid = _spawn_follower(args, path, run_id, store.run_dir(run_id))
                print(run_id)
                out(f"detached (follower pid {pid}); see it with: cis status {run_id}")
                return 0

            kept = mirror.RunMirror(store, run_id, parsed.plan)

            def changed(old: list[TaskView], new: list[TaskView]) -> None:
                kept.update(new)
                before = {v.idx: v for v in old}
                for v in new:
                    b = before.get(v.idx)
                    if b is None or (b.status, b.node) != (v.status, v.node):
                        out(f"  task {v.idx} {v.name}: {v.status.value}"
                            + (f" on {v.node}" if v.node else "") + (f" ({v.reason})" if v.reason else ""))

            res = await Follower(room, run_id, parsed.plan, changed, out,
                                 grace_s=args.grace).follow(content)
        except RoomError as exc:
            raise RoomFailure(exc.what, how=exc.how or None) from None
        finally:
            await room.close()
        state = (RunState.FAILED if res.failed or res.why else
                 RunState.SUCCEEDED_WITH_DEBT if res.debt else RunState.SUCCEEDED)
        note = res.why or ""
        store.set_run(run_id, "run-finished", state=state, finished=time.time(), note=note or None)
        if fmt == "json":
            print(json.dumps({"run_id": run_id, "state": state.value,
                              "tasks": [{"idx": v.idx, "name": v.name, "state": v.status.value,
                                         "node": v.node, "reason": v.reason} for v in res.views]}))
        else:
            out(f"{parsed.dag.name} [{run_id}]: {state.value}")
        if res.why:
            raise RoomFailure(f"no node took run {run_id}", why=res.why,
                              how="start a `cis node` on a machine with this workspace checked out")
        return 1 if state is RunState.FAILED else 0

    return asyncio.run(main())


def confirm_in_room(args: argparse.Namespace) -> int:
    """``cis confirm <run> <task> --room:``: a person's yes, as a room event any node applies."""
    import asyncio

    from cheng_build.cis.node.decide import control_fields
    from cheng_build.cis.node.protocol import ProtocolError
    from cheng_build.cis.node.room import RoomError

    conn = connection(args)
    task = str(args.task)
    if not task.isdigit():
        # A name: the origin's store knows the run's tasks; elsewhere give the index.
        from cheng_build.cis.run import control

        store = control.open_store()
        try:
            idx = control.task_index(store, args.run_id, task)
            run_id = store.resolve_run_id(args.run_id)
        finally:
            store.close()
    else:
        idx, run_id = int(task), str(args.run_id)
    try:
        control_fields(run_id, idx, "confirm")
    except ProtocolError as exc:
        raise UsageError(f"cannot confirm: {exc}", how="give the full run id and a task index") from None

    async def main() -> None:
        from cheng_build.cis.node.decide import post_control

        room = await _connect(conn, create=False)
        try:
            await post_control(room, run_id, idx, "confirm")  # the web view's buttons use it too
        except RoomError as exc:
            raise RoomFailure(exc.what, how=exc.how or None) from None
        finally:
            await room.close()

    asyncio.run(main())
    print(f"confirmed task {idx} of {run_id} in {conn.room}: a capable node takes it now")
    return 0


def _spawn_follower(args: argparse.Namespace, dag: Path, run_id: str, run_dir: Path) -> int:
    """``cis run --room: --detach``: a background ``cis run --follow-run:<id>`` mirrors the run."""
    import subprocess

    argv = [sys.executable, "-m", "cheng_build.cli.cis", "run", str(dag.resolve()), "--quiet",
            f"--follow-run={run_id}", f"--grace={args.grace}"]
    for key in ("homeserver", "user", "password_file", "token_file", "room"):
        val = getattr(args, key, None)
        if val:
            argv.append(f"--{key.replace('_', '-')}={Path(val).resolve() if key.endswith('file') else val}")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "room-follow.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    """``python -m cheng_build.cli.cis_node node ...``."""
    from cheng_build.cli.app import Subcommand, dispatch

    table = {"node": Subcommand(__name__, "claim and run tasks from a Matrix room"),
             "nodes": Subcommand(__name__, "list cis nodes on the LAN (mDNS)")}
    return dispatch("cis", "multi-node CIS", table, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
