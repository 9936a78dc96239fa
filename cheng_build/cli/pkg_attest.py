"""``cheng-pkg verify-artifact``: check a chengc artifact against its signed provenance.

The checks live in :mod:`cheng_build.build.attest`; this module finds the files, loads and verifies
the registry (every consumer verifies it before trusting a line of it), prints and maps errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cheng_build.cli.args import Parser
from cheng_build.cli.input_checks import input_file
from cheng_build.core.errors import UsageError


def register(name: str, parser: Parser) -> None:
    """Add the flags of ``verify-artifact``."""
    parser.epilog = (
        "examples:\n"
        "  cheng-pkg verify-artifact artifacts/chengc/app\n"
        "  cheng-pkg verify-artifact app --attestation:app.intoto.jsonl --registry:registry.jsonl\n"
        "  cheng-pkg verify-artifact app --rebuild --compiler:/opt/cheng/bin/chengc\n\n"
        "Checks the DSSE signature, that the registry (verified first) gives the signing key to the\n"
        "builder the attestation names, and that the file is the attested subject. --rebuild also\n"
        "rebuilds from the recorded inputs (<artifact>.inputs.car) and compares the bytes.\n"
        "Exit 0 ok, 1 a check failed, 2 bad usage or missing input.")
    parser.add_argument("artifact", nargs="?", help="the artifact file chengc built")
    parser.add_argument("--attestation", help="the envelope (default: <artifact>.intoto.jsonl)")
    parser.add_argument("--registry", help="registry.jsonl (default PKG_REGISTRY, else the default path)")
    parser.add_argument("--level", help="security level L0, L1 (default) or L2")
    parser.add_argument("--config", help="cheng-pkg-config.toml")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild from the recorded inputs in a fresh root and compare")
    parser.add_argument("--inputs", help="the inputs CAR for --rebuild (default: <artifact>.inputs.car)")
    parser.add_argument("--compiler", help="the compiler for --rebuild (else CHENG_COMPILER, config, PATH)")
    parser.add_argument("--format", help="text (default) or json")


def _sibling(artifact: Path, flag: str | None, suffix: str, what: str, how_flag: str) -> Path:
    path = Path(flag) if flag else artifact.with_name(artifact.name + suffix)
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}",
                         why=f"chengc --sign writes it beside the artifact as <name>{suffix}",
                         how=f"pass {how_flag}:<path>")
    input_file(path, how_flag)
    return path


def run(name: str, args: argparse.Namespace) -> int:
    """Verify one artifact; prints ``ok`` and the facts, or raises."""
    from cheng_build.build import attest
    from cheng_build.build.provenance import ATTESTATION_SUFFIX, INPUTS_SUFFIX
    from cheng_build.trust.config import load_config

    if not args.artifact:
        raise UsageError("missing artifact",
                         how="usage: cheng-pkg verify-artifact <file> [--attestation:<file>]")
    fmt = args.format or "text"
    if fmt not in ("text", "json"):
        raise UsageError(f"unknown --format:{fmt}", how="use --format:text or --format:json")
    artifact = Path(args.artifact)
    input_file(artifact, "artifact")
    att = _sibling(artifact, args.attestation, ATTESTATION_SUFFIX, "attestation", "--attestation")
    if args.config:
        input_file(args.config, "--config", optional=True)
    config = load_config({"level": args.level}, config_path=args.config)
    prov = attest.open_envelope(att.read_bytes())

    warnings: list[str] = []
    reg_path = Path(args.registry or str(config.registry))
    if reg_path.is_file() or config.require_registry_match:
        from cheng_build.trust.trusted import load_trusted_registry

        input_file(reg_path, "--registry")
        trusted = load_trusted_registry(reg_path, config)  # verified before any line is used
        warnings += trusted.warnings
        attest.check_builder_key(prov, trusted.log)
    else:
        warnings.append(f"no registry at {reg_path}: the builder key was not checked (allowed at L0 only)")
    data = artifact.read_bytes()
    attest.check_subject(prov, data, str(artifact))
    rebuilt = False
    if args.rebuild:
        from cheng_build.build.compiler import find_compiler, self_path

        car = _sibling(artifact, args.inputs, INPUTS_SUFFIX, "inputs CAR", "--inputs")
        comp = find_compiler(args.compiler, dict(os.environ), cwd=Path.cwd(), self_path=self_path())
        attest.rebuild(prov, car, comp.path, data)
        rebuilt = True
    for w in warnings:
        print(f"verify-artifact: warning: {w}", file=sys.stderr)
    if fmt == "json":
        print(json.dumps({"ok": True, "artifact": str(artifact), "sha256": prov.sha256, "cid": prov.cid,
                          "builder": prov.builder, "pub_key": prov.pub_key,
                          "input_root": prov.input_root, "compiler_sha256": prov.compiler_sha256,
                          "dependencies": [dict(d) for d in prov.dependencies], "rebuilt": rebuilt,
                          "warnings": warnings}, sort_keys=True))
    else:
        print(f"ok: {artifact} is {prov.cid}, built by {prov.builder} from inputs {prov.input_root}"
              + (" (rebuilt: identical)" if rebuilt else ""))
    return 0


__all__ = ["register", "run"]
