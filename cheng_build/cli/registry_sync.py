"""``cheng-registry sync``: bring the local registry up to a mirror's, verified before appending."""

from __future__ import annotations

import argparse
import json
import sys

from cheng_build.cli.args import Parser
from cheng_build.core.errors import UsageError

_EXAMPLES = """examples:
  cheng-registry sync --from:/ip4/10.0.0.7/tcp/4001/p2p/12D3KooW...
  cheng-registry sync --from:http://mirror.example:8080,/ip4/10.0.0.8/tcp/4001/p2p/12D3KooW...
  PKG_OPERATOR_KEY=ed25519:... cheng-registry sync --registry:reg.jsonl --format:json

Sources are tried in order; one that serves a log that does not verify is named and the next is
used. A source whose newest checkpoint does not extend the one this client remembers (an RFC 6962
consistency proof) is refused as 'registry forked'. Nothing is appended unless every new line
and the operator's checkpoint verify.

Exit 0 synced (or already current), 1 a check failed or no source could be used, 2 bad usage."""


def register(name: str, parser: Parser) -> None:
    parser.epilog = _EXAMPLES
    parser.add_argument("--from", dest="sources", default=None,
                        help="comma-separated sources: /ip4/../tcp/../p2p/<id> or http://host:port "
                             "(default: PKG_REGISTRY_FROM, config [registry] sync_from)")
    parser.add_argument("--registry", help="registry log (default: PKG_REGISTRY, config)")
    parser.add_argument("--level", help="security level L0|L1|L2 (default: PKG_LEVEL, config, L1)")
    parser.add_argument("--config", help="cheng-pkg-config.toml to read")
    parser.add_argument("--format", default="text", choices=["text", "json"],
                        help="output format (default: text)")


def run(name: str, args: argparse.Namespace) -> int:
    from cheng_build.pkg.remote.sync_run import sync_configured
    from cheng_build.trust.config import load_config

    cfg = load_config({"level": args.level, "registry": args.registry,
                       "sync_from": args.sources}, config_path=args.config)
    if not cfg.sync_from:
        raise UsageError("no source to sync from",
                         how="pass --from:<multiaddr|http-url>[,...] or set PKG_REGISTRY_FROM")
    res = sync_configured(cfg)
    for src, why in res.refused:
        print(f"{name}: warning: {src}: {why}", file=sys.stderr)
    cp = res.checkpoint
    if args.format == "json":
        print(json.dumps({"source": res.source, "appended": res.appended, "lines": res.size,
                          "checkpoint": None if cp is None else
                          {"line": cp.line, "size": cp.size, "root": cp.root,
                           "expires": cp.expires},
                          "refused": [{"source": s, "why": w} for s, w in res.refused]},
                         sort_keys=True))
        return 0
    print(f"source: {res.source}")
    print(f"appended: {res.appended}")
    print(f"lines: {res.size}" + (f", checkpoint line {cp.line} ({cp.size} lines, root "
                                  f"{cp.root[:16]}...)" if cp else ""))
    return 0
