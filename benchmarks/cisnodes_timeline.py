"""Where the nodes' wall time goes in a traced room run (``cisnodes.py --trace DIR``).

Each ``cis`` process writes ``DIR/<pid>.trace`` (``cheng_build.cis.node.trace``): monotonic
seconds, a step, its fields. For each node this sums the time a task ran, and the time no task
ran, by why, from what the node's last tick saw (its ``idle`` line: won tasks waiting, of them not
startable, of them with a stale lease, claims out):

* ``wake``: a task ended and the next tick had not come yet (or a startable task was not started);
* ``unconfirmed``: won tasks wait for their own claim/renewal to be read back fresh;
* ``revoke``: won tasks wait because a revocation is pending (``may_start`` is false);
* ``claim_rtt``: nothing won waits, claims are out (claim PUT -> read back -> won);
* ``no_claim``: nothing won, nothing claimed (no ready task, or the top-up rule held back).

Usage: ``python benchmarks/cisnodes_timeline.py DIR`` (``DIR/t0`` holds the origins' start).
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

Line = tuple[float, str, list[str]]


def _load(path: Path) -> list[Line]:
    out: list[Line] = []
    for raw in path.read_text().splitlines():
        parts = raw.split()
        if len(parts) >= 2:
            out.append((float(parts[0]), parts[1], parts[2:]))
    return sorted(out, key=lambda x: x[0])


def _reason(snap: list[int] | None) -> str:
    if snap is None:
        return "no_claim"
    waiting, unstartable, unfresh, claims = snap
    if waiting:
        if unstartable == 0:
            return "wake"
        return "unconfirmed" if unfresh else "revoke"
    return "claim_rtt" if claims else "no_claim"


def _node(lines: list[Line], t0: float) -> tuple[str, dict[str, float]]:
    idle: dict[str, float] = defaultdict(float)
    running = 0
    snap: list[int] | None = None
    after_end = False
    first_run = next((t for t, w, _ in lines if w == "run_added"), t0)
    last_end = max((t for t, w, _ in lines if w == "end"), default=first_run)
    prev = first_run
    busy = 0.0
    durs: list[float] = []
    started: dict[str, float] = {}
    claims: list[float] = []
    won_lat: list[float] = []
    conf_lat: list[float] = []
    claim_at: dict[str, float] = {}
    won_at: dict[str, float] = {}
    reads = paces = 0
    pace_s = 0.0
    for t, what, f in lines:
        if t < first_run or t > last_end:
            if what == "claim":
                claims.append(t)
            continue
        span = t - prev
        if running:
            busy += span
        else:
            idle["wake" if after_end else _reason(snap)] += span
        prev = t
        if what == "start":
            running += 1
            started[f[0] + f[1]] = t
            after_end = False
        elif what == "end":
            running -= 1
            durs.append(t - started.pop(f[0] + f[1], t))
            after_end = True
        elif what == "idle":
            snap = [int(x) for x in f[:4]]
            after_end = False
        elif what == "claim":
            claims.append(t)
            claim_at[f[0]] = t
        elif what == "won":
            won_at[f[0] + f[1]] = t
            if f[0] in claim_at:
                won_lat.append(t - claim_at[f[0]])
        elif what == "confirmed":
            if f[0] + f[1] in won_at:
                conf_lat.append(t - won_at.pop(f[0] + f[1]))
        elif what == "read":
            reads += 1
        elif what == "pace":
            paces += 1
            pace_s += float(f[0])
    span = last_end - first_run
    rows = {"run_seen": first_run - t0, "last_end": last_end - t0, "tasks": len(durs), "busy": busy,
            "idle": span - busy, **{f"idle_{k}": v for k, v in sorted(idle.items())},
            "task_ms_p50": 1e3 * statistics.median(durs) if durs else 0.0,
            "claims": len(claims),
            "claim_to_won_ms_p50": 1e3 * statistics.median(won_lat) if won_lat else 0.0,
            "won_to_confirmed_ms_p50": 1e3 * statistics.median(conf_lat) if conf_lat else 0.0,
            "reads": reads, "paces": paces, "pace_s": pace_s}
    return "node", rows


def summarize(where: Path) -> str:
    t0 = float((where / "t0").read_text()) if (where / "t0").exists() else 0.0
    out: list[str] = []
    for path in sorted(where.glob("*.trace")):
        lines = _load(path)
        names = {w for _, w, _ in lines}
        if "origin_main" in names:
            at = {w: t - t0 for t, w, _ in lines if w.startswith("origin_") and w != "origin_read"}
            reads = [t - t0 for t, w, _ in lines if w == "origin_read"]
            at["origin_reads"] = len(reads)
            at["origin_last_read"] = max(reads, default=0.0)
            out.append(f"origin {path.stem}: " + ", ".join(f"{k[7:]} {v:.2f}" for k, v in at.items()))
        elif "run_added" in names:
            _, rows = _node(lines, t0)
            out.append(f"node {path.stem}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows.items()))
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
