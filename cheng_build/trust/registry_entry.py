"""One registry line: parsing it into a :class:`RegistryEntry`, and checking its signature.

The line format is documented in :mod:`cheng_build.trust.registry_log` (the module that writes it).

(Just over 400 lines on purpose: the fast parse path and the full shape checks must accept exactly
the same lines, and ``benchmarks/registry.py`` measures them together.)
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from enum import Enum
from types import MappingProxyType

from cheng_build.core.errors import SignatureError
from cheng_build.core.record import dataclass, field
from cheng_build.trust import canonical, gov_lines
from cheng_build.trust.config import Limits
from cheng_build.trust.keys import ED25519_PREFIX, LOCAL_PREFIX, Verifier
from cheng_build.trust.registry_errors import RegistryFormatError, UnsignedError

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

CHANNELS = ("edge", "stable", "lts")
FORMATS = ("dag", "tar", "source")


class EntryType(Enum):
    """Kinds of registry line."""

    PUBLISH = "publish"
    KEY = "key"
    CHECKPOINT = "checkpoint"
    # Governance lines (formats: cheng_build.trust.gov_lines).
    TAG = "tag"
    MAINTAINER = "maintainer"
    PROMOTE = "promote"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    APPEAL = "appeal"
    DECISION = "decision"


class KeyOp(Enum):
    """Operations of a ``key`` line."""

    REGISTER = "register"
    ROTATE = "rotate"
    REVOKE = "revoke"


class SigStatus(Enum):
    """What a line's signature turned out to be."""

    VALID = "valid"
    UNSIGNED = "unsigned"  # missing or the existing tooling's ``local:`` placeholder
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One parsed, well-formed registry line. ``data`` is every key of the line, read-only.

    The record's fields are properties over ``data`` (parsing builds only this small object: a
    verify parses every line, so construction cost is per-line overhead).
    """

    line: int
    type: EntryType
    raw: bytes = field(repr=False)
    data: Mapping[str, Any] = field(repr=False, compare=False)  # determined by raw
    ast_simhash64: str | None = None  # normalised to 16 lowercase hex digits
    # parse_line's fast path's reading of what a verify checks on every line, in HOT_FIELDS
    # order (values of ``data``), so the verifier's per-line checks skip the dict look-ups;
    # None for lines the fast path did not take.
    hot: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    package_id = property(lambda self: self.data.get("package_id"))
    author_id = property(lambda self: self.data.get("author_id"))
    channel = property(lambda self: self.data.get("channel"))
    epoch = property(lambda self: self.data.get("epoch"))
    cid = property(lambda self: self.data.get("cid"))
    format = property(lambda self: self.data.get("format"))
    pub_key = property(lambda self: self.data.get("pub_key"))
    signature = property(lambda self: self.data.get("signature"))
    created_ts = property(lambda self: self.data.get("created_ts"))
    seq = property(lambda self: self.data.get("seq"))
    prev = property(lambda self: self.data.get("prev"))
    parent = property(lambda self: self.data.get("parent"))
    version = property(lambda self: self.data.get("version"))
    api = property(lambda self: self.data.get("api"))

    @property
    def originality_score(self) -> float | None:
        """``originality_score`` as a float."""
        v = self.data.get("originality_score")
        return None if v is None else float(v)

    @property
    def signed(self) -> bool:
        """Whether the line carries an Ed25519 signature (not whether it verifies)."""
        sig = self.data.get("signature")
        return isinstance(sig, str) and sig.startswith(ED25519_PREFIX)

    @property
    def simhash(self) -> int | None:
        """``ast_simhash64`` as an integer."""
        return int(self.ast_simhash64, 16) if self.ast_simhash64 else None

    def lock_fields(self) -> dict[str, Any]:
        """The fields a lock entry carries for this publish (signed set + key + signature)."""
        out = canonical.normalize_publish_fields(self.data)
        for k in ("pub_key", "signature"):
            if self.data.get(k) is not None:
                out[k] = self.data[k]
        return out


def _entry_factory() -> Any:
    """A constructor for :class:`RegistryEntry` about twice as fast as the dataclass's own.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; this sets the
    same slots through their descriptors directly (what ``object.__setattr__`` ends up calling).
    The entry is identical and as frozen; parse_line builds one per line of every verify.
    """
    new = object.__new__
    set_line, set_type, set_raw, set_data, set_simhash, set_hot = (
        RegistryEntry.__dict__[f].__set__
        for f in ("line", "type", "raw", "data", "ast_simhash64", "hot"))

    def make(line: int, etype: EntryType, raw: bytes, data: Mapping[str, Any],
             simhash: str | None, hot: tuple[Any, ...] | None = None) -> RegistryEntry:
        e = new(RegistryEntry)
        set_line(e, line)
        set_type(e, etype)
        set_raw(e, raw)
        set_data(e, data)
        set_simhash(e, simhash)
        set_hot(e, hot)
        return e

    return make


_new_entry: Callable[..., RegistryEntry] = _entry_factory()


def _req_str(d: Mapping[str, Any], key: str, line: int, *, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if optional:
            return None
        raise RegistryFormatError(f"missing {key}", line=line)
    if not isinstance(v, str) or not v:
        raise RegistryFormatError(f"{key} must be a non-empty string", line=line)
    return v


def _req_int(d: Mapping[str, Any], key: str, line: int, *, optional: bool = False) -> int | None:
    v = d.get(key)
    if v is None:
        if optional:
            return None
        raise RegistryFormatError(f"missing {key}", line=line)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise RegistryFormatError(f"{key} must be a non-negative integer", line=line)
    return v


_HEX16 = canonical.is_canonical_simhash
_SCAN_ONCE = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__


def _fast_json(text: str) -> Any:
    """``json.loads(text)``, about 2 us faster per line.

    The decoder's scanner parses one value from the start; a line that is exactly one value (all
    the lines we write) is done. Anything else — surrounding whitespace, trailing garbage, a
    syntax error — goes through ``json.loads``, which gives the standard result or error.

    Raises:
        json.JSONDecodeError: not JSON.
        RecursionError: nested too deeply.
    """
    try:
        obj, end = _SCAN_ONCE(text, 0)
        if end == len(text):
            return obj
    except (StopIteration, ValueError):
        pass
    return json.loads(text)
_FAST_FIELDS = operator.itemgetter("type", "seq", "prev", "package_id", "author_id", "channel",
                                   "cid", "epoch", "format", "pub_key", "signature")
# RegistryEntry.hot: these fields of a publish line, in this order.
HOT_FIELDS = ("seq", "prev", "package_id", "author_id", "channel", "cid", "epoch", "format",
              "pub_key", "signature", "originality_score")
_PUBLISH_STR_REQUIRED = ("package_id", "author_id", "channel", "cid")
_PUBLISH_STR_OPTIONAL = ("format", "pub_key", "parent", "version", "api", "prev")


def parse_line(raw: bytes, line: int, limits: Limits | None = None) -> RegistryEntry:
    """Parse one line (without its newline) and check its shape.

    Raises:
        RegistryFormatError: not a well-formed record; the message names the line.
    """
    limits = limits or _DEFAULT_LIMITS
    if len(raw) > limits.max_line_bytes:
        raise RegistryFormatError(f"line is {len(raw)} bytes, over the {limits.max_line_bytes} limit",
                                  line=line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryFormatError("not UTF-8 text", line=line) from None
    try:
        d = _fast_json(text)
    except json.JSONDecodeError as exc:
        if not raw.strip():
            raise RegistryFormatError("empty line", line=line,
                                      how="the log has no empty lines; this one was inserted by "
                                          "hand") from None
        raise RegistryFormatError(f"not JSON ({exc.msg} at column {exc.colno})", line=line) from None
    except RecursionError:
        raise RegistryFormatError("JSON nested too deeply", line=line) from None
    if type(d) is not dict:
        raise RegistryFormatError("not a JSON object", line=line)
    return _fast_publish(d, raw, line) or _checked_record(d, raw, line, limits)


def _fast_publish(d: dict[str, Any], raw: bytes, line: int) -> RegistryEntry | None:
    """The entry of a chained, signed publish line as ``publish`` writes it, or None.

    Checked in one expression: a verify parses every line, so each check's bytecode is per-line
    overhead. Whatever this does not accept goes through :func:`_checked_record`, which decides and
    explains; this accepts only lines that one accepts too, and builds the same entry (a
    property test holds the two together).
    """
    try:
        kind, seq, prev, pkg, author, channel, cid, epoch, fmt, pub, sig = _FAST_FIELDS(d)
    except KeyError:
        kind = None
    if (kind == "publish" and type(seq) is int and type(epoch) is int and seq >= 0 and epoch >= 0
            and type(prev) is str and type(pkg) is str and type(author) is str
            and type(cid) is str and type(pub) is str and type(sig) is str
            and prev and author and cid and pub and len(pkg) > 6 and pkg.startswith("pkg://")
            and channel in CHANNELS and fmt in FORMATS and "source_addrs" not in d
            and "parents" not in d):
        get = d.get
        created, simhash, score = get("created_ts"), get("ast_simhash64"), get("originality_score")
        parent, version, api = get("parent"), get("version"), get("api")
        if ((created is None or type(created) is str or type(created) is int)
                and (simhash is None or (type(simhash) is str and _HEX16(simhash)))
                and (score is None or (type(score) is float and 0.0 <= score <= 1.0))
                and (parent is None or (type(parent) is str and parent))
                and (version is None or (type(version) is str and version))
                and (api is None or (type(api) is str and api))):
            return _new_entry(line, EntryType.PUBLISH, raw, MappingProxyType(d), simhash,
                              (seq, prev, pkg, author, channel, cid, epoch, fmt, pub, sig, score))
    return None


def _checked_record(d: dict[str, Any], raw: bytes, line: int, limits: Limits) -> RegistryEntry:
    """Every shape check of one parsed line, each failure explained.

    Raises:
        RegistryFormatError: not a well-formed record; the message names the line.
    """
    kind = d.get("type", "publish")
    if kind == "publish":
        etype = EntryType.PUBLISH
    else:
        try:
            etype = EntryType(kind)
        except (ValueError, TypeError):
            raise RegistryFormatError(f"unknown record type {str(kind)[:40]!r}", line=line) from None
    seq = d.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise RegistryFormatError("seq must be a non-negative integer", line=line)
    if (seq is None) != (d.get("prev") is None):
        raise RegistryFormatError("seq and prev must appear together", line=line)
    sig = d.get("signature")
    if sig is not None and type(sig) is not str:
        raise RegistryFormatError("signature must be a string", line=line)
    created = d.get("created_ts")
    if created is not None and type(created) is not str and type(created) is not int:
        raise RegistryFormatError("created_ts must be a string or integer", line=line)
    if etype is EntryType.PUBLISH:
        for key in _PUBLISH_STR_REQUIRED:
            v = d.get(key)
            if type(v) is not str or not v:
                raise RegistryFormatError(f"missing {key}" if v is None else
                                          f"{key} must be a non-empty string", line=line)
        for key in _PUBLISH_STR_OPTIONAL:
            v = d.get(key)
            if v is not None and (type(v) is not str or not v):
                raise RegistryFormatError(f"{key} must be a non-empty string", line=line)
        pkg = d["package_id"]
        if not pkg.startswith("pkg://") or len(pkg) <= 6:
            raise RegistryFormatError(f"package_id {pkg[:60]!r} is not pkg://<namespace>/<name>",
                                      line=line)
        if d["channel"] not in CHANNELS:
            raise RegistryFormatError(f"channel {d['channel'][:20]!r} is not one of "
                                      f"{', '.join(CHANNELS)}", line=line)
        fmt = d.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise RegistryFormatError(f"format {fmt[:20]!r} is not one of {', '.join(FORMATS)}",
                                      line=line)
        epoch = d.get("epoch")
        if type(epoch) is not int or epoch < 0:
            raise RegistryFormatError("missing epoch" if epoch is None else
                                      "epoch must be a non-negative integer", line=line)
        simhash = d.get("ast_simhash64")
        score = d.get("originality_score")
        try:
            # Inline fast checks for the forms publish writes; the canonical helpers decide
            # (and explain) everything else.
            if simhash is not None and not (type(simhash) is str and _HEX16(simhash)):
                simhash = canonical.simhash_hex(simhash)
            if score is not None and not (type(score) is float and 0.0 <= score <= 1.0):
                canonical.check_score(score)
        except canonical.CanonicalError as exc:
            raise RegistryFormatError(exc.what, line=line) from None
        addrs = d.get("source_addrs")
        if addrs is not None and (type(addrs) is not list or len(addrs) > limits.max_source_addrs
                                  or not all(type(a) is str for a in addrs)):
            raise RegistryFormatError("source_addrs must be a short list of strings", line=line)
        try:
            gov_lines.check_parents(d)
        except gov_lines.ShapeError as exc:
            raise RegistryFormatError(str(exc), line=line) from None
        return RegistryEntry(line, etype, raw, MappingProxyType(d), simhash)
    # The signed (governance, key, checkpoint) lines: apart, so the publish path above stays
    # the one measured by benchmarks/registry.py.
    return _checked_signed(d, raw, line, etype, seq, sig)


def _checked_signed(d: dict[str, Any], raw: bytes, line: int, etype: EntryType, seq: object,
                    sig: object) -> RegistryEntry:
    """The shape checks of a signed line (every type but publish): see :func:`_checked_record`."""
    if seq is None:
        raise RegistryFormatError(f"{etype.value} line without seq/prev", line=line)
    _req_str(d, "prev", line)
    if d.get("pub_key") is None or sig is None:
        raise RegistryFormatError(f"{etype.value} line must carry pub_key and signature", line=line)
    _req_str(d, "pub_key", line)
    if etype.value in gov_lines.GOV_TYPES:
        try:
            gov_lines.check_shape(etype.value, d)
        except gov_lines.ShapeError as exc:
            raise RegistryFormatError(f"{etype.value}: {exc}", line=line) from None
        return RegistryEntry(line, etype, raw, MappingProxyType(d))
    if etype is EntryType.KEY:
        op = d.get("op")
        if op not in ("register", "rotate", "revoke"):
            raise RegistryFormatError(f"key op {str(op)[:20]!r} is not register, rotate or revoke",
                                      line=line)
        if op == "register":
            _req_str(d, "package_id", line)
            _req_str(d, "author_id", line)
        elif op == "rotate":
            _req_str(d, "package_id", line)
            _req_str(d, "new_pub_key", line)
        else:
            _req_str(d, "revoked_key", line)
            _req_str(d, "package_id", line, optional=True)
        _req_str(d, "author_id", line, optional=True)
        return RegistryEntry(line, etype, raw, MappingProxyType(d))
    for key in ("size", "timestamp", "expires"):
        _req_int(d, key, line)
    root = _req_str(d, "root", line)
    assert root is not None
    if len(root) != 64 or any(c not in "0123456789abcdef" for c in root):
        raise RegistryFormatError("checkpoint root must be 64 lowercase hex digits", line=line)
    _req_str(d, "operator_id", line)
    return RegistryEntry(line, etype, raw, MappingProxyType(d))


_DEFAULT_LIMITS = Limits()


def signature_status(entry: RegistryEntry, verifier: Verifier) -> tuple[SigStatus, str]:
    """Check one line's signature. Returns (status, reason)."""
    sig = entry.signature
    if not sig or sig.startswith(LOCAL_PREFIX):
        return SigStatus.UNSIGNED, ("unsigned (the existing tooling's local: placeholder signature)"
                                    if sig else "unsigned (no signature)")
    if not sig.startswith(ED25519_PREFIX):
        return SigStatus.INVALID, "signature is neither ed25519: nor local:"
    if entry.pub_key is None:
        return SigStatus.INVALID, "signed line without pub_key"
    try:
        if entry.type is EntryType.PUBLISH:
            msg = canonical.publish_payload(entry.data)
        else:
            body = {k: v for k, v in entry.data.items() if k != "signature"}
            msg = (canonical.key_payload(body) if entry.type is EntryType.KEY
                   else canonical.checkpoint_payload(body) if entry.type is EntryType.CHECKPOINT
                   else canonical.gov_payload(body))
        verifier.verify(entry.pub_key, msg, sig)
    except (SignatureError, canonical.CanonicalError) as exc:
        return SigStatus.INVALID, exc.what
    return SigStatus.VALID, ""


def verify_entry_signature(fields: Mapping[str, Any]) -> None:
    """Check a publish signature from the lock-carried fields alone (a lock entry, a meta file).

    Args:
        fields: at least ``pub_key``, ``signature`` and the signed fields that were present.

    Raises:
        UnsignedError: the signature is missing or a ``local:`` placeholder.
        SignatureError: malformed, or it does not verify.
    """
    sig = fields.get("signature")
    if not isinstance(sig, str) or not sig or sig.startswith(LOCAL_PREFIX):
        raise UnsignedError(f"{fields.get('package_id', 'entry')} is unsigned",
                            why="local: placeholder signatures are accepted only at L0")
    pub = fields.get("pub_key")
    if not isinstance(pub, str):
        raise SignatureError(f"{fields.get('package_id', 'entry')} has no pub_key")
    try:
        msg = canonical.publish_payload(fields)
    except canonical.CanonicalError as exc:
        raise SignatureError(exc.what) from None
    Verifier().verify(pub, msg, sig, what=f"signature of {fields.get('package_id', 'entry')}")
