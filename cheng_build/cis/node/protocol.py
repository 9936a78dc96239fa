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
claim      node, run, task, epoch, lease_ms          (first claim of an epoch in timeline order wins)
lease      node, run, task, epoch                    (the holder is alive and still running it)
state      node, run, task, epoch, state, exit_code, reason, island (a task's result, or Running)
decline    node, run, reason                         (this node will take nothing of the run, and why)
control    node, run, task, action                   (a person's decision: confirm / skip)
=========  ===================================================================================
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


_FIELDS: dict[Kind, dict[str, type | tuple[type, ...]]] = {
    Kind.HELLO: {"caps": list, "workspace": str, "jobs": int},
    Kind.RUN: {"run": str, "name": str, "workspace": str, "dag_file": str, "dag_z": str},
    Kind.CLAIM: {"run": str, "task": int, "epoch": int, "lease_ms": int},
    Kind.LEASE: {"run": str, "task": int, "epoch": int},
    Kind.STATE: {"run": str, "task": int, "epoch": int, "state": str},
    Kind.DECLINE: {"run": str, "reason": str},
    Kind.CONTROL: {"run": str, "task": int, "action": str},
}
STATES = ("Running", "Completed", "Failed", "Debt", "Skipped")
ACTIONS = ("confirm", "skip")


def content(kind: Kind, node: str, **fields: Any) -> dict[str, Any]:
    """A content dict for ``kind``, validated and under the size cap.

    Raises:
        ProtocolError: a field is missing or of the wrong type, or the event is too large.
    """
    body = {"v": VERSION, "node": node, **fields}
    parse(kind.etype, node, body)
    check_size(body)
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
    for key in ("task", "epoch"):
        if key in _FIELDS[kind] and not 0 <= int(body[key]) <= 10_000:
            raise ProtocolError(f"{kind.value} event {event_id}: {key} out of range")
    if kind is Kind.RUN:
        dag_text(body, event_id)
    if kind is Kind.STATE and body["state"] not in STATES:
        raise ProtocolError(f"state event {event_id}: unknown state {body['state']!r}")
    if kind is Kind.CONTROL and body["action"] not in ACTIONS:
        raise ProtocolError(f"control event {event_id}: unknown action {body['action']!r}")
    if kind is Kind.HELLO and not all(isinstance(c, str) and valid_cap(c) for c in body["caps"]):
        raise ProtocolError(f"hello event {event_id}: bad capability names")
    if kind is Kind.CLAIM and not 0 < int(body["lease_ms"]) <= 3_600_000:
        raise ProtocolError(f"claim event {event_id}: lease_ms out of range")
    return Message(kind, sender, body, event_id)
