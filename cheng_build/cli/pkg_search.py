"""``cheng-pkg search <term> [--show-copies]``: packages, high-similarity copies folded under
their original, originals first (the seed's A4 "同质化折叠")."""

from __future__ import annotations

import argparse
import json
import sys

from cheng_build.cli.args import Parser


def register(name: str, parser: Parser) -> None:
    """Flags of ``search``."""
    parser.epilog = ("examples:\n  cheng-pkg search json\n  cheng-pkg search --show-copies\n"
                     "  cheng-pkg search http --format:json --registry:registry.jsonl\n\n"
                     "Exit 0 ok (also when nothing matches), 1 the registry failed to verify, "
                     "2 bad usage.")
    parser.add_argument("term", nargs="?", default="", help="substring of the package id (empty: all)")
    parser.add_argument("--show-copies", action="store_true",
                        help="list high-similarity copies under their original")
    parser.add_argument("--format", default="text", choices=["text", "json"],
                        help="output format (default: text)")
    parser.add_argument("--registry", help="registry log (default: PKG_REGISTRY, config, "
                        "build/cheng_registry/registry.jsonl)")
    parser.add_argument("--level", help="security level the log is verified at: L0, L1 "
                        "(default) or L2")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")


def run(name: str, args: argparse.Namespace) -> int:
    """Verify the log, then print the matching packages."""
    from cheng_build.cli.input_checks import input_file
    from cheng_build.pkg.search import search
    from cheng_build.trust.config import load_config
    from cheng_build.trust.trusted import load_trusted_registry

    if args.config:
        input_file(args.config, "--config", optional=True)  # a FIFO would block the read
    cfg = load_config({"level": args.level, "registry": args.registry}, config_path=args.config)
    input_file(cfg.registry, "--registry", optional=True)  # a directory or FIFO: say so
    trusted = load_trusted_registry(cfg.registry, cfg)  # the one gate every consumer passes
    for w in trusted.warnings:
        print(f"search: warning: {w}", file=sys.stderr)
    log = trusted.log
    results = search(log, args.term)
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in results], indent=1))
        return 0
    if not results:
        print(f"no package matches {args.term!r}")
        return 0
    for r in results:
        print(r.line())
        if args.show_copies:
            for c in r.copies:
                print("    " + c.line())
        elif r.copies:
            print(f"    ({len(r.copies)} high-similarity cop{'y' if len(r.copies) == 1 else 'ies'} "
                  "hidden; --show-copies lists them)")
    return 0
