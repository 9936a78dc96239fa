"""The room on a Matrix homeserver (imported only by `cis node`, `cis run --room:`, `cis confirm
--room:` and a web view acting in rooms).

Getting into the room the first time (login, alias, join or create, the sync filter) goes
through mautrix's ``ClientAPI`` in :mod:`.matrix_join` (typed, actively maintained: it powers
maubot and the mautrix bridges; lighter than matrix-nio), on an aiohttp session of its own.
The room itself (send, ``/sync``, ``/messages``, members, and the checks of a kept session) is a
few plain JSON requests made here on :mod:`.http1` (asyncio streams + h11), so that the raw
JSON (the ``limited`` flag, ``prev_batch``, custom event types) reaches us untouched, and so
that a run whose session is kept (:func:`connect`) imports neither mautrix (~0.1 s of attrs
types) nor aiohttp (~0.12 s): a `cis run --room:`'s start-up.

Order: after the first read, :meth:`MatrixRoom.read` is an incremental ``/sync`` from the last
``next_batch``: Synapse serves it in stream order, the order it persisted events. When Synapse
says ``limited`` (more events than the filter's limit since the token), the missing ones are
fetched with ``/messages`` back to the token and the batch is marked ``gap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pathlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cheng_build.cis.node.http1 import Client, HttpError
from cheng_build.cis.node.matrix_ids import is_user
from cheng_build.cis.node.room import Batch, RoomError, RoomEvent

if TYPE_CHECKING:  # the module itself (mautrix) is imported only where a run must get in
    from cheng_build.cis.node.matrix_join import Joined

EVENT_PREFIX = "org.cheng.cis."
TIMELINE_LIMIT = 1000
HTTP_TIMEOUT_S = 20.0
_V3 = "/_matrix/client/v3"


def sync_filter(room_id: str) -> dict[str, Any]:
    """Only our events of this room's timeline: no state, members, receipts, typing, presence
    or account data (each would be work for the homeserver on every sync, for nothing).

    Each call is a filter of its own (a nonce in a field servers ignore): Synapse caches a sync's
    answer for two minutes by (user, device, filter id, since, timeout) and gives one user's
    identical filters one id, so readers sharing a kept session (several ``cis run --room:`` of
    one user) would get each other's answers from the same token: right, but as old as the first
    reader's, so each needed another read for what came since (traced: an origin saw its run's
    last results 0.6-0.8 s after they were posted, a read and a pause per stale answer)."""
    return {"room": {"rooms": [room_id],
                     "timeline": {"types": [EVENT_PREFIX + "*"], "limit": TIMELINE_LIMIT},
                     "state": {"types": []}, "ephemeral": {"types": []}, "account_data": {"types": []}},
            "presence": {"types": []}, "account_data": {"types": []},
            "org.cheng.cis.reader": os.urandom(8).hex()}


def _event(raw: Mapping[str, Any]) -> RoomEvent:
    content = raw.get("content")
    return RoomEvent(str(raw.get("event_id", "")), str(raw.get("sender", "")), str(raw.get("type", "")),
                     content if isinstance(content, dict) else {}, int(raw.get("origin_server_ts") or 0))


class MatrixRoom:
    """One joined room on one homeserver (see the module docstring)."""

    def __init__(self, http: Client, token: str, user_id: str, room_id: str, filter_id: str) -> None:
        self._http = http
        self._auth = ("Authorization", f"Bearer {token}")
        self._user = user_id
        self._room = room_id
        self._filter = filter_id

    @property
    def room_id(self) -> str:
        return self._room

    @property
    def user_id(self) -> str:
        return self._user

    async def _request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                       body: Mapping[str, Any] | None = None, *, expect_s: float = 0.0) -> dict[str, Any]:
        """One client-API request; its JSON answer, or a RoomError: ``transient`` for the network,
        429 (rate limited) and 5xx (an overloaded homeserver), which are retried, never dropped
        (a dropped state event is a lost result; a dropped claim, a lost race). ``expect_s``: how
        long the homeserver may hold it (a long-poll's timeout)."""
        head = [self._auth]
        data_out = None
        if body is not None:
            data_out = json.dumps(body, separators=(",", ":")).encode()
            head.append(("Content-Type", "application/json"))
        try:
            # Every request made here may be sent twice (a reused connection the homeserver
            # closed while idle): GETs read; the PUT of an event carries a transaction id, which
            # makes the homeserver answer a repeat with the first event; a second filter POST
            # only makes an unused filter.
            r = await self._http.request(method, _V3 + path, query=query, body=data_out, headers=head,
                                         expect_s=expect_s, idempotent=True)
        except HttpError as exc:
            raise RoomError(f"homeserver unreachable: {exc}",
                            "check --homeserver; the node keeps working and queues its events",
                            transient=True) from exc
        raw, status = r.body, r.status
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:  # not the homeserver's JSON (a proxy's page): its status says enough
            data = {}
        data = data if isinstance(data, dict) else {}
        if status == 429 or status >= 500:
            raise RoomError(f"homeserver answered HTTP {status}", transient=True)
        if status >= 400:
            raise RoomError(f"homeserver refused: {data.get('errcode') or status}: "
                            f"{data.get('error') or ''}".rstrip(": "))
        return data

    def _in_room(self, *parts: str) -> str:
        return "/rooms/" + "/".join(quote(p, safe="") for p in (self._room, *parts))

    async def send(self, etype: str, content: Mapping[str, Any], txn_id: str) -> str:
        # The txn id makes a retry after a lost answer return the first event, never a second.
        r = await self._request("PUT", self._in_room("send", etype, txn_id), body=dict(content))
        return str(r.get("event_id", ""))

    async def _messages(self, start: str, stop: str | None) -> list[RoomEvent]:
        """Events between ``start`` going back to ``stop`` (None: the room's creation), oldest first."""
        out: list[RoomEvent] = []
        frm: str | None = start
        while frm:
            q = {"dir": "b", "from": frm, "limit": "1000",
                 "filter": json.dumps({"types": [EVENT_PREFIX + "*"]})}
            if stop:
                q["to"] = stop
            r = await self._request("GET", self._in_room("messages"), q)
            chunk = r.get("chunk") or []
            out.extend(_event(e) for e in chunk)
            nxt = r.get("end")
            if not chunk or not nxt or nxt == frm:
                break
            frm = nxt
        out.reverse()
        return out

    async def read(self, since: str | None, timeout_s: float) -> Batch:
        # set_presence=offline: a sync that marks the user online makes a homeserver with
        # presence on do presence work (and fan it out) on every long poll; we never read it.
        q = {"filter": self._filter, "timeout": str(int(timeout_s * 1000)), "set_presence": "offline"}
        if since:
            q["since"] = since
        else:
            # A first read is its own request (a fresh filter inline, see sync_filter): a first
            # read from the same filter within two minutes would get the earlier one's cached
            # answer, without what was posted since (a `--follow-run` would not find its run).
            q["timeout"] = "0"
            q["filter"] = json.dumps(sync_filter(self._room))
        r = await self._request("GET", "/sync", q, expect_s=float(q["timeout"]) / 1000)
        room = ((r.get("rooms") or {}).get("join") or {}).get(self._room) or {}
        tl = room.get("timeline") or {}
        events = [_event(e) for e in tl.get("events") or []
                  if str(e.get("type", "")).startswith(EVENT_PREFIX)]
        gap = False
        if tl.get("limited") and tl.get("prev_batch"):
            # More happened than one sync carries: fetch the rest back to where we were.
            older = await self._messages(str(tl["prev_batch"]), since)
            seen = {e.event_id for e in events}
            events = [e for e in older if e.event_id not in seen] + events
            gap = since is not None
        return Batch(tuple(events), str(r.get("next_batch", since or "")), gap)

    async def members(self) -> frozenset[str]:
        m = await self._request("GET", self._in_room("joined_members"))
        joined = m.get("joined")
        return frozenset(str(u) for u in joined) if isinstance(joined, dict) else frozenset()

    async def close(self) -> None:
        await self._http.close()


async def connect(homeserver: str, user: str, *, password: str | None = None, token: str | None = None,
                  room: str, create: bool = True, join: bool = True,
                  session_file: pathlib.Path | None = None) -> MatrixRoom:
    """Log in (or use a token), join ``room`` (an alias), creating it when asked and absent.
    ``join=False``: never join; refuse unless the user is already a member (the web view acts in
    a room only as a member: membership is the boundary, not something a button press grants).

    ``session_file``: with a password, what an earlier run learnt is kept there (0600): the
    access token (so repeated runs neither make a new device each time nor pay the homeserver's
    password hashing, ~120 ms of its CPU per login), and per room its id and alias. A run that
    finds them checks them with three requests at once (``whoami``, ``joined_rooms``, the alias)
    and makes its sync filter, where getting in takes four to six one after another, and never
    imports mautrix. Runs started together share one login: a lock beside the file.

    Raises:
        RoomError: bad credentials, unknown room, homeserver down (``transient``).
    """
    try:
        http = Client(homeserver.rstrip("/"), connect_timeout_s=HTTP_TIMEOUT_S)
    except ValueError as exc:
        raise RoomError(f"homeserver {homeserver!r} is not a URL ({exc})",
                        "e.g. http://127.0.0.1:8008") from None
    try:
        if token is None and password is not None and session_file is not None:
            async with _session_lock(session_file):
                return await _connect_kept(http, homeserver, user, password, room, create, join,
                                           session_file)
        return _room(http, await _enter(homeserver, user, password, token, room, create, join))
    except BaseException:
        await http.close()
        raise


async def _enter(homeserver: str, user: str, password: str | None, token: str | None, room: str,
                 create: bool, join: bool) -> Joined:
    from cheng_build.cis.node import matrix_join  # mautrix and aiohttp: only to get into the room

    return await matrix_join.enter(homeserver, user, password, token, room, create, join, sync_filter,
                                   connect_timeout_s=HTTP_TIMEOUT_S)


def _room(http: Client, got: Joined) -> MatrixRoom:
    return MatrixRoom(http, got.token, got.user_id, got.room_id, got.filter_id)


async def _connect_kept(http: Client, homeserver: str, user: str, password: str,
                        room: str, create: bool, join: bool, session_file: pathlib.Path) -> MatrixRoom:
    kept = _read_session(session_file)
    token = kept.get("access_token")
    token = token if isinstance(token, str) and token else None
    rooms: dict[str, Any] = kept["rooms"] if isinstance(kept.get("rooms"), dict) else {}
    entry = rooms.get(room) if token else None
    if isinstance(entry, dict) and isinstance(entry.get("room_id"), str):
        r = MatrixRoom(http, str(token), "", entry["room_id"], "")
        alias = str(entry.get("alias", ""))
        asks = [r._request("GET", "/account/whoami"), r._request("GET", "/joined_rooms")]
        if alias.startswith("#"):
            asks.append(r._request("GET", "/directory/room/" + quote(alias, safe="")))
        # Two or three cheap requests at once (and a filter) where getting in takes four to six
        # one after another: the token still works and is --user's (a kept file holding another
        # user's token is never used as it), the user is still in the room, and the alias still
        # names that room.
        answers = await asyncio.gather(*asks, return_exceptions=True)
        for a in answers:
            if isinstance(a, BaseException) and not isinstance(a, RoomError):
                raise a
            if isinstance(a, RoomError) and a.transient:
                raise RoomError(f"homeserver {homeserver} unreachable", "start it, or check --homeserver",
                                transient=True) from a
        # A refusal (a revoked or expired token, an alias gone) reads as {}: in again below.
        who, joined, *named = [a if isinstance(a, dict) else {} for a in answers]
        if named and named[0].get("room_id") != r.room_id:
            joined = {}  # the alias names another room now: get in again below
        me = str(who.get("user_id", ""))
        if is_user(me, user) and r.room_id in (joined.get("joined_rooms") or ()):
            r._user = me
            r._filter = str((await r._request("POST", f"/user/{quote(me, safe='')}/filter",
                                              body=sync_filter(r.room_id))).get("filter_id", ""))
            return r
        if me and not is_user(me, user):
            token, rooms = None, {}
    got: Joined | None = None
    if token is not None:
        try:
            got = await _enter(homeserver, user, None, token, room, create, join)
        except RoomError as exc:
            if exc.transient or not exc.what.startswith(f"login as {user} refused"):
                raise
            rooms = {}  # revoked or expired: log in with the password below, forget its rooms
    if got is None:
        got = await _enter(homeserver, user, password, None, room, create, join)
    if got.token != token:
        rooms = {}
    rooms[room] = {"room_id": got.room_id, "alias": got.alias}
    _write_session(session_file, {"access_token": got.token, "rooms": rooms})
    return _room(http, got)


@contextlib.asynccontextmanager
async def _session_lock(path: pathlib.Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``<session file>.lock``, waited for in a thread (the loop goes
    on); where no lock can be made (a read-only home), none: the cost is only a second login."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_session(path: pathlib.Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_session(path: pathlib.Path, data: Mapping[str, Any]) -> None:
    """Written 0600, atomically; a failure only costs the next run a login."""
    from cheng_build.core.atomic import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_bytes(path, json.dumps(data).encode(), mode=0o600)
    except OSError:
        pass
