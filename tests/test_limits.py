"""Rate limits that count without remembering anyone, the body cap, field caps and the honeypot."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pages import page_tokens, row_count
from services import REDIS_URL, Scratch, connect_redis

from app import create_app, security
from app.storage import db

SIGNATURE = {"signing_as": "individual", "name": "Ada Lovelace"}
KIND_429 = "Too many tries from your connection just now"


def make_app(config: dict[str, object], **overrides: object) -> Flask:
    app = create_app({**config, **overrides})
    with app.app_context():
        db.create_schema()
    return app


# The key: a keyed hash of the address, with a key of the day that is derived, never stored.
DAY = dt.date(2030, 5, 17)


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.test_request_context("/"):
        yield


def test_the_key_of_an_address_changes_the_next_day(ctx: None) -> None:
    keys = {security.client_key("203.0.113.9", DAY + dt.timedelta(days=n)) for n in range(30)}
    assert len(keys) == 30


def test_different_addresses_get_different_keys(ctx: None) -> None:
    keys = {security.client_key(f"203.0.113.{n}", DAY) for n in range(256)}
    assert len(keys) == 256


def test_the_key_cannot_be_matched_to_an_address_without_the_secret(ctx: None) -> None:
    """Whoever reads the limiter's store can hash every IPv4 address; unless they also hold SECRET_KEY and know the
    day, no plain or unkeyed hash of the address gives the key they see."""
    address = "203.0.113.9"
    key = security.client_key(address, DAY)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    unkeyed = {hashlib.new(name, address.encode()).hexdigest()[:32] for name in ("md5", "sha1", "sha256", "blake2b")}
    unkeyed |= {hmac.new(secret, address.encode(), hashlib.sha256).hexdigest()[:32] for secret in (b"", b"secret")}
    unkeyed.add(hmac.new(security.daily_key("", DAY), address.encode(), hashlib.sha256).hexdigest()[:32])
    assert key not in unkeyed


def test_the_key_depends_on_the_secret(config: dict[str, object]) -> None:
    def key_with(secret: str) -> str:
        app = create_app({**config, "SECRET_KEY": secret})
        with app.test_request_context("/"):
            return security.client_key("203.0.113.9", DAY)

    assert key_with("one secret") != key_with("another secret")


def test_the_day_key_is_derived_from_secret_and_date_only() -> None:
    assert security.daily_key("s", DAY) == security.daily_key(b"s", DAY)
    assert security.daily_key("s", DAY) != security.daily_key("s", DAY + dt.timedelta(days=1))
    assert security.daily_key("s", DAY) != security.daily_key("t", DAY)
    assert len(security.daily_key("s", DAY)) == 32


def test_the_key_of_the_current_request_uses_its_address_and_todays_date_in_utc(app: Flask) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.33"}):
        key = security.client_key()
        assert key in {security.client_key("192.0.2.33", today + dt.timedelta(days=n)) for n in (0, 1)}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64: one home, one phone
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("::ffff:203.0.113.9", "203.0.113.9", True),
        ("203.0.113.9", "203.0.113.10", False),
        ("fe80::1%eth0", "fe80::2", True),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(ctx: None, a: str, b: str, same: bool) -> None:
    assert (security.client_key(a, DAY) == security.client_key(b, DAY)) == same


# Limits over HTTP.
def burst(client: FlaskClient, n: int, **kw: object) -> list[int]:
    return [client.post("/petition/sign", data={"name": "x"}, **kw).status_code for _ in range(n)]


def test_a_burst_is_answered_429_with_the_kind_page(config: dict[str, object]) -> None:
    app = make_app(config, RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="3 per minute")
    client = app.test_client()
    statuses = burst(client, 5)
    assert statuses == [400, 400, 400, 429, 429]
    response = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE})
    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert KIND_429 in html
    assert 'id="error-message"' in html
    assert "Traceback" not in html
    assert "per minute" not in html
    assert "data-quick-exit" in html
    assert row_count(app) == 0
    # Reading pages is limited separately (RATELIMIT_DEFAULT), so the person can still read.
    assert client.get("/petition/").status_code == 200


def test_switching_language_does_not_reset_the_count(config: dict[str, object]) -> None:
    """A spammer cycling through /ko/, /th/ and no language at all posts to one form, counted once."""
    app = make_app(config, RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="3 per minute")
    client = app.test_client()
    paths = ["/petition/sign", "/ko/petition/sign", "/th/petition/sign", "/zh-Hant/petition/sign", "/es/petition/sign"]
    statuses = [client.post(path, data={"name": "x"}).status_code for path in paths]
    assert statuses == [400, 400, 400, 429, 429]


def test_the_limited_script_gets_json(config: dict[str, object]) -> None:
    app = make_app(config, RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="1 per minute")
    client = app.test_client()
    burst(client, 1)
    response = client.post("/petition/sign", data={"name": "x"}, headers={"Accept": "application/json"})
    assert response.status_code == 429
    assert KIND_429 in response.get_json()["error"]


def test_the_default_limit_covers_pages_but_not_healthz(config: dict[str, object]) -> None:
    app = make_app(config, RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/healthz").status_code for _ in range(5)] == [200] * 5


@pytest.mark.parametrize("trusted", [0, 1])
def test_x_forwarded_for_is_believed_only_behind_trusted_proxies(config: dict[str, object], trusted: int) -> None:
    app = make_app(config, RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="1 per minute", PAPILLON_TRUSTED_PROXIES=trusted)
    client = app.test_client()
    first = burst(client, 1, headers={"X-Forwarded-For": "198.51.100.1"})
    other = burst(client, 1, headers={"X-Forwarded-For": "198.51.100.2"})
    same = burst(client, 1, headers={"X-Forwarded-For": "198.51.100.1"})
    assert first == [400]
    assert same == [429]
    # Behind a trusted proxy each forwarded address is its own client; otherwise the header is
    # ignored, and every request counts against the address the connection came from.
    assert other == ([400] if trusted else [429])


def test_with_two_trusted_proxies_the_second_address_from_the_right_counts(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_TRUSTED_PROXIES=2)

    @app.get("/_who")
    def who() -> str:
        from flask import Response, request

        return Response(request.remote_addr or "", mimetype="text/plain")

    client = app.test_client()
    seen = client.get("/_who", headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.7, 192.0.2.1"}).get_data(as_text=True)
    assert seen == "198.51.100.7"
    untrusted = make_app(config)
    untrusted.add_url_rule("/_who", view_func=who)
    seen = untrusted.test_client().get("/_who", headers={"X-Forwarded-For": "198.51.100.7"}).get_data(as_text=True)
    assert seen == "127.0.0.1"


# Redis (conftest.py's redis_db): several instances share counters; what Redis holds must name nobody.
def test_an_unreachable_redis_is_a_failure_not_a_skip() -> None:
    with pytest.raises(pytest.fail.Exception, match="Redis is needed"):
        connect_redis("redis://127.0.0.1:1/15")


def test_redis_counts_a_burst_and_stores_no_address(config: dict[str, object], redis_db: Scratch) -> None:
    addresses = ["198.51.100.44", "2001:db8:77:1::5"]
    settings = {
        "SECRET_KEY": redis_db.secret,
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_SUBMIT": "2 per minute",
        "RATELIMIT_DEFAULT": "100 per hour",
        "PAPILLON_TRUSTED_PROXIES": 1,
    }
    app = make_app(config, **settings)
    with app.test_request_context("/"):
        redis_db.hashes.extend(security.client_key(a) for a in addresses)
    client = app.test_client()
    for address in addresses:
        headers = {"X-Forwarded-For": address, "User-Agent": "RedisProbe/1.0"}
        assert client.get("/petition/", headers=headers).status_code == 200
        assert burst(client, 3, headers=headers) == [400, 400, 429]
    # A second instance on the same Redis sees the same counters.
    other = make_app(config, **settings)
    assert burst(other.test_client(), 1, headers={"X-Forwarded-For": addresses[0]}) == [429]

    stored = redis_db.ours()
    # Both addresses have counters for reading pages and for posting.
    assert len(stored) >= 4, stored
    everything = [k.decode() for k in redis_db.client.scan_iter(count=1000)]
    dump = "\n".join(everything)
    for text in [*addresses, "2001:db8:77:1::/64", "2001:db8:77:1:", "RedisProbe"]:
        assert text not in dump
    for key in stored:
        assert redis_db.client.ttl(key) > 0, f"{key} would be kept for ever"
        value = redis_db.client.dump(key) or b""
        for address in addresses:
            assert address.encode() not in value


# Size and shape.
def test_a_body_over_the_cap_gets_413_with_the_kind_page(config: dict[str, object]) -> None:
    app = make_app(config, MAX_CONTENT_LENGTH=4096)
    client = app.test_client()
    response = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE, "position": "p" * 5000})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert "larger than this site accepts" in html
    assert "data-quick-exit" in html
    assert response.headers["Cache-Control"] == "no-store"
    assert row_count(app) == 0
    # Just under the cap is read normally (and refused for its overlong field, not for its size).
    response = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE, "position": "p" * 3000})
    assert response.status_code == 400
    assert row_count(app) == 0


def test_a_body_over_the_cap_without_a_length_gets_413(config: dict[str, object]) -> None:
    app = make_app(config, MAX_CONTENT_LENGTH=4096)
    client = app.test_client()
    body = b"name=" + b"x" * 10_000
    response = client.post(
        "/petition/sign",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert row_count(app) == 0


@pytest.mark.parametrize(
    ("field", "limit"),
    [("name", 120), ("position", 120), ("organization", 200), ("phone", 32)],
)
def test_every_text_field_has_a_length_cap(app: Flask, client: FlaskClient, field: str, limit: int) -> None:
    value = "+1 555 0100" if field == "phone" else "a"
    fill = "0" if field == "phone" else "a"
    answers = {**SIGNATURE, field: value + fill * (limit + 1 - len(value))}
    response = client.post("/petition/sign", data={**page_tokens(client), **answers})
    assert response.status_code == 400
    assert f"under {limit} characters" in response.get_data(as_text=True)
    assert row_count(app) == 0
    answers[field] = answers[field][:limit]
    assert client.post("/petition/sign", data={**page_tokens(client), **answers}).status_code == 303
    assert row_count(app) == 1


@pytest.mark.parametrize("value", ["http://spam.example", " ", "1"])
def test_a_filled_honeypot_gets_the_same_thanks_and_stores_nothing(app: Flask, client: FlaskClient, value: str) -> None:
    honest = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE})
    bot = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE, "website": value})
    assert bot.status_code == honest.status_code == 303
    assert bot.headers["Location"] == honest.headers["Location"]
    assert row_count(app) == 1


def test_the_honeypot_works_for_sealed_envelopes_too(app: Flask, client: FlaskClient) -> None:
    data = {**page_tokens(client), "envelope": '{"version":1,"recipients":[]}', "website": "bot"}
    response = client.post("/petition/sign", data=data)
    assert response.status_code == 303
    assert row_count(app) == 0


def test_the_honeypot_field_name_is_a_setting(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_HONEYPOT_FIELD="homepage")
    client = app.test_client()
    html = client.get("/petition/sign").get_data(as_text=True)
    assert 'name="homepage"' in html
    assert 'name="website"' not in html
    assert client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE, "homepage": "x"}).status_code == 303
    assert row_count(app) == 0


# Every one of these settings can come from the environment.
def test_a_down_limiter_store_still_takes_submissions_and_counts_in_memory(config: dict[str, object]) -> None:
    app = make_app(
        config, RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="2 per minute", RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0"
    )
    client = app.test_client()
    response = client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE})
    assert response.status_code == 303
    assert row_count(app) == 1
    assert burst(client, 2) == [400, 429]
