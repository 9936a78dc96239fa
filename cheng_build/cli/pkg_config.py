"""``cheng-pkg config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import argparse
import json

from cheng_build.cli.args import Parser


def register(name: str, parser: Parser) -> None:
    """Flags: the action, the format, and every overridable value (CLI is the top layer)."""
    parser.epilog = ("examples:\n  cheng-pkg config show\n"
                     "  PKG_LEVEL=L2 cheng-pkg config show --format:json\n"
                     "  cheng-pkg config show --config:ci/cheng-pkg-config.toml --mode:local\n\n"
                     "Precedence: command-line flag > PKG_* environment > config file > default; "
                     "each value is printed with where it came from.")
    parser.add_argument("action", choices=["show"], help="what to do (show)")
    parser.add_argument("--format", default="text", choices=["text", "json"],
                        help="output format (default: text)")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")
    parser.add_argument("--level", help="security level: L0 dev, L1 default, L2 production "
                        "(allow-listed peers only, audit log)")
    parser.add_argument("--mode", help="where snapshots come from: local (cache only), p2p, or auto")
    parser.add_argument("--peers", help="comma-separated peer multiaddrs "
                        "(/ip4/127.0.0.1/tcp/4001/p2p/<id>)")
    parser.add_argument("--allow", help="comma-separated peer ids/addresses that may serve blocks")
    parser.add_argument("--deny", help="comma-separated peer ids/addresses never contacted")
    parser.add_argument("--http-fallback", help="0|1: fetch over HTTP when no peer has a block")
    parser.add_argument("--require-signature", help="0|1: refuse unsigned lock entries")
    parser.add_argument("--require-registry-match", help="0|1: every locked entry must match "
                        "the registry")
    parser.add_argument("--registry", help="registry log path (registry.jsonl)")


def run(name: str, args: argparse.Namespace) -> int:
    """Print the effective values, one per line: ``name = value  (source)``."""
    from cheng_build.cli.input_checks import input_file
    from cheng_build.trust.config import load_config

    if args.config:
        input_file(args.config, "--config", optional=True)  # a FIFO would block the read
    cfg = load_config({k: getattr(args, k) for k in (
        "level", "mode", "peers", "allow", "deny", "http_fallback", "require_signature",
        "require_registry_match", "registry")}, config_path=args.config)
    rows = cfg.rows()
    if args.format == "json":
        print(json.dumps({n: {"value": v, "source": s} for n, v, s in rows}, indent=1))
        return 0
    width = max(len(n) for n, _, _ in rows)
    vwidth = max(len(v) for _, v, _ in rows)
    for n, v, s in rows:
        print(f"{n.ljust(width)} = {v.ljust(vwidth)}  ({s})")
    return 0
