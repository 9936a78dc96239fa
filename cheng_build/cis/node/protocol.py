"""The room events of multi-node CIS: their fields, the 16 KB cap, and validation.

Every event is a custom Matrix event type ``org.cheng.cis.<kind>`` (chat clients do not render
them, and a sync filter selects them server-side). Contents are small JSON objects without
floats (Matrix's canonical JSON has none: durations are integer milliseconds); none carries
file contents, only names, ids, paths, states and reasons (the seed's red line: data never crosses
nodes). The node that sent an event is its Matrix ``sender``; a ``node`` field that disagrees
with the sender is a forgery and the event is dropped where it is read.

=========  ===================================================================================
kind       content
=========  ===================================================================================
hello      node, caps[], workspace, jobs, hello_ms   (a node is up; repeated as a heartbeat)
run        node, run, name, workspace, dag_file, dag_z (the cis.toml text, zlib + base64)
claim      node, run, ITEMS, lease_ms, [at_ms],      (per task, the first claim of an epoch in
           [results]                                 timeline order wins; epoch n+1 revokes n;
                                                     results: as a state event's, applied first)
lease      node, run, ITEMS, [at_ms]                 (the holder is alive and holds these)
release    node, run, ITEMS                          (the holder gives these up unstarted: take them)
start      node, run, ITEMS                          (a taker heard no answer to its revoke: it starts)
state      node, run, RESULTS                        (tasks' results)
decline    node, run, reason                         (this node will take nothing of the run, and why)
control    node, run, task, action                   (a person's decision: confirm / skip)
=========  ===================================================================================

ITEMS is either ``task`` + ``epoch`` (one task) or ``tasks``: ``[[idx, epoch], ...]`` (a batch:
1 to MAX_BATCH pairs, each task at most once). RESULTS is either ``task, epoch, state, exit_code,
reason, island`` (one) or ``results``: ``[{task, epoch, state, exit_code, reason, island}, ...]``.
Each pair of a batch is judged on its own (a claim batch may win some tasks and lose others).
``at_ms`` is the sender's own monotonic clock when it queued the event: only the sender reads it
(to know how fresh its lease is, see agent.py), every other reader ignores it.

A claim may carry ``results`` (a list as in a state event) for other tasks of the same run: the
sender's results that were waiting to go out when it claimed. A reader applies them exactly as a
state event placed just before the claim: one event where two were, each paid by the homeserver
and by every syncing client. A task named both as claimed and in the results is malformed.
"""

from __future__ import annotations

import base64
import enum
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "org.cheng.cis."
MAX_EVENT_BYTES = 16 * 1024
VERSION = 1
_RUN_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")  # a ULID
_CAP = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class Kind(enum.Enum):
    HELLO = "hello"
    RUN = "run"
    CLAIM = "claim"
    LEASE = "lease"
    STATE = "state"
    DECLINE = "decline"
    CONTROL = "control"
    RELEASE = "release"
    START = "start"

    @property
    def etype(self) -> str:
        return PREFIX + self.value


class ProtocolError(ValueError):
    """An event that is not one of ours, malformed, oversize or forged: it is dropped, with this."""


def size(content: Mapping[str, Any]) -> int:
    """Bytes of the content as JSON (compact, UTF-8): what the 16 KB cap limits."""
    return len(json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode())


def check_size(content: Mapping[str, Any]) -> None:
    n = size(content)
    if n > MAX_EVENT_BYTES:
        raise ProtocolError(f"event of {n} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")


MAX_DAG_TEXT = 256 * 1024


def pack_dag(text: str) -> str:
    """The DAG's TOML text as it travels: zlib then base64. A 200-task DAG of near-identical lines
    is ~20 KB as text and ~2 KB packed; the 16 KB cap applies to the packed event."""
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def dag_text(body: Mapping[str, Any], event_id: str = "") -> str:
    """Unpack a run event's DAG, refusing anything that inflates past MAX_DAG_TEXT (a zip bomb)."""
    try:
        raw = base64.b64decode(str(body["dag_z"]), validate=True)
        z = zlib.decompressobj()
        out = z.decompress(raw, MAX_DAG_TEXT + 1)
        if len(out) > MAX_DAG_TEXT or not z.eof:
            raise ProtocolError(f"run event {event_id}: its DAG inflates past {MAX_DAG_TEXT} bytes")
        return out.decode()
    except (ValueError, zlib.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"run event {event_id}: its DAG is not zlib+base64 UTF-8 text ({exc})") from None


def _has_float(v: Any) -> bool:
    if isinstance(v, float):
        return True
    if isinstance(v, Mapping):
        return any(_has_float(x) for x in v.values())
    if isinstance(v, list | tuple):
        return any(_has_float(x) for x in v)
    return False


def valid_cap(name: str) -> bool:
    return bool(_CAP.match(name))


@dataclass(frozen=True, slots=True)
class Message:
    """One validated event: its kind, sender (the node) and content."""

    kind: Kind
    node: str
    body: Mapping[str, Any]
    event_id: str = ""

    def text(self, key: str) -> str:
        return str(self.body[key])

    def num(self, key: str) -> int:
        return int(self.body[key])

    def items(self) -> list[tuple[int, int]]:
        """The (task, epoch) pairs of a claim / lease / release / start / state event."""
        if self.kind is Kind.STATE:
            return [(int(r["task"]), int(r["epoch"])) for r in self.results()]
        if "tasks" in self.body:
            return [(int(i), int(e)) for i, e in self.body["tasks"]]
        return [(self.num("task"), self.num("epoch"))]

    def results(self) -> list[Mapping[str, Any]]:
        """A state event's results, one mapping per task (the single form is a batch of one);
        a claim's riding results (none: an empty list)."""
        if "results" in self.body:
            return list(self.body["results"])
        return [self.body] if self.kind is Kind.STATE else []

    def riding(self) -> Message | None:
        """A claim's results as the state event they stand for (None: the claim carries none)."""
        if self.kind is not Kind.CLAIM or "results" not in self.body:
            return None
        body = {"v": self.body.get("v"), "node": self.node, "run": self.body["run"],
                "results": self.body["results"]}
        return Message(Kind.STATE, self.node, body, self.event_id)


_FIELDS: dict[Kind, dict[str, type | tuple[type, ...]]] = {
    Kind.HELLO: {"caps": list, "workspace": str, "jobs": int},
    Kind.RUN: {"run": str, "name": str, "workspace": str, "dag_file": str, "dag_z": str},
    Kind.CLAIM: {"run": str, "lease_ms": int},
    Kind.LEASE: {"run": str},
    Kind.RELEASE: {"run": str},
    Kind.START: {"run": str},
    Kind.STATE: {"run": str},
    Kind.DECLINE: {"run": str, "reason": str},
    Kind.CONTROL: {"run": str, "task": int, "action": str},
}
_ITEMS = (Kind.CLAIM, Kind.LEASE, Kind.RELEASE, Kind.START)  # ITEMS in the table above
STATES = ("Running", "Completed", "Failed", "Debt", "Skipped")
ACTIONS = ("confirm", "skip")
MAX_BATCH = 512  # pairs or results per event; the agent also splits by bytes (split())
MAX_INDEX = 10_000


def content(kind: Kind, node: str, **fields: Any) -> dict[str, Any]:
    """A content dict for ``kind``, validated and under the size cap.

    Raises:
        ProtocolError: a field is missing or of the wrong type, or the event is too large.
    """
    body = {"v": VERSION, "node": node, **fields}
    parse(kind.etype, node, body)  # the size cap included (a node posts one per task it runs)
    return body


def parse(etype: str, sender: str, body: Mapping[str, Any], event_id: str = "") -> Message:
    """Validate one room event.

    Raises:
        ProtocolError: not ours, malformed, oversize, or its ``node`` is not its sender.
    """
    if not etype.startswith(PREFIX):
        raise ProtocolError(f"not a cis event: {etype}")
    try:
        kind = Kind(etype[len(PREFIX):])
    except ValueError:
        raise ProtocolError(f"unknown cis event kind {etype[len(PREFIX):]!r}") from None
    if not isinstance(body, Mapping):
        raise ProtocolError(f"{kind.value}: content is not an object")
    check_size(body)
    if _has_float(body):
        raise ProtocolError(f"{kind.value} event {event_id}: floats are not allowed (Matrix canonical JSON)")
    if body.get("node") != sender:
        raise ProtocolError(f"{kind.value} event {event_id} from {sender} claims to be node "
                            f"{body.get('node')!r}: forged, dropped")
    for key, typ in _FIELDS[kind].items():
        val = body.get(key)
        if not isinstance(val, typ) or isinstance(val, bool):
            raise ProtocolError(f"{kind.value} event {event_id} from {sender}: field {key!r} "
                                f"missing or not {getattr(typ, '__name__', 'a number')}")
    if "run" in body and not _RUN_ID.match(str(body["run"])):
        raise ProtocolError(f"{kind.value} event {event_id}: run {body['run']!r} is not a run id")
    if "task" in _FIELDS[kind] and not 0 <= int(body["task"]) <= MAX_INDEX:
        raise ProtocolError(f"{kind.value} event {event_id}: task out of range")
    if kind in _ITEMS:
        _check_items(kind, body, event_id)
    if kind is Kind.STATE:
        _check_results(body, event_id)
    if kind is Kind.CLAIM and "results" in body:
        _check_riding(body, event_id)
    if kind is Kind.RUN:
        dag_text(body, event_id)
    if kind is Kind.CONTROL and body["action"] not in ACTIONS:
        raise ProtocolError(f"control event {event_id}: unknown action {body['action']!r}")
    if kind is Kind.HELLO and not all(isinstance(c, str) and valid_cap(c) for c in body["caps"]):
        raise ProtocolError(f"hello event {event_id}: bad capability names")
    if kind is Kind.CLAIM and not 0 < int(body["lease_ms"]) <= 3_600_000:
        raise ProtocolError(f"claim event {event_id}: lease_ms out of range")
    if "at_ms" in body and not _is_int(body["at_ms"]):
        raise ProtocolError(f"{kind.value} event {event_id}: at_ms is not an integer")
    return Message(kind, sender, body, event_id)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _index(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= MAX_INDEX


def _check_items(kind: Kind, body: Mapping[str, Any], event_id: str) -> None:
    """ITEMS: exactly one of the single form and the batch; pairs of in-range ints, no task twice
    (which of two pairs for one task would count is not worth a rule: the event is malformed)."""
    bad = f"{kind.value} event {event_id}"
    single = "task" in body or "epoch" in body
    if single == ("tasks" in body):
        raise ProtocolError(f"{bad}: needs either task + epoch or tasks, not both or neither")
    if single:
        if not (_index(body.get("task")) and _index(body.get("epoch"))):
            raise ProtocolError(f"{bad}: task / epoch missing or out of range")
        return
    pairs = body["tasks"]
    if not isinstance(pairs, list) or not 1 <= len(pairs) <= MAX_BATCH:
        raise ProtocolError(f"{bad}: tasks must be a list of 1 to {MAX_BATCH} [task, epoch] pairs")
    seen: set[int] = set()
    for p in pairs:
        if not (isinstance(p, list) and len(p) == 2 and _index(p[0]) and _index(p[1])):
            raise ProtocolError(f"{bad}: {p!r} is not a [task, epoch] pair in range"[:300])
        if p[0] in seen:
            raise ProtocolError(f"{bad}: task {p[0]} appears twice")
        seen.add(p[0])


def _check_results(body: Mapping[str, Any], event_id: str, what: str = "state event") -> None:
    bad = f"{what} {event_id}"
    if "results" in body:
        if any(k in body for k in ("task", "epoch", "state")):
            raise ProtocolError(f"{bad}: needs either one result or results, not both")
        rs = body["results"]
        if not isinstance(rs, list) or not 1 <= len(rs) <= MAX_BATCH:
            raise ProtocolError(f"{bad}: results must be a list of 1 to {MAX_BATCH} results")
    else:
        rs = [body]
    seen: set[int] = set()
    for r in rs:
        if not isinstance(r, Mapping) or not (_index(r.get("task")) and _index(r.get("epoch"))):
            raise ProtocolError(f"{bad}: a result without task / epoch in range")
        if r.get("state") not in STATES:
            raise ProtocolError(f"{bad}: unknown state {r.get('state')!r}"[:300])
        code = r.get("exit_code")
        if code is not None and not _is_int(code):
            raise ProtocolError(f"{bad}: exit_code is not an integer")
        if not isinstance(r.get("reason", ""), str) or not isinstance(r.get("island", False), bool):
            raise ProtocolError(f"{bad}: reason must be text and island true / false")
        if r["task"] in seen:
            raise ProtocolError(f"{bad}: task {r['task']} appears twice")
        seen.add(r["task"])


def _check_riding(body: Mapping[str, Any], event_id: str) -> None:
    """A claim's results: the batch form of a state event's, about tasks it does not claim."""
    _check_results({"results": body["results"]}, event_id, "claim event's results,")
    claimed = {p[0] for p in body["tasks"]} if "tasks" in body else {body["task"]}
    both = claimed & {r["task"] for r in body["results"]}
    if both:
        raise ProtocolError(f"claim event {event_id}: task {min(both)} is both claimed and reported")


def split(kind: Kind, node: str, run: str, entries: list[Any], **fields: Any) -> list[dict[str, Any]]:
    """Contents of ``kind`` for ``entries`` (pairs, or result mappings for STATE), as few events as
    fit: at most MAX_BATCH entries and MAX_EVENT_BYTES each (a batch that would pass either is
    cut in two, recursively). Raises ProtocolError for a single entry too large to send."""
    if not entries:
        return []
    key = "results" if kind is Kind.STATE else "tasks"
    if len(entries) <= MAX_BATCH:
        body = {"v": VERSION, "node": node, "run": run, key: list(entries), **fields}
        if size(body) <= MAX_EVENT_BYTES:
            parse(kind.etype, node, body)
            return [body]
        if len(entries) == 1:
            check_size(body)
    half = (len(entries) + 1) // 2
    return split(kind, node, run, entries[:half], **fields) + split(kind, node, run, entries[half:], **fields)
