"""The chengc miss-path shortcuts give exactly what the slow paths give.

``put_raw_block`` stores a one-chunk artifact without importing the CAS: its CID must equal the
CAS importer's, and the block must be readable (and verified) by the real Blockstore. Staged
roots go where ``_stage_parent`` says: ``CHENGC_STAGE_DIR``, else the user's ``TMPDIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.build.action_cache import CasArtifactStore, put_raw_block
from cheng_build.build.fastcid import CHUNK
from cheng_build.build.stage import stage_parent as _stage_parent
from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.cas.importer import add_bytes


@settings(max_examples=40, deadline=None)
@given(data=st.one_of(st.binary(max_size=4096), st.sampled_from([b"", b"\0" * CHUNK])))
def test_raw_block_matches_cas(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    root = tmp_path_factory.mktemp("store")
    cid = put_raw_block(root, data)
    assert cid == str(add_bytes(None, data))
    assert Blockstore(root).get(parse_cid(cid)) == data
    assert not [p for p in (root / "blocks").rglob(".tmp-*")]


def test_artifact_store_over_one_chunk_uses_cas(tmp_path: Path) -> None:
    big = os.urandom(CHUNK + 1)
    ref = CasArtifactStore(tmp_path).put(big)
    assert ref == str(add_bytes(None, big)) and ref.startswith("bafybei")
    assert CasArtifactStore(tmp_path).get(ref) == big


def test_raw_block_repairs_a_corrupt_block(tmp_path: Path) -> None:
    cid = put_raw_block(tmp_path, b"artifact")
    block = tmp_path / "blocks" / cid[-3:-1] / cid
    block.write_bytes(b"artifacX")
    assert put_raw_block(tmp_path, b"artifact") == cid
    assert Blockstore(tmp_path).get(parse_cid(cid)) == b"artifact"


def test_stage_parent(tmp_path: Path) -> None:
    assert _stage_parent({"CHENGC_STAGE_DIR": str(tmp_path), "TMPDIR": "/x"}) == str(tmp_path)
    assert _stage_parent({"TMPDIR": str(tmp_path)}) is None  # tempfile honours TMPDIR itself
    auto = _stage_parent({})
    assert auto is None or (os.path.isdir(auto) and os.access(auto, os.W_OK))
