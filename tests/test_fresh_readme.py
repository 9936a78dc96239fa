"""README.md cannot drift from the product: its commands are run here as a newcomer would.

- "A first session" is extracted block by block and run in a temp HOME beside a checkout-like
  directory (``.venv`` and ``examples/``), the second terminal's ``serve`` in the background; its
  peer address replaces the ``PEER=`` line, as the user pastes it.
- The main command runs in a clean ``git clone`` of this checkout with
  ``CIS_SANDBOX=namespaces``: the closest stand-in for a machine without bubblewrap.
- The list of commands that accept ``--format:json`` is the parsers' own.
"""

from __future__ import annotations

import importlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_parts import require_part

from cheng_build.cli.args import Parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TOOLS = {"cheng-pkg": "cheng_build.cli.pkg", "cheng-registry": "cheng_build.cli.registry",
         "cis": "cheng_build.cli.cis"}


def sh_block_after(text: str, start: int) -> tuple[str, int]:
    """The body of the first ```sh block at or after ``start``, and where it ends."""
    m = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M).search(text, start)
    assert m is not None, "README.md: a marker is not followed by a ```sh block"
    return m.group(1), m.end()


def first_session_blocks() -> list[tuple[str, str]]:
    """[(terminal, script)] of "A first session", in order, by their <!-- first-session:... --> marks."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"<!-- first-session:(terminal-[12]) -->", text):
        body, _ = sh_block_after(text, m.end())
        out.append((m.group(1), body))
    return out


def main_command() -> str:
    """The main job's command: the first ```sh block under "## Two commands"."""
    text = README.read_text(encoding="utf-8")
    body, _ = sh_block_after(text, text.index("## Two commands"))
    return body.strip()


# --- --format:json ------------------------------------------------------------------------------


def json_commands(tool: str) -> list[str]:
    """The subcommands of ``tool`` whose ``--format`` accepts json, from their real parsers."""
    module = importlib.import_module(TOOLS[tool])
    found = []
    for name, sub in module.COMMANDS.items():
        parser = Parser(prog=f"{tool} {name}")
        importlib.import_module(sub.module).register(name, parser)
        fmt = [a for a in parser._actions if "--format" in a.option_strings]
        if fmt and (fmt[0].choices is None or "json" in fmt[0].choices):
            found.append(name)
    return found


def test_readme_lists_exactly_the_commands_with_format_json() -> None:
    text = README.read_text(encoding="utf-8")
    listed: dict[str, list[str]] = {}
    block = text[text.index("<!-- format-json -->"):].split("\n\n", 1)[0]
    for m in re.finditer(r"^- `([a-z-]+)`: (.*?)(?=^- |\Z)", block, re.M | re.S):
        listed[m.group(1)] = sorted(w.strip() for w in m.group(2).split(","))
    assert listed == {tool: sorted(json_commands(tool)) for tool in TOOLS}


# --- the first session --------------------------------------------------------------------------


def _checkout_like(tmp_path: Path) -> Path:
    """A directory the session can start in: .venv (this interpreter's) and examples/."""
    venv = Path(sys.prefix)
    if sys.prefix == sys.base_prefix or not (venv / "bin" / "activate").is_file():
        require_part("a virtual environment running the tests", "scripts/test.sh makes .venv")
    if not (ROOT / "examples" / "first-session").is_dir():
        require_part("examples/ (a git checkout)", "run the tests from a git clone")
    co = tmp_path / "checkout"
    co.mkdir()
    (co / ".venv").symlink_to(venv)
    shutil.copytree(ROOT / "examples", co / "examples", symlinks=True)
    return co


def _session_env(home: Path) -> dict[str, str]:
    # PYTHONPATH stays: a developer testing the checkout (not the wheel) means the checkout.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKG_", "VIRTUAL_ENV", "CHENG_"))}
    # The session's own home; the run database and trust dir stay the test session's (conftest).
    env.update(HOME=str(home), PKG_TRUST_DIR=os.environ.get("PKG_TRUST_DIR", str(home / "trust")))
    return env


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"serve printed nothing in {timeout} s")
        return proc.stdout.readline().strip()
    finally:
        sel.close()


@pytest.mark.network
@pytest.mark.slow
def test_the_first_session_runs_as_written(tmp_path: Path) -> None:
    blocks = first_session_blocks()
    assert [t for t, _ in blocks] == ["terminal-1", "terminal-2", "terminal-1"]
    (t1a, serve_block, t1b) = (b for _, b in blocks)
    assert re.search(r"^PEER=\S+", t1b, re.M), "the fetch block no longer sets PEER"
    co = _checkout_like(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    sync = tmp_path / "sync"
    sync.mkdir()
    # Terminal 1 is one shell (its cd and exports carry on); where the user switches to terminal 2
    # it waits for the address serve prints, which then stands where the user pastes it.
    script = ("set -eo pipefail\n" + t1a
              + f'touch "{sync}/t1a.done"\n'
              + f'for _ in $(seq 1 1800); do [ -s "{sync}/peer" ] && break; sleep 0.1; done\n'
              + re.sub(r"^PEER=\S+", f'PEER=$(head -n1 "{sync}/peer")', t1b, flags=re.M))
    env = _session_env(home)
    t1 = subprocess.Popen(["bash", "-c", script], cwd=co, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    serve: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 300
        while not (sync / "t1a.done").exists():
            assert t1.poll() is None, f"terminal 1 failed before serve: {t1.communicate()}"
            assert time.monotonic() < deadline, "terminal 1 did not reach the serve step"
            time.sleep(0.1)
        serve = subprocess.Popen(["bash", "-c", serve_block], cwd=co, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        addr = _first_line(serve, 120)
        assert re.fullmatch(r"/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW\w+", addr), addr
        (sync / "peer").write_text(addr + "\n")
        out, err = t1.communicate(timeout=600)
    finally:
        if t1.poll() is None:
            t1.kill()
            t1.wait()
        if serve is not None and serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)  # the user's Ctrl-C in terminal 2
            try:
                serve.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.communicate()
    assert t1.returncode == 0, (out[-4000:], err[-4000:])
    lines = out.splitlines()
    assert "ok" in lines  # cheng-pkg verify
    assert any(ln.startswith("* head  bafy") and "stable  epoch=1  author=node:me" in ln for ln in lines)
    # The consumer's cache was empty: the package crossed the network.
    assert any(re.match(r"^pkg://cheng/fs p2p /", ln) for ln in lines), out
    assert any(ln.startswith("ok: 3 inputs from 1 package roots") for ln in lines), out
    assert (home / "cheng-first" / "app" / "artifacts" / "chengc" / "app.car").stat().st_size > 0
    assert any("SucceededWithDebt" in ln for ln in lines), out
    assert "Traceback" not in err and "Warning" not in err, err
    assert serve.returncode is not None


# --- the main command, in a clean clone --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_main_command_in_a_clean_clone_without_bubblewrap(tmp_path: Path) -> None:
    """README's main command on a fresh clone, with the namespace sandbox bubblewrap's absence
    leaves (CIS_SANDBOX=namespaces). It builds a new venv and the native library from scratch."""
    git = shutil.which("git")
    if git is None:
        require_part("git", "scripts/test.sh: apt-get install git")
    cmd = main_command()
    assert cmd.startswith("python3 -m venv .venv") and "cis run closedloop" in cmd, cmd
    clone = tmp_path / "clone"
    r = subprocess.run([git, "clone", "-q", "--no-hardlinks", str(ROOT), str(clone)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PKG_", "VIRTUAL_ENV", "PYTHONPATH", "CHENG_", "CIS_"))}
    env.update(CIS_SANDBOX="namespaces", CIS_HOME=str(tmp_path / "cis"))
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT)))  # not this checkout's venv
    r = subprocess.run(["bash", "-c", cmd], cwd=clone, env=env, capture_output=True, text=True,
                       timeout=1700, check=False)
    assert r.returncode == 0, (r.stdout[-6000:], r.stderr[-6000:])
    assert "sandbox namespaces" in r.stdout + r.stderr, r.stdout[-2000:]
