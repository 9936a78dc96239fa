"""New registry heads announced on libp2p gossipsub, so a mirror learns of one without polling.

Topic: ``/cheng/registry/checkpoints/<operator key>`` (``ed25519:<base64>``): one topic per
registry operator. A message is the newest checkpoint line only, as JSON
``{"line": <its line number>, "checkpoint": "<the line>"}`` (a few hundred bytes), never lines.

``serve --registry`` publishes its log's newest checkpoint whenever it changes (checked every
``CHECK_S``) and again every ``REPEAT_S`` (gossip has no acknowledgements: announcements are
idempotent and repeated). A serve that also has ``sync_from`` mirrors subscribes: an
announcement whose signature verifies under the operator's key and whose line is beyond the
local log triggers a sync (``trust.sync``: everything is verified again, from the sources the
mirror trusts, not from the announcer). After it, its own announcement follows: heads travel
mirror to mirror.

py-libp2p gossipsub settings (``../shared/reference/network-notes.md`` B): heartbeat 1 s (the
default 120 s leaves a small mesh empty for two minutes), adaptive gossip off (it stretches the
heartbeat to 30-60 s on small meshes), spam protection off (our own 11th publish in a second
would be dropped silently), eclipse protection off (every loopback peer has one IP), protocols
1.2/1.1/1.0 only (1.4 and 2.0 are py-only drafts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

log = logging.getLogger(__name__)

TOPIC_PREFIX = "/cheng/registry/checkpoints/"
CHECK_S = 1.0
REPEAT_S = 30.0
MAX_MESSAGE_BYTES = 16 * 1024


def topic_for(operator_key: str) -> str:
    """The gossipsub topic of a registry operator."""
    return TOPIC_PREFIX + operator_key


def make_pubsub(host: Any) -> tuple[Any, Any]:
    """(Pubsub, GossipSub) for ``host``, configured for a small network; construct before
    dialling anyone so identify advertises the meshsub protocols."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    router = GossipSub(protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID], degree=6,
                       degree_low=4, degree_high=12, heartbeat_interval=1,
                       adaptive_gossip_enabled=False, spam_protection_enabled=False,
                       eclipse_protection_enabled=False)
    return Pubsub(host, router), router


@asynccontextmanager
async def pubsub_running(pubsub: Any, router: Any) -> AsyncIterator[None]:
    """Run the pubsub services. Enter this before the host dials or accepts anyone: a meshsub
    stream that arrives before the service runs crashes py-libp2p's handler (and the host's
    nursery with it: ``Pubsub`` has no ``_manager`` yet)."""
    from libp2p.tools.anyio_service import background_trio_service

    async with background_trio_service(pubsub), background_trio_service(router):
        await pubsub.wait_until_ready()
        yield


def announcement(head: dict[str, Any]) -> bytes | None:
    """The message for a registry head (``RegistryView.answer({"op": "head"})``), or None."""
    if not head.get("checkpoint"):
        return None
    return json.dumps({"line": head["checkpoint_at"], "checkpoint": head["checkpoint"]},
                      separators=(",", ":")).encode()


def check_announcement(data: bytes, operator_key: str) -> int | None:
    """The line number of an announced checkpoint whose signature verifies under
    ``operator_key``; None for anything else (ignored: gossip is untrusted input)."""
    from cheng_build.core.errors import ChengError
    from cheng_build.trust.keys import Verifier
    from cheng_build.trust.registry_entry import EntryType, SigStatus, parse_line, signature_status

    if len(data) > MAX_MESSAGE_BYTES:
        return None
    try:
        doc = json.loads(data)
        line, raw = doc["line"], doc["checkpoint"].encode("utf-8")
        if type(line) is not int or line < 1:
            return None
        e = parse_line(raw, line)
    except (ValueError, KeyError, TypeError, AttributeError, ChengError):
        return None
    if e.type is not EntryType.CHECKPOINT or e.pub_key != operator_key:
        return None
    if signature_status(e, Verifier())[0] is not SigStatus.VALID:
        return None
    return line


async def run_gossip(pubsub: Any, router: Any, operator_key: Callable[[], str | None],
                     head: Callable[[], dict[str, Any]], local_size: Callable[[], int],
                     on_newer: Callable[[int], None] | None) -> None:
    """Publish our head's checkpoint when it changes (and every ``REPEAT_S``); with
    ``on_newer``, subscribe and call it (in a worker thread, one at a time) for each verified
    announcement beyond ``local_size()``."""
    if True:  # the services run already (``pubsub_running``), before anything was dialled
        key: str | None = None
        while key is None:  # a fresh mirror learns the operator's key with its first sync
            key = operator_key()
            if key is None:
                await trio.sleep(CHECK_S)
        topic = topic_for(key)
        sub = await pubsub.subscribe(topic)
        busy = trio.Lock()

        async def listen() -> None:
            while True:
                msg = await sub.get()
                line = check_announcement(bytes(msg.data), key)
                if line is None or on_newer is None or line <= local_size() or busy.locked():
                    continue
                async with busy:
                    try:
                        await trio.to_thread.run_sync(on_newer, line)
                    except Exception as exc:  # a failed sync waits for the next announcement
                        log.warning("sync after an announcement failed: %s", exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            sent: bytes | None = None
            last = -REPEAT_S
            while True:
                msg = await trio.to_thread.run_sync(lambda: announcement(head()))
                now = trio.current_time()
                if msg is not None and (msg != sent or now - last >= REPEAT_S):
                    try:
                        await pubsub.publish(topic, msg)
                        sent, last = msg, now
                    except Exception as exc:  # no peers yet, a reset stream
                        log.debug("checkpoint announcement not sent: %s", exc)
                await trio.sleep(CHECK_S)


__all__ = ["CHECK_S", "REPEAT_S", "TOPIC_PREFIX", "announcement", "check_announcement",
           "make_pubsub", "pubsub_running", "run_gossip", "topic_for"]
