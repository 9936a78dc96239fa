"""The four decision levels (seed section 5.1) as pure decisions the engine applies.

============  ==========================================  =====================================
level         before the task starts                      after a failure
============  ==========================================  =====================================
Mechanical    start at once                               retry with exponential backoff
Recommended   countdown; at zero take ``default``          blocking -> rollback, Failed
              (run or skip); a person may skip / run now
              / change it meanwhile
Confirmed     wait for ``cis confirm`` (no timeout)       blocking -> rollback, Failed
Arbitrated    the whole DAG pauses (task Arbitrated)      the whole DAG pauses until
              until ``cis resolve --action:run``           ``cis resolve``
============  ==========================================  =====================================

With no terminal nothing changes: countdowns end by themselves, Confirmed and Arbitrated wait.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cheng_build.cis.dag.model import Action, LevelKind, Task

BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 30.0

# Gates: why a Pending task is not started yet (the store's ``gate`` column).
GATE_NONE = ""
GATE_COUNTDOWN = "countdown"  # Recommended: starts (or skips) at gate_until
GATE_CONFIRM = "confirm"  # Confirmed, or an interrupted non-idempotent task: waits for a person
GATE_APPROVED = "approved"  # a person confirmed / resolved: start without asking again
GATE_BACKOFF = "backoff"  # Mechanical retry: starts at gate_until
GATE_ANSWER = "answer"  # ambiguity Ask: waits for `cis resolve --value:`
GATE_SUGGEST = "suggest"  # ambiguity Suggest: takes the suggestion at gate_until

PERSON_GATES = frozenset({GATE_CONFIRM, GATE_ANSWER})
TIMER_GATES = frozenset({GATE_COUNTDOWN, GATE_BACKOFF, GATE_SUGGEST})


class Go(enum.Enum):
    """What to do with a ready task now."""

    START = "start"
    SKIP = "skip"
    WAIT = "wait"  # a gate holds it (timer or person)
    ARBITRATE = "arbitrate"  # pause the DAG: the task becomes Arbitrated


@dataclass(frozen=True, slots=True)
class Decision:
    go: Go
    gate: str = GATE_NONE
    until: float = 0.0


def before_start(task: Task, gate: str, gate_until: float, now: float) -> Decision:
    """Decide for a ready Pending task given its current gate."""
    if gate == GATE_APPROVED:
        return Decision(Go.START)
    if gate in PERSON_GATES:
        return Decision(Go.WAIT, gate)
    if gate in (GATE_BACKOFF, GATE_SUGGEST):
        return Decision(Go.START) if now >= gate_until else Decision(Go.WAIT, gate, gate_until)
    kind = task.level.kind
    if kind is LevelKind.MECHANICAL:
        return Decision(Go.START)
    if kind is LevelKind.RECOMMENDED:
        if gate != GATE_COUNTDOWN:
            return Decision(Go.WAIT, GATE_COUNTDOWN, now + task.level.timeout)
        if now < gate_until:
            return Decision(Go.WAIT, GATE_COUNTDOWN, gate_until)
        return Decision(Go.START if task.level.default is Action.RUN else Go.SKIP)
    if kind is LevelKind.CONFIRMED:
        return Decision(Go.WAIT, GATE_CONFIRM)
    return Decision(Go.ARBITRATE)


def retry_after(task: Task, attempt: int) -> float | None:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based), or
    None when the task gets no more attempts (only Mechanical tasks retry by themselves)."""
    if task.level.kind is not LevelKind.MECHANICAL or attempt > task.level.retry:
        return None
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1)))
