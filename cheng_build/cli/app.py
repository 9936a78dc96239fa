"""One place that turns exceptions into messages and exit codes, and dispatches subcommands.

A tool is a table of subcommands -> (module, one-line summary). Only the chosen subcommand's
module is imported, so ``cheng-pkg verify`` never pays for libp2p and ``--help`` imports nothing.

A subcommand module defines::

    def register(name: str, parser: Parser) -> None   # add the subcommand's arguments
    def run(name: str, args: argparse.Namespace) -> int  # do it; return the exit code

and raises :class:`~cheng_build.core.errors.ChengError` for anything a user can fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from cheng_build.core.errors import EXIT_CHECK_FAILED, EXIT_USAGE, ChengError, UsageError
from cheng_build.core.record import dataclass


@dataclass(frozen=True, slots=True)
class Subcommand:
    """Where a subcommand lives and how ``--help`` describes it."""

    module: str
    summary: str


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("CHENG_DEBUG") == "1"


def _print_traceback() -> None:
    # traceback pulls in tokenize/linecache/textwrap: imported only when --debug asks for it.
    import traceback

    traceback.print_exc()


def guarded(command: str, argv: Sequence[str], body: Callable[[], int]) -> int:
    """Run ``body`` and map every failure to ``<command>: <what>`` lines and an exit code."""
    # A path from argv with undecodable bytes arrives surrogate-escaped; printing it on stdout
    # (strict by default) must not crash, so write those bytes as they came, as `ls` does.
    # stderr is always backslashreplace in CPython, which already copes.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="surrogateescape")
        except (ValueError, OSError):
            pass
    try:
        return body()
    except ChengError as exc:
        if _debug_requested(argv):
            _print_traceback()
        for line in exc.lines(command):
            print(line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `cheng-pkg ls ... | head` closed the pipe: not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush
        except OSError:
            pass
        return 0
    except OSError as exc:
        if _debug_requested(argv):
            _print_traceback()
        name = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"{command}: {exc.strerror or exc}{name}", file=sys.stderr)
        print("  how: check the path and its permissions; run with --debug for details",
              file=sys.stderr)
        return EXIT_CHECK_FAILED


def dispatch(
    tool: str,
    description: str,
    table: Mapping[str, Subcommand],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` for ``tool``, import the chosen subcommand's module, and run it."""
    args_in = list(sys.argv[1:] if argv is None else argv)

    def usage() -> str:
        width = max(len(n) for n in table)
        rows = "\n".join(f"  {n.ljust(width)}  {s.summary}" for n, s in table.items())
        return (f"usage: {tool} <command> [flags]\n\n{description}\n\ncommands:\n{rows}\n\n"
                f"Flags are written --key:value, --key=value or --key value.\n"
                f"Run '{tool} <command> --help' for a command's flags; --debug shows tracebacks.")

    def body() -> int:
        positional = [a for a in args_in if not a.startswith("-")]
        if not args_in:
            # Nothing asked: show what there is, but as bad usage (exit 2, on stderr), so a
            # script that forgot its arguments does not carry on as if it had succeeded.
            print(usage(), file=sys.stderr)
            return EXIT_USAGE
        if args_in[0] in ("-h", "--help", "help") or not positional:
            if args_in[0] in ("-h", "--help", "help"):
                print(usage())
                return 0
            if args_in[0].startswith("-"):
                raise UsageError(f"unknown flag '{args_in[0]}' before the command",
                                 how=f"flags go after the command: {tool} <command> [flags]; "
                                     f"run '{tool} --help' to list the commands")
            raise UsageError("no command given", how=f"run '{tool} --help' to list the commands")
        name = args_in[0]
        if name not in table:
            close = [n for n in table if n.startswith(name[:2])]
            hint = f"did you mean: {', '.join(close)}? " if close else ""
            raise UsageError(f"unknown command '{name}'",
                             how=f"{hint}run '{tool} --help' to list the commands")
        sub = table[name]

        def run_sub() -> int:
            from cheng_build.cli.args import Parser  # argparse: not on chengc's path through guarded()

            # __import__ + sys.modules is importlib.import_module for an absolute name, without
            # importing the importlib package (and warnings) on every command's start.
            __import__(sub.module)
            module = sys.modules[sub.module]
            parser = Parser(prog=f"{tool} {name}", description=sub.summary)
            parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
            module.register(name, parser)
            args = parser.parse_cheng(args_in[1:])
            return int(module.run(name, args))

        # Inside a subcommand, the first line of a failure names the subcommand, as the seed's
        # A1.11 shows (`verify: single-version conflict`), so scripts can match it.
        return guarded(name, args_in, run_sub)

    return guarded(tool, args_in, body)


__all__ = ["EXIT_CHECK_FAILED", "EXIT_USAGE", "Subcommand", "dispatch", "guarded"]
