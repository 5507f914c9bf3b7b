"""What keeps the server ignorant of its visitors: headers, a rate limit key that forgets, quiet logs."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re

from flask import Response, current_app, request
from flask_limiter import Limiter

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=(), interest-cohort=(), browsing-topics=()"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}
HSTS = "max-age=63072000; includeSubDomains"


def set_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def daily_key(secret: str, day: dt.date) -> bytes:
    """The day's key for hashing client addresses: derived when needed, never stored, gone tomorrow."""
    return hmac.new(secret.encode(), f"papillon rate limit {day.isoformat()}".encode(), hashlib.sha256).digest()


def client_key() -> str:
    """Rate-limit bucket of the current client: a keyed hash of its address that changes every day."""
    day = dt.datetime.now(dt.UTC).date()
    address = (request.remote_addr or "").encode()
    return hmac.new(daily_key(current_app.secret_key, day), address, hashlib.sha256).hexdigest()[:32]


limiter = Limiter(key_func=client_key)


class _DropClientAddress(logging.Filter):
    """Werkzeug's development server starts each line with the client's address and the time."""

    PREFIX = re.compile(r"^\S+ - - \[[^\]]*\] ")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.PREFIX.sub("", record.msg)
        return True


def quiet_logs() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _DropClientAddress) for f in logger.filters):
        logger.addFilter(_DropClientAddress())
