"""app/security.py: the headers and the quick exit on every kind of page, the CSRF cookie, quiet logs.

The keys-folder checks at start-up are in tests/test_app.py and tests/test_keys.py; the rate limit key is in
tests/test_limits.py.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.request
from collections.abc import Callable
from html import unescape

import pytest
from flask import Flask
from flask.logging import default_handler
from flask.testing import FlaskClient
from pages import SIGNATURE, form_tokens, page_tokens, stored
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from app import create_app, security
from app.storage import db

CSP_DIRECTIVES = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
}


# Each kind of page, reached the way a person (or a bot) reaches it; each gets an app of its own.
def _index(client: FlaskClient) -> TestResponse:
    return client.get("/")


def _campaign(client: FlaskClient) -> TestResponse:
    return client.get("/petition/")


def _form(client: FlaskClient) -> TestResponse:
    return client.get("/petition/sign")


def _thanks(client: FlaskClient) -> TestResponse:
    return client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE}, follow_redirects=True)


def _invalid_answers(client: FlaskClient) -> TestResponse:
    return client.post("/petition/sign", data={**page_tokens(client), "signing_as": "individual"})


def _not_found(client: FlaskClient) -> TestResponse:
    return client.get("/no-such-campaign/")


def _bad_request(client: FlaskClient) -> TestResponse:
    return client.post("/petition/sign", data={"name": "x"})


def _too_large(client: FlaskClient) -> TestResponse:
    return client.post("/petition/sign", data={**page_tokens(client), "name": "x" * 300_000})


def _too_many(client: FlaskClient) -> TestResponse:
    for _ in range(3):
        response = client.post("/petition/sign", data={"name": "x"})
    return response


def _static(client: FlaskClient) -> TestResponse:
    response = client.get("/static/papillon.css")
    response.close()  # a file's response holds it open until closed, as a server closes it once sent
    return response


def _healthz(client: FlaskClient) -> TestResponse:
    return client.get("/healthz")


PAGES: dict[str, tuple[Callable[[FlaskClient], TestResponse], int]] = {
    "index": (_index, 200),
    "campaign": (_campaign, 200),
    "form": (_form, 200),
    "thanks": (_thanks, 200),
    "invalid answers": (_invalid_answers, 400),
    "404": (_not_found, 404),
    "400": (_bad_request, 400),
    "413": (_too_large, 413),
    "429": (_too_many, 429),
    "static": (_static, 200),
    "healthz": (_healthz, 200),
}
HTML_PAGES = [name for name in PAGES if name not in {"static", "healthz"}]


@pytest.fixture
def limited_config(config: dict[str, object]) -> dict[str, object]:
    config.update(RATELIMIT_ENABLED=True, RATELIMIT_SUBMIT="2 per minute", RATELIMIT_DEFAULT="1000 per hour")
    return config


def csp(response: TestResponse) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("page", list(PAGES))
def test_every_kind_of_page_carries_the_headers(limited_config: dict[str, object], page: str) -> None:
    app = create_app(limited_config)
    with app.app_context():
        db.create_schema()
    fetch, status = PAGES[page]
    response = fetch(app.test_client())
    assert response.status_code == status

    directives = csp(response)
    for name, value in CSP_DIRECTIVES.items():
        assert directives[name] == value, name
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert "*" not in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    permissions = response.headers["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation"):
        assert f"{feature}=()" in permissions
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here
    if page != "static":
        assert response.headers["Cache-Control"] == "no-store"
    for header in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"):
        assert header not in response.headers


@pytest.mark.parametrize("page", HTML_PAGES)
def test_every_page_has_the_quick_exit(limited_config: dict[str, object], page: str) -> None:
    limited_config["PAPILLON_QUICK_EXIT_URL"] = "https://exit.example/weather"
    app = create_app(limited_config)
    with app.app_context():
        db.create_schema()
    html = PAGES[page][0](app.test_client()).get_data(as_text=True)
    link = re.search(r"<a [^>]*data-quick-exit[^>]*>", html)
    assert link, page
    assert 'href="https://exit.example/weather"' in link.group()
    assert 'rel="noreferrer"' in link.group()
    assert re.search(r'<script src="/static/exit\.js[^"]*" defer></script>', html)


@pytest.mark.parametrize("page", HTML_PAGES)
def test_pages_need_nothing_the_policy_forbids(limited_config: dict[str, object], page: str) -> None:
    """No inline script, style or event handler, and nothing loaded from elsewhere: the strict CSP holds."""
    app = create_app(limited_config)
    with app.app_context():
        db.create_schema()
    html = PAGES[page][0](app.test_client()).get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<style\b", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    for url in re.findall(r'\b(?:src|href|action)="([^"]*)"', html):
        assert url.startswith(("/", "#")) or unescape(url) == app.config["PAPILLON_QUICK_EXIT_URL"], url


def test_a_post_over_https_needs_no_referrer(app: Flask) -> None:
    """Browsers send no Referer here (no-referrer), so nothing may require one under HTTPS."""
    client = app.test_client()
    page = client.get("/petition/sign", base_url="https://localhost")
    html = page.get_data(as_text=True)
    data = form_tokens(html)
    response = client.post("/petition/sign", data={**data, **SIGNATURE}, base_url="https://localhost")
    assert response.status_code == 303
    assert len(stored(app)) == 1


def test_error_pages_are_kind_and_repeat_nothing(client: FlaskClient, app: Flask) -> None:
    sent = "Zebulon-Quartermaine-<b>"
    response = client.post("/petition/sign", data={"name": sent, "submission_id": sent})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="error-message"' in html
    assert "Zebulon" not in html
    assert "Traceback" not in html
    assert stored(app) == []


def test_an_unexpected_error_shows_the_kind_page(config: dict[str, object]) -> None:
    config["TESTING"] = False
    app = create_app(config)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail that must not reach the page")

    logging.getLogger(app.name).disabled = True
    try:
        response = app.test_client().get("/boom")
    finally:
        logging.getLogger(app.name).disabled = False
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "secret detail" not in html
    assert "Traceback" not in html
    assert 'id="error-message"' in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


# HTTPS: HSTS and the cookie's Secure flag follow the scheme the request really came over.
def test_hsts_only_over_https(client: FlaskClient) -> None:
    assert "Strict-Transport-Security" not in client.get("/").headers
    hsts = client.get("/", base_url="https://localhost").headers["Strict-Transport-Security"]
    assert "max-age=" in hsts


def session_cookie(response: TestResponse) -> str:
    cookies = [v for v in response.headers.getlist("Set-Cookie") if v.startswith("papillon=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def cookie_flags(header: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}


def test_the_session_cookie_is_httponly_samesite_and_not_persistent(client: FlaskClient) -> None:
    header = session_cookie(client.get("/petition/sign"))
    flags = cookie_flags(header)
    assert "httponly" in flags
    assert re.search(r";\s*SameSite=(Lax|Strict)", header)
    assert "secure" not in flags  # plain HTTP
    assert "expires" not in flags
    assert "max-age" not in flags


def test_the_session_cookie_is_secure_over_https(client: FlaskClient) -> None:
    header = session_cookie(client.get("/petition/sign", base_url="https://localhost"))
    assert "secure" in cookie_flags(header)


def test_the_session_cookie_is_secure_when_the_setting_says_so(config: dict[str, object]) -> None:
    config["SESSION_COOKIE_SECURE"] = True
    header = session_cookie(create_app(config).test_client().get("/petition/sign"))
    assert "secure" in cookie_flags(header)


@pytest.mark.parametrize("trusted", [0, 1])
def test_https_reported_by_a_proxy_counts_only_when_the_proxy_is_trusted(
    config: dict[str, object], trusted: int
) -> None:
    config["PAPILLON_TRUSTED_PROXIES"] = trusted
    client = create_app(config).test_client()
    response = client.get("/petition/sign", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.1"})
    assert ("Strict-Transport-Security" in response.headers) == bool(trusted)
    assert ("secure" in cookie_flags(session_cookie(response))) == bool(trusted)


def test_only_form_pages_set_a_cookie(client: FlaskClient) -> None:
    for path in ("/", "/petition/", "/petition/sign/thanks", "/nowhere/", "/healthz", "/static/papillon.css"):
        with client.get(path) as response:
            assert not response.headers.getlist("Set-Cookie"), path


def test_the_session_holds_nothing_but_the_csrf_token(client: FlaskClient, app: Flask) -> None:
    serializer = app.session_interface.get_signing_serializer(app)
    client.get("/petition/sign")
    assert set(serializer.loads(client.get_cookie("papillon").value)) == {"csrf_token"}
    client.post("/petition/sign", data={**page_tokens(client), **SIGNATURE})
    client.post("/petition/sign", data={**page_tokens(client), "name": "x"})  # invalid: re-rendered
    assert set(serializer.loads(client.get_cookie("papillon").value)) == {"csrf_token"}
    assert len(stored(app)) == 1


def test_the_thank_you_page_reveals_nothing_that_was_sent(client: FlaskClient, app: Flask) -> None:
    answers = {**SIGNATURE, "position": "Lighthouse-Keeper-Unique", "organization": "Order-Of-Unusual-Words"}
    response = client.post("/petition/sign", data={**page_tokens(client), **answers})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert "?" not in location
    assert "#" not in location
    page = client.get(location)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for value in answers.values():
        assert value not in html
    assert 'id="error-message"' not in html
    assert len(stored(app)) == 1


# Logs: the development server's request lines, and Flask's own handler.
def test_the_dev_server_log_lines_carry_no_address_or_time(
    config: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    config["PAPILLON_TRUSTED_PROXIES"] = 1
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.server_port}/petition/",
                headers={
                    "X-Forwarded-For": "198.51.100.61",
                    "User-Agent": "DevAgent/9",
                    "Referer": "https://r.example/",
                },
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (a local URL)
                assert response.status == 200
    finally:
        server.shutdown()
        thread.join(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /petition/" in line for line in lines), lines
    text = "\n".join(lines)
    for secret in ("198.51.100.61", "127.0.0.1 -", "DevAgent", "r.example"):
        assert secret not in text
    assert not re.search(r"\d{1,2}:\d{2}:\d{2}", text)


@pytest.mark.parametrize("address", ["203.0.113.5", "::1", "2001:db8::7", "<local>"])
def test_the_dev_server_filter_drops_the_prefix(address: str) -> None:
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        f'{address} - - [01/Jan/2030 10:11:12] "%s" %s %s',
        ("GET / HTTP/1.1", "200", "-"),
        None,
    )
    security._DropClientAddress().filter(record)
    assert record.getMessage() == '"GET / HTTP/1.1" 200 -'


def test_flasks_own_log_handler_prints_no_time(app: Flask) -> None:
    formatter = default_handler.formatter
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "Exception on /x [POST]", (), None)
    line = formatter.format(record)
    assert "asctime" not in (formatter._fmt or "")
    assert not re.search(r"\d{1,2}:\d{2}", line)
    assert line.endswith("Exception on /x [POST]")
