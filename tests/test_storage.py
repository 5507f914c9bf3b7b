"""The storage module on SQLite and on PostgreSQL: store once, export, purge, and nothing about the sender.

PostgreSQL must be reachable (``PAPILLON_TEST_POSTGRES_URL``, default a local server with trust
authentication): each test session creates its own database there and drops it at the end. When
the server cannot be reached the PostgreSQL tests fail with a message saying so; they never skip.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import create_app
from app.storage import Base, Submission, db

POSTGRES_URL = os.environ.get("PAPILLON_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
THREADS = 8


@dataclass(frozen=True)
class Postgres:
    url: str | None
    problem: str | None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A fresh database for this test session, dropped at the end; or why there is none."""
    admin_url = make_url(POSTGRES_URL)
    name = f"papillon_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        where = admin_url.render_as_string(hide_password=True)
        yield Postgres(
            url=None,
            problem=f"PostgreSQL is not reachable at {where} ({type(exc).__name__}): start it, "
            "or set PAPILLON_TEST_POSTGRES_URL to a server where this user may create databases",
        )
        return
    try:
        yield Postgres(url=admin_url.set(database=name).render_as_string(hide_password=False), problem=None)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, config: dict[str, object]) -> Iterator[Flask]:
    """The app on a fresh database of each kind."""
    if request.param == "postgresql":
        pg: Postgres = request.getfixturevalue("postgres")
        if pg.problem:
            pytest.fail(pg.problem, pytrace=False)
        config["DATABASE_URL"] = pg.url
    app = create_app(config)
    with app.app_context():
        db.create_schema()
        engine = db.sessions.kw["bind"]
    yield app
    Base.metadata.drop_all(engine)
    engine.dispose()


def sid(n: int) -> str:
    return f"{n:032x}"


def store(n: int, campaign: str = "declaration", form: str = "sign", **kw: str) -> bool:
    return db.store(
        id=kw.get("id", sid(n)),
        campaign=campaign,
        form=form,
        sealed_by=kw.get("sealed_by", "server"),
        envelope=kw.get("envelope", f'{{"version":1,"n":{n}}}'),
    )


def test_postgresql_is_reachable(postgres):
    if postgres.problem:
        pytest.fail(postgres.problem, pytrace=False)
    assert make_url(postgres.url).database.startswith("papillon_test_")


def test_the_tests_run_on_the_database_they_claim(app, request):
    expected = request.node.callspec.params["app"]
    with app.app_context():
        assert db.sessions.kw["bind"].dialect.name == expected


def test_a_submission_id_is_stored_once(app):
    with app.app_context():
        assert store(1, envelope="first") is True
        assert store(1, envelope="second") is False
        rows = db.unexported()
    assert [(r.id, r.envelope) for r in rows] == [(sid(1), "first")]


def test_received_on_is_a_date_without_time(app):
    with app.app_context():
        before = dt.datetime.now(dt.UTC).date()
        store(1)
        after = dt.datetime.now(dt.UTC).date()
        (row,) = db.unexported()
    assert type(row.received_on) is dt.date
    assert before <= row.received_on <= after


def test_the_table_holds_no_column_about_the_sender(app):
    with app.app_context():
        columns = {c["name"] for c in inspect(db.sessions.kw["bind"]).get_columns(Submission.__tablename__)}
    assert columns == {"id", "campaign", "form", "received_on", "sealed_by", "envelope", "exported"}


def test_unexported_lists_new_rows_by_campaign_and_form(app):
    with app.app_context():
        store(3, "open-letter", "testimony")
        store(2, "open-letter", "sign", sealed_by="browser")
        store(1, "declaration", "sign")
        rows = db.unexported()
    assert [(r.campaign, r.form, r.id, r.sealed_by) for r in rows] == [
        ("declaration", "sign", sid(1), "server"),
        ("open-letter", "sign", sid(2), "browser"),
        ("open-letter", "testimony", sid(3), "server"),
    ]
    assert not any(r.exported for r in rows)


def test_mark_exported_takes_rows_out_of_the_next_export(app):
    with app.app_context():
        for n in range(1, 5):
            store(n)
        db.mark_exported([sid(1), sid(3)])
        assert [r.id for r in db.unexported()] == [sid(2), sid(4)]
        assert db.counts() == {("declaration", "sign", True): 2, ("declaration", "sign", False): 2}


def test_mark_exported_handles_more_ids_than_one_chunk(app):
    with app.app_context():
        store(1)
        store(2)
        db.mark_exported([sid(n) for n in range(1000, 2200)] + [sid(1), sid(2)])
        assert db.unexported() == []


def test_purge_deletes_only_exported_rows(app):
    with app.app_context():
        for n in range(1, 4):
            store(n)
        db.mark_exported([sid(2)])
        assert db.purge() == 1
        assert [r.id for r in db.unexported()] == [sid(1), sid(3)]
        assert db.counts() == {("declaration", "sign", False): 2}
        assert db.purge() == 0
        assert len(db.unexported()) == 2


def test_an_exported_id_is_not_stored_again(app):
    with app.app_context():
        store(1)
        db.mark_exported([sid(1)])
        assert store(1) is False
        assert db.unexported() == []


def test_counts_group_by_campaign_form_and_export_state(app):
    with app.app_context():
        assert db.counts() == {}
        store(1, "declaration", "sign")
        store(2, "open-letter", "testimony")
        store(3, "open-letter", "testimony")
        assert db.counts() == {("declaration", "sign", False): 1, ("open-letter", "testimony", False): 2}


def test_create_schema_is_safe_to_run_again(app):
    with app.app_context():
        store(1)
        db.create_schema()
        assert len(db.unexported()) == 1


def test_concurrent_duplicate_stores_keep_exactly_one_row(app):
    barrier = threading.Barrier(THREADS)
    results: list[bool] = []
    errors: list[BaseException] = []

    def submit_twice_over(n: int) -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            try:
                results.append(store(n, id=sid(42), envelope=f"copy {n}"))
            except BaseException as exc:  # collected and reported by the test
                errors.append(exc)

    threads = [threading.Thread(target=submit_twice_over, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert sorted(results) == [False] * (THREADS - 1) + [True]
    with app.app_context():
        rows = db.unexported()
    assert len(rows) == 1
    assert rows[0].id == sid(42)
    assert rows[0].envelope.startswith("copy ")


def test_concurrent_distinct_stores_keep_every_row(app):
    barrier = threading.Barrier(THREADS)
    results: list[bool] = []

    def submit(n: int) -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            results.append(store(n))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [True] * THREADS
    with app.app_context():
        assert sorted(r.id for r in db.unexported()) == [sid(n) for n in range(THREADS)]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_bare_postgresql_url_uses_the_installed_psycopg_driver(scheme):
    from app.storage import make_engine

    engine = make_engine(f"{scheme}://papillon@db.invalid/papillon")
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
