"""cheng-storage: content-addressed storage with leases, proofs and the ledger; compute and settle.

One table of subcommands; only the chosen one's module is imported. Three groups live in their
own modules, each owned by one area: storage (``storage_io``, ``storage_lease``, ``storage_proof``,
``storage_gc``, ``storage_ledger``), compute (``storage_compute``) and settlement
(``storage_settle``). A group whose module is not part of this build answers
``cheng-storage: <sub>: not available in this build``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch
from cheng_build.core.errors import EXIT_USAGE

_IO = "cheng_build.cli.storage_io"
_LEASE = "cheng_build.cli.storage_lease"
_PROOF = "cheng_build.cli.storage_proof"
_GC = "cheng_build.cli.storage_gc"
_LEDGER = "cheng_build.cli.storage_ledger"
_COMPUTE = "cheng_build.cli.storage_compute"
_SETTLE = "cheng_build.cli.storage_settle"

COMMANDS: dict[str, Subcommand] = {
    "init": Subcommand(_IO, "create a storage root (blocks, ledger); print where it is"),
    "put": Subcommand(_IO, "store a file or directory; prints its CID (--lease:<token> to pay)"),
    "put-text": Subcommand(_IO, "store text from --text or --stdin; prints its CID"),
    "get": Subcommand(_IO, "write a CID's file or directory to --out"),
    "cat": Subcommand(_IO, "print a CID's text (--raw: no newline added)"),
    "import-legacy": Subcommand(_IO, "move the original tool's flat blocks/<cid> store into the CAS"),
    "serve": Subcommand(_IO, "serve this root over libp2p bitswap and an HTTP gateway"),
    "lease": Subcommand(_LEASE, "record a lease event (price, royalty, treasury split)"),
    "leasegen": Subcommand(_LEASE, "write a signed lease token (Ed25519, registered key)"),
    "proof": Subcommand(_PROOF, "challenge a provider to prove it holds a CID; record the result"),
    "store-repute": Subcommand(_PROOF, "a provider's storage-proof reputation"),
    "gc": Subcommand(_GC, "delete blocks no unexpired lease or pin reaches"),
    "verify-ledger": Subcommand(_LEDGER, "check the ledger's lines and hash chain"),
    "exec": Subcommand(_COMPUTE, "record an execution request (orderbook match)"),
    "meter": Subcommand(_COMPUTE, "record metered usage and its cost split"),
    "receipt": Subcommand(_COMPUTE, "record an execution receipt"),
    "audit": Subcommand(_COMPUTE, "record an audit of a task's result"),
    "sample": Subcommand(_COMPUTE, "select receipts to audit (seeded, risk-weighted)"),
    "fraud": Subcommand(_COMPUTE, "report fraud by an executor"),
    "ratelimit": Subcommand(_COMPUTE, "count requests/receipts against limits"),
    "repute": Subcommand(_COMPUTE, "an executor's reputation"),
    "executor": Subcommand(_COMPUTE, "run an executor node"),
    "settle": Subcommand(_SETTLE, "settle an epoch: totals and payouts from the ledger"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS and not _available(COMMANDS[args[0]].module):
        print(f"cheng-storage: {args[0]}: not available in this build", file=sys.stderr)
        print(f"  why: its module {COMMANDS[args[0]].module} is not installed", file=sys.stderr)
        return EXIT_USAGE
    return dispatch("cheng-storage", __doc__.splitlines()[0], COMMANDS, args)


if __name__ == "__main__":
    raise SystemExit(main())
