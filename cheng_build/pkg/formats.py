"""Reading and writing manifests, locks and meta files as TOML, YAML or JSON.

The three formats carry the same data and all round-trip: ``parse_text(dump_text(d, f), f) == d``
for every document we write. Reading is strict and bounded because these files come from users
and from other people's snapshots:

- at most :data:`MAX_DOCUMENT_BYTES`; the bytes must be UTF-8;
- the top level must be a table/mapping/object;
- duplicate keys are an error in every format (TOML forbids them; for YAML and JSON, whose
  usual loaders silently keep the last one, we check);
- JSON's non-standard ``NaN``/``Infinity`` are refused.

TOML is read with the standard library's ``tomllib`` (fast: the lock hook runs on every
commit), or, for the simple documents most manifests are, by :mod:`pkg.toml_subset` (the same
result without importing tomllib: ~3 ms of a publish's start-up), and written with tomlkit.
When we rewrite a TOML file a user already has, we edit their document in place
(:func:`update_toml`), so their comments, key order and layout survive and only changed values
move. YAML is written in the seed's A1.10 style (plain keys, double-quoted
strings, list items indented under their key); PyYAML and tomlkit are imported only when used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from cheng_build.core.errors import InputError

TYPE_CHECKING = False  # typing costs start-up time; mypy reads the guarded imports as usual
if TYPE_CHECKING:
    from typing import Any

FORMATS = ("toml", "yaml", "json")
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

_SUFFIX = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class DocumentError(InputError):
    """A manifest, lock or meta document is unreadable or malformed (``what`` says how)."""


def type_name(value: object) -> str:
    """How an error names a value's type ("an integer", "a table"), in document terms."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def format_for_path(path: str | os.PathLike[str], default: str = "toml") -> str:
    """The format a file name implies (``.toml``, ``.yaml``/``.yml``, ``.json``), else ``default``."""
    return _SUFFIX.get(Path(path).suffix.lower(), default)


def read_bytes_bounded(path: str | os.PathLike[str]) -> bytes:
    """Read a whole document file, refusing one larger than :data:`MAX_DOCUMENT_BYTES`.

    Raises:
        DocumentError: missing, not a regular file, unreadable or too large.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise DocumentError(f"file not found: {p}") from None
    except IsADirectoryError:
        raise DocumentError(f"not a file: {p}") from None
    except OSError as exc:
        raise DocumentError(f"cannot read {p}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"file too large: {p} (limit {MAX_DOCUMENT_BYTES} bytes)")
    return data


def decode_utf8(raw: bytes, name: str) -> str:
    """Decode document bytes as UTF-8 (a BOM is tolerated).

    Raises:
        DocumentError: the bytes are not valid UTF-8 (names the byte offset).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    return text[1:] if text.startswith("\ufeff") else text


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DocumentError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not a JSON number")


def _yaml_loader() -> Any:
    import yaml  # lazy: ~20 ms, only YAML users pay it

    # The pure-Python loader on purpose: libyaml's C composer recurses on the C stack and
    # crashes the process on a deeply nested hostile document, where this one raises
    # RecursionError (caught below). Manifests and locks are small, so speed does not matter.
    base = yaml.SafeLoader

    class _Loader(base):  # type: ignore[misc, valid-type]
        """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                duplicate = key in out
            except TypeError:
                raise DocumentError(f"line {key_node.start_mark.line + 1}: "
                                    "a key must be a plain value") from None
            if duplicate:
                raise DocumentError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = loader.construct_object(value_node, deep=deep)
        return out

    _Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    return _Loader


def parse_text(text: str, fmt: str, name: str = "<document>") -> dict[str, Any]:
    """Parse a document's text; the top level must be a mapping.

    Raises:
        DocumentError: syntax error, duplicate key, or a top level that is not a mapping
            (the message names ``name`` and, where the parser knows it, the line).
    """
    if fmt == "toml":
        from cheng_build.pkg.toml_subset import loads

        simple = loads(text)
        if simple is not None:
            return simple  # a table, like everything tomllib returns
        import tomllib

        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DocumentError(f"{name}: invalid TOML: {exc}") from None
        except RecursionError:
            raise DocumentError(f"{name}: invalid TOML: nested too deeply") from None
    elif fmt == "json":
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)
        except DocumentError as exc:
            raise DocumentError(f"{name}: {exc.what}") from None
        except (ValueError, RecursionError) as exc:
            raise DocumentError(f"{name}: invalid JSON: {exc}") from None
    elif fmt == "yaml":
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader())
        except DocumentError as exc:
            raise DocumentError(f"{name}: {exc.what}") from None
        except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()
            raise DocumentError(f"{name}: invalid YAML: {' '.join(first[:3])}") from None
    else:
        raise DocumentError(f"unknown format {fmt!r}", how="use toml, yaml or json")
    if not isinstance(data, dict):
        raise DocumentError(f"{name}: the top level must be a table/mapping, "
                            f"got {type(data).__name__}")
    return data


def read_document(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[dict[str, Any], str]:
    """Read and parse a document file; the format comes from its suffix unless given.

    Returns:
        (data, text): the parsed mapping and the decoded text (kept for in-place rewrites).

    Raises:
        DocumentError: see :func:`read_bytes_bounded`, :func:`decode_utf8`, :func:`parse_text`.
    """
    p = Path(path)
    text = decode_utf8(read_bytes_bounded(p), str(p))
    return parse_text(text, fmt or format_for_path(p), str(p)), text


# --- writing -----------------------------------------------------------------------------------


def _yaml_dump(data: Mapping[str, Any]) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no stubs here
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
            # Indent list items under their key, as the seed's A1.10 sample does.
            return super().increase_indent(flow, False)

    def rep_str(dumper: Any, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')

    def rep_dict(dumper: Any, value: Mapping[str, Any]) -> Any:
        # Keys plain, values as their own representers say (strings double-quoted).
        pairs = []
        for k, v in value.items():
            key_node = yaml.ScalarNode("tag:yaml.org,2002:str", str(k))
            pairs.append((key_node, dumper.represent_data(v)))
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=False)

    _Dumper.add_representer(str, rep_str)
    _Dumper.add_representer(dict, rep_dict)
    text: str = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                          width=1 << 30, default_flow_style=False)
    return text


def _plain(value: Any) -> Any:
    """Unwrap tomlkit items to plain Python values for comparisons."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _merge_table(table: Any, data: Mapping[str, Any]) -> None:
    import tomlkit
    from tomlkit.items import AoT, Table

    for key in [k for k in table if k not in data]:
        del table[key]
    for key, value in data.items():
        old = table.get(key)
        if (isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value)
                and isinstance(old, AoT)):
            # Match array-of-tables entries by package_id (else position) so a table keeps
            # its comments when its values are updated or entries are reordered.
            by_id = {_plain(t.get("package_id")): t for t in old.body if isinstance(t, Table)}
            new = tomlkit.aot()
            for entry in value:
                current = by_id.pop(entry.get("package_id"), None)
                if current is None:
                    current = tomlkit.table()
                _merge_table(current, entry)
                new.append(current)
            table[key] = new
        elif isinstance(value, Mapping) and isinstance(old, Table):
            _merge_table(old, value)
        elif old is not None and _plain(old) == value and type(_plain(old)) is type(value):
            continue  # unchanged: keep its formatting and comment
        else:
            item = tomlkit.item(value)
            comment = getattr(getattr(old, "trivia", None), "comment", "")
            if comment and hasattr(item, "trivia"):
                item.trivia.comment = comment
                item.trivia.comment_ws = getattr(old.trivia, "comment_ws", " ") or " "
            table[key] = item


def update_toml(previous: str, data: Mapping[str, Any]) -> str:
    """Rewrite a user's TOML document to hold ``data``, keeping comments and layout.

    Unchanged values are not touched; changed values keep their trailing comment; keys no longer
    present are removed; ``[[dependencies]]`` tables are matched by ``package_id``.
    """
    import tomlkit

    doc = tomlkit.parse(previous)
    _merge_table(doc, data)
    return tomlkit.dumps(doc)


def dump_text(data: Mapping[str, Any], fmt: str, *, previous: str | None = None) -> str:
    """Serialise a document; with ``previous`` TOML text, rewrite that text in place.

    Raises:
        DocumentError: unknown format.
    """
    if fmt == "toml":
        if previous is not None:
            try:
                return update_toml(previous, data)
            except Exception:
                pass
        import tomlkit

        return tomlkit.dumps(dict(data))
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return _yaml_dump(data)
    raise DocumentError(f"unknown format {fmt!r}", how="use toml, yaml or json")


__all__ = ["FORMATS", "MAX_DOCUMENT_BYTES", "DocumentError", "decode_utf8", "dump_text",
           "format_for_path", "parse_text", "read_bytes_bounded", "read_document", "type_name",
           "update_toml"]
