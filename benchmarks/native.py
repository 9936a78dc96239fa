"""Benchmarks of the native core against their anchors, measured in one run on the same data.

    python benchmarks/native.py [--size-mib N] [--docs N] [--repeat N] [--clock wall|cpu]
                                [--simhash-path DIR] [--json]

| name | ours | anchor | goal |
| --- | --- | --- | --- |
| cdc | cdc_chunks, 1 thread, 64K/256K/1M n2 | pyfastcdc, same parameters | ratio >= 1.1 |
| blake3 | blake3() | blake3 package, one thread | ratio >= 1.0 (issue 19) |
| sha256 | sha256() | hashlib.sha256 | ratio >= 0.95 |
| simhash | simhash64_batch, 1,000-token docs | python-simhash (see --simhash-path) | ratio >= 10 (issue 19) |
| simhash_leonsim | the same | Leon Sim's `simhash` package (second line) | - |
| chunk_blake3_2t | chunk_and_hash(blake3), 2 threads | the same, 1 thread | ratio >= 1.7 |

Each figure is the best of ``--repeat`` runs, ours and the anchor's taken alternately (simhash:
the best of at least 9 such rounds, always on the CPU clock). Default
size is the issue's 1 GiB of random data; ``--size-mib 64`` is enough during development; on a
shared machine ``--clock cpu`` gives steadier single-thread ratios. ``--json`` prints one JSON
object as the last line: ``{"<name>": {"ours": x, "anchor": y, "unit": "...", "ratio": x/y}}``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cheng_build._native import (
    ChunkerParams,
    backends,
    blake3,
    cdc_chunks,
    chunk_and_hash,
    sha256,
    simhash64_batch,
)

SIMHASH_ROUNDS = 9  # the fewest interleaved rounds the simhash figures take the best of
GOALS = {"cdc": 1.1, "blake3": 1.0, "sha256": 0.95, "simhash": 10.0, "chunk_blake3_2t": 1.7}


def race(ours: Callable[[], object], anchor: Callable[[], object], repeat: int,
         clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Best time of each of two functions, run alternately so drifting load hits both alike."""
    t_ours: list[float] = []
    t_anchor: list[float] = []
    for _ in range(repeat):
        for fn, times in ((ours, t_ours), (anchor, t_anchor)):
            t = clock()
            fn()
            times.append(clock() - t)
    return min(t_ours), min(t_anchor)


def random_data(size: int) -> bytes:
    try:
        import numpy as np

        return np.random.default_rng(2026).bytes(size)
    except ImportError:
        return os.urandom(size)


def make_docs(n: int, tokens: int = 1000) -> list[list[str]]:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz_"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 12))) for _ in range(20_000)]
    return [rng.choices(vocab, k=tokens) for _ in range(n)]


DEFAULT_PYSIMHASH = "/tmp/pysim/x"  # where `pip install --target` put python-simhash on our machine


def import_simhash(path: str | None) -> ModuleType | None:
    """The module named ``simhash`` found first on ``path`` (or on sys.path), or None.

    Two distributions install a module of that name (python-simhash, Rust; Leon Sim's simhash,
    pure Python, the tests' oracle), so each is imported with the other's modules set aside.
    """
    def ours(name: str) -> bool:
        return name == "simhash" or name.startswith("simhash.")

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
    if path:
        sys.path.insert(0, path)
    try:
        return importlib.import_module("simhash")
    except ImportError:
        return None
    finally:
        if path:
            sys.path.remove(path)
        for k in [k for k in sys.modules if ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)


def _each_doc(fn: Callable[[list[str]], int], docs: list[list[str]]) -> list[int]:
    return [fn(d) for d in docs]


def _each_value(cls: Any, docs: list[list[str]]) -> list[int]:
    return [cls(d).value for d in docs]


def simhash_anchors(path: str | None) -> list[tuple[str, Callable[[list[list[str]]], object]]]:
    """python-simhash first (from ``path``) when it can be imported, then Leon Sim's simhash.

    Both get each document as a list of str tokens, the form our batch takes. python-simhash is
    timed through ``simhash.simhash(doc)`` per document, one thread: its batch call
    ``simhash_parallel`` is slower on one thread (measured: ~25% fewer docs/s).
    """
    found: list[tuple[str, Callable[[list[list[str]]], object]]] = []
    for where in ([path] if path else []) + [None]:
        mod = import_simhash(where)
        if mod is None:
            continue
        if hasattr(mod, "simhash"):  # python-simhash: simhash.simhash(features) -> int
            if any(name == "python-simhash" for name, _ in found):
                continue
            if hasattr(mod, "set_num_threads"):
                mod.set_num_threads(1)
            found.append(("python-simhash", partial(_each_doc, mod.simhash)))
        elif hasattr(mod, "Simhash") and not any(name.startswith("simhash (") for name, _ in found):
            found.append(("simhash (Leon Sim)", partial(_each_value, mod.Simhash)))
    if not found:
        raise SystemExit("native.py: no simhash anchor: install `simhash` or python-simhash (--simhash-path)")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="random input size (default 1024 = 1 GiB)")
    ap.add_argument("--docs", type=int, default=2000, help="1,000-token documents for simhash (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts (default 3)")
    ap.add_argument("--simhash-path", metavar="DIR",
                    default=os.environ.get("CHENG_PYSIMHASH", DEFAULT_PYSIMHASH),
                    help="where python-simhash is installed (`pip install --target DIR python-simhash`: it "
                    "cannot share an environment with the `simhash` package the tests use); it is the "
                    f"anchor when found there, Leon Sim's simhash a second line (default $CHENG_PYSIMHASH "
                    f"or {DEFAULT_PYSIMHASH})")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall (default) or cpu: process CPU time, steadier on a shared machine; "
                    "the 2-thread figure always uses the wall clock")
    ap.add_argument("--json", action="store_true", help="print the JSON object as the last line")
    args = ap.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    size = args.size_mib << 20
    data = random_data(size)
    gb = size / 1e9
    results: dict[str, dict[str, float | str]] = {}

    def record(name: str, ours: float, anchor: float, unit: str, anchor_name: str) -> None:
        results[name] = {"ours": ours, "anchor": anchor, "unit": unit, "ratio": ours / anchor}
        notes[name] = anchor_name

    notes: dict[str, str] = {}

    from pyfastcdc import FastCDC

    params = ChunkerParams()
    theirs = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size,
                     normalized_chunking=2)  # = params.normalization
    t_ours, t_anchor = race(lambda: cdc_chunks(data, params), lambda: sum(1 for _ in theirs.cut_buf(data)),
                            args.repeat, clock)
    record("cdc", gb / t_ours, gb / t_anchor, "GB/s", "pyfastcdc")

    import blake3 as blake3_pkg

    t_ours, t_anchor = race(lambda: blake3(data), lambda: blake3_pkg.blake3(data).digest(),
                            args.repeat, clock)
    record("blake3", gb / t_ours, gb / t_anchor, "GB/s", "blake3 package, 1 thread")

    t_ours, t_anchor = race(lambda: sha256(data), lambda: hashlib.sha256(data).digest(), args.repeat, clock)
    record("sha256", gb / t_ours, gb / t_anchor, "GB/s", "hashlib.sha256")

    docs = make_docs(args.docs)
    for anchor_name, anchor_fn in simhash_anchors(args.simhash_path):
        # Both are single-threaded: timed on the CPU clock whatever --clock says, as the best of
        # many short interleaved rounds (at least SIMHASH_ROUNDS), after one warm-up of each, so
        # a burst of someone else's load or a cold cache lands in a round that does not count.
        # A slow anchor is timed on a slice (~0.4 s a round); both rates are docs per second.
        anchor_fn(docs[:20])
        probe = time.process_time()
        anchor_fn(docs[:50])
        per_doc = (time.process_time() - probe) / 50
        anchor_docs = docs[: max(50, min(len(docs), int(0.4 / max(per_doc, 1e-9))))]
        simhash64_batch(docs)
        t_ours, t_anchor = race(lambda: simhash64_batch(docs), partial(anchor_fn, anchor_docs),
                                max(args.repeat, SIMHASH_ROUNDS), time.process_time)
        # The goal is against python-simhash; Leon Sim's package is always the second line.
        record("simhash" if anchor_name == "python-simhash" else "simhash_leonsim", len(docs) / t_ours,
               len(anchor_docs) / t_anchor, "docs/s", anchor_name)

    # Threads only show on the wall clock.
    t2, t1 = race(lambda: chunk_and_hash(data, algo="blake3", threads=2),
                  lambda: chunk_and_hash(data, algo="blake3", threads=1), args.repeat)
    record("chunk_blake3_2t", gb / t2, gb / t1, "GB/s", "ours, 1 thread")

    print(f"native benchmarks: {args.size_mib} MiB random input, {args.docs} docs, best of {args.repeat} "
          f"({args.clock} clock; simhash best of {max(args.repeat, SIMHASH_ROUNDS)} on the CPU clock); "
          f"backends {backends()}; {os.cpu_count()} CPUs")
    print(f"{'name':<16} {'ours':>10} {'anchor':>10} {'unit':<7} {'ratio':>6} {'goal':>6}  anchor")
    for name, r in results.items():
        goal = GOALS.get(name)
        flag = "" if goal is None else " [ok]" if float(r["ratio"]) >= goal else " [BELOW]"
        goal_s = "-" if goal is None else f"{goal:.2f}"
        print(f"{name:<16} {float(r['ours']):>10.3f} {float(r['anchor']):>10.3f} {r['unit']:<7} "
              f"{float(r['ratio']):>6.2f} {goal_s:>6}  {notes[name]}{flag}")
    if "simhash" not in results:
        print(f"simhash: python-simhash (the goal's anchor) not found at {args.simhash_path}; install it "
              "there with `pip install --target DIR python-simhash` and pass --simhash-path DIR")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
