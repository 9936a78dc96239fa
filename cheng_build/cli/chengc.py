"""``chengc``: the Cheng compiler, with dependencies fetched and builds cached and reproducible.

Not a subcommand tool: ``chengc <file.cheng> [flags]`` masquerades as the compiler. The compiler's
own flags (``--name --out --jobs --target --release --emit --frontend --mm --run``) and every flag
this wrapper does not know go to the compiler unchanged, in their order; the package and cache
flags below are ours. Everything happens in :mod:`cheng_build.build.driver`; this module parses,
prints and maps errors (through :func:`cheng_build.cli.app.guarded`).

A repeated build whose inputs did not change is answered by :mod:`cheng_build.build.noop` before
this module imports anything else (argparse, pathlib, the driver): start-up is most of a no-op
build's cost. Hence the imports inside functions below.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself costs a no-op build ~2 ms; mypy reads these as usual
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from cheng_build.cli.args import Parser

# Our flags: name -> takes a value.
_OURS: dict[str, bool] = {
    "--manifest": True, "--lock": True, "--registry": True, "--package": True, "--channel": True,
    "--lock-format": True, "--meta-out": True, "--pkg-cache": True, "--skip-pkg": False,
    "--verify": False, "--pkg-roots": True, "--compiler": True, "--explain": False,
    "--reproducible-check": False, "--no-cache": False, "--env-allow": True, "--debug": False,
    "--sign": True, "--ledger": True, "--allow-unsigned": False, "--allow-quarantined": False,
}
# The compiler's flags we also read; --name/--out are replaced by the staged ones.
_COMPILER: dict[str, bool] = {
    "--name": True, "--out": True, "--jobs": True, "--target": True, "--release": False,
    "--emit": True, "--frontend": True, "--mm": True, "--run": False,
}
_OUR_EMITS = ("check", "bundle")


def _parser() -> Parser:
    from cheng_build.cli.args import Parser

    p = Parser(prog="chengc", description=__doc__.split("\n\n")[0],
               epilog="examples:\n"
               "  chengc app.cheng --name:app                     # build artifacts/chengc/app\n"
               "  chengc app.cheng --manifest:cheng-package.toml  # resolve, verify, fetch, build\n"
               "  chengc app.cheng --lock:cheng.lock.toml --explain --out:bin/app\n"
               "  chengc app.cheng --emit:check --pkg-roots:vendor # check imports only\n"
               "  chengc app.cheng --reproducible-check --compiler:/opt/cheng/bin/chengc\n\n"
               "Flags are written --key:value, --key=value or --key value. "
               "Unknown flags pass through to the compiler.\n"
               "Exit 0 ok, 1 a check or the compiler failed, 2 bad usage or missing input.")
    p.add_argument("source", nargs="?", help="the .cheng file to compile")
    c = p.add_argument_group("compiler flags (passed on)")
    c.add_argument("--name", help="artifact name: bare -> artifacts/chengc/<name>; with '/' -> as given")
    c.add_argument("--out", help="artifact path, as given (wins over --name)")
    c.add_argument("--jobs", help="compiler parallelism (not part of the cache key)")
    c.add_argument("--target", help="target triple (part of the cache key)")
    c.add_argument("--release", action="store_true", help="optimised build")
    c.add_argument("--emit", help="check: resolve imports only; bundle: a CAR of the inputs;\n"
                   "anything else goes to the compiler")
    c.add_argument("--frontend", help="compiler frontend")
    c.add_argument("--mm", help="memory management mode")
    c.add_argument("--run", action="store_true", help="run after building (bypasses the cache)")
    g = p.add_argument_group("package flow")
    g.add_argument("--manifest", help="cheng-package.toml to resolve")
    g.add_argument("--lock", help="lock file (default chengcache/<name>.lock.<fmt>)")
    g.add_argument("--registry", help="registry.jsonl (default build/cheng_registry/registry.jsonl)")
    g.add_argument("--package", help="package id for cheng.meta.toml (pkg://cheng/<name>)")
    g.add_argument("--channel", default="stable", choices=["edge", "stable", "lts"],
                   help="channel recorded for --package in cheng.meta.toml (default: stable)")
    g.add_argument("--lock-format", default="toml", choices=["toml", "yaml", "json"],
                   help="format of the lock written by --manifest (default: toml)")
    g.add_argument("--meta-out", help="where cheng.meta.toml goes (default beside the artifact)")
    g.add_argument("--pkg-cache", help="package cache (default PKG_CACHE or ./chengcache)")
    g.add_argument("--skip-pkg", action="store_true", help="skip resolve/verify/fetch; use PKG_ROOTS as set")
    g.add_argument("--verify", action="store_true", help="verify the lock again even if verified before")
    g.add_argument("--allow-unsigned", action="store_true",
                   help="development mode: accept unsigned (local:) snapshots; L0 only, warns")
    g.add_argument("--allow-quarantined", action="store_true",
                   help="use snapshots the registry operator quarantined (refused at L2)")
    g.add_argument("--pkg-roots", help="package roots searched after PKG_ROOT (replaces PKG_ROOTS)")
    b = p.add_argument_group("build")
    b.add_argument("--compiler", help="the real Cheng compiler (else CHENG_COMPILER, config, PATH)")
    b.add_argument("--explain", action="store_true", help="say why the build was or was not a cache hit")
    b.add_argument("--reproducible-check", action="store_true",
                   help="build twice in two fresh roots; fail if the outputs differ")
    b.add_argument("--no-cache", action="store_true", help="neither read nor write the action cache")
    b.add_argument("--env-allow", help="extra environment variables handed to the compiler (comma list)")
    b.add_argument("--sign", metavar="KEY",
                   help="sign a provenance attestation (in-toto/SLSA in DSSE) with this key file or\n"
                   "env:VAR, written beside cheng.meta.toml as <name>.intoto.jsonl with the inputs\n"
                   "as <name>.inputs.car (also CHENGC_SIGN_KEY, config [toolchain] sign_key);\n"
                   "check one with: cheng-pkg verify-artifact <file>")
    b.add_argument("--ledger", metavar="FILE",
                   help="meter the compile (CPU, peak memory, bytes written) and record a compute\n"
                   "usage event in this ledger.jsonl; settlement shares its royalty among the\n"
                   "authors of the locked packages (prices: config [metering])")
    b.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


# What argparse gives a flag that is not passed; every other dest defaults to None.
_DEFAULTS: dict[str, object] = {"channel": "stable", "lock_format": "toml"}
_CHOICES: dict[str, tuple[str, ...]] = {"--channel": ("edge", "stable", "lts"),
                                        "--lock-format": ("toml", "yaml", "json")}


def _fast_args(argv: Sequence[str]) -> Any:
    """What :func:`_parser` would make of ``argv``, for the usual command line (one source file,
    only flags of ours or the compiler's known ones, each well formed), without argparse; None
    for anything else (``--help``, ``--``, unknown or malformed flags, a second positional, a
    value that starts with ``-``), which argparse then parses and reports as it always has.

    argparse with its parser costs a cache miss ~5 ms of start-up (the module, gettext and
    locale, forty ``add_argument`` calls); tests/test_chengc_fastargs.py checks the two agree.
    """
    from types import SimpleNamespace

    known = _OURS | _COMPILER
    values: dict[str, object] = {n[2:].replace("-", "_"): (False if not takes else None)
                                 for n, takes in known.items()}
    values.update(_DEFAULTS)
    source: str | None = None
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("-"):
            if source is not None:
                return None  # a second positional: argparse lists it as unknown
            source = tok
            continue
        name, sep, value = tok.partition("=")
        if not sep:
            name, sep, value = tok.partition(":")
            if sep and not _plain_flag(name):
                return None
        takes = known.get(name)
        if takes is None or name == "--":
            return None
        if not takes:
            if sep:
                return None  # --release=x: argparse refuses it
            values[name[2:].replace("-", "_")] = True
            continue
        if not sep:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if name in _CHOICES and value not in _CHOICES[name]:
            return None
        values[name[2:].replace("-", "_")] = value
    values["source"] = source
    return SimpleNamespace(**values)


def _plain_flag(name: str) -> bool:
    """``--name`` made of the characters args.normalize_argv rewrites ``--name:value`` for."""
    body = name[2:]
    return (name.startswith("--") and body != "" and (body[0].isascii() and body[0].isalnum())
            and all(c.isascii() and (c.isalnum() or c in "_-") for c in body))


def _flag_name(tok: str) -> str:
    return tok.split("=", 1)[0].split(":", 1)[0] if tok.startswith("--") else ""


def compiler_tokens(argv: Sequence[str]) -> list[str]:
    """The tokens for the compiler, in order: its known flags as ``--key:value``, unknown ones as
    given; our flags, ``--name``/``--out``, the source and ``--emit:check|bundle`` removed."""
    out: list[str] = []
    i = 0
    positional_seen = False
    while i < len(argv):
        tok = argv[i]
        name = _flag_name(tok)
        if tok == "--":
            out.extend(argv[i + 1:])
            break
        inline = name != "" and len(tok) > len(name)
        if name in _OURS or name in _COMPILER:
            takes = (_OURS | _COMPILER)[name]
            value = None
            if takes:
                if inline:
                    value = tok[len(name) + 1:]
                elif i + 1 < len(argv):
                    value = argv[i + 1]
                    i += 1
            i += 1
            if name in _OURS or name in ("--name", "--out"):
                continue
            if name == "--emit" and value in _OUR_EMITS:
                continue
            out.append(f"{name}:{value}" if takes else name)
            continue
        if not name and not positional_seen and not tok.startswith("-"):
            positional_seen = True  # the source file
        else:
            out.append(tok)
        i += 1
    return out


def _refuse_misspelt_flags(argv: Sequence[str], unknown: Sequence[str]) -> None:
    """A flag two typos from one of ours is our flag misspelt, not one for the compiler.

    Passed on, ``--manfest:x`` would reach the compiler, which then blames an import it cannot
    find; the compiler's own known flags are never refused. A real compiler flag that happens to
    look like one of ours still gets through after ``--``.
    """
    if not unknown:
        return
    from cheng_build.cli.args import normalize_argv
    from cheng_build.core.errors import UsageError
    from cheng_build.core.suggest import closest

    cut = list(argv).index("--") if "--" in argv else len(argv)
    before = set(normalize_argv(argv[:cut]))
    for tok in unknown:
        if tok not in before:
            continue
        name = _flag_name(tok)
        if not name or name in _COMPILER:
            continue
        near = closest(name, _OURS)
        if near is not None:
            raise UsageError(f"unknown flag {name} (did you mean {near}?)",
                             how=f"write {near}; a flag meant for the compiler itself goes after "
                                 "'--' (chengc app.cheng -- --flag)")


def _run(argv: list[str]) -> int:
    from pathlib import Path

    from cheng_build.build.driver import build
    from cheng_build.build.request import BuildRequest, Emit, PackageOptions, Status
    from cheng_build.core.errors import UsageError

    args: Any = _fast_args(argv)
    unknown: list[str] = []
    if args is None:
        args, unknown = _parser().parse_known_cheng(argv)
        _refuse_misspelt_flags(argv, unknown)
    if args.source is None:
        raise UsageError("no source file given", how="usage: chengc <file.cheng> [flags]; chengc --help")
    _check_values(args)
    stray = [u for u in unknown if not u.startswith("-")]
    if stray:
        raise UsageError(f"more than one source file: {args.source} {' '.join(stray)}",
                         how="chengc compiles one entry file; its imports are found by the resolver")
    emit = Emit.COMPILE
    if args.emit in _OUR_EMITS:
        emit = Emit(args.emit)
    env = dict(os.environ)
    cache = Path(args.pkg_cache or env.get("PKG_CACHE") or "chengcache")  # the driver checks it

    def p(v: str | None) -> Path | None:
        return Path(v) if v else None

    req = BuildRequest(
        source=Path(args.source), compiler_flags=tuple(compiler_tokens(argv)), name=args.name,
        out=args.out if emit is not Emit.BUNDLE else None, target=args.target, emit=emit,
        run=args.run, compiler=args.compiler, reproducible_check=args.reproducible_check,
        no_cache=args.no_cache,
        env_allow=tuple(n.strip() for n in (args.env_allow or "").split(",") if n.strip()),
        pkg_roots=args.pkg_roots, meta_out=p(args.meta_out),
        bundle_out=p(args.out) if emit is Emit.BUNDLE else None,
        packages=PackageOptions(manifest=p(args.manifest), lock=p(args.lock), registry=p(args.registry),
                                package=args.package, channel=args.channel, lock_format=args.lock_format,
                                pkg_cache=p(args.pkg_cache), skip_pkg=args.skip_pkg, verify=args.verify,
                                allow_unsigned=args.allow_unsigned,
                                allow_quarantined=args.allow_quarantined),
        cache_dir=cache, env=env, cwd=Path.cwd(), sign=_sign_key(args.sign, env),
        ledger=p(args.ledger),
    )
    from cheng_build.build.errors import CompilerFailedError

    try:
        res = build(req)
    except CompilerFailedError as exc:
        _replay(exc.stdout, exc.stderr)
        raise
    _replay(res.stdout, res.stderr)
    notes = [f"chengc: verify: warning: {w}" for w in res.warnings]
    if args.explain:
        if req.packages.active:
            ran = ", ".join(res.package_steps) or "none"
            notes.append(f"chengc: package flow: ran {ran} (the rest was remembered)")
        notes += [f"chengc: {line}" for line in res.explain]
        if res.attestation is not None:
            notes.append(f"chengc: signed provenance: {res.attestation}")
    for line in notes:
        print(line, file=sys.stderr)
    if res.status is Status.HIT and res.watch and not args.verify:
        from cheng_build.build.noop import remember

        enc = getattr(sys.stderr, "encoding", None) or "utf-8"
        err = res.stderr + "".join(n + "\n" for n in notes).encode(enc, "backslashreplace")
        remember(argv, env, os.getcwd(), res.watch, res.valid_until, res.stdout, err)
    if res.status is Status.CHECKED:
        g = res.graph
        if args.explain:
            for f in g.files:
                print(f"{f.staged}\t{f.source}")
        print(f"ok: {len(g.files)} inputs from {len(g.roots)} package roots, "
              f"{len(g.toolchain_imports)} toolchain imports; input root {res.input_root}")
    elif res.status is Status.BUNDLED:
        print(f"bundle {res.output} root {res.input_root}")
    return 0


_VALUED = ("name", "out", "target", "emit", "manifest", "lock", "registry", "package", "meta_out",
           "pkg_cache", "compiler", "jobs", "frontend", "mm", "sign", "ledger")


def _check_values(args: Any) -> None:
    from pathlib import Path

    from cheng_build.core.errors import UsageError

    """Refuse ``--out:`` with nothing after it, and package inputs that are FIFOs or directories.

    (``--skip-pkg`` with ``--lock`` is allowed on purpose: a build script that always names its
    lock can be run offline with ``--skip-pkg`` added; tests/test_chengc_packages.py.)
    """
    for attr in _VALUED:
        if getattr(args, attr, None) == "":
            flag = "--" + attr.replace("_", "-")
            raise UsageError(f"{flag}: empty value", how=f"pass {flag}:<value> or leave the flag out")
    from cheng_build.cli.input_checks import input_file

    # Missing files are reported by the package flow (a lock may be about to be written);
    # a directory or FIFO is refused here, before a read blocks.
    for attr in ("lock", "registry", "manifest"):
        value = getattr(args, attr)
        if value and not (attr == "manifest" and Path(value).is_dir()):
            input_file(value, "--" + attr, optional=True)


def _sign_key(flag: str | None, env: dict[str, str]) -> str | None:
    """The signing key: ``--sign``, else ``CHENGC_SIGN_KEY``, else config ``[toolchain] sign_key``."""
    if flag:
        return flag
    if env.get("CHENGC_SIGN_KEY"):
        return env["CHENGC_SIGN_KEY"]
    from pathlib import Path

    from cheng_build.build.compiler import config_toolchain_path

    path, _cfg = config_toolchain_path(env, Path.cwd(), "sign_key")
    return os.fspath(path) if path is not None else None


def _replay(out: bytes, err: bytes) -> None:
    # The compiler's own output (replayed from the cache on a hit), bytes as it wrote them.
    # A stream without a byte buffer (an embedding that swapped sys.stdout) gets decoded text.
    for data, stream in ((out, sys.stdout), (err, sys.stderr)):
        if not data:
            continue
        stream.flush()
        buf = getattr(stream, "buffer", None)
        if buf is not None:
            buf.write(data)
            buf.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()


def _noop(argv: list[str]) -> bool:
    """Answer a no-op build from its record (:mod:`cheng_build.build.noop`); False to build."""
    if any(a == "--verify" or a.startswith(("--verify:", "--verify=")) for a in argv):
        return False  # asked to verify again: never answered from memory
    from cheng_build.build.noop import replay

    try:
        cwd = os.getcwd()
    except OSError:
        return False
    got = replay(argv, os.environ, cwd)
    if got is None:
        return False
    try:
        _replay(*got)
    except BrokenPipeError:  # `chengc ... | head` closed the pipe: as guarded() treats it
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush
        except OSError:
            pass
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if _noop(args_in):
        return 0
    import gc

    from cheng_build.cli.app import guarded

    # One build, then exit: the cyclic collector's passes over the start-up's imports (~2% of a
    # cache miss's instructions) free nothing worth having; restored for an embedding caller.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return guarded("chengc", args_in, lambda: _run(args_in))
    finally:
        if was_enabled:
            gc.enable()


def __getattr__(name: str) -> Any:
    if name == "normalize_argv":  # re-exported, but not imported on the no-op path
        from cheng_build.cli.args import normalize_argv

        return normalize_argv
    raise AttributeError(name)


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["compiler_tokens", "main"]
