"""Task programs of the ``demo-io-lease`` DAG that are more than one ``cheng-storage`` call.

Run as ``python -m cheng_build.cli.storage_demo_steps <step> ...`` in the work directory (see
:mod:`cheng_build.cis.targets.demo_io_lease`). Each step prints what it did and exits 0, or says
on stderr what failed and exits 1.

Steps:
  expect-refused --root:<dir>
      ``put-text`` without a lease (the task runs with IO_REQUIRE_LEASE=1, IO_MODE=p2p) must be
      refused with ``lease required`` and write nothing.
  serve-get-proof --root:<dir> --reader:<dir> --provider:<id> --out:<file>
      serve the root on 127.0.0.1; read the first leased CID into the reader root over p2p; prove
      it over libp2p (recorded in the reader's ledger); stop serve.
  gc-after-expiry --root:<dir>
      wait (bounded) until the shortest lease has ended; gc must report it expired and delete its
      blocks while the other lease's content still reads back.
  verify-ledgers <root>...
      ``verify-ledger`` of each root.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cheng_build.cli.step_program import (
    StepProgram,
    await_address,
    start_server,
    stop,
)

MAX_LEASE_WAIT_S = 60.0


PROGRAM = StepProgram(prog="storage_demo_steps", label="demo-io-lease")
_flag, _fail = PROGRAM.flag, PROGRAM.fail


def _storage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cheng_build.cli.storage", *args]
    print(f"$ cheng-storage {' '.join(args)}", flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=300)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                  and not p.name.endswith(".lock"))


def expect_refused(argv: Sequence[str]) -> int:
    root = Path(_flag(argv, "root"))
    before = _files(root)
    res = _storage("put-text", "--text:unpaid", "--no-lease", f"--root:{root}")
    if res.returncode != 1 or not res.stderr.startswith("put-text: lease required"):
        return _fail("a write without a lease was not refused",
                     f"exit {res.returncode}, stderr {res.stderr.strip()[:200]!r}")
    if _files(root) != before:
        return _fail("the refused write left files behind")
    print("refused as required: put-text: lease required")
    return 0


def _leases(root: Path) -> list[dict[str, object]]:
    out = []
    for f in sorted((root / "leases").glob("*.json")):
        out.append(json.loads(f.read_text(encoding="utf-8")))
    return out


def serve_get_proof(argv: Sequence[str]) -> int:
    root, reader = Path(_flag(argv, "root")), Path(_flag(argv, "reader"))
    provider, out = _flag(argv, "provider"), _flag(argv, "out")
    leases = sorted(_leases(root), key=lambda r: int(str(r["expires_ts"])), reverse=True)
    if not leases:
        return _fail(f"no lease record in {root}")
    cid = str(leases[0]["cid"])
    serve = start_server(
        [sys.executable, "-m", "cheng_build.cli.storage", "serve", f"--root:{root}",
         "--listen:/ip4/127.0.0.1/tcp/0"])
    try:
        addr = await_address(serve)
        if addr is None:
            return _fail("cheng-storage serve did not print a libp2p address")
        print(f"serve: {addr}")
        res = _storage("get", f"--cid:cid://{cid}", f"--out:{out}", "--mode:p2p", f"--peer:{addr}",
                       f"--root:{reader}")
        if res.returncode != 0:
            return res.returncode
        res = _storage("proof", f"--cid:{cid}", f"--provider:{provider}", f"--peer:{addr}",
                       "--challenges:8", f"--root:{reader}")
        return res.returncode
    finally:
        stop(serve)


def gc_after_expiry(argv: Sequence[str]) -> int:
    root = Path(_flag(argv, "root"))
    leases = sorted(_leases(root), key=lambda r: int(str(r["expires_ts"])))
    if len(leases) < 2:
        return _fail(f"expected two lease records in {root}, found {len(leases)}")
    short, long_ = leases[0], leases[-1]
    wait = int(str(short["expires_ts"])) - time.time() + 1
    if wait > MAX_LEASE_WAIT_S:
        return _fail(f"the short lease ends in {wait:.0f} s, more than this demo waits")
    if wait > 0:
        print(f"waiting {wait:.1f} s for lease {short['lease_id']} to end", flush=True)
        time.sleep(wait)
    res = _storage("gc", f"--root:{root}")
    if res.returncode != 0:
        return res.returncode
    if f"expired: {short['lease_id']}" not in res.stdout:
        return _fail("gc did not report the expired lease")
    check = _storage("cat", f"--cid:{short['cid']}", "--raw", f"--root:{root}")
    if check.returncode == 0:
        return _fail("the expired lease's content is still there after gc")
    keep = _storage("cat", f"--cid:{long_['cid']}", f"--root:{root}")
    if keep.returncode != 0:
        return _fail("gc lost the content of an unexpired lease")
    print("gc ok: the expired lease's blocks are gone, the live lease's remain")
    return 0


def verify_ledgers(argv: Sequence[str]) -> int:
    for root in argv:
        res = _storage("verify-ledger", f"--root:{root}")
        if res.returncode != 0:
            return res.returncode
    return 0


STEPS = {"expect-refused": expect_refused, "serve-get-proof": serve_get_proof,
         "gc-after-expiry": gc_after_expiry, "verify-ledgers": verify_ledgers}


def main(argv: Sequence[str] | None = None) -> int:
    return PROGRAM.main(STEPS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
