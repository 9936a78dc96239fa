#!/usr/bin/env python3
"""A stand-in Cheng compiler for the tests (never installed; the real one is macOS/arm64 only).

It behaves like the real driver where chengc can observe it: it takes ``<file.cheng>`` and
``--key:value`` flags, honours ``--name`` (bare -> ``artifacts/chengc/<name>``) and ``--out``,
resolves ``import cheng/<pkg>/<path>`` itself through ``PKG_ROOT``/``PKG_ROOTS`` with the
compiler's rules (written independently of chengc's walker, so the two cross-check), reads every
file it imports, and writes a deterministic artifact made of them plus its flags and
``SOURCE_DATE_EPOCH``.

Switches (environment): ``FAKE_CHENGC_NONDETERMINISTIC=1`` mixes the clock, the pid and random
bytes into the artifact; ``FAKE_CHENGC_FAIL=<code>`` fails with that exit code. Every run appends
one line (its argv and cwd, JSON) to ``calls.log`` beside this script, so tests can count runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path


def roots() -> list[Path]:
    out: list[str] = []
    if os.environ.get("PKG_ROOT"):
        out.append(os.environ["PKG_ROOT"])
    v = os.environ.get("PKG_ROOTS", "")
    seps = "[,;]" if ("," in v or ";" in v) else ":"
    out += [x for x in re.split(seps, v) if x.strip()]
    if not out:
        out.append(os.path.join(os.environ.get("HOME", "~"), ".cheng-packages"))
    return [Path(x) for x in out]


def package_id(root: Path) -> str | None:
    try:
        import tomllib

        return tomllib.loads((root / "cheng-package.toml").read_text()).get("package_id")
    except (OSError, ValueError):
        return None


def resolve(imp: str) -> Path | None:
    segs = imp.split("/")
    pkg = segs[1]
    rest = "/".join(segs[2:]) or pkg
    for root in roots():
        dirs = [root] if package_id(root) == f"pkg://cheng/{pkg}" else []
        dirs += [root / f"cheng-{pkg}", root / pkg]
        for d in dirs:
            for inner in ("src/", "cheng/", ""):
                f = d / f"{inner}{rest}.cheng"
                if f.is_file():
                    return f
    return None


def imports(text: str) -> list[str]:
    found: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^\s*(import|from)\s+(.*)$", line)
        if not m:
            continue
        body = re.split(r"#|//", m.group(2))[0].strip()
        if m.group(1) == "from":
            found.append(body.split(" import ")[0].strip())
            continue
        for item in re.split(r",(?![^\[]*\])", body):
            item = re.sub(r"\s+as\s+\S+$", "", item.strip())
            if "[" in item:
                head, tail = item.split("[", 1)
                found += [head + s.strip() for s in tail.rstrip("]").split(",") if s.strip()]
            elif item:
                found.append(item)
    return found


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    with open(here / "calls.log", "a") as log:
        log.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")
    if os.environ.get("FAKE_CHENGC_FAIL"):
        print("fake-chengc: error: failing as asked", file=sys.stderr)
        return int(os.environ["FAKE_CHENGC_FAIL"])
    source = next((a for a in argv if not a.startswith("-")), None)
    flags = [a for a in argv if a.startswith("-")]
    opts = dict(a[2:].split(":", 1) if ":" in a else (a[2:], "") for a in flags)
    if source is None:
        print("fake-chengc: no input file", file=sys.stderr)
        return 2
    name = opts.get("name") or Path(source).stem
    default = Path(name) if "/" in name else Path("artifacts/chengc") / name
    out = Path(opts["out"]) if opts.get("out") else default

    seen: dict[str, Path] = {"<entry>": Path(source)}
    todo = [Path(source)]
    while todo:
        text = todo.pop().read_text()
        for imp in imports(text):
            if imp.startswith("std/") or imp in seen:
                continue
            f = resolve(imp)
            if f is None:
                print(f"fake-chengc: cannot resolve import {imp}", file=sys.stderr)
                return 1
            seen[imp] = f
            todo.append(f)

    h = hashlib.sha256()
    body = [b"FAKECHENG1\n", f"flags {' '.join(a for a in flags if not a.startswith('--out'))}\n".encode(),
            f"epoch {os.environ.get('SOURCE_DATE_EPOCH', '')}\n".encode()]
    for imp in sorted(seen):
        data = seen[imp].read_bytes()
        h.update(data)
        body.append(f"== {imp} {len(data)} {hashlib.sha256(data).hexdigest()}\n".encode())
        body.append(data)
    if os.environ.get("FAKE_CHENGC_NONDETERMINISTIC") == "1":
        body.append(f"\nbuilt {time.time_ns()} by {os.getpid()} ".encode() + os.urandom(8).hex().encode())
    body.append(f"\nend {h.hexdigest()}\n".encode())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(body))
    out.chmod(0o755)
    print(f"fake-chengc: compiled {len(seen)} modules")
    if "run" in opts:
        print(f"fake-chengc: running {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
