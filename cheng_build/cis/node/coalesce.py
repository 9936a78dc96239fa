"""Fewer events per task: queued events of one kind and run become one batch event, and
results ride on a claim of their run going out anyway (:func:`ride`).

A node queues its events one by one in the outbox (a claim batch, one task's result, a lease
renewal...); the homeserver pays per event, once per syncing client. Before delivery, queued
events with the same type, run (and lease, for claims) are merged into one batch event
(``tasks`` / ``results``, see protocol.py), as long as no task repeats and it stays within
MAX_BATCH entries and 16 KB. A merged event stands where its first member stood; an event never
overtakes another about the same task (see :func:`coalesce`). A merged event's transaction id
names its first and last outbox entry; a retry that merges differently posts an overlapping
event, which is harmless: every pair is idempotent per (node, task, epoch).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cheng_build.cis.node.protocol import MAX_BATCH, MAX_EVENT_BYTES, Kind, size

_LIST_KEY = {k.etype: ("results" if k is Kind.STATE else "tasks")
             for k in (Kind.CLAIM, Kind.LEASE, Kind.RELEASE, Kind.START, Kind.STATE)}
_SINGLE = ("task", "epoch", "state", "exit_code", "reason", "island", "local_run")


@dataclass
class Group:
    """One event to send: the outbox entries it delivers, its type and content."""

    entries: list[int]
    etype: str
    body: dict[str, Any]
    run: str = ""
    tasks: set[int] = field(default_factory=set)
    nbytes: int = 0


def _entries_of(etype: str, body: Mapping[str, Any]) -> list[Any]:
    key = _LIST_KEY[etype]
    if key in body:
        return list(body[key])
    if key == "results":
        return [{k: body[k] for k in _SINGLE if k in body}]
    return [[body["task"], body["epoch"]]]


def _task_of(entry: Any) -> int:
    return int(entry["task"] if isinstance(entry, Mapping) else entry[0])


def _head(body: Mapping[str, Any]) -> dict[str, Any]:
    """The content without its task fields: what must be equal for two events to merge."""
    return {k: v for k, v in body.items() if k not in _SINGLE and k not in ("tasks", "results", "at_ms")}


def _item_bytes(entry: Any) -> int:
    return len(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode())


def coalesce(queue: Sequence[tuple[int, str, dict[str, Any]]]) -> list[Group]:
    """Merge events of ``queue`` (outbox order) into batch events (see the module docstring).

    An event joins the latest group of its type and head (run, lease...) unless a group queued
    after that one names one of its tasks: then it would overtake an event about the same task,
    and it starts a group of its own. Events about other tasks commute (each pair is judged on
    its own), so moving one ahead of them changes nothing a reader decides.
    """
    out: list[Group] = []
    latest: dict[tuple[str, str], int] = {}  # (type, head) -> index in out of its open group
    queued = {entry: body for entry, _, body in queue}
    for entry, etype, body in queue:
        if etype not in _LIST_KEY:
            out.append(Group([entry], etype, dict(body)))
            continue
        items = _entries_of(etype, body)
        tasks = {_task_of(i) for i in items}
        run = str(body.get("run", ""))
        key = _LIST_KEY[etype]
        hk = (etype, json.dumps(_head(body), sort_keys=True))
        gi = latest.get(hk)
        if gi is not None:
            g = out[gi]
            extra = sum(_item_bytes(i) + 1 for i in items)
            overtakes = any(o.run == run and o.tasks & tasks for o in out[gi + 1:])
            if not overtakes and not tasks & g.tasks and len(g.body[key]) + len(items) <= MAX_BATCH \
                    and g.nbytes + extra <= MAX_EVENT_BYTES:
                g.entries.append(entry)
                g.body[key].extend(items)
                g.tasks |= tasks
                g.nbytes += extra
                if "at_ms" in body:  # the oldest member's: freshness is never overstated
                    g.body["at_ms"] = min(int(g.body.get("at_ms", body["at_ms"])), int(body["at_ms"]))
                continue
        merged = {**_head(body), key: items}
        if "at_ms" in body:
            merged["at_ms"] = body["at_ms"]
        latest[hk] = len(out)
        out.append(Group([entry], etype, merged, run, tasks, size(merged)))
    for g in out:
        if len(g.entries) == 1:  # sent as queued (its transaction id stays the entry's)
            g.body = dict(queued[g.entries[0]])
    return out


def claims_first(groups: list[Group]) -> list[Group]:
    """``groups`` with each claim moved ahead of the groups before it, unless one of those names
    a task it claims (the same rule as merging: events about other tasks commute). A busy node's
    claim then does not wait behind the PUT of a second's worth of results: the claim decides
    when the node has work again; the results only tell others what they already need not wait
    for."""
    ahead: list[Group] = []
    rest: list[Group] = []
    for g in groups:
        if g.etype == Kind.CLAIM.etype and not any(o.run == g.run and o.tasks & g.tasks for o in rest):
            ahead.append(g)
        else:
            rest.append(g)
    return ahead + rest


def ride(groups: list[Group]) -> list[Group]:
    """``groups`` with each state group carried by the nearest claim group of its run ahead of it
    (its ``results``, see protocol.py): one event where two were. Only where the state group
    would overtake no group about one of its tasks on the way, names no task the claim names, and
    the claim stays within MAX_BATCH results and 16 KB."""
    out = list(groups)
    i = 0
    while i < len(out):
        s = out[i]
        if s.etype == Kind.STATE.etype:
            for j in range(i - 1, -1, -1):
                c = out[j]
                if c.etype == Kind.CLAIM.etype and c.run == s.run and _carry(c, s):
                    del out[i]
                    i -= 1
                    break
                if c.run == s.run and c.tasks & s.tasks:
                    break  # it would overtake an event about one of its tasks
        i += 1
    return out


def _carry(claim: Group, state: Group) -> bool:
    """Put ``state``'s results into ``claim`` if the rules allow (see :func:`ride`)."""
    if claim.tasks & state.tasks:
        return False
    results = list(claim.body.get("results", [])) + _entries_of(state.etype, state.body)
    body = {**claim.body, "results": results}
    if len(results) > MAX_BATCH:
        return False
    nbytes = size(body)
    if nbytes > MAX_EVENT_BYTES:
        return False
    claim.body = body
    claim.entries = claim.entries + state.entries
    claim.tasks = claim.tasks | state.tasks
    claim.nbytes = nbytes
    return True
