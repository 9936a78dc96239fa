"""Checking a chengc artifact against its signed provenance (``cheng-pkg verify-artifact``).

Three checks, in the order that gives the clearest error (python-tuf's order: signature before
trusting anything the payload says):

1. the DSSE envelope is well formed, its payload is an in-toto v1 Statement with a SLSA
   provenance v1 predicate written by chengc, and the signature over ``PAE(type, payload)``
   verifies with the key named in the envelope;
2. that key is registered in the registry (verified first, as every consumer verifies it) to the
   builder identity the statement claims (``runDetails.builder.id``), and is not revoked;
3. the artifact's bytes hash to the subject's sha256 and CID.

:func:`rebuild` is the independent audit: it rebuilds from the recorded inputs (the inputs CAR,
checked against the recorded input root) with a compiler whose digest equals the recorded one,
in a fresh root with the recorded flags and environment, and compares the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cheng_build.core.errors import IntegrityError, PolicyError

if TYPE_CHECKING:
    from cheng_build.trust.registry_log import RegistryLog

_SHA256_HEX = frozenset("0123456789abcdef")


class AttestationError(IntegrityError):
    """The attestation does not say what chengc writes, or does not match the artifact."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """A verified attestation's facts."""

    builder: str  # the registry author id
    pub_key: str
    subject_name: str
    sha256: str
    cid: str
    entry: str
    flags: tuple[str, ...]
    env: Mapping[str, str]
    out: str
    input_root: str
    compiler_sha256: str
    dependencies: tuple[Mapping[str, Any], ...]


def _field(obj: object, key: str, kind: type, where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise AttestationError(f"attestation {where}{key} is missing or not a {kind.__name__}",
                               why="the statement is not one chengc --sign writes")
    return value


def _ipfs(uri: object, what: str) -> str:
    if not isinstance(uri, str) or not uri.startswith("ipfs://") or len(uri) <= len("ipfs://"):
        raise AttestationError(f"attestation {what} has no ipfs:// CID")
    return uri[len("ipfs://"):]


def _sha(d: object, what: str) -> str:
    hexd = _field(d, "sha256", str, f"{what} digest.")
    if len(hexd) != 64 or not set(hexd) <= _SHA256_HEX:
        raise AttestationError(f"attestation {what} sha256 is not 64 lowercase hex digits")
    return str(hexd)


def read_statement(payload: bytes) -> Provenance:
    """The facts of a statement chengc wrote (builder and key filled in later).

    Raises:
        AttestationError: the payload is not such a statement.
    """
    from cheng_build.build import provenance as pv

    try:
        st = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AttestationError("attestation payload is not JSON", why=str(exc)) from None
    if _field(st, "_type", str, "") != pv.STATEMENT_TYPE:
        raise AttestationError("attestation is not an in-toto v1 statement",
                               why=f"_type is {st.get('_type')!r}, expected {pv.STATEMENT_TYPE}")
    if _field(st, "predicateType", str, "") != pv.PREDICATE_TYPE:
        raise AttestationError("attestation is not SLSA provenance v1",
                               why=f"predicateType is {st.get('predicateType')!r}")
    subjects = _field(st, "subject", list, "")
    if len(subjects) != 1:
        raise AttestationError(f"attestation has {len(subjects)} subjects, expected 1")
    subj = subjects[0]
    pred = _field(st, "predicate", dict, "")
    bd = _field(pred, "buildDefinition", dict, "predicate.")
    if bd.get("buildType") != pv.BUILD_TYPE:
        raise AttestationError("attestation was not made by chengc",
                               why=f"buildType is {bd.get('buildType')!r}, expected {pv.BUILD_TYPE}")
    ext = _field(bd, "externalParameters", dict, "buildDefinition.")
    internal = _field(bd, "internalParameters", dict, "buildDefinition.")
    builder_id = _field(_field(_field(pred, "runDetails", dict, "predicate."), "builder", dict,
                               "runDetails."), "id", str, "builder.")
    if not builder_id.startswith(pv.BUILDER_PREFIX):
        raise AttestationError("attestation builder id is not a cheng builder",
                               why=f"{builder_id!r} does not start with {pv.BUILDER_PREFIX}")
    flags = _field(ext, "flags", list, "externalParameters.")
    env = _field(internal, "env", dict, "internalParameters.")
    if not all(isinstance(f, str) for f in flags) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise AttestationError("attestation flags or env hold non-strings")
    input_root, compiler, deps = "", "", []
    for rd in _field(bd, "resolvedDependencies", list, "buildDefinition."):
        name = _field(rd, "name", str, "resolvedDependencies[].")
        if name == "inputs":
            input_root = _ipfs(rd.get("uri"), "inputs")
        elif name == "compiler":
            compiler = _sha(rd.get("digest"), "compiler")
        else:
            deps.append({"package_id": name, "cid": _ipfs(rd.get("uri"), name),
                         **(rd.get("annotations") or {})})
    if not input_root or not compiler:
        raise AttestationError("attestation does not record the inputs and the compiler")
    out = _field(internal, "out", str, "internalParameters.")
    entry = _field(ext, "entry", str, "externalParameters.")
    for rel in (out, entry):
        if rel.startswith("/") or ".." in rel.split("/"):
            raise AttestationError(f"attestation path {rel!r} leaves the build root")
    return Provenance(builder=builder_id[len(pv.BUILDER_PREFIX):], pub_key="",
                      subject_name=_field(subj, "name", str, "subject."),
                      sha256=_sha(subj.get("digest"), "subject"), cid=_ipfs(subj.get("uri"), "subject"),
                      entry=entry, flags=tuple(flags), env=dict(env), out=out, input_root=input_root,
                      compiler_sha256=compiler, dependencies=tuple(deps))


def open_envelope(data: bytes) -> Provenance:
    """Parse an envelope, check its signature with the key it names, read its statement.

    Raises:
        EnvelopeError, AttestationError: malformed.
        SignatureError: the signature does not verify.
    """
    from dataclasses import replace

    from cheng_build.trust import dsse

    env = dsse.parse(data.strip())
    if env.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(f"attestation payloadType is {env.payload_type!r}",
                               why=f"an in-toto statement is {dsse.IN_TOTO_PAYLOAD_TYPE}")
    if len(env.signatures) != 1:
        raise AttestationError(f"attestation has {len(env.signatures)} signatures, expected 1")
    pub = env.signatures[0].keyid
    dsse.verify(env, pub)
    return replace(read_statement(env.payload), pub_key=pub)


def check_builder_key(prov: Provenance, registry: RegistryLog) -> None:
    """Refuse a key that the (already verified) registry does not give to ``prov.builder``.

    Raises:
        PolicyError: unregistered, registered to someone else, or revoked.
    """
    state = registry.replay()
    if prov.pub_key in state.revoked:
        raise PolicyError(f"builder key revoked at registry line {state.revoked[prov.pub_key]}",
                          why=f"{prov.pub_key[:24]}... signed this attestation after it was revoked",
                          how="rebuild and sign with the builder's current key")
    owners = [o for o in state.owners.values() if o.pub_key == prov.pub_key]
    if any(o.author_id == prov.builder for o in owners):
        return
    if owners:
        raise PolicyError(f"builder key belongs to {owners[0].author_id}, not {prov.builder}",
                          why="the attestation claims a builder identity its key is not registered to",
                          how="trust an artifact only under the identity that registered the key")
    raise PolicyError(f"builder key is not registered to {prov.builder}",
                      why=f"no namespace in the registry is owned by {prov.builder} with key "
                          f"{prov.pub_key[:24]}...",
                      how="the builder registers its key first: cheng-registry register-key "
                          "(or publishes a package with it)")


def artifact_cid(data: bytes) -> str:
    """The CID chengc gives an artifact: raw for one chunk, else its UnixFS file DAG."""
    from cheng_build.build.fastcid import CHUNK, raw_cid

    if len(data) <= CHUNK:
        return raw_cid(hashlib.sha256(data).hexdigest())
    from cheng_build.cas.importer import add_bytes

    return str(add_bytes(None, data))


def check_subject(prov: Provenance, data: bytes, shown: str) -> None:
    """Refuse an artifact whose bytes are not the attested subject.

    Raises:
        AttestationError: the digest or the CID differs.
    """
    got = hashlib.sha256(data).hexdigest()
    if got != prov.sha256:
        raise AttestationError(f"{shown} does not match its attestation",
                               why=f"attested sha256 {prov.sha256}\nfile     sha256 {got}",
                               how="the artifact was changed after it was built, or the attestation "
                                   "is for another build")
    cid = artifact_cid(data)
    if cid != prov.cid:
        raise AttestationError(f"{shown} CID does not match its attestation",
                               why=f"attested {prov.cid}, file {cid}")


def rebuild(prov: Provenance, inputs_car: Path, compiler: Path, data: bytes, *,
            stage_parent: str | None = None) -> None:
    """Rebuild the attested artifact from ``inputs_car`` with ``compiler``; refuse a difference.

    Raises:
        AttestationError: the CAR is not the recorded inputs, the compiler differs, or the
            compiler wrote no output.
            The rebuilt bytes differ (the first differing offset is named).
        CompilerFailedError: the compiler failed.
    """
    import shutil
    import tempfile

    from cheng_build.build import compiler as compiler_mod
    from cheng_build.build.errors import NotReproducibleError
    from cheng_build.build.repro import check_same
    from cheng_build.cas.blockstore import Blockstore
    from cheng_build.cas.car import import_car
    from cheng_build.cas.cid import parse_cid
    from cheng_build.cas.exporter import export_to

    with open(compiler, "rb") as fh:
        comp_sha = hashlib.file_digest(fh, "sha256").hexdigest()
    if comp_sha != prov.compiler_sha256:
        raise AttestationError("rebuild needs the attested compiler",
                               why=f"attested compiler sha256 {prov.compiler_sha256}\n"
                                   f"{compiler}: {comp_sha}",
                               how="point --compiler: (or CHENG_COMPILER) at the same compiler build")
    work = Path(tempfile.mkdtemp(prefix="verify-artifact-", dir=stage_parent))
    try:
        store = Blockstore(work / "store")
        roots = import_car(store, inputs_car)  # every block's hash is checked on the way in
        if [str(r) for r in roots] != [prov.input_root]:
            raise AttestationError("inputs CAR is not the attested inputs",
                                   why=f"attested input root {prov.input_root}\n"
                                       f"CAR root(s) {', '.join(str(r) for r in roots) or 'none'}")
        root = work / "root"
        export_to(store, parse_cid(prov.input_root), root, file_mode=0o644, contained_symlinks=True)
        for sub in (".home", ".tmp"):
            (root / sub).mkdir(exist_ok=True)
        (root / prov.out).parent.mkdir(parents=True, exist_ok=True)
        env = {**prov.env, "HOME": os.fspath(root / ".home"), "TMPDIR": os.fspath(root / ".tmp")}
        argv = (prov.entry, *prov.flags, f"--out:{prov.out}")
        compiler_mod.run(compiler, compiler_mod.Invocation(argv, env, root))
        out = root / prov.out
        if not out.is_file():
            raise AttestationError("rebuild wrote no artifact", why=f"{compiler} wrote nothing at {prov.out}")
        rebuilt = out.read_bytes()
        try:
            check_same(data, rebuilt, first_id=f"attested sha256:{prov.sha256}",
                       second_id=f"rebuilt sha256:{hashlib.sha256(rebuilt).hexdigest()}")
        except NotReproducibleError as exc:
            raise AttestationError("rebuild differs from the artifact", why=exc.why,
                                   how="the build is not reproducible, or the artifact was not built "
                                       "from the attested inputs") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["AttestationError", "Provenance", "artifact_cid", "check_builder_key", "check_subject",
           "open_envelope", "read_statement", "rebuild"]
