"""cheng-pkg: packages, snapshots, locks, fetching. Each subcommand lives in its own module."""

from __future__ import annotations

from collections.abc import Sequence

from cheng_build.cli.app import Subcommand, dispatch

_CAS = "cheng_build.cli.pkg_cas"
_LOCK = "cheng_build.cli.pkg_lock"
_NET = "cheng_build.cli.pkg_net"
_REG = "cheng_build.cli.registry_cmds"

COMMANDS: dict[str, Subcommand] = {
    "demo": Subcommand("cheng_build.cli.pkg_demo", "chunk and hash a file; print chunks and digests"),
    "add": Subcommand(_CAS, "import a file or directory into the store; prints the root CID last"),
    "cat": Subcommand(_CAS, "write a file's bytes to stdout"),
    "get": Subcommand(_CAS, "materialise a CID as a file or directory tree"),
    "ls": Subcommand(_CAS, "list a directory CID"),
    "car": Subcommand(_CAS, "export or import a CAR file (car export|import)"),
    "gc": Subcommand(_CAS, "remove unpinned blocks from the store"),
    "unpin": Subcommand(_CAS, "remove a pin (gc may then remove the DAG)"),
    "store": Subcommand("cheng_build.cli.pkg_store", "the store's layout: migrate to packs, info"),
    "resolve": Subcommand(_LOCK, "resolve a manifest to a lock (single-version rule)"),
    "verify": Subcommand(_LOCK, "verify a lock: signatures, registry match, single version"),
    "meta": Subcommand(_LOCK, "write cheng.meta.toml for a package from its lock"),
    "log": Subcommand(_LOCK, "show a package's version graph"),
    "diff": Subcommand(_LOCK, "list what changed between two snapshots"),
    "checkout": Subcommand(_LOCK, "materialise a snapshot in the cache; prints its root"),
    "publish": Subcommand(_REG, "publish a package snapshot to the registry"),
    "fetch": Subcommand(_NET, "fetch every locked snapshot (cache, p2p, http)"),
    "serve": Subcommand(_NET, "serve the cache over libp2p bitswap and an HTTP gateway"),
    "search": Subcommand("cheng_build.cli.pkg_search", "search published packages"),
    "config": Subcommand("cheng_build.cli.pkg_config", "show the effective configuration"),
    "verify-artifact": Subcommand("cheng_build.cli.pkg_attest",
                                  "check a chengc artifact against its signed provenance"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("cheng-pkg", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
