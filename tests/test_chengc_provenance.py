"""Signed build provenance: ``chengc --sign`` and ``cheng-pkg verify-artifact``, end to end.

Every refusal is an attack performed through the CLI: a changed artifact, a changed statement, a
statement re-signed by a key the registry does not give to the claimed builder, a revoked key, a
rebuild with other inputs or a nondeterministic compiler.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_chengc import Runner, write_tree
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.core.errors import ChengError
from cheng_build.trust import dsse
from cheng_build.trust.keys import KeyPair, write_keyfile


@pytest.fixture
def cc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Runner:
    r = Runner(tmp_path, monkeypatch, capfd)
    for k in ("PKG_LEVEL", "PKG_REGISTRY", "CHENGC_SIGN_KEY"):
        monkeypatch.delenv(k, raising=False)
    write_tree(tmp_path, {"app.cheng": "import cheng/dep0/api\nfn main(): int32 = 0\n",
                          "roots/cheng-dep0/cheng-package.toml": 'package_id = "pkg://cheng/dep0"\n',
                          "roots/cheng-dep0/src/api.cheng": "fn Api(): int32 = 1\n"})
    return r


def _key(tmp: Path, author: str, name: str) -> tuple[KeyPair, Path]:
    key = KeyPair.generate(author)
    path = tmp / f"{name}.json"
    write_keyfile(key, path)
    return key, path


def _register(tmp: Path, key: KeyPair, package: str) -> None:
    """Give ``key`` to its author in the registry by publishing a package with it."""
    from cheng_build.pkg.publish import publish

    src = tmp / "pub" / package.rsplit("/", 1)[1]
    write_tree(src, {"cheng-package.toml": f'package_id = "{package}"\nversion = "1.0.0"\n',
                     "src/a.cheng": f"fn A(): int32 = {len(package)}\n"})
    publish(registry=tmp / "registry.jsonl", key=key, package_id=package, channel="stable", epoch=1,
            src=src, store=None, now=1730000000)


def _pkg(tmp: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``cheng-pkg`` as a real process, as a user runs it."""
    full = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "cheng_build.cli.pkg", *argv], cwd=tmp, env=full,
                       capture_output=True, text=True, check=False, timeout=120)
    return p.returncode, p.stdout, p.stderr


def _signed(cc: Runner, *extra: str) -> tuple[KeyPair, Path]:
    key, path = _key(cc.tmp, "node:alice", "alice")
    _register(cc.tmp, key, "pkg://cheng/alicepkg")
    rc, _out, err = cc("app.cheng", f"--sign:{path}", *extra)
    assert rc == 0, err
    return key, path


ART = Path("artifacts/chengc/app")
ATT = Path("artifacts/chengc/app.intoto.jsonl")
CAR = Path("artifacts/chengc/app.inputs.car")


def test_signed_build_writes_an_envelope_that_verifies(cc: Runner) -> None:
    key, _ = _signed(cc)
    assert (cc.tmp / ATT).is_file() and (cc.tmp / CAR).is_file()
    rc, out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--format:json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["ok"] is True and doc["builder"] == "node:alice" and doc["pub_key"] == key.pub_key
    import hashlib

    assert doc["sha256"] == hashlib.sha256((cc.tmp / ART).read_bytes()).hexdigest()
    meta = (cc.tmp / "artifacts/chengc/cheng.meta.toml").read_text()
    assert doc["input_root"] in meta and doc["cid"] in meta
    rc, out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 0 and out.startswith("ok: "), err


def test_same_build_same_signature_and_a_hit_restores_it_without_signing(cc: Runner) -> None:
    _, path = _signed(cc)
    first = (cc.tmp / ATT).read_bytes()
    (cc.tmp / ATT).unlink()
    rc, _out, err = cc("app.cheng", f"--sign:{path}", "--explain")
    assert rc == 0, err
    assert "cache hit" in err and (cc.tmp / ATT).read_bytes() == first
    # Ed25519 is deterministic and the statement has no clock in it: a fresh miss signs the same bytes.
    rc, _out, err = cc("app.cheng", f"--sign:{path}", "--no-cache")
    assert rc == 0, err
    assert (cc.tmp / ATT).read_bytes() == first


def test_a_changed_artifact_is_refused(cc: Runner) -> None:
    _signed(cc)
    art = cc.tmp / ART
    art.chmod(0o644)
    art.write_bytes(art.read_bytes() + b"\x00")
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0] == f"verify-artifact: {ART} does not match its attestation"


def _rewrite_payload(att: Path, edit: object) -> None:
    env = json.loads(att.read_text())
    st = json.loads(base64.b64decode(env["payload"]))
    edit(st)  # type: ignore[operator]
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    att.write_text(json.dumps(env) + "\n")


def test_a_changed_statement_is_refused(cc: Runner) -> None:
    _signed(cc)
    # Mallory points the statement at her own bytes: the signature no longer covers it.
    evil = b"mallory's build"
    import hashlib

    def edit(st: dict) -> None:  # type: ignore[type-arg]
        st["subject"][0]["digest"]["sha256"] = hashlib.sha256(evil).hexdigest()

    _rewrite_payload(cc.tmp / ATT, edit)
    (cc.tmp / ART).chmod(0o644)
    (cc.tmp / ART).write_bytes(evil)
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0] == "verify-artifact: attestation signature does not verify"


def _resign(att: Path, key: KeyPair, builder: str | None = None) -> None:
    env = dsse.parse(att.read_bytes())
    st = json.loads(env.payload)
    if builder is not None:
        st["predicate"]["runDetails"]["builder"]["id"] = "urn:cheng:builder:" + builder
    att.write_bytes(dsse.sign(env.payload_type, json.dumps(st).encode(), key).to_json() + b"\n")


def test_a_key_the_registry_does_not_give_the_builder_is_refused(cc: Runner) -> None:
    _signed(cc)
    mallory, _ = _key(cc.tmp, "node:mallory", "mallory")
    # 1. Mallory re-signs alice's statement with her own, unregistered key.
    _resign(cc.tmp / ATT, mallory)
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0] == "verify-artifact: builder key is not registered to node:alice"
    # 2. Registered under her own name, she still cannot claim to be alice.
    _register(cc.tmp, mallory, "pkg://cheng/mallorypkg")
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0] == "verify-artifact: builder key belongs to node:mallory, not node:alice"
    # 3. Under her own name it verifies: the check is about who, not about re-signing as such.
    _resign(cc.tmp / ATT, mallory, builder="node:mallory")
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 0, err


def test_an_unregistered_signing_key_is_refused_and_a_missing_registry_too(cc: Runner) -> None:
    _, path = _key(cc.tmp, "node:alice", "alice")
    rc, _out, err = cc("app.cheng", f"--sign:{path}")
    assert rc == 0, err
    _register(cc.tmp, KeyPair.generate("node:alice"), "pkg://cheng/other")  # alice's *other* key
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1 and "builder key is not registered to node:alice" in err
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:nowhere.jsonl")
    assert rc == 2 and err.startswith("verify-artifact: ")
    # L0 without a registry: the signature and subject are checked, the key's owner is not (said so).
    rc, out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:nowhere.jsonl", "--level:L0")
    assert rc == 0 and "builder key was not checked" in err and out.startswith("ok: ")


def test_rebuild_from_the_recorded_inputs(cc: Runner) -> None:
    _signed(cc)
    env = {"CHENG_COMPILER": str(cc.compiler)}
    rc, out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--rebuild",
                        env=env)
    assert rc == 0, err
    assert "rebuilt: identical" in out
    # The rebuild used only the CAR: the sources on disk are not consulted.
    (cc.tmp / "roots/cheng-dep0/src/api.cheng").write_text("fn Api(): int32 = 2\n")
    rc, out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--rebuild",
                        env=env)
    assert rc == 0, err


def test_rebuild_refuses_other_inputs_and_another_compiler(cc: Runner) -> None:
    _signed(cc)
    env = {"CHENG_COMPILER": str(cc.compiler)}
    # Other inputs: a bundle of a changed tree has another root.
    (cc.tmp / "roots/cheng-dep0/src/api.cheng").write_text("fn Api(): int32 = 3\n")
    rc, _out, err = cc("app.cheng", "--emit:bundle", "--out:other.car")
    assert rc == 0, err
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--rebuild",
                         "--inputs:other.car", env=env)
    assert rc == 1 and err.splitlines()[0] == "verify-artifact: inputs CAR is not the attested inputs"
    other = cc.tmp / "bin2" / "chengc"
    other.parent.mkdir()
    other.write_bytes(cc.compiler.read_bytes() + b"\n# another build\n")
    other.chmod(0o755)
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--rebuild",
                         f"--compiler:{other}")
    assert rc == 1 and err.splitlines()[0] == "verify-artifact: rebuild needs the attested compiler"


def test_rebuild_of_a_nondeterministic_build_is_refused(cc: Runner) -> None:
    _signed(cc, "--env-allow:FAKE_CHENGC_NONDETERMINISTIC")  # the switch reaches the compiler
    cc.mp.setenv("FAKE_CHENGC_NONDETERMINISTIC", "1")
    rc, _out, err = cc("app.cheng", f"--sign:{cc.tmp / 'alice.json'}",
                       "--env-allow:FAKE_CHENGC_NONDETERMINISTIC")
    assert rc == 0, err
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl", "--rebuild",
                         env={"CHENG_COMPILER": str(cc.compiler)})
    assert rc == 1
    lines = err.splitlines()
    assert lines[0] == "verify-artifact: rebuild differs from the artifact"
    assert any("first difference at offset" in line for line in lines)


def test_sign_with_a_missing_key_is_a_usage_error(cc: Runner) -> None:
    rc, _out, err = cc("app.cheng", "--sign:nokey.json")
    assert rc == 2 and err.startswith("chengc: ")
    rc, _out, err = cc("app.cheng", "--sign:")
    assert rc == 2 and err.splitlines()[0] == "chengc: --sign: empty value"


def test_sign_key_from_config(cc: Runner) -> None:
    _, path = _key(cc.tmp, "node:alice", "alice")
    (cc.tmp / "cheng-pkg-config.toml").write_text(f'[toolchain]\nsign_key = "{path.name}"\n')
    rc, _out, err = cc("app.cheng")
    assert rc == 0, err
    assert (cc.tmp / ATT).is_file()


def test_the_attestation_is_valid_in_toto_slsa_and_dsse_for_other_tools(cc: Runner) -> None:
    """Interop: in-toto-attestation's protobuf bindings (strict JSON parse of the Statement and the
    SLSA provenance v1 predicate) and securesystemslib's DSSE verifier accept what we write."""
    from helpers_parts import import_part

    how = "pip install '.[test]' (scripts/test.sh does)"
    import_part("in_toto_attestation", how)
    import_part("securesystemslib", how)
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    key, _ = _signed(cc)
    raw = json.loads((cc.tmp / ATT).read_text())
    env = Envelope.from_dict(raw)
    sslib_key = SSlibKey(keyid=key.pub_key, keytype="ed25519", scheme="ed25519",
                         keyval={"public": key.public.hex()})
    verified = env.verify([sslib_key], 1)
    assert key.pub_key in verified
    doc = json.loads(base64.b64decode(raw["payload"]))
    pb = json_format.ParseDict(doc, statement_pb2.Statement())  # unknown fields are errors
    Statement.copy_from_pb(pb).validate()
    prov = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    assert prov.build_definition.build_type.endswith("/chengc/v1")
    assert prov.run_details.builder.id == "urn:cheng:builder:node:alice"
    names = [d.name for d in prov.build_definition.resolved_dependencies]
    assert names[:2] == ["inputs", "compiler"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_envelope_parser_never_crashes(data: bytes) -> None:
    try:
        dsse.parse(data)
    except ChengError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200), st.text(min_size=1, max_size=40))
def test_envelope_round_trips_and_binds_the_type(payload: bytes, ptype: str) -> None:
    key = KeyPair.from_seed("node:t", b"\x01" * 32)
    env = dsse.sign(ptype, payload, key)
    back = dsse.parse(env.to_json())
    assert back == env
    dsse.verify(back, key.pub_key)
    other = dsse.Envelope(ptype + "x", payload, env.signatures)
    with pytest.raises(ChengError):
        dsse.verify(other, key.pub_key)


def test_a_forged_registry_is_not_trusted_to_vouch_for_a_key(cc: Runner) -> None:
    """Mallory appends a correctly chained publish of alice's namespace signed with her key, to
    make the registry give her key to node:alice: verify-artifact verifies the log first."""
    from helpers_trust import forged_publish

    _signed(cc)
    evil = KeyPair.generate("node:alice")  # Mallory's own key, labelled with alice's id
    forged_publish(cc.tmp / "registry.jsonl", evil, "pkg://cheng/alicepkg",
                   "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq", epoch=2)
    _resign(cc.tmp / ATT, evil)
    rc, _out, err = _pkg(cc.tmp, "verify-artifact", str(ART), "--registry:registry.jsonl")
    assert rc == 1
    assert err.splitlines()[0].startswith("verify-artifact: registry does not verify: line ")
