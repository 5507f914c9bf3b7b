"""Faults as an operator meets them: the database going away and coming back, the limiter's store going down."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from pages import ROOT, form_tokens, row_count
from services import Outage, Postgres
from sqlalchemy.engine import make_url

from app import create_app
from app.storage import Base, db

TESTIMONY = {"what_happened": "Zqv it happened at the parlour"}


@pytest.fixture
def relayed_app(config: dict[str, object], postgres: Postgres) -> Iterator[tuple[Flask, Outage]]:
    url = make_url(postgres.require())
    outage = Outage((url.host or "127.0.0.1", url.port or 5432))
    app = create_app({**config, "DATABASE_URL": url.set(port=outage.port).render_as_string(hide_password=False)})
    with app.app_context():
        db.create_schema()
    yield app, outage
    outage.mend()
    with app.app_context():
        Base.metadata.drop_all(db.engine)
        db.engine.dispose()
    outage.close()


def send_testimony(client) -> int:
    tokens = form_tokens(client.get("/petition/testimony").get_data(as_text=True))
    return client.post("/petition/testimony", data={**tokens, **TESTIMONY}).status_code


def test_healthz_is_ready_while_the_database_answers(client) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok\n")


def test_the_database_going_away_answers_503_and_the_app_recovers_when_it_returns(relayed_app) -> None:
    app, outage = relayed_app
    client = app.test_client()
    assert send_testimony(client) == 303
    assert client.get("/healthz").status_code == 200

    outage.cut()
    assert client.get("/healthz").status_code == 503, "a load balancer is told not to send anyone here"
    assert send_testimony(client) == 503
    assert client.get("/petition/").status_code == 200, "the campaign's text needs no database"

    outage.mend()
    assert client.get("/healthz").status_code == 200, "recovered with no restart"
    assert send_testimony(client) == 303
    assert row_count(app) == 2, "the answer refused while the database was away was not stored"


LIMITER_DOWN = """
import json, logging, sys
sys.path.insert(0, "tests")
from pages import ROOT, form_tokens
from app import create_app
from app.storage import db

config = json.loads(sys.argv[1])
records = []
handler = logging.Handler()
handler.emit = records.append
logging.getLogger("flask-limiter").addHandler(handler)
app = create_app(config)
with app.app_context():
    db.upgrade()
client = app.test_client()
statuses = []
for _ in range(3):
    tokens = form_tokens(client.get("/petition/testimony").get_data(as_text=True))
    data = {**tokens, "what_happened": "Zqv it happened at the parlour"}
    statuses.append(client.post("/petition/testimony", data=data).status_code)
print(json.dumps({"statuses": statuses, "logged": [(r.levelname, r.getMessage()) for r in records]}))
"""


def test_a_down_limiter_store_is_logged_once_however_many_requests(config: dict[str, object]) -> None:
    """In a process of its own: the limiter remembers an outage for the life of the process, as a server's does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = {**config, "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{closed}/0"}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}
    result = subprocess.run(
        [sys.executable, "-c", LIMITER_DOWN, json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["statuses"] == [303, 303, 303], "answers are taken while the limiter's store is down"
    warnings = [message for level, message in report["logged"] if level == "WARNING"]
    assert warnings == ["Rate limit storage unreachable - falling back to in-memory storage"]
    assert all("127.0.0.1" not in message for _, message in report["logged"])
