"""A request's working directory, and the CID of its result.

Layout of one execution (``<root>/compute/work/<request id>-<n>/``)::

    cis.toml, ...     the code CID's directory, exported from the CAS (its base directory)
    input/            the input CID (a file input is ``input/<its name or 'input'>``), read-only:
                      files 0444, directories 0555, and re-hashed after the run (a task that
                      changed its input fails the request)
    out/              empty and writable: the result is the UnixFS CID of this directory
    .cis/             the CIS run store of this execution

Every task runs with this directory as its working directory (``exec.cwd = "."``), so ``input/``
and ``out/`` are where the task looks. The result CID is the CAS root of ``out/`` exactly as
``cheng-pkg add`` computes it, so two honest executions of a reproducible DAG agree byte for byte
and an auditor compares CIDs only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cheng_build.cas.blockstore import Blockstore
from cheng_build.cas.cid import parse_cid
from cheng_build.cis.sandbox.launch import make_read_only
from cheng_build.core.errors import InputError

RESERVED = ("input", "out", ".cis")


class BadCodeError(InputError):
    """The code CID is not a usable DAG directory."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """Paths of one execution."""

    path: Path

    @property
    def input(self) -> Path:
        return self.path / "input"

    @property
    def out(self) -> Path:
        return self.path / "out"

    @property
    def cis_home(self) -> Path:
        return self.path / ".cis"

    @property
    def dag_file(self) -> Path:
        return self.path / "cis.toml"


def _read_only(path: Path) -> None:
    if path.is_dir():
        make_read_only(path)


_MAX_DAG_FILE = 1 << 20


def check_code(store: Blockstore, code_cid: str) -> None:
    """Check, before accepting a request, that its code CID is a DAG this executor can run:
    a directory with a valid ``cis.toml``, no reserved names, and no task that waits for a
    person (an executor runs unattended).

    Raises:
        BadCodeError: it is not (the message says why).
        NotFoundError / DigestMismatchError: a block is missing or corrupt.
    """
    import tomllib

    from cheng_build.cas.exporter import EntryKind, kind_of, ls, read_file
    from cheng_build.cis.dag.errors import DagError
    from cheng_build.cis.dag.model import LevelKind
    from cheng_build.cis.dag.toml_io import dag_from_mapping
    from cheng_build.cis.dag.validate import validate_dag

    code = parse_cid(code_cid)
    kind = kind_of(store, code)
    if kind is not EntryKind.DIRECTORY:
        raise BadCodeError(f"code {code_cid} is not a DAG",
                           why=f"the code CID must be a UnixFS directory holding cis.toml; it is a "
                               f"{kind.value}",
                           how="store the directory with: cheng-storage put --file:<dir>")
    entries = {e.name: e for e in ls(store, code)}
    for name in RESERVED:
        if name in entries:
            raise BadCodeError(f"code {code_cid} holds '{name}'",
                               why=f"'{name}' is where the executor puts the input, the result "
                                   "or its run store")
    dag_entry = entries.get("cis.toml")
    if dag_entry is None or dag_entry.kind is not EntryKind.FILE:
        raise BadCodeError(f"code {code_cid} is not a DAG", why="its directory has no cis.toml file")
    if dag_entry.size > _MAX_DAG_FILE:
        raise BadCodeError(f"code {code_cid}: cis.toml is {dag_entry.size} bytes",
                           why=f"a DAG file is at most {_MAX_DAG_FILE} bytes")
    try:
        data = tomllib.loads(read_file(store, dag_entry.cid).decode("utf-8"))
        dag = dag_from_mapping(data, base_dir=".")
        validate_dag(dag)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadCodeError(f"code {code_cid}: DAG fails validation",
                           why=f"cis.toml is not valid TOML: {exc}") from None
    except DagError as exc:
        raise BadCodeError(f"code {code_cid}: DAG fails validation", why=exc.what) from None
    for t in dag.tasks:
        if t.level.kind in (LevelKind.CONFIRMED, LevelKind.ARBITRATED):
            raise BadCodeError(f"code {code_cid}: DAG fails validation",
                               why=f"task {t.name} waits for a person ({t.level.kind.value}); an "
                                   "executor runs unattended")


def prepare(store: Blockstore, code_cid: str, input_cid: str, path: Path) -> Workspace:
    """Export code and input from ``store`` into a fresh workspace at ``path``.

    Raises:
        BadCodeError: the code CID is not a runnable DAG directory (:func:`check_code`).
        NotFoundError / DigestMismatchError: a block is missing or corrupt.
    """
    from cheng_build.cas.exporter import EntryKind, export_to, kind_of

    check_code(store, code_cid)
    export_to(store, parse_cid(code_cid), path, contained_symlinks=True)
    ws = Workspace(path)
    inp = parse_cid(input_cid)
    if kind_of(store, inp) is EntryKind.DIRECTORY:
        export_to(store, inp, ws.input, contained_symlinks=True)
    else:
        ws.input.mkdir()
        export_to(store, inp, ws.input / "input", contained_symlinks=True)
    _read_only(ws.input)
    ws.out.mkdir()
    return ws


def tree_cid(path: Path) -> str:
    """The UnixFS CID of a directory, computed without storing anything."""
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import import_path

    return cid_str(import_path(None, path).root)


def store_result(store: Blockstore, ws: Workspace) -> str:
    """Import ``out/`` into the CAS (pinned) and return its root CID."""
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import import_path

    return cid_str(import_path(store, ws.out, pin=True).root)


def remove(ws: Workspace) -> None:
    """Delete a finished workspace (its read-only input included)."""
    if not ws.path.exists():
        return
    for root, dirs, _files in os.walk(ws.path):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(ws.path, ignore_errors=True)


def check_input_unchanged(ws: Workspace, input_cid: str) -> bool:
    """Whether ``input/`` still hashes to the input CID (tasks must not change their input)."""
    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import import_path

    entries = list(ws.input.iterdir()) if ws.input.is_dir() else []
    target = ws.input
    if len(entries) == 1 and entries[0].name == "input" and not entries[0].is_dir():
        target = entries[0]
    try:
        return cid_str(import_path(None, target).root) == input_cid
    except (OSError, InputError):
        return False
