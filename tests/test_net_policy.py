"""Who may be contacted and how (seed A1.17-A1.21), and what the fetch path imports."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from helpers_net import PYTHON, env_for_subprocess, neutral_cwd
from hypothesis import given
from hypothesis import strategies as st

from cheng_build.core.errors import UsageError
from cheng_build.pkg.fetch.policy import FetchMode, FetchPolicy, peer_allowed
from cheng_build.pkg.fetch.policy import plan_sources as _plan

PEER = "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWQH3EaNsiWnqF9Ntub5Wa2g6PXXQzPvkWnCUyx2GuZsC1"
BARE = PEER.split("/p2p/")[0]
ID = "/p2p/" + PEER.split("/p2p/")[1]
GW = "http://127.0.0.1:8080"


def cfg(level: str = "L1", allow=(), deny=(), http_fallback=False) -> SimpleNamespace:
    return SimpleNamespace(level=SimpleNamespace(value=level), allow=allow, deny=deny,
                           http_fallback=http_fallback, peers=(), mode=None)


@pytest.mark.parametrize("entry", [PEER, BARE, ID, BARE + "/"])
def test_deny_matches_full_bare_or_peer_id(entry: str) -> None:
    assert not peer_allowed(PEER, cfg(deny=(entry,)))
    assert not peer_allowed(PEER, cfg(level="L0", allow=(PEER,), deny=(entry,)))


def test_l2_needs_the_allow_list_and_an_empty_one_allows_nobody() -> None:
    assert peer_allowed(PEER, cfg())
    assert not peer_allowed(PEER, cfg(level="L2"))
    assert peer_allowed(PEER, cfg(level="L2", allow=(BARE,)))
    assert not peer_allowed(PEER, cfg(level="L1", allow=("/ip4/10.0.0.2/tcp/4001",)))


@given(st.sampled_from(["L0", "L1", "L2"]), st.lists(st.sampled_from([PEER, BARE, ID, GW]), max_size=3),
       st.lists(st.sampled_from([PEER, BARE, ID, GW]), max_size=3))
def test_denied_never_wins(level: str, allow: list[str], deny: list[str]) -> None:
    c = cfg(level=level, allow=tuple(allow), deny=tuple(deny))
    for addr in (PEER, GW):
        if any(d.rstrip("/") in (addr, addr.split("/p2p/")[0]) or
               ("/p2p/" in addr and d == ID) for d in deny):
            assert not peer_allowed(addr, c)


def test_plan_separates_peers_and_gateways_by_mode_and_level() -> None:
    p = _plan([PEER, GW, "/ip4/127.0.0.1/tcp/8081/http"], FetchPolicy.of(cfg()), FetchMode.AUTO)
    assert p.peers == [PEER] and p.gateways == []  # L1: no HTTP fallback
    p = _plan([PEER, GW], FetchPolicy.of(cfg(level="L0", http_fallback=True)), FetchMode.AUTO)
    assert p.peers == [PEER] and p.gateways == [GW]
    p = _plan([PEER, GW], FetchPolicy.of(cfg()), FetchMode.HTTP)
    assert p.peers == [] and p.gateways == [GW]
    p = _plan([PEER, GW], FetchPolicy.of(cfg(level="L2", allow=(GW,))), FetchMode.P2P)
    assert p.peers == [] and p.refused and p.refused[0][0] == PEER


def test_mode_parsing() -> None:
    assert FetchMode.parse("P2P") is FetchMode.P2P
    assert FetchMode.parse(SimpleNamespace(value="auto")) is FetchMode.AUTO
    with pytest.raises(UsageError):
        FetchMode.parse("ftp")


def test_the_fetch_path_imports_no_heavy_dependency_until_it_needs_one() -> None:
    code = ("import sys, cheng_build.cli.pkg_net, cheng_build.pkg.fetch, cheng_build.pkg.fetch.http, "
            "cheng_build.pkg.serve\n"
            "heavy = [m for m in ('libp2p', 'trio', 'rich', 'nacl', 'yaml') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=neutral_cwd(),
                       env=env_for_subprocess(), timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_locked_source_mode_applies_only_under_auto() -> None:
    from cheng_build.pkg.fetch.policy import dep_mode
    from cheng_build.pkg.lock import LockedDep

    dep = SimpleNamespace(source_mode="http")
    assert dep_mode(FetchMode.AUTO, dep) is FetchMode.HTTP
    assert dep_mode(FetchMode.P2P, dep) is FetchMode.P2P  # CLI/env/config wins
    assert dep_mode(FetchMode.AUTO, SimpleNamespace(source_mode=None)) is FetchMode.AUTO
    v1 = LockedDep(package_id="pkg://cheng/x", channel="stable")  # a v1 lock: no source_mode
    assert dep_mode(FetchMode.AUTO, v1) is FetchMode.AUTO
