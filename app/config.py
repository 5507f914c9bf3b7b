"""Settings: defaults here, then environment variables of the same name, then the caller's overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Defaults:
    """Every upper-case name here can be set by an environment variable of the same name."""

    SECRET_KEY: str | None = None
    DATABASE_URL: str | None = None  # None: SQLite under the instance folder
    PAPILLON_KEYS_DIR = str(PROJECT_ROOT / "keys")
    PAPILLON_CAMPAIGNS_DIR = str(Path(__file__).resolve().parent / "campaigns")
    PAPILLON_TRUSTED_PROXIES = 0
    PAPILLON_QUICK_EXIT_URL = "https://www.google.com/search?q=weather"
    PAPILLON_HONEYPOT_FIELD = "website"
    # make run's demo key (its private half and passphrase sit on the same machine) is refused unless this is set.
    PAPILLON_ALLOW_DEMO_KEY = False
    # Every HTML and JSON reply is padded to a multiple of this many bytes, so sizes do not tell pages apart.
    PAPILLON_PAD_BYTES = 16384
    # Addresses many people share (the Tor daemon of an onion service, a large NAT), comma-separated
    # addresses or networks: their visitors are not counted as one client.
    PAPILLON_SHARED_ADDRESSES = ""
    # The proof of work asked of a shared address's visitors: on average 2**BITS tries of ITERATIONS rounds
    # each, which the page runs while the person writes.
    PAPILLON_POW_BITS = 10
    PAPILLON_POW_ITERATIONS = 5000
    # Replies to witnesses are deleted this many days after `import-replies` loaded them (`purge-replies`), and
    # are not shown after that even before they are deleted.
    PAPILLON_REPLY_RETENTION_DAYS = 90
    TRUSTED_HOSTS: list[str] | None = None  # comma-separated host names; None accepts any Host header
    MAX_CONTENT_LENGTH = 256 * 1024
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_DEFAULT = "600 per hour"
    RATELIMIT_SUBMIT = "10 per minute;60 per hour"
    # Posts from a shared address: with a proof of work, and without one (JavaScript off).
    RATELIMIT_SHARED_POW_SUBMIT = "120 per minute"
    RATELIMIT_SHARED_SUBMIT = "10 per minute"
    RATELIMIT_HEADERS_ENABLED = False
    # If the shared limiter storage (Redis) goes down, count in memory rather than refuse testimonies.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    WTF_CSRF_TIME_LIMIT: int | None = None
    # WTForms' own messages are never shown (every message a person reads is ours, in our catalogs), so its
    # catalog is not loaded again for every request.
    WTF_I18N_ENABLED = False
    SESSION_COOKIE_NAME = "papillon"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    PREFERRED_URL_SCHEME = "http"


# Whole numbers whose default is None ("no limit"); "none" or an empty value sets them back to None.
OPTIONAL_INTS = {"WTF_CSRF_TIME_LIMIT"}
# Lists whose default is None; the environment gives them comma-separated, and an empty value means None.
OPTIONAL_LISTS = {"TRUSTED_HOSTS"}


class ConfigError(ValueError):
    """A setting has a value of the wrong kind."""


def _parse(name: str, text: str, default: object) -> object:
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={text!r}: expected true or false")
    if name in OPTIONAL_LISTS:
        items = [item.strip() for item in text.split(",") if item.strip()]
        return items or None
    if isinstance(default, int) or name in OPTIONAL_INTS:
        if name in OPTIONAL_INTS and text.strip().lower() in {"", "none"}:
            return None
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a whole number") from None
    return text


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Defaults overlaid with any environment variable that names one of them."""
    environ = os.environ if environ is None else environ
    settings = {k: v for k, v in vars(Defaults).items() if k.isupper()}
    for name, default in list(settings.items()):
        if name in environ:
            settings[name] = _parse(name, environ[name], default)
    return settings
