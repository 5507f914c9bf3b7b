"""Gunicorn settings for Papillon; gunicorn reads ./gunicorn.conf.py on its own (`gunicorn wsgi:app`).

Neither log keeps anything about the people using the site: no client address, browser
(user agent), referrer, query string or time of day. The access log says only
`"POST /declaration/sign" 303 0`.

Environment variables:
  PAPILLON_BIND        where to listen, comma-separated (default 127.0.0.1:8000)
  PAPILLON_WORKERS     worker processes (default 1; the in-memory rate limits count per
                       process, so use RATELIMIT_STORAGE_URI=redis://... with more than one)
  PAPILLON_THREADS     threads per worker (default 4)
  PAPILLON_ACCESS_LOG  "-" for standard output (default), a file path, or "off"
  PAPILLON_LOG_LEVEL   gunicorn's error log level (default info)

Which proxy is believed about the client's address and scheme is decided by the app alone
(PAPILLON_TRUSTED_PROXIES, applied with Werkzeug's ProxyFix), so gunicorn itself believes
no forwarding header from anybody.
"""

from __future__ import annotations

import logging
import os
import re

from gunicorn.glogging import Logger


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


bind = [address.strip() for address in _env("PAPILLON_BIND", "127.0.0.1:8000").split(",") if address.strip()]
workers = int(_env("PAPILLON_WORKERS", "1"))
threads = int(_env("PAPILLON_THREADS", "4"))
loglevel = _env("PAPILLON_LOG_LEVEL", "info")

# Method, path without its query string, status, body size: nothing else.
access_log_format = '"%(m)s %(U)s" %(s)s %(B)s'
_access_log = _env("PAPILLON_ACCESS_LOG", "-")
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

    def setup(self, cfg) -> None:
        super().setup(cfg)
        if not any(isinstance(f, ForgetClients) for f in self.error_log.filters):
            self.error_log.addFilter(ForgetClients())

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: value for key, value in atoms.items() if key in self.SAFE_ATOMS}


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
