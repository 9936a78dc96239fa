"""cis: run build and test pipelines as DAGs, offline first, with failure as debt."""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch

_CMDS = "cheng_build.cli.cis_cmds"

COMMANDS: dict[str, Subcommand] = {
    "run": Subcommand(_CMDS, "run a DAG file, a sketch, or a named target (closedloop)"),
    "status": Subcommand(_CMDS, "show runs and their tasks"),
    "attach": Subcommand(_CMDS, "follow a detached run's live view"),
    "amend": Subcommand(_CMDS, "change a task of a live run (env, cmd, timeout)"),
    "confirm": Subcommand(_CMDS, "confirm a Confirmed-level task"),
    "resolve": Subcommand(_CMDS, "settle an Arbitrated task and continue the DAG"),
    "retry": Subcommand(_CMDS, "restart a run from a task"),
    "resume": Subcommand(_CMDS, "resume an interrupted run from its frontier"),
    "debt": Subcommand(_CMDS, "list the debt of all runs: what, why, how"),
    "doctor": Subcommand(_CMDS, "find what this machine lacks and how to fix it"),
    "verify-sandbox": Subcommand(_CMDS, "prove each sandbox property by trying to break it"),
    "web": Subcommand("cheng_build.cli.cis_web", "serve the web view on 127.0.0.1:6767"),
    "coffee": Subcommand("cheng_build.cli.cis_coffee", "coffee mode: queue events offline, sync when back"),
    "node": Subcommand("cheng_build.cli.cis_node", "claim and run tasks from a Matrix room (multi-node)"),
    "nodes": Subcommand("cheng_build.cli.cis_node", "list cis nodes on the LAN (mDNS)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("cis", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
