"""Signed build provenance: an in-toto Statement with a SLSA provenance v1 predicate, in a DSSE
envelope signed with the builder's Ed25519 key (``chengc --sign:<key>``).

Files written beside ``cheng.meta.toml`` (both named after the artifact ``<name>``):

- ``<name>.intoto.jsonl``: one line, the DSSE envelope (``payloadType``
  ``application/vnd.in-toto+json``) of the statement below;
- ``<name>.inputs.car``: a CARv1 of exactly the staged inputs (what ``--emit:bundle`` writes),
  whose root is the statement's input root, so anyone can rebuild
  (``cheng-pkg verify-artifact --rebuild``) without the builder's machine.

The statement (https://in-toto.io/Statement/v1, predicate https://slsa.dev/provenance/v1)::

    subject: [{name: <artifact file name>, digest: {sha256: <hex>}, uri: "ipfs://<artifact CID>"}]
    predicate.buildDefinition:
      buildType: BUILD_TYPE (documented in docs/chengc.md)
      externalParameters: {entry, flags, target}           # what the user asked for
      internalParameters: {env, out}                       # what chengc set for the compiler
      resolvedDependencies:
        {name: "inputs", uri: "ipfs://<input root>"}       # the staged tree (the CAR's root)
        {name: "compiler", digest: {sha256: <hex>}}
        {name: <package id>, uri: "ipfs://<snapshot CID>", annotations: {author_id, channel, epoch}}...
    predicate.runDetails.builder.id: "urn:cheng:builder:<author id>"

Everything in it is what the action-cache key covers (compiler digest, flags, input root, the
allow-listed environment, target) plus the locked snapshots, and nothing else: no timestamps, so
the same build signed by the same key gives the same bytes (Ed25519 is deterministic), and a
cache hit can reuse the envelope without loading the key or PyNaCl at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cheng_build.core.record import dataclass  # dataclasses/typing: ~10 ms on a signed miss

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from threading import Thread

    from cheng_build.trust.keys import KeyPair

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/cheng-lang/cheng-build/chengc/v1"
BUILDER_PREFIX = "urn:cheng:builder:"
ATTESTATION_SUFFIX = ".intoto.jsonl"
INPUTS_SUFFIX = ".inputs.car"


@dataclass(frozen=True, slots=True)
class BuildFacts:
    """What a finished build knows that the statement records."""

    artifact_name: str
    artifact_sha256: str  # hex
    artifact_cid: str
    entry: str  # the staged entry file, e.g. "app.cheng"
    flags: tuple[str, ...]  # as handed to the compiler (keyed), without --out
    target: str
    env: tuple[tuple[str, str], ...]  # the compiler's environment minus per-run paths
    out: str  # the staged output path the compiler wrote (relative)
    input_root: str
    compiler_digest: str  # "sha256:<hex>"
    dependencies: tuple[Mapping[str, object], ...]  # lock dependency tables


def builder_id(author_id: str) -> str:
    """The SLSA builder id of a builder identity (a registry author id)."""
    return BUILDER_PREFIX + author_id


def statement(facts: BuildFacts, author_id: str) -> dict[str, object]:
    """The in-toto statement of a build (see the module docstring)."""
    deps: list[dict[str, object]] = [
        {"name": "inputs", "uri": f"ipfs://{facts.input_root}"},
        {"name": "compiler", "digest": {"sha256": facts.compiler_digest.removeprefix("sha256:")}},
    ]
    for d in facts.dependencies:
        notes = {k: str(d[k]) for k in ("author_id", "channel", "epoch") if d.get(k) is not None}
        rd: dict[str, object] = {"name": str(d.get("package_id", "")), "uri": f"ipfs://{d.get('cid', '')}"}
        if notes:
            rd["annotations"] = notes
        deps.append(rd)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.artifact_name, "digest": {"sha256": facts.artifact_sha256},
                     "uri": f"ipfs://{facts.artifact_cid}"}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"entry": facts.entry, "flags": list(facts.flags),
                                       "target": facts.target},
                "internalParameters": {"env": dict(facts.env), "out": facts.out},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": builder_id(author_id)}},
        },
    }


def statement_bytes(facts: BuildFacts, author_id: str) -> bytes:
    """Canonical JSON of :func:`statement` (sorted keys, compact): the signed payload."""
    return json.dumps(statement(facts, author_id), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def attestation_path(meta_dir: Path, artifact_name: str) -> Path:
    """Where the envelope of ``artifact_name`` goes."""
    return meta_dir / (artifact_name + ATTESTATION_SUFFIX)


def inputs_path(meta_dir: Path, artifact_name: str) -> Path:
    """Where the inputs CAR of ``artifact_name`` goes."""
    return meta_dir / (artifact_name + INPUTS_SUFFIX)


class Attester:
    """Writes the envelope and inputs CAR of one build.

    On a cache miss :meth:`preload` loads the signing key (PyNaCl's import alone costs 15-40 ms)
    and writes the inputs CAR on a thread while the compiler runs, so signing adds about one
    Ed25519 signature to the build. On a hit the envelope remembered for (action key, key file,
    artifact) is copied back if the file on disk differs, and nothing cryptographic is loaded.
    """

    def __init__(self, key_spec: str, key_digest: str, stamp_dir: Path) -> None:
        self.key_spec = key_spec
        self.key_digest = key_digest
        self.stamp_dir = stamp_dir
        self._key: KeyPair | None = None
        self._error: BaseException | None = None
        self._thread: Thread | None = None

    def preload(self, car_dest: Path | None = None, data: Mapping[str, bytes] | None = None) -> None:
        """Load the key (and write the inputs CAR when given) on a background thread."""
        import threading

        def body() -> None:
            try:
                self._key = _load(self.key_spec)
                if car_dest is not None and data is not None:
                    _write_car(car_dest, data)
            except BaseException as exc:  # re-raised by write(), in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=body, daemon=True)
        self._thread.start()

    def _joined_key(self) -> KeyPair:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if self._key is None:
            self._key = _load(self.key_spec)
        return self._key

    def write(self, facts: BuildFacts, action_key: str, meta_dir: Path,
              inputs: Callable[[], Mapping[str, bytes]]) -> Path:
        """Write (or keep) ``<name>.intoto.jsonl`` and ``<name>.inputs.car``; the envelope's path.

        Raises:
            KeyFileError: the key cannot be read.
            OSError: a file cannot be written (nothing is left half-written).
        """
        att = attestation_path(meta_dir, facts.artifact_name)
        car = inputs_path(meta_dir, facts.artifact_name)
        stamp = self.stamp_dir / stamp_name(action_key, self.key_digest, facts.artifact_name)
        try:
            blob: bytes | None = stamp.read_bytes()
        except OSError:
            blob = None
        if blob is None:
            from cheng_build.trust import dsse

            key = self._joined_key()
            env = dsse.sign(dsse.IN_TOTO_PAYLOAD_TYPE, statement_bytes(facts, key.author_id), key)
            blob = env.to_json() + b"\n"
            self.stamp_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(stamp, blob)
        elif self._thread is not None:
            self._thread.join()  # the CAR may still be being written
        if self._error is not None:
            raise self._error
        try:
            same = att.read_bytes() == blob
        except OSError:
            same = False
        if not same:
            _atomic_write(att, blob)
        if not car.is_file():
            _write_car(car, inputs())
        return att


def _atomic_write(path: Path, data: bytes) -> None:
    # core.atomic pulls in tempfile (and with it shutil, random, bz2, lzma: ~5 ms): a cache hit
    # that finds its envelope in place must not pay for it.
    from cheng_build.core.atomic import atomic_write_bytes

    atomic_write_bytes(path, data)


def _load(spec: str) -> KeyPair:
    from cheng_build.trust.keys import load_key

    key = load_key(spec)
    key.sign(b"")  # builds (and caches) the signing key object now, off the critical path
    return key


def _write_car(dest: Path, data: Mapping[str, bytes]) -> None:
    from cheng_build.build.fastcid import tree_car
    from cheng_build.core.atomic import atomic_write_bytes

    car = tree_car(data)
    if car is not None:
        atomic_write_bytes(dest, car)
        return
    from cheng_build.build.bundle import write_bundle  # a file over one chunk: the CAS builds it

    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bundle(dest, data)


def key_digest(spec: str, file_digest: Callable[[Path], str]) -> str:
    """What identifies the signing key for the hit stamp without reading it as a key: the key
    file's digest (through the stat cache), or for ``env:VAR`` the variable's value's digest."""
    from cheng_build.core.sha256 import sha256  # hashlib's OpenSSL load is ~3 ms of a miss

    if spec.startswith("env:"):
        return sha256(os.environ.get(spec[4:], "").encode()).hexdigest()
    try:
        return file_digest(Path(spec))
    except OSError:
        return "missing"  # load_key reports it; no stamp is ever written under this name


def stamp_name(action_key: str, key_digest: str, artifact_name: str) -> str:
    """The file name under which a signed envelope is remembered for a cache hit: one per
    (action key, signing-key file bytes, artifact name)."""
    from cheng_build.core.sha256 import sha256

    return sha256(f"{action_key}\0{key_digest}\0{artifact_name}".encode()).hexdigest() + ".jsonl"


def flags_without_out(flags: Sequence[str]) -> tuple[str, ...]:
    """The keyed flags as recorded (the staged ``--out`` is recorded separately as ``out``)."""
    return tuple(f for f in flags if not f.startswith("--out:"))


__all__ = [
    "ATTESTATION_SUFFIX",
    "BUILDER_PREFIX",
    "BUILD_TYPE",
    "INPUTS_SUFFIX",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Attester",
    "BuildFacts",
    "attestation_path",
    "builder_id",
    "flags_without_out",
    "inputs_path",
    "key_digest",
    "stamp_name",
    "statement",
    "statement_bytes",
]
