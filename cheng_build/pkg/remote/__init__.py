"""Reaching other machines: the registry protocol, registry sources, blocks on demand.

- ``registry_proto``: ``/cheng/registry/1.0.0`` (libp2p) and ``/registry/v1/*`` (HTTP), served
  from a registry file; one answer function behind both doors.
- ``p2p_client``: one libp2p host on a background trio thread, for synchronous callers.
- ``registry_sources``: sync sources over libp2p and HTTP (``trust.sync.RegistrySource``).
- ``blocks``: a block store that fetches what it lacks (local, then p2p, then HTTP).
- ``addresses``: the address list of a consumer (``PKG_REGISTRY_FROM``, ``PKG_PEERS``), filtered
  by the allow/deny lists and the level.
"""
