"""cheng-rwad-bridge: settlement batches to the RWAD chain and its results back."""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch

_CMDS = "cheng_build.cli.rwad_cmds"

COMMANDS: dict[str, Subcommand] = {
    "export": Subcommand(_CMDS, "settle an epoch and write it as a batch for RWAD (v1 or signed v2)"),
    "apply": Subcommand(_CMDS, "check RWAD's result against the batch and write the ack"),
    "verify-contract": Subcommand(_CMDS, "run an RWAD tool on a fixture batch and check the "
                                         "whole contract"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("cheng-rwad-bridge", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
