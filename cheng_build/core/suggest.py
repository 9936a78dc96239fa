""""Did you mean ...?": the closest known word to a misspelt one, by edit distance.

One helper for every place that rejects a name it knows the alternatives to (lock and manifest
keys, package ids, chengc's own flags). Hand-written instead of ``difflib`` because chengc calls
it on its start-up path and difflib's ratio does not say "two typos away", which is the rule the
messages promise. The distance is optimal string alignment (Levenshtein plus swapping two
neighbours, the commonest typo): ``chanel`` -> ``channel`` is 1, ``manfest`` -> ``manifest`` 1.
"""

from __future__ import annotations

from collections.abc import Iterable

# Two edits catch a dropped letter plus a swapped pair; three start matching unrelated short words.
MAX_DISTANCE = 2


def edit_distance(a: str, b: str, limit: int = MAX_DISTANCE) -> int:
    """Optimal string alignment distance between ``a`` and ``b``, or ``limit + 1`` if above it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


def closest(word: str, known: Iterable[str], limit: int = MAX_DISTANCE) -> str | None:
    """The known word nearest to ``word`` within ``limit`` edits (ties: the first given), or None.

    ``word`` itself (an exact match) is never suggested: the caller asks because it was refused.
    """
    best: str | None = None
    best_d = limit + 1
    for cand in known:
        if cand == word:
            continue
        d = edit_distance(word, cand, limit)
        if d < best_d:
            best, best_d = cand, d
    return best


__all__ = ["MAX_DISTANCE", "closest", "edit_distance"]
