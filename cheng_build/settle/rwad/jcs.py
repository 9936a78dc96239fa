"""Canonical JSON (RFC 8785, JCS) for the v2 batch: the bytes its hash and signature cover.

Object keys sorted by UTF-16 code units, no whitespace, strings with only the escapes JSON
requires (lowercase ``\\u00xx`` for other controls), floats in ECMAScript's shortest form
(``1e-7``, ``0.000001``, ``1e+21``). Integers are written exactly, however large (JCS proper
would round those beyond 2**53; ours never are in practice, and exactness is what we sign).
"""

from __future__ import annotations

import json
import math
from typing import Any


def es_number(x: float) -> str:
    """ECMAScript Number::toString of a finite float (JCS's number form).

    Raises:
        ValueError: NaN or infinity (JSON has neither).
    """
    if not math.isfinite(x):
        raise ValueError(f"{x!r} has no JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits, as ECMAScript requires
    mant, _, exp = r.partition("e")
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    lead = len(whole) - len(whole.lstrip("0")) if whole != "0" else 0
    # position of the decimal point relative to the first significant digit
    n = (len(whole) if whole != "0" else -(len(frac) - len(frac.lstrip("0")))) + int(exp or 0) - lead
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


def _enc(v: Any, out: list[str]) -> None:
    t = type(v)
    if t is dict:
        out.append("{")
        for i, k in enumerate(sorted(v, key=lambda s: s.encode("utf-16-be", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _enc(v[k], out)
        out.append("}")
    elif t is list or t is tuple:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _enc(x, out)
        out.append("]")
    elif t is str:
        out.append(json.dumps(v, ensure_ascii=False))
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif v is None:
        out.append("null")
    elif t is int:
        out.append(str(v))
    elif t is float:
        out.append(es_number(v))
    else:
        raise TypeError(f"{t.__name__} has no JSON form")


def canonical(value: Any) -> bytes:
    """The JCS bytes of a JSON value.

    Raises:
        ValueError: a NaN or infinite float.
        TypeError: a value JSON cannot hold.
    """
    out: list[str] = []
    _enc(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


__all__ = ["canonical", "es_number"]
