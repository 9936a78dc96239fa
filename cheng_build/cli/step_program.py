"""The scaffolding shared by the task programs of the built-in CIS targets
(:mod:`cheng_build.cli.closedloop_steps`, :mod:`cheng_build.cli.storage_demo_steps`,
:mod:`cheng_build.cli.compute_demo_steps`, :mod:`cheng_build.cli.settle_demo_steps`,
:mod:`cheng_build.cli.sketch_steps`).

Each such program is ``python -m <module> <step> <args...>``, run by a DAG task in the target's
work directory. A step prints what it did and returns 0, or says on stderr what failed (``fail``)
and returns non-zero, so the CIS engine's friendly error (built from the stderr tail) names the
cause. Steps that need a peer start one of our servers on 127.0.0.1 (``start_server``), read its
libp2p address from its stdout (``await_address``) and stop its whole process group (``stop``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Step = Callable[[Sequence[str]], int]
CheckedStep = Callable[[], None]  # a step that raises StepFailed (or a ChengError) when it fails
SERVE_START_TIMEOUT = 60.0


class StepFailed(Exception):
    """A step did not do what it should have (its message says what)."""


@dataclass(frozen=True)
class StepProgram:
    """One task program: its module name (``prog``, for usage errors), the label its failures
    start with, and whether ``main`` prints each step's duration and exit status."""

    prog: str
    label: str
    timed: bool = False

    def flag(self, argv: Sequence[str], name: str) -> str:
        """The value of ``--name:value`` or ``--name=value``; a missing one ends the program."""
        for a in argv:
            for sep in (":", "="):
                if a.startswith(f"--{name}{sep}"):
                    return a.split(sep, 1)[1]
        raise SystemExit(f"{self.prog}: missing --{name}:<value>")

    def fail(self, what: str, *why: str) -> int:
        """Say on stderr what failed (one ``why:`` line per reason); the step's exit status 1."""
        print(f"{self.label}: {what}", file=sys.stderr)
        for w in why:
            print(f"  why: {w}", file=sys.stderr)
        return 1

    def main(self, steps: Mapping[str, Step], argv: Sequence[str] | None = None) -> int:
        """Run the step named by the first argument with the rest; exit 2 for no known step."""
        args = list(sys.argv[1:] if argv is None else argv)
        if not args or args[0] not in steps:
            print(f"{self.prog}: name a step: {', '.join(steps)}", file=sys.stderr)
            return 2
        t0 = time.monotonic()
        rc = steps[args[0]](args[1:])
        if self.timed:
            print(f"{args[0]}: {time.monotonic() - t0:.2f} s, exit {rc}")
        return rc

    def main_checked(self, steps: Mapping[str, CheckedStep], argv: Sequence[str] | None = None) -> int:
        """As :meth:`main` for steps that take no arguments and raise when they fail: exit 1 with
        ``<step>: <what>`` (and a ChengError's why/how lines) on stderr."""
        from cheng_build.core.errors import ChengError

        args = list(sys.argv[1:] if argv is None else argv)

        def run(_: Sequence[str]) -> int:
            try:
                steps[args[0]]()
            except StepFailed as exc:
                print(f"{args[0]}: {exc}", file=sys.stderr)
                return 1
            except ChengError as exc:
                for line in exc.lines(args[0]):
                    print(line, file=sys.stderr)
                return 1
            return 0

        return self.main(dict.fromkeys(steps, run), args)


def start_server(argv: Sequence[str]) -> subprocess.Popen[str]:
    """Start a server in its own process group (so ``stop`` ends its children too)."""
    return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def await_address(serve: subprocess.Popen[str],
                  timeout: float = SERVE_START_TIMEOUT) -> str | None:
    """The first libp2p address (a line with ``/p2p/``) the server prints, or None after
    ``timeout`` seconds (read in a thread, as a silent server would block a plain read)."""
    found: list[str] = []

    def read() -> None:
        assert serve.stdout is not None
        for line in serve.stdout:
            if "/p2p/" in line and not found:
                found.append(line.strip())
                break

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    return found[0] if found else None


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"serve: stopped (exit {proc.returncode})")


__all__ = ["SERVE_START_TIMEOUT", "CheckedStep", "Step", "StepFailed", "StepProgram", "await_address",
           "start_server", "stop"]
