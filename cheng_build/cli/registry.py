"""cheng-registry: keys, the signed append-only registry log, checkpoints and proofs."""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch

_REG = "cheng_build.cli.registry_cmds"
_GOV = "cheng_build.cli.registry_gov"

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
    "tag": Subcommand(_GOV, "name a snapshot forever (owner-signed; never re-tagged)"),
    "promote": Subcommand(_GOV, "move a channel to an existing snapshot (owner or maintainer)"),
    "maintainer": Subcommand(_GOV, "grant or remove a channel maintainer (operator)"),
    "quarantine": Subcommand(_GOV, "quarantine a snapshot: resolve and fetch refuse it (operator)"),
    "release": Subcommand(_GOV, "lift a quarantine, with a reason (operator)"),
    "propose-quarantine": Subcommand(_GOV, "turn an audit's fraud record into a quarantine "
                                           "proposal"),
    "appeal": Subcommand(_GOV, "appeal a snapshot's originality score with a difference report"),
    "decide": Subcommand(_GOV, "decide an open appeal: restore or confirm the score (operator)"),
    "repair": Subcommand("cheng_build.cli.registry_repair",
                         "cut off a torn last line a crashed publish left"),
    "sync": Subcommand("cheng_build.cli.registry_sync",
                       "fetch new lines from mirrors, verify them, append (fork-checked)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("cheng-registry", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
