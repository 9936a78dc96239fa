"""A sketch's intent: the verbs, backends and names in one line of Chinese or English.

Verbs: test/测试, bench/基准/性能, compare/对比/vs, build/编译; backends: cuda, metal, cpu, gpu (every
GPU backend the project has); names: words that match a target, bench or test the manifests
declare (a few Chinese words map to English names: 体素 -> voxel). Nothing here reads a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERB_WORDS: dict[str, tuple[str, ...]] = {
    "test": ("test", "tests", "testing", "check", "测试", "检验", "验证", "单测"),
    "bench": ("bench", "benchmark", "benchmarks", "perf", "performance", "speed", "基准", "性能",
              "跑分", "测速"),
    "compare": ("compare", "comparison", "vs", "versus", "against", "对比", "比较", "比一比"),
    "build": ("build", "compile", "make", "编译", "构建"),
}
BACKEND_WORDS: dict[str, tuple[str, ...]] = {
    "cuda": ("cuda", "nvidia", "英伟达"), "metal": ("metal", "apple", "苹果"), "cpu": ("cpu", "处理器"),
    "gpu": ("gpu", "显卡"),
}
# Chinese words a sketch may use for a target name (matched against the manifests' names).
GLOSSARY = {"体素": "voxel", "光线": "ray", "网格": "mesh", "矩阵": "matrix", "排序": "sort",
            "渲染": "render", "物理": "physics", "粒子": "particle", "哈希": "hash"}
_STOP = {"and", "the", "on", "with", "for", "of", "a", "an", "to", "in", "run", "all", "it"}
ASCII_WORD = re.compile(r"[a-z0-9][a-z0-9_.+-]*")


@dataclass(frozen=True, slots=True)
class Intent:
    """What a sketch asks for."""

    verbs: frozenset[str]  # build | test | bench | compare
    backends: tuple[str, ...]  # as named, "gpu" expanded later against the project
    names: tuple[str, ...]  # words left after the intent words (candidate target names)

    @property
    def empty(self) -> bool:
        return not self.verbs and not self.backends


def parse_intent(text: str) -> Intent:
    """The verbs, backends and names in ``text`` (case-insensitive, Chinese or English)."""
    low = text.lower()
    words = ASCII_WORD.findall(low)
    verbs = {v for v, ws in VERB_WORDS.items()
             if any((w in words) if w.isascii() else (w in low) for w in ws)}
    found: list[tuple[int, str]] = []
    for b, ws in BACKEND_WORDS.items():
        pos = [m.start() for w in ws for m in re.finditer(re.escape(w), low)
               if w.isascii() is False or w in words]
        if pos:
            found.append((min(pos), b))
    backends = tuple(b for _, b in sorted(found))
    intent_ascii = {w for ws in (*VERB_WORDS.values(), *BACKEND_WORDS.values()) for w in ws}
    names = [w for w in words if w not in intent_ascii and w not in _STOP]
    names += [en for zh, en in GLOSSARY.items() if zh in text]
    return Intent(frozenset(verbs), backends, tuple(dict.fromkeys(names)))


__all__ = ["ASCII_WORD", "BACKEND_WORDS", "GLOSSARY", "VERB_WORDS", "Intent", "parse_intent"]
