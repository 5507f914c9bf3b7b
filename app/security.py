"""What keeps the server ignorant of its visitors: headers, a rate limit key that forgets, quiet logs,
and the proof of work asked of visitors from an address many people share."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import re
from typing import Literal

from flask import Flask, Response, current_app, g, has_request_context, request
from flask.logging import default_handler
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter

from app import pow
from app.config import ConfigError
from app.site import Network, SharedAddresses, site

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
IPV6_PREFIX = 64
StampState = Literal["valid", "invalid", "missing"]


def init_app(app: Flask) -> None:
    """Headers on every response, the CSRF cookie's Secure flag, the limiter, and logs without addresses."""
    site(app).shared = parse_shared_addresses(app.config["PAPILLON_SHARED_ADDRESSES"])
    app.session_interface = SessionInterface()
    limiter.init_app(app)
    app.after_request(set_headers)
    quiet_logs()


def set_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie (it holds the CSRF token and nothing else) is Secure whenever the request came
    over HTTPS, directly or as a trusted proxy reports it, and always when SESSION_COOKIE_SECURE is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def daily_key(secret: str | bytes, day: dt.date) -> bytes:
    """The day's key for hashing client addresses: derived when needed, never stored, gone tomorrow."""
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, f"papillon rate limit {day.isoformat()}".encode(), hashlib.sha256).digest()


def limit_subject(address: str | None) -> str:
    """What one client is, for counting: its IPv4 address, or its IPv6 /64 (one home or phone usually
    holds a whole /64, so counting single IPv6 addresses would let anyone step around the limits)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


def client_key(address: str | None = None, day: dt.date | None = None) -> str:
    """Rate-limit bucket of the current client: a keyed hash of its address that changes every day."""
    day = day or dt.datetime.now(dt.UTC).date()
    subject = limit_subject(request.remote_addr if address is None else address).encode()
    return hmac.new(daily_key(_secret_key(), day), subject, hashlib.sha256).hexdigest()[:32]


def _secret_key() -> str | bytes:
    """SECRET_KEY, without which the app does not start."""
    secret = current_app.secret_key
    if secret is None:
        raise RuntimeError("SECRET_KEY is not set")
    return secret


def _limit_setting(name: str) -> str:
    """A rate limit of the app at hand, read at each request (the limiter object is shared)."""
    limit: str = current_app.config[name]
    return limit


def default_limit() -> str:
    return _limit_setting("RATELIMIT_DEFAULT")


def parse_shared_addresses(text: str) -> SharedAddresses:
    """``PAPILLON_SHARED_ADDRESSES``: addresses or networks, and ``unix:`` for what a proxy reports of clients
    that reached it through a Unix socket (the Tor daemon of an onion service)."""
    literals: set[str] = set()
    networks: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "unix:":
            literals.add(item)
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"PAPILLON_SHARED_ADDRESSES: {item!r} is not an address, a network or unix:") from None
    return SharedAddresses(frozenset(literals), tuple(networks))


def is_shared(address: str | None = None) -> bool:
    """Whether the client came from an address that many people share. Decided by the connection (or what a
    trusted proxy reports of it), never by a header the client chooses."""
    address = request.remote_addr if address is None else address
    shared = site().shared
    if address in shared.literals:
        return True
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in shared.networks)


def pow_challenge(campaign: str, form: str, submission_id: str, day: dt.date) -> bytes:
    return pow.challenge(daily_key(_secret_key(), day), campaign, form, submission_id)


def stamp_state() -> StampState:
    """For a post from a shared address: ``"valid"``, ``"invalid"`` or ``"missing"`` proof of work, checked once
    per request."""
    if "papillon_stamp" not in g:
        request.get_data(cache=True)  # keep the raw body for forms.check_form_body
        nonce = request.form.get("pow", "")
        g.papillon_stamp = "missing" if not nonce else "valid" if _stamp_verifies(nonce) else "invalid"
    state: StampState = g.papillon_stamp
    return state


def _stamp_verifies(nonce: str) -> bool:
    """At most two PBKDF2 calls: today's challenge and yesterday's, so that a page opened before midnight UTC
    still sends."""
    if not pow.well_formed(nonce):
        return False
    view_args = request.view_args or {}
    place = (view_args.get("campaign_slug", ""), view_args.get("form_slug", ""), request.form.get("submission_id", ""))
    bits, iterations = current_app.config["PAPILLON_POW_BITS"], current_app.config["PAPILLON_POW_ITERATIONS"]
    today = dt.datetime.now(dt.UTC).date()
    return any(
        pow.verify(pow_challenge(*place, day), nonce, bits, iterations) for day in (today, today - dt.timedelta(days=1))
    )


def submit_key() -> str:
    """The bucket a post counts in: the client's own, or for a shared address, one per kind of post, so that a
    spammer on one path cannot lock out the witnesses on the other."""
    if not is_shared():
        return client_key()
    kind = "pow" if stamp_state() == "valid" else "plain"
    return f"shared-{kind}-{client_key()}"


def submit_limit() -> str:
    if not is_shared():
        return _limit_setting("RATELIMIT_SUBMIT")
    return _limit_setting("RATELIMIT_SHARED_POW_SUBMIT" if stamp_state() == "valid" else "RATELIMIT_SHARED_SUBMIT")


limiter = Limiter(key_func=client_key, default_limits=[default_limit], default_limits_exempt_when=is_shared)


class _DropClientAddress(logging.Filter):
    """Werkzeug's development server starts each line with the client's address and the time."""

    PREFIX = re.compile(r"^\S+ - - \[[^\]]*\] ")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.PREFIX.sub("", record.msg)
        return True


# Flask's own handler (used when nothing else is configured, e.g. under gunicorn) prints the time of
# every message; an application error would then record when someone was using the site.
FLASK_LOG_FORMAT = "%(levelname)s in %(module)s: %(message)s"


def quiet_logs() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _DropClientAddress) for f in logger.filters):
        logger.addFilter(_DropClientAddress())
    default_handler.setFormatter(logging.Formatter(FLASK_LOG_FORMAT))
