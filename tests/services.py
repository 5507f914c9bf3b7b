"""What tests need of the services they use, written once: PostgreSQL, Redis, node, a real gunicorn, the flask command
and a relay to PostgreSQL that a test can cut.

The fixtures built on these are in conftest.py, which also marks each test by the services it uses (the markers are
listed in pyproject.toml). Every service a test needs must be there: a missing one fails the test, never skips it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import redis
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.cli import FlaskGroup
from pages import CAMPAIGNS, ROOT
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.storage import db
from papillon import keys

# --- PostgreSQL ----------------------------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("PAPILLON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Postgres:
    """The session's database on the test server, or why there is none."""

    url: str | None
    problem: str | None

    def require(self) -> str:
        """The database's URL; the test fails, saying why, when there is none."""
        if self.url is None:
            pytest.fail(self.problem or "no PostgreSQL database", pytrace=False)
        return self.url


def admin_engine() -> Engine:
    """An engine on PAPILLON_TEST_POSTGRES_URL itself, as the user who may create databases; dispose it after use."""
    return create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10})


def unreachable(exc: Exception) -> str:
    where = make_url(POSTGRES_URL).render_as_string(hide_password=True)
    return (
        f"PostgreSQL is not reachable at {where} ({type(exc).__name__}): start it, "
        "or set PAPILLON_TEST_POSTGRES_URL to a server where this user may create databases"
    )


@contextlib.contextmanager
def new_database(prefix: str) -> Iterator[str]:
    """A database with a fresh name on the test server, dropped on the way out; yields its URL.

    Raises SQLAlchemyError when the server cannot be reached or refuses to make it."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def dispose(app: Flask) -> None:
    """Close the connections the app's engine holds: a test's app is dropped long before the process ends."""
    with app.app_context():
        db.engine.dispose()


# --- Redis ---------------------------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("PAPILLON_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def connect_redis(url: str) -> redis.Redis:
    """The local test Redis; one out of reach fails the test (never skips it)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(f"Redis is needed for this test and cannot be reached at {url}: {exc}")
    return client


@dataclass
class Scratch:
    """A Redis connection, a secret no other test uses (so every limiter key of this test is new),
    and the client hashes whose keys are deleted afterwards: nothing else in the database is touched."""

    client: redis.Redis
    secret: str = field(default_factory=lambda: f"redis test secret {uuid.uuid4().hex}")
    hashes: list[str] = field(default_factory=list)

    def ours(self) -> list[str]:
        keys = [k.decode() for k in self.client.scan_iter(count=1000)]
        return [k for k in keys if any(h in k for h in self.hashes)]


def program(name: str, package: str) -> str:
    """The program, or a failure that says which Debian package brings it."""
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (make test installs it)", pytrace=False)
    return found


# --- node ----------------------------------------------------------------------------------------------------------

HARNESS = ROOT / "tests" / "js"


@functools.cache
def node_binary() -> str:
    """Node.js 20 or later, which has the WebCrypto X25519 that app/static/seal.js needs."""
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed: install Node.js 20 or later to test app/static/seal.js", pytrace=False)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"node {version} is too old: app/static/seal.js needs WebCrypto X25519 (node 20+)", pytrace=False)
    return path


# What the ``node`` fixture gives a test: run a harness script of tests/js with a JSON payload, get its JSON back.
Node = Callable[[str, object], Any]


def run_node(script: str, payload: object) -> Any:
    """Run a harness script of tests/js with JSON on stdin and return the JSON it prints."""
    proc = subprocess.run(
        [node_binary(), str(HARNESS / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"node {script} exited with {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return json.loads(proc.stdout)


# --- the flask command ---------------------------------------------------------------------------------------------


def flask(config: dict[str, object], *args: str) -> Result:
    """``flask --app wsgi ARGS`` in this process: the flask command loads the app with these settings, the way it
    loads wsgi.py's, so the app knows it was loaded to run a command and not to serve. Its connections are closed
    afterwards, as they would be when the command's process ends."""
    loaded: list[Flask] = []

    def load() -> Flask:
        loaded.append(create_app(config))
        return loaded[-1]

    group = FlaskGroup(create_app=load, load_dotenv=False, set_debug_flag=False)
    try:
        with mock.patch.dict(os.environ):  # the flask command marks the process as its own
            return CliRunner().invoke(group, list(args))
    finally:
        for app in loaded:
            dispose(app)


# --- a real gunicorn -----------------------------------------------------------------------------------------------

# What a visitor's request carries, made up so that it can be searched for afterwards.
FORWARDED_ADDRESS = "198.51.100.173"
AGENT = "Mozilla/5.0 (PapillonProbe; MadeUpAgent/7.31)"
REFERRER = "https://referrer.invalid/came-from/this-page"


def _second_loopback() -> str | None:
    """Connect from 127.0.0.2 where the system allows it (Linux does), so the real peer address can be
    looked for in the logs too; 127.0.0.1 cannot be, as gunicorn's own "Listening at" line names it."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
    except OSError:
        return None
    return "127.0.0.2"


PEER_ADDRESS = _second_loopback()


# Started from the repository root, so that it reads the shipped gunicorn.conf.py.
@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    data: Path

    def connection(self) -> http.client.HTTPConnection:
        source = (PEER_ADDRESS, 0) if PEER_ADDRESS else None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=source)

    def logs(self) -> str:
        return self.out.read_text(errors="replace") + "\n" + self.err.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def healthy(port: int) -> bool:
    """Whether the server on ``port`` answers /healthz with 200 now."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until_healthy(process: subprocess.Popen[bytes], port: int, logs: Callable[[], str]) -> None:
    """Until the server answers /healthz; the test fails, with the server's ``logs()``, if it exits or takes 30 s."""
    deadline = time.monotonic() + 30
    while not healthy(port):
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{logs()}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn did not answer within 30 s:\n{logs()}", pytrace=False)
        time.sleep(0.2)


def schema_ready(settings: dict[str, str]) -> Flask:
    """An app on these settings whose database holds the tables, its connections closed before a server starts."""
    setup = create_app({"SECRET_KEY": "x", **settings})
    with setup.app_context():
        db.create_schema()
        db.engine.dispose()
    return setup


def server_environment() -> dict[str, str]:
    """This process's environment without Papillon's, the limiter's or gunicorn's settings: a server under test
    gets only those its test gives it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PAPILLON_", "RATELIMIT_", "GUNICORN_"))}


@contextlib.contextmanager
def running_gunicorn(tmp_path: Path, organizer_key: X25519PrivateKey, **settings: str) -> Iterator[Server]:
    """A real gunicorn on a free port with the shipped gunicorn.conf.py and ``settings`` in its environment."""
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "organizer.pub").write_text(keys.dumps_public("organizer", organizer_key.public_key()))
    data = tmp_path / "data"
    data.mkdir()
    database_url = f"sqlite:///{data / 'papillon.sqlite3'}"
    schema_ready(
        {"DATABASE_URL": database_url, "PAPILLON_KEYS_DIR": str(keys_dir), "PAPILLON_CAMPAIGNS_DIR": str(CAMPAIGNS)}
    )
    port = free_port()
    env = server_environment()
    env.update(
        SECRET_KEY="gunicorn test secret key",
        DATABASE_URL=database_url,
        PAPILLON_KEYS_DIR=str(keys_dir),
        PAPILLON_CAMPAIGNS_DIR=str(CAMPAIGNS),
        PAPILLON_BIND=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)  # a test may give its own database or secret key too
    env.pop("WEB_CONCURRENCY", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    running = Server(port, process, out, err, data)
    try:
        wait_until_healthy(process, port, running.logs)
        yield running
    finally:
        stop(process)


def request(
    server: Server, method: str, path: str, body: bytes | None = None, cookie: str = "", **headers: str
) -> tuple[int, dict[str, str], str]:
    """One request to a real gunicorn, carrying what a visitor's browser would: status, headers and text back."""
    conn = server.connection()
    sent = {"X-Forwarded-For": FORWARDED_ADDRESS, "User-Agent": AGENT, "Referer": REFERRER, **headers}
    if cookie:
        sent["Cookie"] = cookie
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def worker_pids(server: Server) -> set[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


# --- a relay to PostgreSQL -----------------------------------------------------------------------------------------


class Outage:
    """A TCP relay between the app and PostgreSQL that the test can cut and mend, as a network or a restart
    would: while cut, it refuses new connections and drops the open ones. ``close`` stops it for good."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.open: list[socket.socket] = []
        self.relays: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.accepting = threading.Thread(target=self.accept, daemon=True)
        self.accepting.start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            relay = threading.Thread(target=self.relay, args=(client, server), daemon=True)
            with self.lock:
                self.open += [client, server]
                self.relays.append(relay)
            relay.start()

    def relay(self, client: socket.socket, server: socket.socket) -> None:
        """Both ways until either side ends or the relay is cut; then both sockets are closed."""
        back = threading.Thread(target=self.pipe, args=(server, client), daemon=True)
        back.start()
        self.pipe(client, server)
        back.join()
        with self.lock:
            for s in (client, server):
                if s in self.open:
                    self.open.remove(s)
                s.close()

    @staticmethod
    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def mend(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which then ends
        self.accepting.join(timeout=10)
        self.listener.close()
        for relay in self.relays:
            relay.join(timeout=10)
