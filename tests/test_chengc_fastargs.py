"""chengc's argparse-free parse of the usual command line against argparse itself (the oracle):
whenever the fast parse answers, its answer is argparse's, with nothing left over as unknown."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cli import chengc

FLAGS = sorted(chengc._OURS | chengc._COMPILER)
VALUES = ["x", "", "a:b", "a=b", "stable", "lts", "edge", "toml", "json", "yaml", "bogus", "-x", "--release",
          "app.cheng", "dir/f.toml", "~/y", " sp ace", "1"]


def _token() -> st.SearchStrategy[list[str]]:
    flag = st.sampled_from([*FLAGS, "--help", "-h", "--", "--lok", "--Lock", "--x.y", "-", "--nope"])
    value = st.sampled_from(VALUES)
    return st.one_of(
        st.tuples(flag, st.sampled_from([":", "="]), value).map(lambda t: ["".join(t)]),
        st.tuples(flag, value).map(list),
        flag.map(lambda f: [f]),
        value.map(lambda v: [v]),
    )


def _oracle(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    ns, unknown = chengc._parser().parse_known_cheng(argv)
    return vars(ns), unknown


@settings(max_examples=400, deadline=None)
@given(st.lists(_token(), max_size=6).map(lambda parts: [t for p in parts for t in p]))
def test_fast_parse_agrees_with_argparse(argv: list[str]) -> None:
    fast = chengc._fast_args(argv)
    if fast is None:
        return  # argparse decides (and reports) these
    want, unknown = _oracle(argv)
    assert unknown == []
    assert vars(fast) == want


def test_the_usual_command_lines_take_the_fast_path() -> None:
    usual = [
        ["app.cheng", "--lock:cheng.lock.toml", "--registry:registry.jsonl"],
        ["app.cheng", "--manifest=cheng-package.toml", "--channel", "lts", "--release"],
        ["--name:app", "app.cheng", "--sign:builder.json", "--explain"],
    ]
    for argv in usual:
        fast = chengc._fast_args(argv)
        assert fast is not None, argv
        assert vars(fast) == _oracle(argv)[0]


def test_everything_else_goes_to_argparse() -> None:
    for argv in (["--help"], ["a.cheng", "b.cheng"], ["a.cheng", "--lock"], ["a.cheng", "--release=1"],
                 ["a.cheng", "--channel:beta"], ["a.cheng", "--unknown-flag"], ["a.cheng", "--", "--x"],
                 ["a.cheng", "--lock", "-x"], ["a.cheng", "--lok:x"]):
        assert chengc._fast_args(argv) is None, argv
