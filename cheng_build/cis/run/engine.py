"""The engine: drives one run from its stored state to the end, one process per ready task.

(Over 400 lines: it is one state machine, and starting, reaping, failing and stopping tasks
all write its per-task mirrors; what it decides is in :mod:`..plan`, how a process starts in
:mod:`..sandbox`, the process record in :mod:`.proc`, requests in :mod:`.requests`.)

Why a single-threaded loop and not asyncio or threads: the work is waiting on child processes,
timers and other processes' requests. Linux gives a pollable file descriptor per child
(``pidfd_open``), so one ``selectors`` loop waits on all of them at once with a timeout set to the
next deadline (task timeout, countdown, backoff). There is no thread to synchronise, SQLite is used
from one thread, ``PR_SET_PDEATHSIG`` is tied to the one thread that forks, and the per-task cost is
a fork/exec plus two small transactions, well under the 5 ms budget. asyncio would add an event
loop import and a second scheduling model for no gain.

Separation (ninja's Plan / Builder / log): *what* may start comes from :mod:`planner` and
:mod:`levels`; *how* a process starts is :func:`sandbox.launch`; *persistence* is :class:`Store`.
The loop applies their decisions and writes every transition through the store before acting
on the next, so a ``kill -9`` at any moment leaves a state :meth:`Engine.run` can resume:
``Completed`` rows are never rerun; ``Running`` rows whose process died with the engine are
started again (idempotent tasks) or wait for ``cis confirm`` (non-idempotent ones).

Other processes act on a live run only by appending ``controls`` rows (see :mod:`control`); the
loop notices them through SQLite's ``PRAGMA data_version`` and applies them in order.
"""

from __future__ import annotations

import contextlib
import enum
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cheng_build.cis.dag import ambiguity
from cheng_build.cis.dag.model import Dag, Isolation, LevelKind, RunState, TaskState
from cheng_build.cis.plan import levels, planner
from cheng_build.cis.run import requests, rollback
from cheng_build.cis.run.proc import Proc, boot_ticks, is_task_process, open_logs, sandbox_denial
from cheng_build.cis.run.store import NewRun, Store, TaskRecord
from cheng_build.cis.sandbox import launch as sandbox

TERM_GRACE_S = 2.0
IDLE_POLL_S = 0.2



class Waits(enum.Enum):
    """What considering a ready task left the loop waiting on."""

    MOVED = "moved"  # the task started, was skipped or failed: its state changed
    TIMER = "timer"  # a countdown: wake at the given time
    PERSON = "person"  # a confirm, an answer or an arbitration

def duration_key(dag_name: str, task_name: str) -> str:
    """The key under which a task's durations are kept for the ETA."""
    return f"{dag_name}\0{task_name}"


def friendly(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from cheng_build.cis.run.debt import friendly as make  # hashlib only on the failure path

    return make(*args, **kwargs)


def tail(path: str) -> list[str]:
    from cheng_build.cis.run.debt import tail as read_tail

    return read_tail(path)


class Engine:
    """Drive the run ``run_id`` stored in ``store``.

    Args:
        store: the run database (this engine becomes the only writer of the run's task state).
        run_id: an existing run.
        jobs: how many tasks may run at once (default: the run's stored value).
        observer: called on every loop turn (the terminal view refreshes from the store); it must
            not block.
        host_env: the environment ``${NAME}`` references in task env are expanded from.
        dag: the run's DAG as the caller just stored it (saves parsing it back from the store:
            a ``cis node`` drives a one-task run per task it wins).
        programs: the program lookups to share (kept across the runs of a caller that makes
            many; by default, once per run).
        fresh: a run made by ``control.new_run(..., engine_pid=os.getpid())``, not stored
            yet (``run_id``, ``dag`` and ``jobs`` are its own): the engine stores it in the
            transaction of its first transition, already marked as driven by this process;
            nothing is read back or recovered; the run's row ends in the transaction of its
            last task's end; the task directories sit in the run's directory itself
            (``runs/<id>/000-a1``, one level less). A ``cis node`` runs each task it wins as
            such a run: these fixed costs were most of its overhead per task over a local
            run's (three transactions, two directories and a lock file of five writes and
            three creations per task).
    """

    def __init__(self, store: Store, run_id: str, *, jobs: int | None = None,
                 observer: Callable[[], None] | None = None,
                 host_env: Mapping[str, str] | None = None, dag: Dag | None = None,
                 programs: dict[tuple[str, str | None], str | None] | None = None,
                 fresh: NewRun | None = None) -> None:
        if fresh is not None:
            if fresh.run_id != run_id or fresh.engine_pid != os.getpid():
                raise ValueError("a fresh run is driven under its own id, by the engine it names")
            dag, jobs = fresh.dag, fresh.jobs
        self.store = store
        self.run_id = store.resolve_run_id(run_id) if dag is None else run_id
        self.jobs_override = jobs
        self.observer = observer
        self.host_env = dict(os.environ if host_env is None else host_env)
        self.running: dict[int, Proc] = {}
        self.sel = selectors.DefaultSelector()
        self.machine: sandbox.SandboxMode | None = None
        self.programs: dict[tuple[str, str | None], str | None] = {} if programs is None else programs
        self._given_dag = dag
        self.fresh = fresh is not None
        self._create = fresh  # stored with the first write (see _stored)
        # A fresh run's row ends in the transaction of its last task's end (one transaction
        # less per run, see transition); _finish then has nothing left to write.
        self._ended = False
        self._finishing = False

    # --- state mirror --------------------------------------------------------------------------

    def _load(self) -> None:
        self.run_dir = self.store.run_dir(self.run_id)
        if self.fresh:
            assert self._given_dag is not None and self.jobs_override
            self.dag: Dag = self._given_dag
            self.jobs = max(1, self.jobs_override)
            n = len(self.dag.tasks)
            # What storing the run writes for every task (the store's column defaults).
            self.state = [TaskState.PENDING] * n
            self.gate = [""] * n
            self.gate_until = [0.0] * n
            self.attempt = [0] * n
            self.choice: list[dict[str, Any]] = [{} for _ in range(n)]
            self.needs_rerun = [False] * n
            self.note: list[str | None] = [None] * n
            self.exit_code: list[int | None] = [None] * n
            self.error: list[dict[str, Any] | None] = [None] * n
            self.pending = set(range(n))
            self.recs: list[TaskRecord] = []
            self.tasks_dir = self.run_dir  # made by engine_lock
            return
        if self._given_dag is not None and self.jobs_override:
            self.dag = self._given_dag
            self.jobs = max(1, self.jobs_override)
        else:
            run = self.store.get_run(self.run_id)
            self.dag = run.dag
            self.jobs = max(1, self.jobs_override or run.jobs or (os.cpu_count() or 1))
        recs = self.store.tasks(self.run_id)
        self.state = [r.state for r in recs]
        self.gate = [r.gate for r in recs]
        self.gate_until = [r.gate_until for r in recs]
        self.attempt = [r.attempt for r in recs]
        self.choice = [r.choice or {} for r in recs]
        self.needs_rerun = [r.needs_rerun for r in recs]
        self.note = [r.note for r in recs]
        self.exit_code = [r.exit_code for r in recs]
        self.error = [r.error for r in recs]
        self.pending = {r.idx for r in recs if r.state is TaskState.PENDING}
        self.recs = recs
        self.tasks_dir = self.run_dir / "tasks"
        self.tasks_dir.mkdir(parents=True, exist_ok=True)

    def transition(self, idx: int, event: str | None = None, data: dict[str, Any] | None = None,
                   **fields: Any) -> None:
        """Write a task transition through to the store, then mirror it."""
        run = self._run_row(idx, fields["state"]) if self.fresh and "state" in fields else None
        self.store.set_task(self.run_id, idx, event, data, run=run, create=self._create, **fields)
        self._create = None
        if run is not None:
            self._ended = run[0] == "run-finished"
        if "state" in fields:
            self.state[idx] = fields["state"]
            if fields["state"] is TaskState.PENDING:
                self.pending.add(idx)
            else:
                self.pending.discard(idx)
        if "gate" in fields:
            self.gate[idx] = fields["gate"]
        if "gate_until" in fields:
            self.gate_until[idx] = fields["gate_until"]
        if "attempt" in fields:
            self.attempt[idx] = fields["attempt"]
        if "choice" in fields:
            self.choice[idx] = fields["choice"] or {}
        if "needs_rerun" in fields:
            self.needs_rerun[idx] = bool(fields["needs_rerun"])
        if "note" in fields:
            self.note[idx] = fields["note"]
        if "exit_code" in fields:
            self.exit_code[idx] = fields["exit_code"]
        if "error" in fields:
            self.error[idx] = fields["error"]

    def _stored(self) -> Store:
        """The store, once a fresh run is in it (the writes that are not a task's transition
        come after one in practice; this keeps them right if one ever comes first)."""
        if self._create is not None:
            new, self._create = self._create, None
            self.store.create_run(new.run_id, new.dag, jobs=new.jobs, sandbox=new.sandbox,
                                  engine_pid=new.engine_pid)
        return self.store

    def _run_row(self, idx: int, state: TaskState) -> tuple[str, dict[str, Any]] | None:
        """What a fresh run's row becomes with this transition: finished when it leaves every
        task in an end state (nothing can start after it: the loop's next turn ends the run,
        with nothing to write), running again when a request reopens a task after that."""
        after = [*self.state]
        after[idx] = state
        if all(s.terminal for s in after) and not self.running and not self._finishing:
            return "run-finished", self._ending(planner.outcome(self.dag, after), after)
        if self._ended and not state.terminal:
            return "running", {"state": RunState.RUNNING, "finished": None,
                               "engine_pid": os.getpid(), "note": None}
        return None

    def _ending(self, outcome: RunState, states: Sequence[TaskState]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in states:
            counts[s.value] = counts.get(s.value, 0) + 1
        note = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
        return {"state": outcome, "finished": time.time(), "engine_pid": None, "note": note}

    # --- entry point ---------------------------------------------------------------------------

    def run(self) -> RunState:
        """Drive the run until it finishes; return its final state.

        Raises:
            StoreError: another engine drives this run, or the database fails.
        """
        with self.store.engine_lock(self.run_id):
            self._load()
            sandbox.sweep_orphan_cgroups()
            self._recover()
            # Nothing to undo, no script: its two fsyncs were a third of a one-task run's time
            # (a `cis node` runs each task it wins as one).
            if any(t.rollback is not None for t in self.dag.tasks):
                undo = self.run_dir / f"undo-{self.run_id}.sh"
                if not undo.exists():
                    rollback.write_undo_script(self.dag, self.run_id, self.run_dir)
            if not self.fresh:  # (a fresh run's row says so when it is stored)
                self.store.set_run(self.run_id, "engine-started", state=RunState.RUNNING,
                                   engine_pid=os.getpid(), finished=None)
            try:
                return self._loop()
            except BaseException:
                self._stop_all("interrupt")
                raise
            finally:
                self.sel.close()
                for p in list(self.running.values()):
                    sandbox.release(p.popen, wait=True)

    def _recover(self) -> None:
        """Tasks left Running by a dead engine: kill any survivor, then rerun or ask."""
        for r in self.recs:
            if r.state is not TaskState.RUNNING:
                continue
            if r.pid and r.pid_start and is_task_process(r.pid, r.pid_start):
                with contextlib.suppress(OSError):
                    os.killpg(r.pid, signal.SIGKILL)
            task = self.dag.tasks[r.idx]
            if task.idempotent:
                self.transition(r.idx, "interrupted", {"rerun": True}, state=TaskState.PENDING,
                                gate=levels.GATE_APPROVED, pid=None,
                                note="interrupted when the engine stopped; running it again")
            else:
                self.transition(r.idx, "interrupted", {"rerun": False}, state=TaskState.PENDING,
                                gate=levels.GATE_CONFIRM, pid=None,
                                note="interrupted when the engine stopped; not idempotent: "
                                     f"'cis confirm {self.run_id} {r.idx}' to run it again")

    def _loop(self) -> RunState:
        seen_version = (-1, -1)
        waiting_noted = False
        while True:
            version = (self.store.data_version(), self.store.controls_added)
            if version != seen_version:
                seen_version = version
                self._apply_controls()
            now = time.time()
            self._enforce_deadlines(now)
            if planner.first_success_reached(self.dag, self.state):
                self._finish_first_success()
            wake = float("inf")
            person = TaskState.ARBITRATED in self.state
            started = False
            if not planner.stop_starting(self.dag, self.state):
                # Lazily: a task started (or failed) in this turn changes the states the next
                # ones are judged by, and the loop stops at the first full job slot.
                for idx in planner.iter_ready(self.dag, self.state, sorted(self.pending)):
                    if len(self.running) >= self.jobs:
                        break
                    kind, until = self._consider(idx, now)
                    if kind is Waits.TIMER:
                        wake = min(wake, until)
                    elif kind is Waits.PERSON:
                        person = True
                    elif kind is Waits.MOVED:
                        started = True
                    if self.state[idx] is TaskState.ARBITRATED:
                        break  # an Arbitrated task pauses the whole DAG from this moment
            if self.observer is not None:
                self.observer()
            if not self.running and not started:
                if wake == float("inf") and not person:
                    return self._finish()
                if person and wake == float("inf") and not waiting_noted:
                    self._stored().set_run(self.run_id, "waiting", state=RunState.WAITING,
                                       note="waiting for a person (cis confirm / cis resolve)")
                    waiting_noted = True
            elif waiting_noted:
                self._stored().set_run(self.run_id, "running", state=RunState.RUNNING, note=None)
                waiting_noted = False
            if started:
                continue  # more tasks may have become startable; do not sleep
            timeout = IDLE_POLL_S if not self.running else 0.05
            timeout = min(timeout, max(0.0, wake - now))
            for p in self.running.values():
                for t in (p.deadline, p.kill_at):
                    if t is not None:
                        timeout = min(timeout, max(0.0, t - now))
            if self.observer is not None:
                timeout = min(timeout, 0.1)
            for key, _ in self.sel.select(timeout):
                self._reap(int(key.data))
            if waiting_noted and self.running:
                self._stored().set_run(self.run_id, "running", state=RunState.RUNNING, note=None)
                waiting_noted = False

    # --- starting ------------------------------------------------------------------------------

    def _consider(self, idx: int, now: float) -> tuple[Waits, float]:
        """Apply the gates to a ready task: what the loop waits on now, and the wake time."""
        task = self.dag.tasks[idx]
        d = levels.before_start(task, self.gate[idx], self.gate_until[idx], now)
        if d.go is levels.Go.WAIT:
            if d.gate != self.gate[idx] or d.until != self.gate_until[idx]:
                note = {levels.GATE_COUNTDOWN: f"starts in {task.level.timeout}s "
                                               f"({task.level.default.value} unless changed)",
                        levels.GATE_CONFIRM: f"waiting for 'cis confirm {self.run_id} {idx}'"}.get(d.gate)
                self.transition(idx, d.gate, None, gate=d.gate, gate_until=d.until, note=note)
            return (Waits.PERSON, 0.0) if d.gate in levels.PERSON_GATES else (Waits.TIMER, d.until)
        if d.go is levels.Go.SKIP:
            self.transition(idx, "skipped", None, state=TaskState.SKIPPED, gate="",
                            note="Recommended countdown ended: default action skip")
            return Waits.MOVED, 0.0
        if d.go is levels.Go.ARBITRATE:
            stake = ", ".join(task.level.stakeholders) or "a person"
            self.transition(idx, "arbitrate", None, state=TaskState.ARBITRATED, gate="",
                            note=f"the DAG is paused until {stake} runs "
                                 f"'cis resolve {self.run_id} {idx} --action:run|skip'")
            return Waits.PERSON, 0.0
        answers = dict(self.choice[idx].get("answers", {}))
        if self.gate[idx] == levels.GATE_SUGGEST:  # the suggestion countdown ended: take it
            answers = {**self.choice[idx].get("suggestion", {}), **answers}
        res = ambiguity.resolve(self.dag, task, host_env=self.host_env, answers=answers)
        if res.verdict is ambiguity.Verdict.OK:
            self._start(idx, res)
            return Waits.MOVED, 0.0
        choice = {**self.choice[idx], "open": res.open_items, "suggestion": res.suggestion}
        if res.verdict is ambiguity.Verdict.FAIL:
            ctx = self._context(idx, res.env, list(task.inputs))
            self._fail(idx, friendly(
                f"task {task.name} cannot start: its inputs are not there",
                res.open_items + res.log, [f"create the missing input or fix 'inputs' of task {idx}",
                                           f"then: cis retry {self.run_id} --from:{task.name}"],
                **ctx), retryable=False)
            return Waits.MOVED, 0.0
        if res.verdict is ambiguity.Verdict.SUGGEST:
            until = now + ambiguity.SUGGEST_COUNTDOWN_S
            self.transition(idx, "suggest", {"open": res.open_items}, gate=levels.GATE_SUGGEST,
                            gate_until=until, choice=choice,
                            note=f"ambiguous {', '.join(res.open_items)}: taking "
                                 f"{', '.join(res.suggestion.values())} in {ambiguity.SUGGEST_COUNTDOWN_S}s")
            return Waits.TIMER, until
        if res.verdict is ambiguity.Verdict.ASK:
            self.transition(idx, "ask", {"open": res.open_items}, gate=levels.GATE_ANSWER, choice=choice,
                            note=f"needs an answer for {', '.join(res.open_items)}: "
                                 f"'cis resolve {self.run_id} {idx} --value:...'")
            return Waits.PERSON, 0.0
        self.transition(idx, "escalate", {"open": res.open_items}, state=TaskState.ARBITRATED,
                        choice=choice,
                        note=f"escalated ({', '.join(res.open_items)}): the DAG is paused "
                             f"until 'cis resolve {self.run_id} {idx} --value:...'")
        return Waits.PERSON, 0.0

    def _context(self, idx: int, env: Mapping[str, str], inputs: list[str],
                 task_dir: str | None = None) -> dict[str, Any]:
        task = self.dag.tasks[idx]
        base = self.dag.base_dir
        return {"env": env, "cwd": rollback.task_cwd(self.dag, task, task_dir),
                "inputs": [i if os.path.isabs(i) else os.path.join(base, i) for i in inputs],
                "attempt": self.attempt[idx], "task_dir": task_dir}

    def _start(self, idx: int, res: ambiguity.Resolution) -> None:
        task = self.dag.tasks[idx]
        attempt = self.attempt[idx] + 1
        task_dir = self.tasks_dir / f"{idx:03d}-a{attempt}"
        task_dir.mkdir(exist_ok=True)
        cwd = rollback.task_cwd(self.dag, task, str(task_dir))
        argv = ambiguity.substitute(task.exec.cmd, res.inputs)
        inputs = list(res.inputs.values())
        self.attempt[idx] = attempt
        ctx = self._context(idx, res.env, inputs, str(task_dir))
        ready = self._preflight(idx, argv, res.env, cwd, ctx)
        if isinstance(ready, dict):
            self._fail(idx, ready, retryable=False, attempt=attempt)
            return
        prog, mode = ready
        base = self.dag.base_dir
        writable = [os.path.join(base, w) for w in task.exec.sandbox.writable]
        if task.exec.cwd is not None:
            writable.append(cwd)
        spec = sandbox.LaunchSpec(argv=(prog, *argv[1:]), env=res.env, cwd=cwd,
                                  task_dir=str(task_dir), sandbox=task.exec.sandbox,
                                  read_only=(base,), writable=tuple(writable))
        self._launch(idx, spec, mode, res, inputs, attempt, ctx)

    def _preflight(self, idx: int, argv: Sequence[str], env: Mapping[str, str], cwd: str,
                   ctx: Mapping[str, Any]) -> tuple[str, sandbox.SandboxMode] | dict[str, Any]:
        """The program's path and the sandbox mode a task starts with, or the friendly error
        saying why it cannot start (a NUL byte, no program, no directory, isolation refused)."""
        task = self.dag.tasks[idx]
        nul = [what for what, text in (*((f"argument {i}", a) for i, a in enumerate(argv)),
                                       *((f"env {k}", v) for k, v in env.items()),
                                       ("exec.cwd", cwd)) if "\0" in text]
        if nul:
            # Validation refuses this; a run stored before it did must fail, not crash the engine.
            return friendly(f"task {task.name}: {nul[0]} holds a NUL byte",
                            ["a NUL cannot be passed to a program (C strings end at it)"],
                            [f"fix it: cis amend {self.run_id} --task:{idx} --cmd:... / "
                             "--env:K=V", f"then: cis retry {self.run_id} "
                             f"--from:{task.name}"], **ctx)
        key = (argv[0], env.get("PATH"))
        prog = self.programs.get(key) or sandbox.resolve_program(argv[0], env)
        self.programs[key] = prog
        if prog is None:
            return friendly(f"task {task.name}: program {argv[0]!r} not found",
                            ["it is not on the task's PATH nor on the engine's PATH"],
                            [f"install {argv[0]!r} (cis doctor lists what is missing)",
                             f"or change the command: cis amend {self.run_id} --task:{idx} "
                             "--cmd:...", f"then: cis retry {self.run_id} --from:{task.name}"],
                            **ctx)
        if not os.path.isdir(cwd):
            return friendly(f"task {task.name}: working directory {cwd} does not exist",
                            ["exec.cwd names a directory that is not there"],
                            ["create it or fix exec.cwd"], **ctx)
        try:
            if task.exec.sandbox.isolation is Isolation.NONE:
                mode = sandbox.SandboxMode.UNSANDBOXED
            else:
                if self.machine is None:
                    self.machine = sandbox.detect_mode(cache_dir=self.store.home)
                mode = sandbox.effective_mode(task.exec.sandbox, self.machine)
        except sandbox.IsolationRefusedError as exc:
            return friendly(f"task {task.name} refused: {exc}",
                            ["sandbox.isolation = \"required\" and neither bubblewrap nor "
                             "user namespaces work here (the run is unsandboxed)"],
                            ["install bubblewrap (apt-get install bubblewrap) and check "
                             "'cis verify-sandbox'", "or set sandbox.isolation = "
                             "\"preferred\" to accept an unsandboxed run"], **ctx)
        return prog, mode

    def _launch(self, idx: int, spec: sandbox.LaunchSpec, mode: sandbox.SandboxMode,
                res: ambiguity.Resolution, inputs: list[str], attempt: int,
                ctx: Mapping[str, Any]) -> None:
        """Open the task's logs, start its process and mark it Running."""
        task = self.dag.tasks[idx]
        task_dir = spec.task_dir
        try:
            out, err = open_logs(task_dir)
        except OSError as exc:
            self._fail(idx, friendly(f"task {task.name}: cannot create its logs in {task_dir}",
                                     [exc.strerror or str(exc)],
                                     [f"remove what is in the way, then: cis retry {self.run_id} "
                                      f"--from:{task.name}"], **ctx),
                       retryable=False, attempt=attempt)
            return
        ticks_lo = boot_ticks()  # the pid_start window opens (see is_task_process)
        try:
            popen = sandbox.launch(spec, mode, stdout=out, stderr=err)
        except OSError as exc:
            os.close(out)
            os.close(err)
            self._fail(idx, friendly(f"task {task.name}: cannot start {spec.argv[0]}",
                                     [exc.strerror or str(exc)], ["check the program and its "
                                                                  "permissions"], **ctx),
                       retryable=False, attempt=attempt)
            return
        ticks_hi = boot_ticks()
        now = time.time()
        pidfd = os.pidfd_open(popen.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, idx)
        deadline = now + task.exec.timeout if task.exec.timeout else None
        os.close(out)  # the child holds its own copies
        os.close(err)
        self.running[idx] = Proc(idx, popen, pidfd, now, deadline, task_dir, spec.cwd,
                                  dict(res.env), inputs, attempt, mode=mode.value)
        choice = {**self.choice[idx], "inputs": res.inputs, "log": res.log}
        started: dict[str, Any] = {"attempt": attempt, "sandbox": mode.value}
        if task.exec.sandbox.processes and not sandbox.process_limit_enforced(spec, mode):
            started["warning"] = "process limit not enforced (root without a pids cgroup)"
        self.transition(idx, "started", started,
                        state=TaskState.RUNNING, attempt=attempt, started=now, finished=None,
                        exit_code=None, pid=popen.pid, pid_start=f"{ticks_lo}-{ticks_hi}",
                        task_dir=task_dir, gate="", choice=choice,
                        note="; ".join(res.log) or None)

    # --- finishing a task ----------------------------------------------------------------------

    def _reap(self, idx: int) -> None:
        p = self.running.pop(idx)
        self.sel.unregister(p.pidfd)
        os.close(p.pidfd)
        rc = p.popen.wait()
        sandbox.release(p.popen)
        now = time.time()
        task = self.dag.tasks[idx]
        if p.reason == "amend":
            self.transition(idx, "restart", {"exit_code": rc}, state=TaskState.PENDING,
                            gate=levels.GATE_APPROVED, pid=None, note="restarting with the amendment")
            return
        if p.reason == "cancel":
            self.transition(idx, "cancelled", {"exit_code": rc}, state=TaskState.SKIPPED, pid=None,
                            finished=now, note=self._cancel_note(idx))
            return
        if p.reason == "interrupt":
            self.transition(idx, "interrupted", {"exit_code": rc}, state=TaskState.PENDING,
                            gate=levels.GATE_APPROVED, pid=None, note="interrupted; cis resume reruns it")
            return
        ctx = {"env": p.env, "cwd": p.cwd, "inputs": p.inputs, "attempt": p.attempt,
               "task_dir": p.task_dir, "exit_code": rc}
        def logs() -> list[str]:  # read only on the failure paths: a success needs no tail
            return tail(os.path.join(p.task_dir, "stderr.log")) or tail(
                os.path.join(p.task_dir, "stdout.log"))

        how_common = [f"logs: {p.task_dir}/stderr.log (kept read-only)",
                      f"retry from here: cis retry {self.run_id} --from:{task.name}",
                      f"change it: cis amend {self.run_id} --task:{idx} --env:K=V / --cmd:...",
                      f"skip it: cis resolve {self.run_id} {idx} --action:skip"]
        if p.reason == "timeout":
            self._fail(idx, friendly(f"task {task.name} timed out after {task.exec.timeout}s",
                                     ["it was stopped with SIGTERM, then SIGKILL", *logs()],
                                     [f"raise it: cis amend {self.run_id} --task:{idx} --timeout:N",
                                      *how_common], **ctx), task_dir=p.task_dir)
            return
        if rc != 0:
            what = (f"task {task.name} was killed by signal {-rc}" if rc < 0
                    else f"task {task.name} exited with status {rc}")
            why, how = logs() or ["it printed nothing on stderr"], how_common
            denial = sandbox_denial(p, task.exec.sandbox.network)
            if denial is not None:  # said first: otherwise the user is left to guess
                why, how = [denial.why, *why], [*denial.how, *how]
            self._fail(idx, friendly(what, why, how, **ctx), task_dir=p.task_dir)
            return
        missing = [o for o in task.outputs if not os.path.exists(os.path.join(p.cwd, o))]
        if missing:
            self._fail(idx, friendly(f"task {task.name} did not produce {', '.join(missing)}",
                                     [f"it exited 0, but its declared outputs are missing in {p.cwd}"],
                                     ["fix the command or the 'outputs' list", *how_common], **ctx),
                       task_dir=p.task_dir)
            return
        self.transition(idx, "completed", {"seconds": round(now - p.started, 6)},
                        state=TaskState.COMPLETED, finished=now, exit_code=0, pid=None,
                        needs_rerun=0, error=None, note=None,
                        duration=(duration_key(self.dag.name, task.name), now - p.started))

    def _cancel_note(self, idx: int) -> str:
        if planner.first_success_reached(self.dag, self.state):
            return "not needed: another branch succeeded (FirstSuccess)"
        return "stopped and skipped by a person"

    def _fail(self, idx: int, error: dict[str, Any], *, retryable: bool = True,
              task_dir: str | None = None, attempt: int | None = None) -> None:
        """A task failed: checkpoint, then retry later, or settle its state under the policy."""
        task = self.dag.tasks[idx]
        now = time.time()
        if attempt is not None:
            self.attempt[idx] = attempt
        if task_dir:
            with contextlib.suppress(OSError):
                sandbox.make_read_only(task_dir)
        delay = levels.retry_after(task, self.attempt[idx]) if retryable else None
        if delay is not None:
            self.transition(idx, "retry-scheduled", {"in": delay, "what": error["what"]},
                            state=TaskState.PENDING, gate=levels.GATE_BACKOFF, gate_until=now + delay,
                            attempt=self.attempt[idx], error=error, pid=None,
                            note=f"attempt {self.attempt[idx]} failed; retrying in {delay:.1f}s")
            return
        st = planner.failure_state(self.dag, idx,
                                   arbitrated_level=task.level.kind is LevelKind.ARBITRATED)
        if st is not TaskState.ARBITRATED and task.rollback is not None:
            error["rollback"] = self.run_rollback(idx)
        note = {TaskState.DEBT: "failed; recorded as debt (nothing downstream needs it)",
                TaskState.ARBITRATED: f"failed; the DAG is paused until 'cis resolve {self.run_id} "
                                      f"{idx} --action:retry|skip|fail|complete'",
                TaskState.FAILED: "failed; dependents are frozen"}[st]
        self.transition(idx, st.value.lower(), {"what": error["what"]}, state=st, finished=now,
                        exit_code=error.get("context", {}).get("exit_code"), error=error, pid=None,
                        attempt=self.attempt[idx], note=note)

    def run_rollback(self, idx: int) -> str:
        """Run a failed task's rollback argv (same env and sandbox); return what happened."""
        task = self.dag.tasks[idx]
        argv = task.rollback or ()
        rdir = self.tasks_dir / f"{idx:03d}-rollback-a{self.attempt[idx]}"
        rdir.mkdir(parents=True, exist_ok=True)
        cwd = rollback.task_cwd(self.dag, task, str(rdir))
        env, _missing = ambiguity.expand_env(task.exec.env_map, self.host_env)
        prog = sandbox.resolve_program(argv[0], env)
        if prog is None:
            return f"rollback not run: program {argv[0]!r} not found"
        writable = [os.path.join(self.dag.base_dir, w) for w in task.exec.sandbox.writable]
        if task.exec.cwd is not None:
            writable.append(cwd)
        spec = sandbox.LaunchSpec(argv=(prog, *argv[1:]), env=env, cwd=cwd, task_dir=str(rdir),
                                  sandbox=task.exec.sandbox, read_only=(self.dag.base_dir,),
                                  writable=tuple(writable))
        try:
            mode = sandbox.effective_mode(task.exec.sandbox)
            fd = os.open(rdir / "output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                         os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            with open(fd, "wb") as out:
                proc = sandbox.launch(spec, mode, stdout=out, stderr=subprocess.STDOUT)
                # Rollbacks are short clean-ups; the loop waits for one (bounded) on purpose so
                # no dependent can start before the undo is done.
                rc = proc.wait(timeout=task.exec.timeout or 300)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            sandbox.release(proc, wait=True)
            return "rollback timed out"
        except (OSError, sandbox.IsolationRefusedError) as exc:
            return f"rollback not run: {exc}"
        sandbox.release(proc)
        self._stored().add_event(self.run_id, idx, "rollback", {"exit_code": rc})
        return "rollback ran" if rc == 0 else f"rollback failed with status {rc}"

    # --- stopping ------------------------------------------------------------------------------

    def stop_running(self, idx: int, reason: str) -> None:
        """Stop task ``idx``'s process (a request cancelled or amended it; it must be running)."""
        self.stop_task(self.running[idx], reason)

    def stop_task(self, p: Proc, reason: str) -> None:
        if p.kill_at is not None:
            return
        p.reason = reason
        p.kill_at = time.time() + TERM_GRACE_S
        with contextlib.suppress(OSError):
            os.killpg(p.popen.pid, signal.SIGTERM)

    def _enforce_deadlines(self, now: float) -> None:
        for p in self.running.values():
            if p.kill_at is not None and now >= p.kill_at:
                with contextlib.suppress(OSError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.kill_at = now + 3600  # sent; the pidfd reports the exit
            elif p.deadline is not None and now >= p.deadline and p.kill_at is None:
                self.stop_task(p, "timeout")

    def _stop_all(self, reason: str) -> None:
        for p in list(self.running.values()):
            with contextlib.suppress(OSError):
                os.killpg(p.popen.pid, signal.SIGKILL)
            p.reason = reason
            with contextlib.suppress(Exception):
                p.popen.wait(timeout=5)
                self._reap(p.idx)

    def _finish_first_success(self) -> None:
        for p in self.running.values():
            self.stop_task(p, "cancel")
        for i, s in enumerate(self.state):
            if s is TaskState.PENDING:
                self.transition(i, "skipped", None, state=TaskState.SKIPPED,
                                note="not needed: another branch succeeded (FirstSuccess)")

    def _finish(self) -> RunState:
        sandbox.release_all()
        outcome = planner.outcome(self.dag, self.state)
        frozen = planner.frozen(self.dag, self.state)
        self._finishing = True
        for i, s in enumerate(self.state):
            if s is TaskState.PENDING:
                blockers = [d for d in self.dag.tasks[i].deps
                            if self.state[d] in (TaskState.FAILED, TaskState.ARBITRATED)
                            or d in frozen]
                why = (f"blocked by failed task {blockers[0]}" if blockers
                       else "not started: the run stopped after a failure")
                self.transition(i, "skipped", None, state=TaskState.SKIPPED, note=why)
        if not self._ended:  # (a fresh run's row ended with its last task)
            self._stored().set_run(self.run_id, "run-finished", **self._ending(outcome, self.state))
        return outcome

    # --- controls from other processes --------------------------------------------------------

    def _apply_controls(self) -> None:
        for c in self.store.pending_controls(self.run_id):
            try:
                result = requests.apply(self, c)
            except Exception as exc:  # a bad request must never stop the run
                result = requests.rejected(str(exc))
            self.store.finish_control(c.id, str(result))
