"""Protocol selection in one round trip instead of two (new streams, and each dial's security
and muxer negotiations).

Part of the door to py-libp2p: only ``libp2p_adapter`` imports this module.

Found here: py-libp2p's multistream-select initiator writes the ``/multistream/1.0.0`` header,
waits for the peer's header, and only then proposes a protocol and waits again: two round trips
before the first byte of a bitswap message can go out. On the way to a fetch's first block that
happens four times (noise and yamux on the dial, our want stream, the provider's reply stream),
each round trip a wake-up of both processes: ~2-4 ms each on a loaded 2-core machine.
multistream-select lets the initiator send the header and its first proposal together
(go-multistream's ``SelectProtoOrFail`` does); the peer answers both in order. When the peer
answers ``na`` the remaining protocols are tried one by one, with py-libp2p's own code, exactly
as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.io.exceptions import IOException
from libp2p.protocol_muxer.exceptions import (
    MultiselectClientError,
    MultiselectCommunicatorError,
    ProtocolNotSupportedError,
)
from libp2p.protocol_muxer.multiselect_client import (
    DEFAULT_NEGOTIATE_TIMEOUT,
    MULTISELECT_PROTOCOL_ID,
    PROTOCOL_NOT_FOUND_MSG,
    MultiselectClient,
    is_valid_handshake,
)
from libp2p.utils import encode_delim


class PipelinedSelect(MultiselectClient):
    """py-libp2p's multistream-select initiator, with header and first proposal sent together."""

    async def select_one_of(self, protocols: Sequence[TProtocol], communicator: Any,
                            negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT) -> TProtocol:
        stream = getattr(communicator, "read_writer", None)
        if not protocols or stream is None:
            return await super().select_one_of(protocols, communicator, negotiate_timeout)
        first = protocols[0]
        with trio.move_on_after(negotiate_timeout):
            try:
                await stream.write(encode_delim(MULTISELECT_PROTOCOL_ID.encode())
                                   + encode_delim(str(first).encode()))
                header = await communicator.read()
                answer = await communicator.read()
            except (MultiselectCommunicatorError, IOException) as exc:
                raise MultiselectClientError(f"protocol negotiation failed: {exc}") from exc
            if not is_valid_handshake(header):
                raise MultiselectClientError(
                    f"multiselect protocol ID mismatch: expected {MULTISELECT_PROTOCOL_ID}, "
                    f"got {header!r}")
            if answer == str(first):
                return first
            if answer != PROTOCOL_NOT_FOUND_MSG:
                raise MultiselectClientError(
                    f"unrecognized response: {answer!r}, expected {str(first)!r} or 'na'")
            refused = [f"protocol not supported: {first}"]
            for protocol in protocols[1:]:
                try:
                    return await self.try_select(communicator, protocol)
                except ProtocolNotSupportedError as exc:
                    refused.append(str(exc))
            raise MultiselectClientError("peer supports none of the protocols: "
                                         + "; ".join(refused))
        raise MultiselectClientError(
            f"response timed out after {negotiate_timeout}s, protocols tried: {list(protocols)}")


def install(host: Any) -> None:
    """Use ``PipelinedSelect`` wherever ``host`` initiates a negotiation with the stock client:
    each new stream, and the security and muxer negotiations of each connection it dials."""
    if type(getattr(host, "multiselect_client", None)) is MultiselectClient:
        host.multiselect_client = PipelinedSelect()
    upgrader = getattr(host.get_network(), "upgrader", None)
    for layer in ("security_multistream", "muxer_multistream"):
        selector: Any = getattr(getattr(upgrader, layer, None), "_selector", None)
        if type(getattr(selector, "multiselect_client", None)) is MultiselectClient:
            selector.multiselect_client = PipelinedSelect()
