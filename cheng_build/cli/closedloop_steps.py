"""Task programs of the ``closedloop`` DAG that are more than one console-script call.

Run by the DAG as ``python -m cheng_build.cli.closedloop_steps <step> ...`` in the work directory
(see :mod:`cheng_build.cis.targets.closedloop`). Each step is a small program: it prints what it did and
exits 0, or says on stderr what failed and exits non-zero, so the CIS engine's friendly error
(built from the stderr tail) names the cause.

Steps:
  serve-fetch --root:<cache> --lock:<lock> --pkg-cache:<dir>
      start ``cheng-pkg serve`` on 127.0.0.1 in the background, read its libp2p address, run
      ``cheng-pkg fetch --mode:p2p`` against it into a fresh cache, stop the server.
  build-without-compiler <app.cheng> <chengc flags...>
      ``chengc --emit:check`` and ``--emit:bundle``; then exit 3 saying the app was not compiled.
  bundle-repro <app.cheng> <chengc flags...>
      two ``chengc --emit:bundle --no-cache`` into different files; the bytes must be equal.
  check-meta --meta:<toml> --artifact:<file> --lock:<lock>
      chengc's cheng.meta.toml names this artifact's CID and this lock's SHA-256.
  lock-hook <hook flags...> <package dirs...>
      the pre-commit lock check (``hooks/cheng-lock-verify``) on those directories.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cheng_build.cli.step_program import (
    SERVE_START_TIMEOUT,
    StepProgram,
    await_address,
    start_server,
    stop,
)

EXIT_NO_COMPILER = 3


PROGRAM = StepProgram(prog="closedloop_steps", label="closedloop", timed=True)
_flag, _fail = PROGRAM.flag, PROGRAM.fail


def serve_fetch(argv: Sequence[str]) -> int:
    root, lock, cache = _flag(argv, "root"), _flag(argv, "lock"), _flag(argv, "pkg-cache")
    if Path(cache).exists() and any(Path(cache).iterdir()):
        return _fail(f"the fetch cache {cache} is not fresh", "closedloop fetches into an empty cache")
    serve = start_server(
        [sys.executable, "-m", "cheng_build.cli.pkg", "serve", f"--root:{root}",
         "--listen:/ip4/127.0.0.1/tcp/0"])
    try:
        addr = await_address(serve)
        if addr is None:
            err = serve.stderr.read() if serve.poll() is not None and serve.stderr else ""
            return _fail("cheng-pkg serve did not print a libp2p address",
                         *(err.strip().splitlines()[-5:] or [f"waited {SERVE_START_TIMEOUT:.0f} s"]))
        print(f"serve: {addr}")
        fetch = subprocess.run(
            [sys.executable, "-m", "cheng_build.cli.pkg", "fetch", f"--lock:{lock}",
             f"--pkg-cache:{cache}", f"--peers:{addr}", "--mode:p2p", "--print-roots"],
            capture_output=True, text=True, check=False)
        sys.stdout.write(fetch.stdout)
        sys.stderr.write(fetch.stderr)
        if fetch.returncode != 0:
            return fetch.returncode
        lines = fetch.stdout.strip().splitlines()[:-1]  # the last line is PKG_ROOTS
        not_p2p = [ln for ln in lines if len(ln.split()) < 2 or ln.split()[1] != "p2p"]
        if not lines or not_p2p:
            return _fail("not every package came over p2p", *not_p2p)
        return 0
    finally:
        stop(serve)


def _chengc(argv: Sequence[str]) -> int:
    from cheng_build.cli.chengc import main

    print(f"$ chengc {' '.join(argv)}", flush=True)
    return int(main(list(argv)))


def build_without_compiler(argv: Sequence[str]) -> int:
    for emit in ("--emit:check", "--emit:bundle"):
        rc = _chengc([*argv, emit])
        if rc != 0:
            return rc
    print("no Cheng compiler configured: ran chengc --emit:check and --emit:bundle instead; the "
          "app was not compiled", file=sys.stderr)
    print("set CHENG_COMPILER=<path> (or [toolchain] compiler in cheng-pkg-config.toml) to compile "
          "it; CLOSEDLOOP_STRICT=1 makes this blocking", file=sys.stderr)
    return EXIT_NO_COMPILER


def bundle_repro(argv: Sequence[str]) -> int:
    outs = [Path("repro") / f"bundle-{n}.car" for n in ("a", "b")]
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        rc = _chengc([*argv, "--emit:bundle", "--no-cache", f"--out:{out}"])
        if rc != 0:
            return rc
    a, b = (p.read_bytes() for p in outs)
    if a != b:
        n = min(len(a), len(b))
        at = next((i for i in range(n) if a[i] != b[i]), n)
        return _fail("bundle is not reproducible", f"sizes {len(a)} and {len(b)}, first difference "
                     f"at byte {at}")
    print(f"reproducible: two bundles identical ({len(a)} bytes, sha256 "
          f"{hashlib.sha256(a).hexdigest()[:16]}...); the compiled artifact was not checked "
          "(no compiler)")
    return 0


def check_meta(argv: Sequence[str]) -> int:
    import tomllib

    from cheng_build.cas.cid import cid_str
    from cheng_build.cas.importer import add_bytes

    meta_path, artifact, lock = (Path(_flag(argv, n)) for n in ("meta", "artifact", "lock"))
    try:
        meta = tomllib.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read {meta_path}", str(exc))
    want_cid = cid_str(add_bytes(None, artifact.read_bytes()))
    want_lock = hashlib.sha256(lock.read_bytes()).hexdigest()
    got_cid = meta.get("build", {}).get("output_cid")
    got_lock = meta.get("lock", {}).get("sha256")
    bad = []
    if got_cid != want_cid:
        bad.append(f"build.output_cid {got_cid} but the artifact is {want_cid}")
    if got_lock != want_lock:
        bad.append(f"lock.sha256 {got_lock} but the lock is {want_lock}")
    if bad:
        return _fail(f"{meta_path} does not describe this build", *bad)
    deps = len(meta.get("dependencies", []))
    print(f"meta: {meta_path} ok: artifact {want_cid}, lock sha256 {want_lock[:16]}..., {deps} deps")
    return 0


def lock_hook(argv: Sequence[str]) -> int:
    from cheng_build.cli.lock_hook import main

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = int(main(list(argv)))
    text = buf.getvalue()
    (sys.stderr if rc else sys.stdout).write(text)
    if rc == 0:
        print("lock hook: passed")
    return rc


STEPS = {"serve-fetch": serve_fetch, "build-without-compiler": build_without_compiler,
         "bundle-repro": bundle_repro, "check-meta": check_meta, "lock-hook": lock_hook}


def main(argv: Sequence[str] | None = None) -> int:
    return PROGRAM.main(STEPS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
