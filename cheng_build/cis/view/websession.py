"""Who may use ``cis web``: the browser that opened the one-time link the server printed.

Why not a token in the page: any process that can reach 127.0.0.1 (a task with
``network = true``, another local user) could ``GET /``, read the token and POST ``confirm``,
approving its own gate. Why not a token file: a task of an unsandboxed or ``namespaces`` run
sees the user's files. So the secret exists only in the terminal that ran ``cis web``:

1. the server makes a one-time login code and prints ``http://127.0.0.1:<port>/login?code=…``;
2. the first ``GET /login`` with it burns the code and sets an ``HttpOnly; SameSite=Strict``
   session cookie (a new random id) in that browser;
3. every page, API call and event stream needs the cookie; every POST also needs the session's
   own CSRF token (embedded in the page it is served with) in ``X-CIS-Token``.

A second browser needs a new link (restart ``cis web``). Codes, sessions and tokens live only
in the server's memory: nothing is written to disk for a task to find.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field


@dataclass
class Sessions:
    """One-time login codes and the sessions they opened (thread-safe)."""

    codes: set[str] = field(default_factory=set)
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> CSRF token
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_code(self) -> str:
        """A new login code, valid for one use."""
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes.add(code)
        return code

    def redeem(self, code: str) -> str | None:
        """Burn ``code`` and open a session; its id, or None for an unknown or used code."""
        with self.lock:
            match = next((c for c in self.codes if hmac.compare_digest(c, code)), None)
            if match is None:
                return None
            self.codes.discard(match)
            sid = secrets.token_urlsafe(32)
            self.sessions[sid] = secrets.token_urlsafe(24)
            return sid

    def csrf(self, sid: str | None) -> str | None:
        """The CSRF token of session ``sid``, or None when there is no such session."""
        if not sid:
            return None
        with self.lock:
            match = next((s for s in self.sessions if hmac.compare_digest(s, sid)), None)
            return self.sessions[match] if match is not None else None


def cookie_name(port: int) -> str:
    """Cookies ignore ports: two servers on one host must not overwrite each other's."""
    return f"cis_session_{port}"


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` request header."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None
