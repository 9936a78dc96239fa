"""cis.toml: the issue's format loads; every broken rule is rejected with the task named."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomlkit
from helpers_cis import cis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cheng_build.cis.dag.errors import DagError
from cheng_build.cis.dag.model import Action, DagPolicy, LevelKind, dag_to_json
from cheng_build.cis.dag.toml_io import dag_from_mapping, dump_dag, load_dag
from cheng_build.cis.dag.validate import validate_dag

ISSUE_EXAMPLE = '''
name = "demo"
policy = "AllowDebt"
allow = ["cargo", "/bin/sh"]
[[tasks]]
idx = 0
name = "build"
deps = []
exec = { cmd = ["cargo", "build"], env = { RUST_LOG = "info" }, timeout = 600 }
level = { Mechanical = { retry = 3 } }
on_ambiguity = "AutoBest"
inputs = ["Cargo.toml"]
outputs = ["target/debug/app"]
rollback = ["cargo", "clean"]
idempotent = true
'''


def _task(i: int, **over: object) -> dict[str, object]:
    t: dict[str, object] = {"idx": i, "name": f"t{i}", "deps": [i - 1] if i else [],
                            "exec": {"cmd": ["true"]}}
    t.update(over)
    return t


def _write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(tomlkit.dumps(doc))
    return path


def test_issue_example_loads(tmp_path: Path) -> None:
    p = tmp_path / "cis.toml"
    p.write_text(ISSUE_EXAMPLE)
    dag = load_dag(p)
    t = dag.tasks[0]
    assert dag.policy is DagPolicy.ALLOW_DEBT and dag.allow == ("cargo", "/bin/sh")
    assert t.exec.cmd == ("cargo", "build") and t.exec.env == (("RUST_LOG", "info"),)
    assert t.exec.timeout == 600 and t.level.kind is LevelKind.MECHANICAL and t.level.retry == 3
    assert t.rollback == ("cargo", "clean") and t.outputs == ("target/debug/app",)
    assert dag.base_dir == str(tmp_path)


@pytest.mark.parametrize("level,kind", [
    ({"Recommended": {"default": "skip", "timeout": 5}}, LevelKind.RECOMMENDED),
    ("Confirmed", LevelKind.CONFIRMED),
    ({"Arbitrated": {"stakeholders": ["ops"]}}, LevelKind.ARBITRATED),
])
def test_levels_parse(level: object, kind: LevelKind) -> None:
    dag = dag_from_mapping({"name": "x", "tasks": [_task(0, level=level)]})
    assert dag.tasks[0].level.kind is kind
    if kind is LevelKind.RECOMMENDED:
        assert dag.tasks[0].level.default is Action.SKIP and dag.tasks[0].level.timeout == 5


def test_dump_round_trips(tmp_path: Path) -> None:
    p = tmp_path / "cis.toml"
    p.write_text(ISSUE_EXAMPLE)
    dag = load_dag(p)
    q = tmp_path / "again.toml"
    q.write_text(dump_dag(dag))
    assert dag_to_json(load_dag(q)) == dag_to_json(dag)


# --- bad DAGs: each rejected with a message naming the task ---------------------------------------

BAD_CASES = {
    "bad idx": ({"name": "x", "tasks": [_task(0), {**_task(1), "idx": 5}]},
                "task 1 't1': idx 5 does not equal its position 1"),
    "forward dep": ({"name": "x", "tasks": [_task(0), _task(1, deps=[2]), _task(2)]},
                    "task 1 't1': depends on task 2"),
    "self dep": ({"name": "x", "tasks": [_task(0, deps=[0])]}, "task 0 't0': depends on task 0"),
    "257 tasks": ({"name": "x", "tasks": [_task(i) for i in range(257)]},
                  "dag: 257 tasks, at most 256 allowed"),
    "shell string": ({"name": "x", "tasks": [_task(0, exec={"cmd": "make all && make test"})]},
                     "task 0 't0': 'exec.cmd' is a string"),
    "shell in argv0": ({"name": "x", "tasks": [_task(0, exec={"cmd": ["make all"]})]},
                       "task 0 't0': 'exec.cmd' looks like a shell string"),
    "unknown task key": ({"name": "x", "tasks": [_task(0, colour="red")]},
                         "task 0 't0': unknown key 'colour'"),
    "unknown exec key": ({"name": "x", "tasks": [_task(0, exec={"cmd": ["true"], "shell": True})]},
                         "task 0 't0': unknown key 'shell' in exec"),
    "unknown top key": ({"name": "x", "parallel": 3, "tasks": [_task(0)]},
                        "dag: unknown key 'parallel'"),
    "not allowed": ({"name": "x", "allow": ["cargo"], "tasks": [_task(0)]},
                    "task 0 't0': program 'true' is not on the allow list"),
    "env not strings": ({"name": "x", "tasks": [_task(0, exec={"cmd": ["true"], "env": {"A": 1}})]},
                        "task 0 't0': 'exec.env' must be a table of string values"),
    "bad policy": ({"name": "x", "policy": "Whatever", "tasks": [_task(0)]},
                   "dag: 'policy' must be one of AllSuccess | FirstSuccess | AllowDebt"),
    "duplicate name": ({"name": "x", "tasks": [_task(0), {**_task(1), "name": "t0"}]},
                       "task 1 't0': name already used by task 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_dag_rejected_naming_task(case: str, tmp_path: Path) -> None:
    doc, expected = BAD_CASES[case]
    p = _write(tmp_path / "cis.toml", doc)
    with pytest.raises(DagError) as err:
        load_dag(p)
    assert expected in err.value.what


def test_cli_rejects_bad_file_exit_2_first_line(tmp_path: Path) -> None:
    doc, _expected = BAD_CASES["forward dep"]
    p = _write(tmp_path / "cis.toml", doc)
    r = cis(tmp_path / "home", "run", str(p))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("run: task 1 't1': depends on task 2")
    assert "Traceback" not in r.stderr


def test_not_toml_is_clear(tmp_path: Path) -> None:
    p = tmp_path / "cis.toml"
    p.write_text("name = [unclosed")
    r = cis(tmp_path / "home", "run", str(p))
    assert r.returncode == 2 and "not valid TOML" in r.stderr.splitlines()[0]


# --- hypothesis: random breakage of a valid DAG is always a DagError naming the task --------------

_n = st.integers(min_value=1, max_value=12)


@st.composite
def broken_dags(draw: st.DrawFn) -> tuple[dict[str, object], int | None]:
    n = draw(_n)
    tasks = [_task(i) for i in range(n)]
    victim = draw(st.integers(0, n - 1))
    kind = draw(st.sampled_from(["idx", "forward", "shell", "unknown", "too_many", "neg_dep"]))
    t = dict(tasks[victim])
    if kind == "idx":
        t["idx"] = draw(st.integers(-5, 300).filter(lambda v, victim=victim: v != victim))
    elif kind == "forward":
        t["deps"] = [draw(st.integers(victim, victim + 10))]
    elif kind == "shell":
        words = draw(st.lists(st.text("abcxyz-_", min_size=1, max_size=6), min_size=2, max_size=4))
        t["exec"] = {"cmd": " ".join(words)}
    elif kind == "unknown":
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
            lambda k: k not in {"idx", "name", "deps", "exec", "level", "on_ambiguity", "inputs",
                                "outputs", "rollback", "idempotent", "ignorable"}))
        t[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
    elif kind == "neg_dep":
        t["deps"] = [draw(st.integers(-100, -1))]
    else:
        tasks = [_task(i) for i in range(draw(st.integers(257, 300)))]
        return {"name": "x", "tasks": tasks}, None
    tasks[victim] = t
    return {"name": "x", "tasks": tasks}, victim


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_dags())
def test_hypothesis_broken_dags_rejected(case: tuple[dict[str, object], int | None]) -> None:
    doc, victim = case
    # Through real TOML text (the 257-task case skips it: tomlkit is slow on huge arrays).
    data = tomllib.loads(tomlkit.dumps(doc)) if victim is not None else doc
    with pytest.raises(DagError) as err:
        validate_dag(dag_from_mapping(data))
    what = err.value.what
    if victim is None:
        assert "at most 256" in what
    else:
        assert what.startswith(f"task {victim}"), what
    assert err.value.exit_code == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=3), min_size=1, max_size=40))
def test_hypothesis_valid_dags_accepted(dep_lists: list[list[int]]) -> None:
    tasks = []
    for i, deps in enumerate(dep_lists):
        ok = sorted({d % i for d in deps}) if i else []
        tasks.append(_task(i, deps=ok))
    dag = dag_from_mapping(json.loads(json.dumps({"name": "ok", "tasks": tasks})))
    validate_dag(dag)
    assert all(d < t.idx for t in dag.tasks for d in t.deps)
