"""A real Synapse homeserver on 127.0.0.1 with SQLite, for the multi-node CIS tests and benchmark.

Synapse lives in its own virtual environment (``.venv-synapse``, made by ``scripts/test.sh``) so
its pinned dependencies (Twisted, its own pydantic/attrs pins) never meet libp2p's in ``.venv``.
``CIS_SYNAPSE_PYTHON`` points at another interpreter that has ``synapse`` installed.

The homeserver gets a config written here (not ``--generate-config``'s 3000-line template): one
plain-HTTP client listener on 127.0.0.1, SQLite, no federation, no key servers, and every rate
limit the node agent meets raised explicitly (Synapse's default ``rc_message`` is 0.2/s, burst 10:
four nodes racing for 200 tasks would be throttled within a second). Users are registered with
the shared-secret admin API (HMAC-SHA1 over nonce, user, password, admin flag): no email, no
``register_new_matrix_user`` process per user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVER_NAME = "cis.test"
START_TIMEOUT_S = 90.0
INSTALL_HOW = ("scripts/test.sh installs it: python3 -m venv .venv-synapse && "
               ".venv-synapse/bin/pip install 'matrix-synapse==1.163.2' (or set CIS_SYNAPSE_PYTHON)")

_HIGH = {"per_second": 100000, "burst_count": 100000}


def synapse_python() -> str | None:
    """The interpreter with Synapse installed, or None."""
    cand = os.environ.get("CIS_SYNAPSE_PYTHON") or str(REPO / ".venv-synapse" / "bin" / "python")
    if not Path(cand).exists():
        return None
    probe = subprocess.run([cand, "-c", "import synapse"], capture_output=True, timeout=60)
    return cand if probe.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(d: Path, port: int, secret: str, host: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "server_name": SERVER_NAME,
        "pid_file": str(d / "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": [host], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
        "log_config": str(d / "log.yaml"),
        "media_store_path": str(d / "media"),
        "signing_key_path": str(d / "signing.key"),
        "registration_shared_secret": secret,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "report_stats": False,
        "enable_registration": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        # What a CIS homeserver should have (docs/cisnodes.md, "The homeserver"): nothing that
        # costs per event and serves no CIS client: no presence; no push rules evaluated for each
        # member on every event, no pushers (nobody's phone is told); no room statistics, no user
        # directory updates and no federation sender (each keeps a stream position that it
        # writes, an SQLite commit, after every event).
        "presence": {"enabled": False},
        "push": {"enabled": False},
        "pusher_instances": [],
        "stats": {"enabled": False},
        "update_user_directory_from_worker": "nobody",  # no such worker: nobody updates it
        "federation_sender_instances": [],
        "url_preview_enabled": False,
        "enable_metrics": False,
        # Rate limits raised on purpose: the node agent posts claims and lease renewals in bursts.
        "rc_message": _HIGH,
        "rc_registration": _HIGH,
        "rc_joins": {"local": _HIGH, "remote": _HIGH},
        "rc_joins_per_room": _HIGH,
        "rc_login": {"address": _HIGH, "account": _HIGH, "failed_attempts": _HIGH},
        "rc_invites": {"per_room": _HIGH, "per_user": _HIGH, "per_issuer": _HIGH},
        "rc_room_creation": _HIGH,
        "rc_admin_redaction": _HIGH,
    }


_LOG = """version: 1
formatters:
  f: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}
handlers:
  file: {class: logging.FileHandler, formatter: f, filename: LOGFILE}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


@dataclass
class Synapse:
    """One running homeserver; ``url`` is its client API base."""

    dir: Path
    port: int
    secret: str
    proc: subprocess.Popen[bytes]
    users: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _post(self, path: str, body: dict[str, Any] | None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST")
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def register(self, user: str, password: str | None = None, *, admin: bool = False) -> str:
        """Register ``user`` through the shared-secret admin API; returns its password."""
        password = password or secrets.token_hex(8)
        nonce = self._post("/_synapse/admin/v1/register", None)["nonce"]
        # Synapse's MAC: HMAC-SHA1 over the four fields joined by NUL (none after the last).
        fields = (nonce, user, password, "admin" if admin else "notadmin")
        mac = hmac.new(self.secret.encode(), b"\x00".join(f.encode() for f in fields), hashlib.sha1)
        self._post("/_synapse/admin/v1/register", {"nonce": nonce, "username": user,
                                                  "password": password, "admin": admin,
                                                  "mac": mac.hexdigest()})
        self.users[user] = password
        return password

    def user_id(self, user: str) -> str:
        return f"@{user}:{SERVER_NAME}"

    def login(self, user: str) -> str:
        """An access token for ``user`` (a fresh device)."""
        r = self._post("/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": self.users[user]})
        return str(r["access_token"])

    def password_file(self, user: str, where: Path) -> Path:
        p = where / f"{user}.password"
        p.write_text(self.users[user] + "\n")
        p.chmod(0o600)
        return p

    def alive(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join((self.dir / "homeserver.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def start_synapse(d: Path, python: str, *, port: int | None = None, host: str = "127.0.0.1",
                  access_log: bool = False) -> Synapse:
    """Write a config in ``d``, generate the signing key, start Synapse, wait until /health answers.

    Raises:
        RuntimeError: it did not come up within START_TIMEOUT_S (the log tail says why).
    """
    d.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    secret = secrets.token_hex(16)
    cfg = d / "homeserver.yaml"
    # JSON is YAML: no PyYAML needed to write the config.
    cfg.write_text(json.dumps(_config(d, port, secret, host), indent=1))
    log = _LOG.replace("LOGFILE", str(d / "homeserver.log"))
    if access_log:  # one line per request, with its CPU time (benchmarks/cisnodes.py reads it)
        log += "loggers: {synapse.access: {level: INFO}}\n"
    (d / "log.yaml").write_text(log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run([python, "-m", "synapse.app.homeserver", "-c", str(cfg), "--generate-keys"],
                   check=True, capture_output=True, timeout=120, env=env, cwd=d)
    out = open(d / "stdout.log", "wb")  # noqa: SIM115 - owned by the child for its lifetime
    proc = subprocess.Popen([python, "-m", "synapse.app.homeserver", "-c", str(cfg)],
                            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=d,
                            start_new_session=True)
    out.close()
    hs = Synapse(d, port, secret, proc, host=host)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"synapse exited with {proc.returncode}:\n"
                               + (d / "stdout.log").read_text(errors="replace")[-3000:] + hs.log_tail())
        if hs.alive():
            return hs
        time.sleep(0.2)
    hs.stop()
    raise RuntimeError(f"synapse did not answer /health within {START_TIMEOUT_S:.0f} s:\n{hs.log_tail()}")


def require_synapse() -> str:
    """The Synapse interpreter; without one, skip, or with CI=true fail naming the install step."""
    import pytest

    python = synapse_python()
    if python is None:
        msg = f"Synapse is not installed: {INSTALL_HOW}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return python
