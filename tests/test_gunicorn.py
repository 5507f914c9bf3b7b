"""The shipped gunicorn.conf.py: its settings, its log filter, and a real gunicorn that must forget its visitors."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import runpy
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker
from pages import ROOT, form_tokens
from services import (
    AGENT,
    FORWARDED_ADDRESS,
    PEER_ADDRESS,
    REFERRER,
    Server,
    request,
    running_gunicorn,
    stop,
    worker_pids,
)

CONF = ROOT / "gunicorn.conf.py"

SECRETS = [FORWARDED_ADDRESS, "PapillonProbe", "MadeUpAgent", "referrer.invalid", "came-from"]
SECRETS += [PEER_ADDRESS] if PEER_ADDRESS else []
APACHE_TIME = re.compile(r"\d{2}/[A-Z][a-z]{2}/\d{4}")
CLOCK = re.compile(r"(?<![\d.:])\d{1,2}:\d{2}:\d{2}(?![\d])")


def load_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, object]:
    for name in os.environ:
        if name.startswith(("PAPILLON_", "RATELIMIT_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_conf(monkeypatch)
    assert conf["bind"] == ["127.0.0.1:8000"]
    assert conf["workers"] == 1
    assert conf["accesslog"] is None
    assert conf["errorlog"] == "-"
    assert conf["forwarded_allow_ips"] == ""
    assert conf["proxy_protocol"] is False
    assert issubclass(conf["logger_class"], Logger)
    assert issubclass(conf["worker_class"], ThreadWorker)
    assert (conf["max_requests"], conf["max_requests_jitter"], conf["preload_app"]) == (100, 20, True)


@pytest.mark.parametrize("cores", [1, 3, 16])
def test_with_a_shared_limiter_store_the_default_is_one_worker_per_core(monkeypatch, cores: int) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert load_conf(monkeypatch, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0")["workers"] == cores


def test_with_the_in_memory_limiter_the_default_stays_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker would keep its own counts, so more of them would multiply every limit."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert load_conf(monkeypatch)["workers"] == 1
    assert load_conf(monkeypatch, RATELIMIT_STORAGE_URI="memory://")["workers"] == 1


def test_an_unknown_core_count_gives_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert load_conf(monkeypatch, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0")["workers"] == 1


@pytest.mark.parametrize("storage", ["memory://", "redis://127.0.0.1:6379/0"])
def test_papillon_workers_overrides_the_core_count(monkeypatch, storage: str) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert load_conf(monkeypatch, RATELIMIT_STORAGE_URI=storage, PAPILLON_WORKERS="3")["workers"] == 3


@pytest.mark.parametrize(
    "bind", ["unix:/run/papillon/gunicorn.sock", "127.0.0.1:8000", "[::1]:8000", "localhost:8000", "127.0.0.2:9000"]
)
def test_behind_a_trusted_proxy_gunicorn_may_listen_where_only_the_proxy_reaches(monkeypatch, bind: str) -> None:
    assert load_conf(monkeypatch, PAPILLON_TRUSTED_PROXIES="1", PAPILLON_BIND=bind)["bind"] == [bind]


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", "192.0.2.10:8000", "127.0.0.1:8000,0.0.0.0:8001"])
def test_behind_a_trusted_proxy_gunicorn_refuses_to_listen_where_clients_could_skip_it(monkeypatch, bind) -> None:
    with pytest.raises(SystemExit, match="forge X-Forwarded-For"):
        load_conf(monkeypatch, PAPILLON_TRUSTED_PROXIES="1", PAPILLON_BIND=bind)


def test_without_a_trusted_proxy_any_address_may_be_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_conf(monkeypatch, PAPILLON_BIND="0.0.0.0:8000")["bind"] == ["0.0.0.0:8000"]


def test_the_core_dump_guard_forbids_core_files_and_debuggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a child process, since the guard cannot be undone."""
    script = (
        "import ctypes, resource, runpy, sys; conf = runpy.run_path(sys.argv[1]); conf['_no_core_dumps']();"
        "print(resource.getrlimit(resource.RLIMIT_CORE), ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPILLON_")}
    out = subprocess.run([sys.executable, "-c", script, str(CONF)], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["(0,", "0)", "0"], out.stderr
    conf = load_conf(monkeypatch)
    assert conf["on_starting"].__code__.co_names == conf["post_fork"].__code__.co_names == ("_no_core_dumps",)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_conf(
        monkeypatch,
        PAPILLON_BIND="0.0.0.0:9000, [::]:9000",
        PAPILLON_WORKERS="3",
        PAPILLON_THREADS="2",
        PAPILLON_ACCESS_LOG="off",
        PAPILLON_LOG_LEVEL="warning",
    )
    assert conf["bind"] == ["0.0.0.0:9000", "[::]:9000"]
    assert (conf["workers"], conf["threads"], conf["accesslog"], conf["loglevel"]) == (3, 2, None, "warning")


def test_the_access_log_format_holds_nothing_about_the_visitor(monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = load_conf(monkeypatch)["access_log_format"]
    atoms = set(re.findall(r"%\(([^)]+)\)s", fmt))
    assert atoms <= {"m", "U", "s", "B", "b", "H", "T", "D", "M", "L"}
    assert atoms >= {"m", "U", "s"}


def test_the_logger_hands_out_only_safe_atoms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a changed access_log_format (say %(h)s %(t)s "%(a)s") cannot bring back the visitor."""
    logger_class = load_conf(monkeypatch)["logger_class"]
    logger = object.__new__(logger_class)

    @dataclass
    class Response:
        status: str = "200 OK"
        headers: tuple = (("Set-Cookie", "papillon=abc"),)
        sent: int = 12

    environ = {
        "REMOTE_ADDR": FORWARDED_ADDRESS,
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/x?who=me",
        "PATH_INFO": "/x",
        "QUERY_STRING": "who=me",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": AGENT,
        "HTTP_REFERER": REFERRER,
    }
    request_headers = [("USER-AGENT", AGENT), ("REFERER", REFERRER), ("X-FORWARDED-FOR", FORWARDED_ADDRESS)]
    atoms = logger.atoms(Response(), request_headers, environ, dt.timedelta(milliseconds=5))
    wrapped = logger.atoms_wrapper_class(atoms)
    line = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(q)s %({x-forwarded-for}i)s %({set-cookie}o)s'
    text = line % wrapped
    for secret in [*SECRETS, "who=me", "papillon=abc"]:
        assert secret not in text
    assert not APACHE_TIME.search(text)
    assert not CLOCK.search(text)
    assert '"%(m)s %(U)s" %(s)s %(B)s' % wrapped == '"GET /x" 200 12'  # noqa: UP031 (gunicorn's own syntax)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Invalid request from ip=198.51.100.173: Invalid HTTP request line: 'GARBAGE'", "Invalid HTTP request line"),
        (
            f"Invalid request from ip=2001:db8::1: Invalid HTTP Header: 'User-Agent: {AGENT}'",
            "Invalid HTTP Header",
        ),
        ("Invalid request from ip=198.51.100.173: Proxy request from '198.51.100.173' not allowed", "Proxy request"),
        ("Invalid request from ip=: 'bad'", "malformed"),
    ],
)
def test_the_error_log_filter_drops_address_and_request(monkeypatch: pytest.MonkeyPatch, message: str, expected: str):
    filter_class = load_conf(monkeypatch)["ForgetClients"]
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, message, (), None)
    assert filter_class().filter(record) is True
    text = record.getMessage()
    assert text.startswith("Invalid request: ")
    assert expected in text
    for secret in [*SECRETS, "2001:db8", "GARBAGE", "'"]:
        assert secret not in text


def test_the_error_log_filter_hides_any_ip_equals(monkeypatch: pytest.MonkeyPatch) -> None:
    filter_class = load_conf(monkeypatch)["ForgetClients"]
    record = logging.LogRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "peer %s went away", ("ip=198.51.100.9",), None
    )
    filter_class().filter(record)
    assert "198.51.100.9" not in record.getMessage()


def test_the_error_log_has_no_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    logger_class = load_conf(monkeypatch)["logger_class"]
    assert "asctime" not in logger_class.error_fmt
    assert "asctime" not in logger_class.syslog_fmt


@pytest.fixture
def server(tmp_path: Path, organizer_key: X25519PrivateKey) -> Iterator[Server]:
    with running_gunicorn(
        tmp_path,
        organizer_key,
        PAPILLON_TRUSTED_PROXIES="1",  # so the made-up X-Forwarded-For becomes the client address
        PAPILLON_ACCESS_LOG="-",  # on, so that the test can show what it holds
        RATELIMIT_SUBMIT="3 per minute",
    ) as running:
        yield running


def raw_request(server: Server, data: bytes) -> bytes:
    with socket.socket() as s:
        s.settimeout(10)
        if PEER_ADDRESS:
            s.bind((PEER_ADDRESS, 0))
        s.connect(("127.0.0.1", server.port))
        s.sendall(data)
        return s.recv(4096)


def minutes_between(start: dt.datetime, end: dt.datetime) -> set[str]:
    """Every HH:MM the test ran through, in local time and in UTC."""
    out = set()
    moment = start - dt.timedelta(minutes=1)
    while moment <= end + dt.timedelta(minutes=1):
        out.add(moment.strftime("%H:%M"))
        out.add(moment.astimezone(dt.UTC).strftime("%H:%M"))
        moment += dt.timedelta(minutes=1)
    return out


def test_gunicorn_logs_and_database_keep_nothing_about_the_visitor(server: Server) -> None:
    start = dt.datetime.now().astimezone()
    assert request(server, "GET", "/")[0] == 200
    assert request(server, "GET", f"/petition/?from={FORWARDED_ADDRESS}&ua=PapillonProbe")[0] == 200

    status, headers, html = request(server, "GET", "/petition/sign")
    assert status == 200
    cookie = headers["set-cookie"].split(";", 1)[0]
    answers = {
        **form_tokens(html),
        "signing_as": "individual",
        "name": "Ada Lovelace",
    }
    status, headers, _ = request(server, "POST", "/petition/sign", urlencode(answers).encode(), cookie)
    assert status == 303, headers
    assert request(server, "GET", headers["location"], cookie=cookie)[0] == 200

    assert request(server, "GET", "/no-such-page/")[0] == 404
    status, _, html = request(server, "POST", "/petition/sign", b"name=" + b"x" * 300_000, cookie)
    assert status == 413
    assert "larger than this site accepts" in html
    assert request(server, "POST", "/petition/sign", b"name=x", cookie)[0] == 400
    status, headers, html = request(server, "POST", "/petition/sign", b"name=x", cookie)
    assert status == 429
    assert "Too many tries" in html
    assert "Traceback" not in html
    assert headers["content-security-policy"].startswith("default-src 'none'")
    # Requests gunicorn itself refuses, which its error log would report with the peer's address.
    assert raw_request(server, b"GARBAGE \x01 REQUEST\r\n\r\n").startswith(b"HTTP/1.1 400")
    bad_header = f"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: {AGENT}\x01\r\n\r\n".encode()
    assert raw_request(server, bad_header).startswith(b"HTTP/1.1 400")
    end = dt.datetime.now().astimezone()

    stop(server.process)
    logs = server.logs()
    # The log is there, and it says what it should.
    assert '"GET /petition/" 200' in logs
    assert '"POST /petition/sign" 303' in logs
    assert '"POST /petition/sign" 429' in logs
    assert "Invalid request: Invalid HTTP request line" in logs
    # And nothing else.
    for secret in SECRETS:
        assert secret not in logs, secret
    assert "from=" not in logs
    assert "?" not in logs
    assert not APACHE_TIME.search(logs), APACHE_TIME.search(logs)
    assert not CLOCK.search(logs), CLOCK.search(logs)
    for hhmm in minutes_between(start, end):
        assert not re.search(rf"(?<![\d.:]){hhmm}(?![\d])", logs), hhmm

    files = sorted(server.data.iterdir())
    assert any(f.name == "papillon.sqlite3" for f in files)
    stored = b"".join(f.read_bytes() for f in files)
    assert b"petition" in stored  # the row is there
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
    assert not re.search(rb"\d{2}:\d{2}:\d{2}", stored)
    for hhmm in minutes_between(start, end):
        assert not re.search(rb"(?<![\d.:])" + hhmm.encode() + rb"(?![\d])", stored), hhmm


def test_the_access_log_is_off_by_default(tmp_path: Path, organizer_key: X25519PrivateKey) -> None:
    with running_gunicorn(tmp_path, organizer_key) as server:
        assert request(server, "GET", "/petition/")[0] == 200
        stop(server.process)
        assert "/petition/" not in server.logs()


def slow_client(server: Server, data: bytes) -> socket.socket:
    """A connection that sends the start of a request and then nothing more."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    s.sendall(data)
    return s


def test_slow_clients_cannot_hold_the_server(tmp_path: Path, organizer_key: X25519PrivateKey) -> None:
    """More half-sent requests than there are threads: half stop inside their headers, half inside their body."""
    threads, timeout = 2, 2
    with running_gunicorn(
        tmp_path, organizer_key, PAPILLON_THREADS=str(threads), PAPILLON_CLIENT_TIMEOUT=str(timeout)
    ) as server:
        headers = b"POST /petition/sign HTTP/1.1\r\nHost: papillon\r\nContent-Type: application/x-"
        body = (
            b"POST /petition/sign HTTP/1.1\r\nHost: papillon\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\nname=A"
        )
        slow = [slow_client(server, headers if i % 2 else body) for i in range(threads + 4)]
        try:
            time.sleep(0.5)  # every thread is now taken by a slow client
            started = time.monotonic()
            assert request(server, "GET", "/healthz")[0] == 200
            _, response_headers, html = request(server, "GET", "/petition/sign")
            cookie = response_headers["set-cookie"].split(";", 1)[0]
            answers = {**form_tokens(html), "signing_as": "individual", "name": "Ada Lovelace"}
            assert request(server, "POST", "/petition/sign", urlencode(answers).encode(), cookie)[0] == 303
            assert time.monotonic() - started < timeout + 6
            for s in slow:  # each was cut off by the server: the read ends instead of timing out
                s.settimeout(timeout + 6)
                while s.recv(4096):
                    pass
        finally:
            for s in slow:
                s.close()


def test_workers_are_recycled_and_dump_no_core(tmp_path: Path, organizer_key: X25519PrivateKey) -> None:
    with running_gunicorn(
        tmp_path, organizer_key, PAPILLON_MAX_REQUESTS="5", PAPILLON_MAX_REQUESTS_JITTER="0"
    ) as server:
        (first,) = worker_pids(server)
        limits = Path(f"/proc/{first}/limits").read_text()
        assert re.search(r"Max core file size\s+0\s+0\s", limits), limits
        for _ in range(8):
            assert request(server, "GET", "/healthz")[0] == 200
        deadline = time.monotonic() + 15
        while first in worker_pids(server) or not worker_pids(server):
            assert time.monotonic() < deadline, "the worker was not replaced"
            time.sleep(0.1)
        assert request(server, "GET", "/healthz")[0] == 200


def test_a_chunked_body_over_the_cap_is_refused_by_the_real_server(tmp_path: Path, organizer_key) -> None:
    """Chunked: no Content-Length to refuse up front. Valid answers first, then more than the cap allows."""
    with running_gunicorn(tmp_path, organizer_key) as server:
        _, headers, html = request(server, "GET", "/petition/sign")
        cookie = headers["set-cookie"].split(";", 1)[0]
        answers = urlencode({**form_tokens(html), "signing_as": "individual", "name": "Ada Lovelace"}).encode()
        body = answers + b"&" + b"z" * 300_000

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 16_384):
                yield body[start : start + 16_384]

        conn = server.connection()
        conn.request(
            "POST",
            "/petition/sign",
            body=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
            encode_chunked=True,
        )
        status = conn.getresponse().status
        conn.close()
        assert status == 413
        with contextlib.closing(sqlite3.connect(server.data / "papillon.sqlite3")) as stored:
            assert stored.execute("SELECT count(*) FROM submissions").fetchone() == (0,)
