"""The terminal view of a run, like cargo's: one line per running task, overall progress, ETA.

Two renderers over the same store reads:

* :class:`LiveView` (a terminal): a rich ``Live`` region redrawn at most 10 times a second with
  a progress bar (done / total, debt, failures), an ETA from the recorded durations of earlier
  runs of the same tasks, one line per running or waiting task, and the finished tasks' lines
  scrolling above it.
* :class:`EventLines` (a pipe or log file): one plain line per event, no escape codes.

Both only *write to the stream the CLI hands them*; rich is imported only when a terminal view
is drawn, so ``cis run`` in a script never pays for it.
"""

from __future__ import annotations

import time
from typing import IO, Any

from cheng_build.cis.dag.model import TaskState
from cheng_build.cis.run.control import RunView, eta_seconds, get_run
from cheng_build.cis.run.store import Store, TaskRecord

_DONE = (TaskState.COMPLETED, TaskState.SKIPPED, TaskState.FAILED, TaskState.DEBT)
_STYLE = {TaskState.COMPLETED: "green", TaskState.FAILED: "red", TaskState.DEBT: "yellow",
          TaskState.SKIPPED: "dim", TaskState.ARBITRATED: "magenta", TaskState.RUNNING: "cyan",
          TaskState.PENDING: "white"}


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def task_line(t: TaskRecord, now: float) -> str:
    """A plain one-line description of a task's current state."""
    took = ""
    if t.started and t.state is TaskState.RUNNING:
        took = f" {fmt_seconds(now - t.started)}"
    elif t.started and t.finished:
        took = f" in {fmt_seconds(t.finished - t.started)}"
    extra = f" (attempt {t.attempt})" if t.attempt > 1 else ""
    note = f" - {t.note}" if t.note else ""
    if t.error and t.state in (TaskState.FAILED, TaskState.DEBT, TaskState.ARBITRATED):
        note = f" - {t.error.get('what', '')}"
    rerun = " [needs rerun]" if t.needs_rerun else ""
    return f"{t.state.value:>10} {t.idx:>3} {t.name}{extra}{took}{rerun}{note}"


def summary_line(view: RunView, eta: float | None) -> str:
    c = view.counts
    done = sum(c.get(s, 0) for s in _DONE)
    parts = [f"{done}/{len(view.tasks)} done"]
    for s in (TaskState.RUNNING, TaskState.DEBT, TaskState.FAILED, TaskState.ARBITRATED):
        if c.get(s):
            parts.append(f"{c[s]} {s.value.lower()}")
    parts.append(f"ETA {fmt_seconds(eta)}")
    return f"{view.run.name} [{view.run.run_id}] {view.run.state.value}: " + ", ".join(parts)


_SHOWN = ("attempt", "what", "sandbox", "state", "warning", "note", "in", "seconds", "action")


class EventLines:
    """Print each new event of a run as one plain line."""

    def __init__(self, store: Store, run_id: str, out: IO[str]) -> None:
        self.store, self.run_id, self.out = store, store.resolve_run_id(run_id), out
        self.last = 0
        self.names = {t.idx: t.name for t in store.tasks(self.run_id)}
        self.t0: float | None = None

    def __call__(self) -> None:
        for eid, idx, ts, kind, data in self.store.events(self.run_id, self.last):
            self.last = eid
            if self.t0 is None:
                self.t0 = ts
            who = f"{idx}:{self.names.get(idx, '?')}" if idx is not None else "run"
            detail = ""
            if isinstance(data, dict):
                keep = {k: v for k, v in data.items() if k in _SHOWN}
                detail = " " + " ".join(f"{k}={v}" for k, v in keep.items()) if keep else ""
            print(f"[{ts - self.t0:7.2f}s] {who} {kind}{detail}", file=self.out, flush=True)


class LiveView:
    """A rich live region for a run; call it (rate-limited) from the engine loop or a poller."""

    def __init__(self, store: Store, run_id: str, console: Any = None,
                 keys_fd: int | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.store, self.run_id = store, store.resolve_run_id(run_id)
        self.console = console or Console()
        self.live = Live(console=self.console, refresh_per_second=10, transient=True)
        self.printed: set[int] = set()
        self.next_at = 0.0
        self.keys_fd = keys_fd  # a terminal to read single keys from (y = run/confirm, s = skip)
        self._saved_tty: Any = None
        self.message = ""

    def __enter__(self) -> LiveView:
        if self.keys_fd is not None:
            import termios
            import tty

            try:
                self._saved_tty = termios.tcgetattr(self.keys_fd)
                tty.setcbreak(self.keys_fd)
            except termios.error:
                self.keys_fd = None
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh(force=True)
        self.live.__exit__(None, None, None)
        if self._saved_tty is not None and self.keys_fd is not None:
            import termios

            termios.tcsetattr(self.keys_fd, termios.TCSADRAIN, self._saved_tty)

    @staticmethod
    def focus(view: RunView) -> TaskRecord | None:
        """The task waiting for a person (or counting down) that keys act on."""
        for t in view.tasks:
            if t.state is TaskState.ARBITRATED or (
                    t.state is TaskState.PENDING and t.gate in ("confirm", "countdown")):
                return t
        return None

    def _read_keys(self, view: RunView) -> None:
        import os
        import select

        from cheng_build.cis.run import control

        assert self.keys_fd is not None
        while select.select([self.keys_fd], [], [], 0)[0]:
            key = os.read(self.keys_fd, 1)
            t = self.focus(view)
            if t is None or key not in (b"y", b"\n", b"s"):
                continue
            if key == b"s":
                if t.state is TaskState.ARBITRATED:
                    control.resolve(self.store, self.run_id, t.idx, action="skip")
                else:
                    control.skip(self.store, self.run_id, t.idx)
                self.message = f"skip {t.name}: sent"
            elif t.state is TaskState.ARBITRATED:
                control.resolve(self.store, self.run_id, t.idx, action="run")
                self.message = f"resolve {t.name} (run): sent"
            else:
                control.confirm(self.store, self.run_id, t.idx)
                self.message = f"run {t.name}: sent"

    def __call__(self) -> None:
        self.refresh()

    def refresh(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now < self.next_at:
            return
        self.next_at = now + 0.1
        view = get_run(self.store, self.run_id)
        if self.keys_fd is not None:
            self._read_keys(view)
        for t in view.tasks:  # finished tasks scroll above the live region, once each
            if t.state in _DONE and t.idx not in self.printed:
                self.printed.add(t.idx)
                from rich.text import Text

                self.live.console.print(Text(task_line(t, now), style=_STYLE[t.state]))
        self.live.update(self.render(view, now))

    def render(self, view: RunView, now: float) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        done = sum(view.counts.get(s, 0) for s in _DONE)
        rows: list[Any] = [Text(summary_line(view, eta_seconds(self.store, view)), style="bold"),
                           ProgressBar(total=max(1, len(view.tasks)), completed=done, width=50)]
        for t in view.tasks:
            if t.state is TaskState.RUNNING or t.state is TaskState.ARBITRATED or (
                    t.state is TaskState.PENDING and t.gate):
                rows.append(Text(task_line(t, now), style=_STYLE[t.state]))
        focus = self.focus(view)
        if focus is not None and self.keys_fd is not None:
            rows.append(Text(f"task {focus.idx} {focus.name} waits for you: "
                             "[y] run / confirm   [s] skip", style="bold magenta"))
        if self.message:
            rows.append(Text(self.message, style="dim"))
        return Group(*rows)
