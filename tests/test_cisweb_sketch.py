"""Sketches: intent parsing, manifest readers, capability detection, planning, and ``cis run
"<sketch>"`` end to end on the voxel example (CPU really built, tested and benchmarked)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers_parts import not_applicable, require_part
from hypothesis import given, settings
from hypothesis import strategies as st

from cheng_build.cis.targets import capabilities, intent, manifests, report, sketch
from cheng_build.cis.targets.capabilities import Capabilities, Capability
from cheng_build.cis.targets.manifests import Verb

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sketch-gpu"


def _caps(**present: bool) -> Capabilities:
    names = ("cpu", "cuda", "cuda-toolkit", "metal")
    return Capabilities({n: Capability(n, present.get(n.replace("-", "_"), n == "cpu"),
                                       detail="test" if present.get(n.replace("-", "_"), n == "cpu")
                                       else "", reason=f"no {n} in this test") for n in names})


# --- intent ------------------------------------------------------------------------------------


def test_the_seed_sketch_in_chinese() -> None:
    i = intent.parse_intent("测试体素算法，cuda和metal对比")
    assert i.verbs == {"test", "compare"}
    assert i.backends == ("cuda", "metal")
    assert "voxel" in i.names


def test_an_english_sketch() -> None:
    i = intent.parse_intent("bench voxel cuda vs cpu")
    assert i.verbs == {"bench", "compare"} and i.backends == ("cuda", "cpu") and i.names == ("voxel",)
    assert intent.parse_intent("编译 gpu").verbs == {"build"}
    assert intent.parse_intent("编译 gpu").backends == ("gpu",)
    assert intent.parse_intent("no-such-target").empty


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_intent_parsing_never_fails_and_stays_in_its_vocabulary(text: str) -> None:
    i = intent.parse_intent(text)
    assert i.verbs <= {"test", "bench", "compare", "build"}
    assert set(i.backends) <= {"cuda", "metal", "cpu", "gpu"}
    assert len(set(i.backends)) == len(i.backends)


# --- manifests ---------------------------------------------------------------------------------


def test_cmake_example_gives_three_backends_with_their_options() -> None:
    p = manifests.read_cmake(EXAMPLE / "CMakeLists.txt")
    assert p.name == "voxel" and p.backends == ("cpu", "cuda", "metal")
    conf = {c.backend: c.argv for c in p.commands if c.label == "configure"}
    assert "-DVOXEL_CUDA=ON" in conf["cuda"] and "-DVOXEL_METAL=OFF" in conf["cuda"]
    assert "-DVOXEL_CUDA=OFF" in conf["cpu"]
    assert [c.argv for c in p.select(Verb.BENCH, "metal")] == [("build-cis/metal/voxel_bench",)]
    assert p.select(Verb.TEST, "cpu")[0].argv[0] == "ctest"


def test_cargo_features_and_benches(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text(
        '[package]\nname = "vox"\nversion = "0.1.0"\n\n[features]\ndefault = []\n'
        'cuda = []\nmetal = []\n\n[[bench]]\nname = "smooth"\nharness = false\n')
    p = manifests.read_cargo(tmp_path / "Cargo.toml")
    assert p.backends == ("cpu", "cuda", "metal")
    bench = p.select(Verb.BENCH, "cuda")[0]
    assert bench.argv[:4] == ("cargo", "bench", "--bench", "smooth")
    assert "--features" in bench.argv and "cuda" in bench.argv and "target/cis-cuda" in bench.argv
    assert "--release" not in bench.argv  # cargo bench refuses it
    assert "--features" not in p.select(Verb.BUILD, "cpu")[0].argv


def test_pyproject_package_json_and_cheng_manifests(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "vx"\ndependencies = ["numpy"]\n[project.optional-dependencies]\n'
        'cuda = ["cupy"]\ntest = ["pytest"]\n')
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "smooth.py").write_text("print('{}')\n")
    (tmp_path / "package.json").write_text(json.dumps(
        {"name": "vxjs", "scripts": {"build": "tsc", "test": "node t.js", "bench:metal": "x",
                                      "bench": "y", "lint": "z"}}))
    (tmp_path / "cheng-package.toml").write_text('package_id = "pkg://cheng/vox"\n')
    (tmp_path / "main.cheng").write_text("fn main(): int32 =\n    return 0\n")
    (tmp_path / "lib.cheng").write_text("fn helper(): int32 = 1\n")
    projects, bad = manifests.read_projects(tmp_path)
    assert not bad
    by = {p.kind: p for p in projects}
    assert by["python"].backends == ("cpu", "cuda")
    assert dict(by["python"].select(Verb.TEST, "cuda")[0].env) == {"CIS_BACKEND": "cuda"}
    assert by["python"].select(Verb.BENCH, "cpu")[0].argv[1] == "benchmarks/smooth.py"
    assert by["node"].backends == ("cpu", "metal")
    assert by["node"].select(Verb.BENCH, "metal")[0].argv == ("npm", "run", "--silent", "bench:metal")
    assert all(c.label != "lint" for c in by["node"].commands)
    assert [c.argv for c in by["cheng"].commands] == [("chengc", "main.cheng")]


def test_an_unreadable_manifest_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text("[package\nname=")
    projects, bad = manifests.read_projects(tmp_path)
    assert projects == [] and bad[0].path.name == "Cargo.toml" and "TOML" in bad[0].reason


@given(st.text(max_size=300))
@settings(max_examples=100, deadline=None)
def test_cmake_reader_survives_any_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    d = tmp_path_factory.mktemp("cm")
    (d / "CMakeLists.txt").write_text(text, encoding="utf-8", errors="replace")
    p = manifests.read_cmake(d / "CMakeLists.txt")
    assert p.backends[0] == "cpu" and set(p.backends) <= {"cpu", "cuda", "metal"}


# --- capabilities ------------------------------------------------------------------------------


def test_cuda_absence_is_detected_cleanly_with_nvml_reason() -> None:
    cap = capabilities.detect_cuda()
    if cap.present:  # a machine with an NVIDIA driver: the details are real
        assert cap.devices and cap.driver and all(d.memory_mib > 0 for d in cap.devices)
        not_applicable(f"an NVIDIA GPU is present: {cap.detail}")
    assert "NVML" in cap.reason or "driver" in cap.reason
    assert cap.line().startswith("cuda: absent (")


def test_metal_cpu_and_toolkit_probes(tmp_path: Path) -> None:
    assert not capabilities.detect_metal(system="Linux").present
    m = capabilities.metal_from_profile([{"sppci_model": "Apple M4", "spdisplays_mtlgpufamilysupport":
                                          "spdisplays_metal3"}])
    assert m.present and "Apple M4" in m.detail
    assert not capabilities.metal_from_profile([{"sppci_model": "old"}]).present
    cpu = capabilities.detect_cpu("model name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2 fma\n")
    assert cpu.present and "Test CPU" in cpu.detail and "avx2 fma" in cpu.detail
    (tmp_path / "nvcc").write_text("#!/bin/sh\n")
    (tmp_path / "nvcc").chmod(0o755)
    assert capabilities.detect_cuda_toolkit(str(tmp_path)).present
    assert not capabilities.detect_cuda_toolkit(str(tmp_path / "none")).present


# --- planning ----------------------------------------------------------------------------------


def test_absent_capabilities_become_skips_with_reasons_and_follow_their_backend() -> None:
    plan = sketch.plan_sketch("测试体素算法，cuda和metal对比", EXAMPLE, caps=_caps(cuda_toolkit=True))
    assert plan is not None
    names = [t.name for t in plan.dag.tasks]
    assert names[-1] == "compare" and "bench-voxel_bench-cpu" in names  # cpu baseline
    skipped = {plan.dag.tasks[i].name: why for i, why in plan.skips.items()}
    assert "build-cuda" not in skipped  # nvcc is there: the CUDA build runs
    assert skipped["test-cuda"] == "needs cuda: no cuda in this test"
    assert skipped["bench-voxel_bench-metal"].startswith("needs metal")
    assert all(not n.endswith("-cpu") for n in skipped)
    # Every dependency points down, benches run one after another, compare comes last.
    for t in plan.dag.tasks:
        assert all(d < t.idx for d in t.deps)
    benches = [t for t in plan.dag.tasks if t.name.startswith("bench-")]
    for a, b in itertools.pairwise(benches):
        assert a.idx in b.deps
    lines = sketch.preview(plan, "x")
    assert any(line.strip().startswith("cuda: absent (no cuda") for line in lines)
    assert any("SKIP: needs metal" in line for line in lines)


def test_with_every_capability_nothing_is_skipped() -> None:
    plan = sketch.plan_sketch("bench voxel gpu", EXAMPLE,
                              caps=_caps(cuda=True, cuda_toolkit=True, metal=True))
    assert plan is not None and plan.skips == {}
    assert {t.name for t in plan.dag.tasks if t.name.startswith("bench")} == {
        "bench-voxel_bench-cuda", "bench-voxel_bench-metal"}


def test_no_intent_is_no_match_and_a_missing_project_says_what_it_looked_for(tmp_path: Path) -> None:
    assert sketch.plan_sketch("frobnicate", EXAMPLE, caps=_caps()) is None
    with pytest.raises(Exception) as exc:
        sketch.plan_sketch("bench it", tmp_path, caps=_caps())
    assert "no project manifest" in str(exc.value) and "Cargo.toml" in exc.value.why  # type: ignore[attr-defined]
    err = sketch.no_match_error("closedlop", EXAMPLE, ["closedloop"])
    assert err.exit_code == 2 and "cis run closedloop" in (err.how or "")
    assert "voxel_bench" in (err.how or "")


# --- report ------------------------------------------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    assert len(raw) == h * (1 + 3 * w)
    return w, h, raw


def test_report_table_and_chart(tmp_path: Path) -> None:
    res = tmp_path / "r"
    res.mkdir()
    for b, v in (("cpu", 50.0), ("cuda", 400.0)):
        rec = report.result_record(b, "vb", ["x"], 0, 0.5, f'noise\n{{"mvox_per_s": {v}}}\n', "")
        (res / f"{b}--vb.json").write_text(json.dumps(rec))
    rows = report.load_rows(res, [("cpu", "vb"), ("cuda", "vb"), ("metal", "vb")],
                            {"metal": "needs metal: not macOS"})
    assert [r.status for r in rows] == ["measured", "measured", "skipped"]
    assert report.compared_metric(rows) == ("mvox_per_s", True)
    md = report.markdown(rows, "t")
    assert "| cuda | vb | measured | 0.500 | 400 | 1.00x |" in md
    assert "| cpu | vb | measured | 0.500 | 50 | 0.12x |" in md
    assert "needs metal: not macOS" in md
    paths = report.write_report(res, rows, "voxel: cpu vs cuda")
    w, h, raw = _png_pixels(paths["png"].read_bytes())
    assert w == 720 and h > 100
    green = bytes((118, 185, 0))
    assert green in raw and bytes((66, 133, 244)) in raw  # both bars drawn in their colors


@given(st.text(max_size=200))
@settings(max_examples=100, deadline=None)
def test_result_record_takes_only_a_json_object_line(out: str) -> None:
    rec = report.result_record("cpu", "b", [], 0, 1.0, out, "")
    assert isinstance(rec["metrics"], dict)


# --- end to end --------------------------------------------------------------------------------


def test_cis_run_the_seed_sketch_on_the_voxel_example(tmp_path: Path) -> None:
    if shutil.which("cmake") is None or shutil.which("cc") is None:
        require_part("cmake and a C compiler", "scripts/test.sh: apt-get install cmake build-essential")
    proj = tmp_path / "voxel"
    shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("build-cis", "cis-results"))
    # PATH without /usr/local/bin: no nvcc, so the CUDA build is skipped too (it takes ~25 s).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIS_", "PKG_"))}
    env.update(PYTHONPATH=str(REPO), CIS_HOME=str(tmp_path / "cis"), PATH="/usr/bin:/bin")
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "run", "测试体素算法，cuda和metal对比"],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "capabilities:" in r.stderr and "cuda-toolkit: absent (nvcc not found" in r.stderr
    assert "SKIP: needs cuda-toolkit" in r.stderr
    (report_md,) = proj.glob("cis-results/*/report.md")
    md = report_md.read_text()
    assert "| cpu | voxel_bench | measured |" in md
    assert "| cuda | voxel_bench | skipped |" in md and "| metal | voxel_bench | skipped |" in md
    _png_pixels((report_md.parent / "report.png").read_bytes())
    status = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "status", "--format:json"],
                            cwd=proj, env=env, capture_output=True, text=True, timeout=60)
    rid = json.loads(status.stdout)[0]["run_id"]
    status = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "status", rid,
                             "--format:json"], cwd=proj, env=env, capture_output=True, text=True,
                            timeout=60)
    tasks = {t["name"]: t for t in json.loads(status.stdout)["tasks"]}
    assert tasks["test-cpu"]["state"] == "Completed"
    assert tasks["bench-voxel_bench-cpu"]["state"] == "Completed"
    assert tasks["test-cuda"]["state"] == "Skipped"
    assert tasks["test-cuda"]["note"].startswith("skipped: ")
    # The preview is kept with the run (the web view shows it).
    from cheng_build.cis.run import control

    evs = control.events(control.open_store(tmp_path / "cis"), rid)
    (preview,) = [data["lines"] for _i, _x, _t, kind, data in evs if kind == "preview"]
    assert any(line.strip().startswith("cuda: absent") for line in preview)


def test_a_sketch_that_matches_nothing_exits_2_and_suggests(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIS_", "PKG_"))}
    env.update(PYTHONPATH=str(REPO), CIS_HOME=str(tmp_path / "cis"))
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "run", "frobnicate widgets"],
                       cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "run: nothing matches 'frobnicate widgets'"
    assert any("CMakeLists.txt" in line for line in lines)
    assert any("cis run \"bench voxel_bench" in line for line in lines)


def _cargo_works() -> bool:
    if shutil.which("cargo") is None:
        return False
    r = subprocess.run(["cargo", "--version"], capture_output=True, timeout=60, check=False)
    return r.returncode == 0


def test_a_cargo_project_in_the_sandbox(tmp_path: Path) -> None:
    """The seed's case: features from Cargo.toml, rustup's homes reachable inside the sandbox."""
    if not _cargo_works():
        require_part("cargo with a default toolchain", "scripts/test.sh: apt-get install cargo")
    proj = tmp_path / "voxrs"
    (proj / "src").mkdir(parents=True)
    (proj / "benches").mkdir()
    (proj / "Cargo.toml").write_text(
        '[package]\nname = "voxrs"\nversion = "0.1.0"\nedition = "2021"\n\n[features]\n'
        'default = []\ncuda = []\n\n[[bench]]\nname = "smooth"\nharness = false\n')
    (proj / "src" / "lib.rs").write_text(
        "pub fn smooth(v: &mut [f32]) { let p = v.to_vec(); for i in 1..v.len() - 1 {"
        " v[i] = p[i] + 0.1 * (p[i - 1] + p[i + 1] - 2.0 * p[i]); } }\n"
        "#[cfg(test)] mod t { #[test] fn ok() { let mut v = vec![0.0f32, 1.0, 0.0];"
        " super::smooth(&mut v); assert!(v[1] < 1.0); } }\n")
    (proj / "benches" / "smooth.rs").write_text(
        'fn main() { let mut v = vec![1.0f32; 1 << 12]; let t = std::time::Instant::now();'
        ' for _ in 0..100 { voxrs::smooth(&mut v); } let s = t.elapsed().as_secs_f64();'
        ' println!("{{\\"cells_per_s\\": {}}}", (100 << 12) as f64 / s); }\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIS_", "PKG_"))}
    env.update(PYTHONPATH=str(REPO), CIS_HOME=str(tmp_path / "cis"))
    r = subprocess.run([sys.executable, "-m", "cheng_build.cli.cis", "run", "测试并基准 smooth cpu"],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ": Succeeded (" in r.stdout
    (md,) = proj.glob("cis-results/*/report.md")
    assert "| cpu | smooth | measured |" in md.read_text() and "cells_per_s" in md.read_text()


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=8))
@settings(max_examples=100, deadline=None)
def test_package_json_reader_takes_only_known_scripts(tmp_path_factory: pytest.TempPathFactory,
                                                       scripts: dict[str, str]) -> None:
    d = tmp_path_factory.mktemp("pj")
    (d / "package.json").write_text(json.dumps({"name": "x", "scripts": scripts}))
    p = manifests.read_package_json(d / "package.json")
    assert p.backends[0] == "cpu" and set(p.backends) <= {"cpu", "cuda", "metal"}
    for c in p.commands:
        assert c.label in scripts and c.argv == ("npm", "run", "--silent", c.label)
        assert c.label.partition(":")[0] in ("build", "test", "bench", "benchmark")
