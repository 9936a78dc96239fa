"""Publishing real Cheng code: publish time vs ``git add -A``, new bytes per version vs the changed files.

    python benchmarks/corpus.py [--corpus TAR.XZ] [--repeat N] [--clock wall|cpu] [--chunker SPEC]
                                [--phases] [--json]

The workload is ``../shared/corpus/cheng-core-3versions.tar.xz`` (``src/core`` of cheng-lang at
three consecutive commits; its README says why ``backend/backend_driver_dispatch_min.cheng`` is
removed first and that a ``cheng-package.toml`` must be written). Figures:

| name | ours | anchor | goal |
| --- | --- | --- | --- |
| publish_v1 | ``cheng-registry publish`` of version 1, new store | ``git add -A``, same tree | <= 2 |
| new_bytes_v2 | block bytes the store gains for version 2 | bytes of changed/added files | <= 0.5 |
| new_bytes_v3 | the same for version 3 after version 2 | the same | <= 0.5 |

Publish runs as a process (as a user runs it: what the ``cheng-registry`` console script runs,
its bytecode compiled as an installed wheel's is) into an empty store; ``git add -A`` in a new
repository holding a copy of the tree.
Beside the byte rows, two compressors of the same history as references (not goals): ``xz``
(``xz -9e`` of the tar of all versions so far, minus the same for the versions before) and ``git``
(the pack after ``git repack -adf`` of a repository with one commit per version, minus the pack
before the commit). Publish and ``git add`` alternate, best of ``--repeat``; ``--clock cpu``
counts the CPU seconds of the child process (user + system) instead of wall time, steadier on a
shared machine. ``--chunker`` publishes with another source chunker, to compare. ``--phases``
adds the CPU seconds of each part of a publish (the interpreter's start, the imports, snapshot
with and without the store, fingerprint, API table, the two scanned together as publish does,
and all of it with the scan on its second thread), the profile behind the publish ratio; the
imports are the modules a real publish of the tree loaded, recorded from that run; each part is
the best of ``--repeat`` processes. ``--json``
prints ``{"<name>": {"ours": x, "anchor": y, "unit": "...", "ratio": x/y, ...}}`` as the last line.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import io
import json
import lzma
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cheng_build.cas.blockstore import Blockstore  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "cheng-core-3versions.tar.xz"
BINARY = "backend/backend_driver_dispatch_min.cheng"
GOALS = {"publish_v1": 2.0, "new_bytes_v2": 0.5, "new_bytes_v3": 0.5}  # ratio must be <= goal


def unpack(corpus: Path, into: Path) -> list[Path]:
    """The versions' ``src/core`` trees in commit order, ready to publish."""
    with tarfile.open(corpus) as tf:
        tf.extractall(into, filter="data")
    order = ["285be925", "4829e378", "3a63137e"]  # the README's commit order
    trees = []
    for n, commit in enumerate(order, start=1):
        tree = into / f"core-{commit}" / "src" / "core"
        (tree / BINARY).unlink(missing_ok=True)
        (tree / "cheng-package.toml").write_text(
            f'package_id = "pkg://cheng/core"\nversion = "{n}.0.0"\n', encoding="utf-8")
        trees.append(tree)
    return trees


def files_of(tree: Path) -> dict[str, bytes]:
    return {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def changed_bytes(old: dict[str, bytes], new: dict[str, bytes]) -> tuple[int, int]:
    """(bytes, count) of the files of ``new`` that are new or differ from ``old``."""
    changed = [rel for rel, data in new.items() if old.get(rel) != data]
    return sum(len(new[rel]) for rel in changed), len(changed)


def timed(cmd: list[str], cwd: Path, env: dict[str, str], clock: str) -> float:
    """Seconds of one process run: wall, or the child's user + system CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"corpus: {' '.join(cmd[:4])} failed:\n{proc.stdout}{proc.stderr}")
    if clock == "cpu":
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def store_blocks(store: Path) -> dict[str, int]:
    """cid -> block size of everything in the store (layout-independent)."""
    bs = Blockstore(store)
    return {str(c): len(bs.get(c)) for c in bs.iter_cids()}


def xz_size(trees: list[Path]) -> int:
    """``xz -9e`` of one tar holding the trees (each under its own name), files sorted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i, tree in enumerate(trees):
            for p in sorted(tree.rglob("*")):
                if p.is_file():
                    info = tf.gettarinfo(p, arcname=f"v{i + 1}/{p.relative_to(tree).as_posix()}")
                    info.mtime = 0
                    with p.open("rb") as fh:
                        tf.addfile(info, fh)
    return len(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def pack_size(repo: Path) -> int:
    git(repo, "repack", "-adfq")
    return sum(p.stat().st_size for p in (repo / ".git" / "objects" / "pack").glob("*.pack"))


def git_env() -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org",
            "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


# What the ``cheng-registry`` console script pip writes runs (less its argv[0] rewrite).
CONSOLE = "import re, sys\nfrom cheng_build.cli.registry import main\nsys.exit(main())\n"
# The same, writing the names of the modules the run imported (in import order) to argv[1].
CAPTURE = ("import sys, atexit\nbefore = set(sys.modules)\nout = sys.argv.pop(1)\n"
           "atexit.register(lambda: open(out, 'w').write("
           "'\\n'.join(m for m in list(sys.modules) if m not in before)))\n" + CONSOLE)

PHASES = """
import sys, time
mods = open(sys.argv[3]).read().split()
t = time.process_time()
for m in mods:
    if m not in sys.modules:
        try:
            __import__(m)
        except ImportError:  # a name a package set aside for an optional import that failed
            pass
print(f"imports (what the publish run loaded: {len(mods)} modules)", time.process_time() - t)
from pathlib import Path
from cheng_build.cas.blockstore import Blockstore
from cheng_build.pkg import api, originality, snapshot
src = Path(sys.argv[1])
for label, store in (("no store: CIDs only", None), ("into the store", Blockstore(sys.argv[2]))):
    t = time.process_time()
    snap = snapshot.make_snapshot(store, src, snapshot.SnapshotFormat.DAG)
    print(f"snapshot, {snap.chunker}, {label}", time.process_time() - t)
t = time.process_time(); files = originality.source_files(src)
print("read the sources", time.process_time() - t)
t = time.process_time(); originality.fingerprint(files)
print("fingerprint (C scanner)", time.process_time() - t)
t = time.process_time(); api.extract_api_from_dir(src, files)
print("API table (C lines and declarations)", time.process_time() - t)
from cheng_build.pkg import publish_content
t = time.process_time(); publish_content.scan_sources(src, files)
print("fingerprint + API table as publish scans them (one C call)", time.process_time() - t)
t = time.process_time()
with Blockstore(sys.argv[2] + "-2").batch() as b:
    publish_content.publish_content(b.store, src, snapshot.SnapshotFormat.DAG, into=b)
print("all of it as publish does (snapshot + scan on a 2nd thread), CPU of both", time.process_time() - t)
t = time.process_time(); originality.reference_fingerprint(files)
print("fingerprint by the Python reference, for scale", time.process_time() - t)
"""


def phases(tree: Path, tmp: Path, env: dict[str, str], publish_args: list[str],
           repeat: int) -> list[tuple[str, float]]:
    """CPU seconds of each part of publishing ``tree`` (one process, the publish path's calls),
    after the interpreter's own start (``python -c pass``) and the modules a real publish of
    ``tree`` (``publish_args``, into a fresh store) imported, recorded from that run. Each part
    is the best of ``repeat`` processes, each with a new store (as the publish row is)."""
    mods = tmp / "phase-modules.txt"
    subprocess.run([sys.executable, "-c", CAPTURE, str(mods), *publish_args], cwd=tmp, env=env,
                   check=True, capture_output=True)
    best: dict[str, float] = {}
    for i in range(repeat):
        start = timed([sys.executable, "-c", "pass"], tmp, env, "cpu")
        out = subprocess.run([sys.executable, "-c", PHASES, str(tree), str(tmp / f"phase-store-{i}"),
                              str(mods)], env=env, capture_output=True, text=True, check=True).stdout
        rows = [(line.rsplit(" ", 1)[0], float(line.rsplit(" ", 1)[1])) for line in out.splitlines()]
        for label, secs in [("interpreter start (python -c pass, whole process)", start), *rows]:
            best[label] = min(best.get(label, secs), secs)
    return list(best.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the 3-version tar.xz")
    ap.add_argument("--repeat", type=int, default=3, help="publish/git-add pairs timed (best of)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or the child process's CPU seconds (steadier when shared)")
    ap.add_argument("--chunker", default=None,
                    help="source chunker to publish with (default: the snapshot default)")
    ap.add_argument("--phases", action="store_true",
                    help="also print where publish's CPU time goes (version 1, part by part)")
    ap.add_argument("--json", action="store_true", help="print the JSON object as the last line")
    args = ap.parse_args(argv)
    if not args.corpus.is_file():
        print(f"corpus: {args.corpus} not found (pass --corpus)", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="corpus-bench-"))
    try:
        trees = unpack(args.corpus, tmp / "src")
        # An installed wheel carries its bytecode (pip compiles it); the checkout under
        # PYTHONPATH may not (PYTHONDONTWRITEBYTECODE, stale caches), and compiling ~40 modules
        # on every run is ~0.09 s CPU that a user never pays. Compile once, outside the timing.
        compileall.compile_dir(str(ROOT / "cheng_build"), quiet=1)
        env = {**git_env(), "PYTHONPATH": str(ROOT), "PKG_TRUST_DIR": str(tmp / "trust"),
               "PKG_AUDIT_LOG": str(tmp / "audit.log")}
        if args.chunker:
            env["CHENG_SOURCE_CHUNKER"] = args.chunker
        py = [sys.executable, "-c", CONSOLE]
        key = tmp / "k.key"
        subprocess.run([*py, "keygen", f"--out:{key}", "--author:bench"], env=env, check=True,
                       capture_output=True)

        def publish(n: int, store: Path, registry: Path) -> list[str]:
            return [*py, "publish", "--package:pkg://cheng/core", "--channel:edge", f"--epoch:{n}",
                    f"--version:{n}.0.0", f"--src:{trees[n - 1]}", f"--priv:{key}",
                    f"--store:{store}", f"--registry:{registry}"]

        # 1. publish of version 1 vs git add -A of the same tree.
        best_pub = best_git = float("inf")
        for r in range(args.repeat):
            run = tmp / f"run{r}"
            run.mkdir()
            best_pub = min(best_pub, timed(publish(1, run / "store", run / "reg.jsonl"), tmp, env,
                                           args.clock))
            repo = run / "git"
            shutil.copytree(trees[0], repo)
            git(repo, "init", "-q")
            best_git = min(best_git, timed(["git", "add", "-A"], repo, env, args.clock))

        # 2. new bytes per version, with xz and git of the same history beside.
        store, registry = tmp / "store", tmp / "reg.jsonl"
        repo = tmp / "history"
        repo.mkdir()
        git(repo, "init", "-q")
        xz_prev = git_prev = 0
        blocks: dict[str, int] = {}
        rows: dict[str, dict[str, object]] = {}
        old_files: dict[str, bytes] = {}
        for n, tree in enumerate(trees, start=1):
            subprocess.run(publish(n, store, registry), cwd=tmp, env=env, check=True, capture_output=True)
            now = store_blocks(store)
            new_bytes = sum(size for cid, size in now.items() if cid not in blocks)
            blocks = now
            files = files_of(tree)
            cbytes, ccount = changed_bytes(old_files, files)
            old_files = files
            for p in repo.iterdir():
                if p.name != ".git":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            shutil.copytree(tree, repo, dirs_exist_ok=True)
            git(repo, "add", "-A")
            subprocess.run(["git", "-C", str(repo), "commit", "-qm", f"v{n}"], check=True,
                           capture_output=True, env=git_env())
            git_now = pack_size(repo)
            xz_now = xz_size(trees[:n])
            if n > 1:
                rows[f"new_bytes_v{n}"] = {
                    "ours": new_bytes, "anchor": cbytes, "unit": "bytes", "ratio": new_bytes / cbytes,
                    "changed_files": ccount, "xz": xz_now - xz_prev, "git": git_now - git_prev}
            xz_prev, git_prev = xz_now, git_now

        results: dict[str, dict[str, object]] = {
            "publish_v1": {"ours": best_pub, "anchor": best_git, "unit": "s",
                           "ratio": best_pub / best_git}, **rows}
        chunker = args.chunker or "default"
        digest = hashlib.sha256(args.corpus.read_bytes()).hexdigest()[:12]
        print(f"corpus benchmarks: {args.corpus.name} ({digest}), {len(trees)} versions, best of "
              f"{args.repeat} ({args.clock} clock), chunker {chunker}, {os.cpu_count()} CPUs")
        print(f"{'name':<14} {'ours':>10} {'anchor':>10} {'unit':<6} {'ratio':>6} {'goal':>6}  "
              f"anchor; references")
        for name, row in results.items():
            goal = GOALS[name]
            ratio = float(str(row["ratio"]))
            flag = "[ok]" if ratio <= goal else "[ABOVE]"
            if row["unit"] == "s":
                ours, anchor = f"{float(str(row['ours'])):>10.3f}", f"{float(str(row['anchor'])):>10.3f}"
                note = "git add -A, same tree"
            else:
                ours, anchor = f"{row['ours']!s:>10}", f"{row['anchor']!s:>10}"
                note = (f"{row['changed_files']} changed files; xz {row['xz']} B, "
                        f"git pack {row['git']} B")
            print(f"{name:<14} {ours} {anchor} {row['unit']!s:<6} {ratio:>6.2f} "
                  f"{'<=' + format(goal, '.1f'):>6}  {note} {flag}")
        if args.phases:
            print(f"publish of version 1, CPU seconds by part (one process, best of {args.repeat}):")
            phase_run = tmp / "phase-run"
            phase_run.mkdir()
            for label, secs in phases(trees[0], tmp, env,
                                      publish(1, phase_run / "store", phase_run / "reg.jsonl")[3:],
                                      args.repeat):
                print(f"  {secs:7.3f}  {label}")
        if args.json:
            print(json.dumps(results))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
