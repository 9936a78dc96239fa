"""The comparison report of a sketch's benchmarks: a table and a PNG bar chart, side by side.

Inputs are the result files the bench tasks write (one per backend and bench, see
:func:`result_record`); a backend whose tasks were skipped (capability absent) or failed appears
in the table with the reason instead of a number. Outputs, written atomically into one directory::

    report.md     a Markdown table: backend, status, wall seconds, the bench's own metric, note
    report.json   the same rows as JSON (what the web view shows)
    report.png    a horizontal bar chart of the compared metric per backend

The PNG is written here with ``zlib`` + ``struct`` (8-bit RGB, filter 0, one IDAT) and a 5x7
bitmap font for the labels: a chart of a few bars does not justify a plotting library
(matplotlib costs ~40 MB and half a second to import). Browsers decode it (the web test checks).

Result file (``<results>/<backend>--<bench>.json``), written by the bench wrapper::

    {"backend": "cuda", "bench": "voxel_bench", "status": "measured" | "failed",
     "wall_seconds": 0.83, "exit_code": 0, "metrics": {...the bench's last JSON line...},
     "argv": [...], "stderr_tail": [...]}
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cheng_build.core.atomic import atomic_write_bytes


@dataclass(frozen=True, slots=True)
class Row:
    """One backend x bench line of the report."""

    backend: str
    bench: str
    status: str  # measured | failed | skipped
    wall_seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def result_record(backend: str, bench: str, argv: Sequence[str], exit_code: int, wall: float,
                  stdout: str, stderr: str) -> dict[str, Any]:
    """The result file's content for one bench run (its last JSON object line = its metrics)."""
    metrics: dict[str, Any] = {}
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                metrics = obj
                break
    return {"backend": backend, "bench": bench, "status": "measured" if exit_code == 0 else "failed",
            "wall_seconds": round(wall, 6), "exit_code": exit_code, "metrics": metrics,
            "argv": list(argv), "stderr_tail": [ln for ln in stderr.splitlines() if ln.strip()][-5:]}


def load_rows(results: Path, expected: Sequence[tuple[str, str]],
              skipped: Mapping[str, str]) -> list[Row]:
    """Rows for every expected (backend, bench): measured/failed from its file, else skipped with
    the reason from ``skipped`` (by backend), else "no result"."""
    rows = []
    for backend, bench in expected:
        p = results / f"{backend}--{bench}.json"
        if p.is_file():
            try:
                rec = json.loads(p.read_text())
            except ValueError as exc:
                rows.append(Row(backend, bench, "failed", note=f"unreadable result: {exc}"))
                continue
            note = "" if rec.get("status") == "measured" else "; ".join(rec.get("stderr_tail", []))
            rows.append(Row(backend, bench, str(rec.get("status")), rec.get("wall_seconds"),
                            dict(rec.get("metrics") or {}), note))
        else:
            rows.append(Row(backend, bench, "skipped",
                            note=skipped.get(backend, "no result (its task did not run)")))
    return rows


def compared_metric(rows: Sequence[Row]) -> tuple[str, bool]:
    """The metric to chart: a throughput (``*_per_s``) every measured row reports (higher is
    better), else ``wall_seconds`` (lower is better)."""
    measured = [r for r in rows if r.status == "measured"]
    if measured:
        common = set.intersection(*({k for k, v in r.metrics.items() if isinstance(v, int | float)}
                                    for r in measured))
        for k in sorted(common):
            if k.endswith("_per_s"):
                return k, True
    return "wall_seconds", False


def _value(row: Row, metric: str) -> float | None:
    v = row.wall_seconds if metric == "wall_seconds" else row.metrics.get(metric)
    return float(v) if isinstance(v, int | float) else None


def markdown(rows: Sequence[Row], title: str) -> str:
    metric, higher = compared_metric(rows)
    best = [v for r in rows if r.status == "measured" and (v := _value(r, metric)) is not None]
    top = (max(best) if higher else min(best)) if best else None
    out = [f"# {title}", "", f"Compared: `{metric}` ({'higher' if higher else 'lower'} is better).",
           "", f"| backend | bench | status | wall s | {metric} | vs best | note |",
           "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        v = _value(r, metric) if r.status == "measured" else None
        rel = ""
        if v is not None and top:
            rel = f"{(v / top if higher else top / v):.2f}x"
        wall = f"{r.wall_seconds:.3f}" if r.wall_seconds is not None else ""
        note = r.note.replace("|", "\\|")
        out.append(f"| {r.backend} | {r.bench} | {r.status} | {wall} | "
                   f"{'' if v is None else f'{v:.4g}'} | {rel} | {note} |")
    return "\n".join(out) + "\n"


# --- PNG -------------------------------------------------------------------------------------

# 5x7 glyphs, one int per row, bit 4 = leftmost pixel. Labels are drawn in upper case.
_FONT: dict[str, tuple[int, ...]] = {
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    " ": (0, 0, 0, 0, 0, 0, 0), ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), "-": (0, 0, 0, 0x1F, 0, 0, 0),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0), "/": (0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02), ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "_": (0, 0, 0, 0, 0, 0, 0x1F), ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0), "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04),
}
_COLORS = {"cpu": (66, 133, 244), "cuda": (118, 185, 0), "metal": (150, 150, 160)}
_OTHER = (230, 145, 56)
BG, FG, GRID = (255, 255, 255), (32, 32, 32), (210, 210, 210)


class Canvas:
    """An RGB pixel buffer with just what a bar chart needs."""

    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(bytes(BG) * (width * height))

    def rect(self, x: int, y: int, w: int, h: int, rgb: tuple[int, int, int]) -> None:
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.w, x + w), min(self.h, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes(rgb) * (x1 - x0)
        for yy in range(y0, y1):
            off = (yy * self.w + x0) * 3
            self.px[off:off + len(row)] = row

    def text(self, x: int, y: int, s: str, rgb: tuple[int, int, int] = FG, scale: int = 2) -> int:
        """Draw ``s``; return the x after it."""
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT["?"])
            for gy, bits in enumerate(glyph):
                for gx in range(5):
                    if bits & (0x10 >> gx):
                        self.rect(x + gx * scale, y + gy * scale, scale, scale, rgb)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def chart_png(rows: Sequence[Row], title: str, width: int = 720) -> bytes:
    """A horizontal bar per row (skipped/failed rows get an empty bar and their status)."""
    metric, higher = compared_metric(rows)
    bar_h, gap, top, left = 22, 12, 56, 230
    height = top + len(rows) * (bar_h + gap) + 24
    c = Canvas(width, height)
    if not title.isascii():  # the bitmap font has ASCII only: name what is compared instead
        benches = ", ".join(dict.fromkeys(r.bench for r in rows))
        title = f"{benches}: {' vs '.join(dict.fromkeys(r.backend for r in rows))}"
    c.text(12, 10, title[:52])
    c.text(12, 32, f"{metric} ({'higher' if higher else 'lower'} is better)"[:56], (90, 90, 90))
    vals = [(_value(r, metric) if r.status == "measured" else None) for r in rows]
    vmax = max((v for v in vals if v is not None), default=0.0) or 1.0
    span = width - left - 110
    for i, (r, v) in enumerate(zip(rows, vals, strict=True)):
        y = top + i * (bar_h + gap)
        c.text(12, y + 4, f"{r.backend} {r.bench}"[:17])
        c.rect(left, y, 1, bar_h, GRID)
        if v is None:
            c.text(left + 8, y + 4, r.status, (160, 60, 60))
            continue
        w = max(2, int(span * v / vmax))
        c.rect(left, y, w, bar_h, _COLORS.get(r.backend, _OTHER))
        c.text(left + w + 6, y + 4, f"{v:.4g}")
    return c.png()


def write_report(out_dir: Path, rows: Sequence[Row], title: str) -> dict[str, Path]:
    """Write report.md, report.json and report.png into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metric, higher = compared_metric(rows)
    paths = {"md": out_dir / "report.md", "json": out_dir / "report.json",
             "png": out_dir / "report.png"}
    atomic_write_bytes(paths["md"], markdown(rows, title).encode())
    doc = {"title": title, "metric": metric, "higher_is_better": higher,
           "rows": [{"backend": r.backend, "bench": r.bench, "status": r.status,
                     "wall_seconds": r.wall_seconds, "metrics": r.metrics, "note": r.note}
                    for r in rows]}
    atomic_write_bytes(paths["json"], json.dumps(doc, indent=2).encode())
    atomic_write_bytes(paths["png"], chart_png(rows, title))
    return paths


__all__ = ["Canvas", "Row", "chart_png", "compared_metric", "load_rows", "markdown",
           "result_record", "write_report"]
