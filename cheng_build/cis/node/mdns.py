"""Presence on the LAN by mDNS/DNS-SD (python-zeroconf): a node announces itself, its
capabilities and its homeserver, so a new machine finds the room without configuration.

Service type ``_cis-node._tcp.local.``; one instance per node, named after its Matrix user; the
TXT record carries ``node``, ``homeserver``, ``room`` (alias), ``room_id``, ``caps`` (comma
list) and ``workspace``. Addresses are the machine's non-loopback IPv4 addresses (mDNS is
link-local: nothing leaves the LAN). zeroconf is imported only by ``cis node`` and ``cis nodes``.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

SERVICE = "_cis-node._tcp.local."


@dataclass(frozen=True, slots=True)
class Found:
    node: str
    address: str
    caps: tuple[str, ...]
    homeserver: str
    room: str
    room_id: str
    workspace: str


def _addresses() -> list[bytes]:
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(socket.inet_aton(ip.ip))
    return out


def _instance(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", node.lstrip("@"))[:60] or "node"


class Announcer:
    """A registered service; :meth:`close` withdraws it (goodbye packets)."""

    def __init__(self, azc: object, info: object) -> None:
        self._azc = azc
        self._info = info

    async def close(self) -> None:
        await self._azc.async_unregister_service(self._info)  # type: ignore[attr-defined]
        await self._azc.async_close()  # type: ignore[attr-defined]


async def announce(node: str, homeserver: str, room_id: str, room: str, caps: Sequence[str],
                   workspace: str) -> Announcer:
    """Register this node; call from the running asyncio loop."""
    from zeroconf import ServiceInfo
    from zeroconf.asyncio import AsyncZeroconf

    props = {"node": node, "homeserver": homeserver, "room": room, "room_id": room_id,
             "caps": ",".join(caps), "workspace": workspace}
    port = int(homeserver.rsplit(":", 1)[1].split("/")[0]) if re.search(r":\d+(/|$)", homeserver) else 0
    info = ServiceInfo(SERVICE, f"{_instance(node)}.{SERVICE}", port=port, properties=props,
                       addresses=_addresses(), server=f"{_instance(node)}.local.")
    azc = AsyncZeroconf()
    await azc.async_register_service(info, allow_name_change=True)
    return Announcer(azc, info)


def browse(timeout_s: float) -> list[Found]:
    """Every cis node that answers within ``timeout_s`` (blocking; not from an asyncio loop)."""
    from zeroconf import ServiceBrowser, ServiceStateChange, Zeroconf

    names: set[str] = set()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    zc = Zeroconf()
    try:
        ServiceBrowser(zc, SERVICE, handlers=[on_change])
        time.sleep(timeout_s)
        out = []
        for name in sorted(names):
            info = zc.get_service_info(SERVICE, name, timeout=int(min(timeout_s, 3.0) * 1000))
            if info is None:
                continue
            p = {(k.decode() if isinstance(k, bytes) else str(k)):
                 (v.decode() if isinstance(v, bytes) else "") for k, v in info.properties.items()}
            addrs = info.parsed_addresses()
            out.append(Found(p.get("node", name), addrs[0] if addrs else "",
                             tuple(c for c in p.get("caps", "").split(",") if c),
                             p.get("homeserver", ""), p.get("room", ""), p.get("room_id", ""),
                             p.get("workspace", "")))
        return out
    finally:
        zc.close()
