"""``cheng-registry repair``: remove a torn (unterminated) last line left by a crashed append."""

from __future__ import annotations

import argparse

from cheng_build.cli.args import Parser, add_format_flag
from cheng_build.core.paths import DEFAULT_REGISTRY


def register(name: str, parser: Parser) -> None:
    """Add the flags of ``repair``."""
    parser.add_argument("--registry", help=f"registry log (default: PKG_REGISTRY, config, "
                                           f"{DEFAULT_REGISTRY})")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")
    add_format_flag(parser)
    parser.epilog = ("examples:\n  cheng-registry repair --registry:build/cheng_registry/registry.jsonl"
                     "\n\nRemoves only bytes after the last newline (a line a crashed publish left "
                     "half-written)\nand prints what it removed; complete lines are never changed."
                     "\n\nExit 0 repaired or nothing to repair, 2 no such registry.")


def run(name: str, args: argparse.Namespace) -> int:
    """Repair the registry's tail and say what was removed."""
    from cheng_build.cli.input_checks import input_file
    from cheng_build.trust.config import load_config
    from cheng_build.trust.repair import repair_torn_tail

    if args.config:
        input_file(args.config, "--config", optional=True)
    cfg = load_config({"registry": args.registry}, config_path=args.config)
    input_file(cfg.registry, "--registry", optional=True)
    r = repair_torn_tail(cfg.registry)
    if args.format == "json":
        import json

        print(json.dumps({"registry": str(r.path), "removed_bytes": r.removed,
                          "torn_line": r.line if r.removed else None,
                          "complete_lines": r.line - 1, "kept_bytes": r.kept}))
        return 0
    if not r.removed:
        print(f"repair: nothing to repair: {r.path} ends with a complete line")
        return 0
    print(f"repair: removed {r.removed} bytes of unterminated line {r.line}: {r.preview}")
    print(f"repair: {r.path} now has {r.line - 1} complete lines ({r.kept} bytes); run "
          "'cheng-registry verify' next")
    return 0
