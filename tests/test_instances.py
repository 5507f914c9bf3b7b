"""Two real gunicorn instances on one PostgreSQL and one Redis, as a deployment behind a load balancer runs them.

Many people send at once while a worker is killed; they retry as a browser would, with the same page. Afterwards
every acknowledged answer opens exactly once on the laptop, the rate limit counts across both instances, and a
database restart is answered 503 and then recovered from, with no restart of either instance.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import CAMPAIGNS, decrypt_args, form_tokens
from services import (
    PEER_ADDRESS,
    REDIS_URL,
    Outage,
    Postgres,
    Scratch,
    Server,
    flask,
    request,
    running_gunicorn,
    worker_pids,
)
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app import create_app, security
from app.storage import Base, Submission
from papillon import bundle

FORM = "/petition/testimony"
CLIENTS, EACH = 8, 15  # client threads, and submissions each of them sends
ATTEMPTS = 5  # tries of one request before a client gives up, as a person pressing "Send" again would
SUBMIT_LIMIT = 5  # posts per minute in the rate limit phase
# Limits far above what the load phase sends, so that only the rate limit phase meets one.
UNLIMITED = {"RATELIMIT_DEFAULT": "100000 per minute", "RATELIMIT_SUBMIT": "100000 per minute"}
MARKER = re.compile(r"Zqv-marker-[0-9a-f]{8}-\d{2}-\d{3}")
RETRYABLE = (OSError, http.client.HTTPException)
T = TypeVar("T")


@dataclass
class Tally:
    """What the clients saw, counted from several threads."""

    acknowledged: list[str] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def with_retries(send: Callable[[int], tuple[int, dict[str, str], str]]) -> tuple[int, dict[str, str], str]:
    """``send(attempt)`` until it is answered below 500: a dropped connection or a 5xx is tried again, at most
    ATTEMPTS times. Returns the last answer, with status 0 if none came."""
    answer: tuple[int, dict[str, str], str] = (0, {}, "")
    for attempt in range(ATTEMPTS):
        try:
            answer = send(attempt)
        except RETRYABLE:
            answer = (0, {}, "")
        if 0 < answer[0] < 500:
            break
        time.sleep(0.1 * (attempt + 1))
    return answer


def page(server: Server) -> tuple[str, dict[str, str]]:
    """A form page, as a person opens it: its cookie and its hidden values."""
    status, headers, html = with_retries(lambda _: request(server, "GET", FORM))
    assert status == 200, (status, html[:300])
    return headers["set-cookie"].split(";", 1)[0], form_tokens(html)


def answers(tokens: dict[str, str], marker: str) -> bytes:
    return urlencode({**tokens, "what_happened": f"It happened at the parlour, {marker}"}).encode()


def submit(servers: list[Server], first: int, marker: str) -> int:
    """Open the page on one instance and post it to the other; on each failure the same post again (same id, cookie
    and token), alternating instances as a load balancer moves a retry elsewhere. Returns the final status."""
    cookie, tokens = page(servers[first % 2])
    body = answers(tokens, marker)
    return with_retries(lambda attempt: request(servers[(first + 1 + attempt) % 2], "POST", FORM, body, cookie))[0]


def client(servers: list[Server], run: str, number: int, tally: Tally) -> None:
    for i in range(EACH):
        marker = f"Zqv-marker-{run}-{number:02d}-{i:03d}"
        status = submit(servers, number + i, marker)
        with tally.lock:
            if status == 303:
                tally.acknowledged.append(marker)
            else:
                tally.refused.append((marker, status))


def worker_holding(server: Server, client: socket.socket) -> int | None:
    """The worker of ``server`` that accepted ``client``'s connection, found through /proc: the server's end of it
    is the socket whose peer is the client's port, and the worker is the process holding that socket."""
    port = client.getsockname()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, peer = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        if (local, peer) == (server.port, port):
            inodes.add(f"socket:[{fields[9]}]")
    for pid in worker_pids(server):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
    return None


def kill_a_worker_mid_post(server: Server, body: bytes, cookie: str) -> int:
    """Send all of a post but its last byte, then SIGKILL the worker reading it, as the kernel's OOM killer would:
    that worker gets no chance to finish. Returns the worker's pid once the post's connection has been dropped."""
    head = (
        f"POST {FORM} HTTP/1.1\r\nHost: papillon\r\nCookie: {cookie}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as post:
        post.sendall(head.encode() + body[:-1])
        victim = wait_for(lambda: worker_holding(server, post), 10, "no worker took the post")
        os.kill(victim, signal.SIGKILL)
        with contextlib.suppress(ConnectionResetError):
            assert post.recv(4096) == b"", "the killed worker answered"
    return victim


def wait_for(probe: Callable[[], T], seconds: float, what: str) -> T:
    """``probe()`` until it gives something true, which is returned; the test fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def stored_ids(url: str) -> tuple[int, int]:
    """Rows in the submissions table, and distinct submission ids among them."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.scalar(select(func.count()).select_from(Submission))
            ids = conn.scalar(select(func.count(func.distinct(Submission.id))))
    finally:
        engine.dispose()
    return rows, ids


def markers_in_csv(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        _, *rows = list(csv.reader(fh))
    found = [MARKER.findall(" ".join(row)) for row in rows]
    assert all(len(markers) == 1 for markers in found), "a row without its marker, or with two"
    return [markers[0] for markers in found]


@contextlib.contextmanager
def two_instances(tmp_path: Path, organizer_key: X25519PrivateKey, **settings: str) -> Iterator[list[Server]]:
    """Two gunicorn servers, two gthread workers each, with the same settings; both are stopped on the way out."""
    with contextlib.ExitStack() as stack:
        servers = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir(parents=True)
            servers.append(
                stack.enter_context(running_gunicorn(folder, organizer_key, PAPILLON_WORKERS="2", **settings))
            )
        yield servers


@pytest.fixture
def database(postgres: Postgres, keys_dir: Path) -> Iterator[tuple[str, Outage]]:
    """The session's PostgreSQL database brought to the latest revision by ``flask db upgrade``, and a relay to it
    the test can cut; the tables are dropped afterwards."""
    url = postgres.require()
    server = make_url(url)
    outage = Outage((server.host or "127.0.0.1", server.port or 5432))
    try:
        result = flask({"SECRET_KEY": "x", "DATABASE_URL": url, "PAPILLON_KEYS_DIR": str(keys_dir)}, "db", "upgrade")
        assert result.exit_code == 0, result.output
        yield url, outage
    finally:
        outage.close()
        engine = create_engine(url)
        try:
            Base.metadata.drop_all(engine)
            with engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        finally:
            engine.dispose()


def forget_the_counts(scratch: Scratch, config: dict[str, object]) -> None:
    """Name this client's limiter keys under the config's secret so the Redis fixture deletes them afterwards."""
    with create_app(config).test_request_context("/"):
        scratch.hashes.append(security.client_key(PEER_ADDRESS or "127.0.0.1"))


def ride_out_a_database_restart(servers: list[Server], outage: Outage, url: str, run: str) -> list[str]:
    """The database restarts: both instances say so (503) and then recover, with no restart of their own, and store
    the post each refused once it is sent again. Returns the markers of those posts."""
    pending = [(server, *page(server), f"Zqv-marker-{run}-99-{n:03d}") for n, server in enumerate(servers)]
    outage.cut()
    for server, cookie, tokens, marker in pending:
        assert request(server, "GET", "/healthz")[0] == 503
        assert request(server, "POST", FORM, answers(tokens, marker), cookie)[0] == 503
    rows_while_cut = stored_ids(url)[0]
    outage.mend()
    for server, cookie, tokens, marker in pending:
        wait_for(lambda s=server: request(s, "GET", "/healthz")[0] == 200, 10, "an instance did not recover")
        assert request(server, "POST", FORM, answers(tokens, marker), cookie)[0] == 303
    assert stored_ids(url)[0] == rows_while_cut + len(servers), "each answer sent after the restart is stored"
    return [marker for *_, marker in pending]


def test_two_instances_lose_nothing_count_together_and_ride_out_a_database_restart(
    tmp_path: Path,
    organizer_key: X25519PrivateKey,
    organizer_key_file: Path,
    keys_dir: Path,
    database: tuple[str, Outage],
    redis_db: Scratch,
    script: Callable,
) -> None:
    url, outage = database
    relayed = make_url(url).set(port=outage.port).render_as_string(hide_password=False)
    shared = {"DATABASE_URL": relayed, "RATELIMIT_STORAGE_URI": REDIS_URL}
    config = {"SECRET_KEY": redis_db.secret, "DATABASE_URL": url, "PAPILLON_KEYS_DIR": str(keys_dir)}
    config["PAPILLON_CAMPAIGNS_DIR"] = str(CAMPAIGNS)
    forget_the_counts(redis_db, config)
    run = uuid.uuid4().hex[:8]
    tally = Tally()

    with two_instances(tmp_path / "load", organizer_key, SECRET_KEY=redis_db.secret, **shared, **UNLIMITED) as servers:
        # Many people at once; a third of the way through, one worker of the first instance is killed.
        with ThreadPoolExecutor(CLIENTS) as pool:
            clients = [pool.submit(client, servers, run, n, tally) for n in range(CLIENTS)]
            wait_for(lambda: len(tally.acknowledged) >= CLIENTS * EACH // 3, 30, "the load did not get going")
            cookie, tokens = page(servers[0])
            interrupted = answers(tokens, f"Zqv-marker-{run}-97-000")
            before = worker_pids(servers[0])
            victim = kill_a_worker_mid_post(servers[0], interrupted, cookie)
            acknowledged_before_the_kill = len(tally.acknowledged)
            # Its sender tries again, the same post, and the load balancer sends it to the other instance.
            assert request(servers[1], "POST", FORM, interrupted, cookie)[0] == 303
            for done in clients:
                done.result(timeout=45)
        assert acknowledged_before_the_kill < CLIENTS * EACH, "the worker was killed after the load, not during it"
        assert tally.refused == [], "a client gave up although it retried"
        assert len(tally.acknowledged) == CLIENTS * EACH
        tally.acknowledged.append(f"Zqv-marker-{run}-97-000")
        wait_for(lambda: len(worker_pids(servers[0])) == 2, 15, "the killed worker was not replaced")
        assert victim in before
        assert victim not in worker_pids(servers[0])

        tally.acknowledged += ride_out_a_database_restart(servers, outage, url, run)

    # Export on the server, decrypt on the laptop: every acknowledged answer exactly once, and nothing else.
    export = tmp_path / "export.papillon"
    result = flask(config, "export", "--out", str(export))
    assert result.exit_code == 0, result.output
    out = tmp_path / "laptop"
    assert script("decrypt").main(decrypt_args(export, organizer_key_file, out)) == 0
    opened = markers_in_csv(out / "petition-testimony.csv")
    rows, ids = stored_ids(url)
    assert len(opened) == len(set(opened)), "an answer opened twice"
    assert sorted(opened) == sorted(tally.acknowledged), "an acknowledged answer is missing, or an extra one appeared"
    assert len(opened) == rows == ids == len(bundle.read(export).records)

    # A low limit, counted in Redis: posts alternated between the instances from one address meet it together.
    limited = {**UNLIMITED, "RATELIMIT_SUBMIT": f"{SUBMIT_LIMIT} per minute"}
    config["SECRET_KEY"] = f"{redis_db.secret} limit phase"
    forget_the_counts(redis_db, config)
    with two_instances(
        tmp_path / "limit", organizer_key, SECRET_KEY=config["SECRET_KEY"], **shared, **limited
    ) as servers:
        statuses = []
        for i in range(SUBMIT_LIMIT + 3):
            cookie, tokens = page(servers[i % 2])
            body = answers(tokens, f"Zqv-marker-{run}-98-{i:03d}")
            statuses.append(request(servers[(i + 1) % 2], "POST", FORM, body, cookie)[0])
    assert statuses == [303] * SUBMIT_LIMIT + [429] * 3
    assert stored_ids(url)[0] == rows + SUBMIT_LIMIT, "a post over the limit was stored"
