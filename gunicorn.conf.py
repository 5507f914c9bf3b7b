"""Gunicorn settings for Papillon; gunicorn reads ./gunicorn.conf.py on its own (`gunicorn wsgi:app`).

Neither log keeps anything about the people using the site: no client address, browser
(user agent), referrer, query string or time of day. The access log says only
`"POST /declaration/sign" 303 0`.

Environment variables:
  PAPILLON_BIND            where to listen, comma-separated (default 127.0.0.1:8000; "unix:/path" for a
                           socket only the proxy can reach)
  PAPILLON_WORKERS         worker processes (default: one per CPU core when RATELIMIT_STORAGE_URI names a
                           shared store such as redis://...; 1 with the in-memory limiter, whose counts are
                           per process)
  PAPILLON_THREADS         threads per worker (default 32)
  PAPILLON_CLIENT_TIMEOUT  seconds one request may take from its first byte to its last reply byte
                           (default 20); a slower client is cut off so it cannot hold a thread
  PAPILLON_MAX_REQUESTS    a worker is replaced after this many requests (default 100, plus up to
                           PAPILLON_MAX_REQUESTS_JITTER, default 20), so what a plain post left in its
                           memory goes with it
  PAPILLON_ACCESS_LOG      "off" (default), "-" for standard output, or a file path
  PAPILLON_LOG_LEVEL       gunicorn's error log level (default info)

Which proxy is believed about the client's address and scheme is decided by the app alone
(PAPILLON_TRUSTED_PROXIES, applied with Werkzeug's ProxyFix), so gunicorn itself believes
no forwarding header from anybody.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import ipaddress
import logging
import os
import re
import resource
import socket
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

# gunicorn ships no type information: to mypy its classes are Any, and so subclassing them hides nothing typed.
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

if TYPE_CHECKING:
    from gunicorn.config import Config
    from gunicorn.glogging import _AtomsDict
    from gunicorn.http import Request
    from gunicorn.http.wsgi import Response
    from gunicorn.workers.gthread import TConn


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


bind = [address.strip() for address in _env("PAPILLON_BIND", "127.0.0.1:8000").split(",") if address.strip()]


def default_workers() -> int:
    """One worker per core: each already has PAPILLON_THREADS threads for the waiting (database, slow clients), so
    gunicorn's usual 2 * cores + 1 would only add memory and contention for the GIL-bound sealing. With the in-memory
    limiter every worker keeps its own counts, so more than one would multiply each limit: stay at 1 there."""
    if _env("RATELIMIT_STORAGE_URI", "memory://").startswith("memory://"):
        return 1
    return os.cpu_count() or 1


workers = int(_env("PAPILLON_WORKERS", str(default_workers())))
threads = int(_env("PAPILLON_THREADS", "32"))
loglevel = _env("PAPILLON_LOG_LEVEL", "info")
client_timeout = float(_env("PAPILLON_CLIENT_TIMEOUT", "20"))
max_requests = int(_env("PAPILLON_MAX_REQUESTS", "100"))
max_requests_jitter = int(_env("PAPILLON_MAX_REQUESTS_JITTER", "20"))
# The app is loaded once in the master, so a recycled worker is a fork away rather than a fresh import.
preload_app = True


def _only_the_proxy_can_connect(address: str) -> bool:
    if address.startswith(("unix:", "fd://")):
        return True
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# With a trusted proxy the app believes X-Forwarded-For; anyone who could reach gunicorn without the
# proxy could then name any address they like and step around the rate limits.
if int(os.environ.get("PAPILLON_TRUSTED_PROXIES", "0") or 0) > 0:
    exposed = [address for address in bind if not _only_the_proxy_can_connect(address)]
    if exposed:
        raise SystemExit(
            f"PAPILLON_TRUSTED_PROXIES is set, but gunicorn would listen on {', '.join(exposed)}, where clients "
            "could reach it without the proxy and forge X-Forwarded-For. Bind to a Unix socket "
            "(PAPILLON_BIND=unix:/run/papillon/gunicorn.sock) or a loopback address."
        )

# Method, path without its query string, status, body size: nothing else.
access_log_format = '"%(m)s %(U)s" %(s)s %(B)s'
# Off by default: a log collector that stamps each line with a time would give each record a time.
_access_log = _env("PAPILLON_ACCESS_LOG", "off")
accesslog = None if _access_log.lower() in {"off", "none", "false", "0"} else _access_log
errorlog = "-"
capture_output = False

# Forwarding headers (X-Forwarded-For/-Proto/-Host) are the app's business (PAPILLON_TRUSTED_PROXIES):
# gunicorn believes none of them, from any peer. The PROXY protocol stays off.
forwarded_allow_ips = ""
proxy_protocol = False
proxy_allow_ips = "127.0.0.1,::1"

# Gunicorn's runtime control socket (gunicornc, gunicorn 25.1 and later) is not needed: leave it off.
control_socket_disable = True


class PrivateLogger(Logger):
    """Gunicorn's logger without times and without what a request says about its sender.

    - The error log has no timestamp (a time of day next to a path says when someone was here).
    - "Invalid request from ip=<address>: <what was sent>" becomes "Invalid request: <kind of error>":
      the address and any echo of the request line or headers are dropped.
    - The access log can only ever show the atoms in SAFE_ATOMS, whatever format it is given, so a
      changed `access_log_format` cannot bring back the address, the agent, the referrer or the time.
    """

    error_fmt = "[%(process)d] [%(levelname)s] %(message)s"
    syslog_fmt = "[%(process)d] %(message)s"
    SAFE_ATOMS = frozenset({"m", "U", "s", "B", "b", "H", "T", "D", "M", "L", "p"})

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        if not any(isinstance(f, ForgetClients) for f in self.error_log.filters):
            self.error_log.addFilter(ForgetClients())

    def atoms(
        self, resp: Response, req: Request, environ: MutableMapping[str, Any], request_time: dt.timedelta
    ) -> _AtomsDict:
        atoms = super().atoms(resp, req, environ, request_time)
        # The same TypedDict with fewer keys (it is total=False); mypy cannot follow that through a comprehension.
        return {key: value for key, value in atoms.items() if key in self.SAFE_ATOMS}  # type: ignore[return-value]


class ForgetClients(logging.Filter):
    """Rewrites error log records so that no client address, and nothing a client sent, is written."""

    INVALID = re.compile(r"^Invalid request from ip=.*?: (?P<error>.*)$", re.DOTALL)
    KIND = re.compile(r"[A-Za-z][A-Za-z ]*")
    ADDRESS = re.compile(r"\bip=\S*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        invalid = self.INVALID.match(message)
        if invalid:
            kind = self.KIND.match(invalid["error"])
            message = "Invalid request: " + (kind.group().strip() if kind else "malformed")
        message = self.ADDRESS.sub("ip=[not logged]", message)
        record.msg, record.args = message, ()
        return True


logger_class = PrivateLogger


def _no_core_dumps() -> None:
    """A core file, or a debugger attached by another process of the same user, would hold what a plain post
    left in memory: forbid both."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def on_starting(server: object) -> None:
    _no_core_dumps()


def post_fork(server: object, worker: object) -> None:
    _no_core_dumps()


class DeadlineWorker(ThreadWorker):
    """gthread, with a deadline on every request: a client that sends its request (or reads the reply) a byte at
    a time is cut off after ``client_timeout`` seconds instead of holding a thread for as long as it likes.

    The worker's main loop already wakes at least once a second; it shuts the sockets of overdue requests down,
    which ends the thread's blocking read or write at once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadlines: dict[TConn, float] = {}
        self._deadlines_lock = threading.Lock()

    def handle(self, conn: TConn) -> bool:
        with self._deadlines_lock:
            self._deadlines[conn] = time.monotonic() + client_timeout
        try:
            return super().handle(conn)
        finally:
            with self._deadlines_lock:
                self._deadlines.pop(conn, None)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        with self._deadlines_lock:
            overdue = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
            for conn in overdue:
                del self._deadlines[conn]
        for conn in overdue:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


worker_class = DeadlineWorker
