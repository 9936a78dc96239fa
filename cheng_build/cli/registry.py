"""cheng-registry: keys, the signed append-only registry log, checkpoints and proofs."""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch

_REG = "cheng_build.cli.registry_cmds"

COMMANDS: dict[str, Subcommand] = {
    "keygen": Subcommand(_REG, "write a new Ed25519 key pair"),
    "register-key": Subcommand(_REG, "claim a namespace before its first publish"),
    "publish": Subcommand(_REG, "publish a package snapshot (signed, hash-chained)"),
    "resolve": Subcommand(_REG, "print a channel's head"),
    "verify": Subcommand(_REG, "verify the whole log: chain, signatures, ownership, epochs"),
    "checkpoint": Subcommand(_REG, "append a signed checkpoint of the log's head"),
    "prove": Subcommand(_REG, "print an inclusion proof for a line"),
    "verify-proof": Subcommand(_REG, "check an inclusion proof offline"),
    "rotate-key": Subcommand(_REG, "rotate a namespace's key (signed by the old key)"),
    "revoke-key": Subcommand(_REG, "revoke a key from this line on"),
    "repair": Subcommand("cheng_build.cli.registry_repair",
                         "cut off a torn last line a crashed publish left"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("cheng-registry", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
