"""The storage module on SQLite and on PostgreSQL: store once, export, purge, and nothing about the sender.

PostgreSQL must be reachable (``PAPILLON_TEST_POSTGRES_URL``, default a local server with trust
authentication): each test session creates its own database there and drops it at the end (conftest.py's
``postgres``). When the server cannot be reached the PostgreSQL tests fail with a message saying so; they never skip.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from services import Postgres, flask
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import create_app, migrations
from app.storage import Base, PurgeIncomplete, Submission, db
from papillon import replies

THREADS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, config: dict[str, object]) -> Iterator[Flask]:
    """The app on a fresh database of each kind."""
    if request.param == "postgresql":
        config["DATABASE_URL"] = request.getfixturevalue("postgres").require()
    app = create_app(config)
    with app.app_context():
        db.create_schema()
        engine = db.sessions.kw["bind"]
    yield app
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def sqlite_app(config: dict[str, object]) -> Flask:
    app = create_app(config)
    with app.app_context():
        db.create_schema()
    return app


@pytest.fixture
def postgres_app(config: dict[str, object], postgres: Postgres) -> Iterator[Flask]:
    app = create_app({**config, "DATABASE_URL": postgres.require()})
    with app.app_context():
        db.create_schema()
        engine = db.engine
    yield app
    Base.metadata.drop_all(engine)
    engine.dispose()


def sid(n: int) -> str:
    return f"{n:032x}"


def store(n: int, campaign: str = "petition", form: str = "sign", **kw: str) -> bool:
    return db.store(
        id=kw.get("id", sid(n)),
        campaign=campaign,
        form=form,
        sealed_by=kw.get("sealed_by", "server"),
        envelope=kw.get("envelope", f'{{"version":1,"n":{n}}}'),
    )


def test_postgresql_is_reachable(postgres):
    assert make_url(postgres.require()).database.startswith("papillon_test_")


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


def test_the_table_holds_no_column_about_the_sender_and_no_time_of_day(app):
    with app.app_context():
        found = inspect(db.sessions.kw["bind"]).get_columns(Submission.__tablename__)
    columns = {c["name"]: str(c["type"]) for c in found}
    assert set(columns) == {"id", "campaign", "form", "received_on", "sealed_by", "envelope", "exported", "digest"}
    assert columns["received_on"] == "DATE"


def test_unexported_lists_new_rows_by_campaign_and_form(app):
    with app.app_context():
        store(3, "petition", "testimony")
        store(2, "letter", "sign", sealed_by="browser")
        store(1, "petition", "sign")
        rows = db.unexported()
    assert [(r.campaign, r.form, r.id, r.sealed_by) for r in rows] == [
        ("letter", "sign", sid(2), "browser"),
        ("petition", "sign", sid(1), "server"),
        ("petition", "testimony", sid(3), "server"),
    ]
    assert not any(r.exported for r in rows)


def test_mark_exported_takes_rows_out_of_the_next_export(app):
    with app.app_context():
        for n in range(1, 5):
            store(n)
        db.mark_exported([sid(1), sid(3)])
        assert [r.id for r in db.unexported()] == [sid(2), sid(4)]
        assert db.counts() == {("petition", "sign", True): 2, ("petition", "sign", False): 2}


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
        assert db.counts() == {("petition", "sign", False): 2}
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
        store(1, "petition", "sign")
        store(2, "petition", "testimony")
        store(3, "petition", "testimony")
        assert db.counts() == {("petition", "sign", False): 1, ("petition", "testimony", False): 2}


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


# --- what a seized server's files hold ------------------------------------------------------------------------


def envelope_of(n: int) -> str:
    """A made-up envelope, long and unique enough to be searched for in raw database bytes."""
    return f'{{"version":1,"marker":"purge-probe-{n:04d}-{uuid.uuid4().hex}"}}'


def sqlite_files(app: Flask) -> dict[str, bytes]:
    path = Path(make_url(app.config["DATABASE_URL"]).database)
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return {f.name: f.read_bytes() for f in files if f.exists()}


def postgres_files(conn) -> bytes:
    """The table's own files, its TOAST table and its index, read through the server (the test role is superuser)."""
    relations = conn.execute(
        text(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid IN ("
            "'submissions'::regclass, 'submissions_pkey'::regclass,"
            " (SELECT reltoastrelid FROM pg_class WHERE oid = 'submissions'::regclass))"
        )
    ).scalars()
    conn.execute(text("CHECKPOINT"))
    return b"".join(conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": p}).scalar() for p in relations if p)


def test_purge_leaves_no_purged_envelope_or_id_in_the_database_files(app, request):
    with app.app_context():
        envelopes = {n: envelope_of(n) for n in range(1, 41)}
        for n, env in envelopes.items():
            store(n, envelope=env)
        db.mark_exported([sid(n) for n in range(1, 31)])
        # The live server keeps its own connection to the same database open meanwhile.
        other = create_engine(app.config["DATABASE_URL"])
        with other.connect() as live:
            live.execute(text("SELECT count(*) FROM submissions")).scalar()
            live.commit()  # between two requests, as a pooled connection of the server is
            assert db.purge() == 30
            if request.node.callspec.params["app"] == "sqlite":
                raw = b"".join(sqlite_files(app).values())
            else:
                raw = postgres_files(live)
        other.dispose()
        kept = {r.id: r.envelope for r in db.unexported()}
    assert kept == {sid(n): envelopes[n] for n in range(31, 41)}
    for n in range(1, 31):
        assert envelopes[n].encode() not in raw, n
        assert sid(n).encode() not in raw, n
    assert envelopes[35].encode() in raw  # the search would have found them


def test_sqlite_rows_have_no_rowid(sqlite_app):
    with sqlite_app.app_context(), db.engine.connect() as conn:
        store(1)
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'submissions'")).scalar()
        assert "WITHOUT ROWID" in sql.upper()
        with pytest.raises(SQLAlchemyError):
            conn.execute(text("SELECT rowid FROM submissions"))


def test_after_purge_postgresql_rows_share_one_xmin_and_lie_in_id_order(postgres_app):
    with postgres_app.app_context():
        ids = [uuid.uuid4().hex for _ in range(30)]
        for n, i in enumerate(ids):
            store(n, id=i)  # one transaction each: thirty different xmins, ctids in arrival order
        db.mark_exported(ids[:5])
        db.purge()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, xmin::text FROM submissions ORDER BY submissions.ctid")).all()
    assert len({xmin for _, xmin in rows}) == 1
    assert [i for i, _ in rows] == sorted(ids[5:])


def test_db_upgrade_rebuilds_an_older_sqlite_table_that_had_rowids(config, tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE submissions (id VARCHAR(32) NOT NULL PRIMARY KEY, campaign VARCHAR(40) NOT NULL, "
        "form VARCHAR(40) NOT NULL, received_on DATE NOT NULL, sealed_by VARCHAR(8) NOT NULL, "
        "envelope TEXT NOT NULL, exported BOOLEAN NOT NULL)"
    )
    old.execute("CREATE INDEX ix_submissions_exported ON submissions (exported)")
    rows = [(sid(n), "petition", "sign", "2026-11-20", "server", envelope_of(n), n % 2) for n in (3, 1, 2)]
    old.executemany("INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    old.commit()
    old.close()
    config = {**config, "DATABASE_URL": f"sqlite:///{path}"}
    result = flask(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "rebuilt without rowids" in result.output
    conn = sqlite3.connect(path)
    assert "WITHOUT ROWID" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'submissions'").fetchone()[0]
    kept = conn.execute("SELECT id, campaign, form, received_on, sealed_by, envelope, exported FROM submissions")
    assert sorted(kept.fetchall()) == sorted(rows)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE '%rowid%'").fetchone()[0] == 0
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrations.head(),)]
    conn.close()
    again = flask(config, "init-db")
    assert again.exit_code == 0
    assert "rebuilt" not in again.output


def test_a_repeated_submission_raises_no_database_error(app):
    errors = []
    record = errors.append
    with app.app_context():
        event.listen(db.engine, "handle_error", record)
        assert store(1) is True
        assert store(1) is False
        event.remove(db.engine, "handle_error", record)
        assert len(db.unexported()) == 1
    assert errors == []


def test_database_errors_do_not_carry_the_values_sent(app):
    with app.app_context(), pytest.raises(SQLAlchemyError) as err, db.engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE id = :id"), {"id": "secret-submission-id"})
    assert "secret-submission-id" not in str(err.value)


def test_the_sqlite_files_and_the_instance_folder_are_owner_only(sqlite_app):
    app = sqlite_app
    with app.app_context():
        store(1)
        files = [Path(make_url(app.config["DATABASE_URL"]).database)]
        files += [files[0].with_name(files[0].name + suffix) for suffix in ("-wal", "-shm")]
        with db.engine.connect() as conn:  # while a connection is open, the -wal and -shm files exist
            conn.execute(text("SELECT 1"))
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}
    assert stat.S_IMODE(Path(app.instance_path).stat().st_mode) == 0o700


def test_a_world_readable_sqlite_file_is_made_owner_only(config, tmp_path):
    path = tmp_path / "loose.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    assert create_app({**config, "DATABASE_URL": f"sqlite:///{path}"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_purge_says_so_when_a_reader_keeps_the_sqlite_wal_busy(sqlite_app):
    with sqlite_app.app_context():
        store(1)
        db.mark_exported([sid(1)])
        store(2)
        reader = sqlite3.connect(make_url(sqlite_app.config["DATABASE_URL"]).database, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM submissions").fetchone()  # a snapshot held open
        try:
            with pytest.raises(PurgeIncomplete, match="run purge again"):
                db.purge(erase_attempts=2)
        finally:
            reader.execute("ROLLBACK")
            reader.close()
        assert db.purge() == 0  # once the reader is gone, the erase goes through
        assert [r.id for r in db.unexported()] == [sid(2)]


def test_a_record_arriving_during_an_export_is_neither_written_nor_marked_but_waits_for_the_next(app):
    with app.app_context():
        for n in range(1, 6):
            store(n)
        arrived = []

        def arrive() -> None:
            with app.app_context():
                arrived.append(store(99))

        with db.exporting() as batch:
            first = next(batch.records)
            late = threading.Thread(target=arrive)
            late.start()
            late.join(timeout=0.5)  # PostgreSQL takes it at once; SQLite holds it until the export ends
            written = [first.id, *(r.id for r in batch.records)]
        late.join(timeout=10)
        assert arrived == [True]
        assert (batch.count, written) == (5, [sid(n) for n in range(1, 6)])
        assert [r.id for r in db.unexported()] == [sid(99)]
        with db.exporting() as again:
            assert (again.count, [r.id for r in again.records]) == (1, [sid(99)])


# --- replies kept for witnesses -------------------------------------------------------------------


def sealed_reply(code: str, message: str = "We can help: write back.") -> replies.SealedReply:
    keys = replies.derive(code)
    member = replies.read_member(keys.member())
    return replies.SealedReply(keys.lookup, replies.seal(message, "2026-12-01", member))


CODE_A = "A" * 28
CODE_B = "B" * 28


def test_imported_replies_are_found_by_their_lookup_id_alone_in_an_order_that_says_nothing(app):
    with app.app_context():
        first, second, other = sealed_reply(CODE_A, "first"), sealed_reply(CODE_A, "second"), sealed_reply(CODE_B)
        assert db.import_replies([first, second, other]) == (3, 0)
        found = db.replies_for(first.lookup)
        assert db.replies_for(other.lookup) == [other.sealed]
    assert found == [r.sealed for r in sorted([first, second], key=lambda r: r.digest)]
    assert {replies.open_reply(s, replies.derive(CODE_A))["message"] for s in found} == {"first", "second"}


def test_a_lookup_id_with_no_replies_gives_the_same_empty_answer_as_one_never_seen(app):
    with app.app_context():
        db.import_replies([sealed_reply(CODE_A)])
        answered_elsewhere = replies.derive(CODE_B).lookup
        assert db.replies_for(answered_elsewhere) == db.replies_for("0" * 32) == []


def test_importing_the_same_replies_again_keeps_each_once(app):
    with app.app_context():
        reply = sealed_reply(CODE_A)
        assert db.import_replies([reply]) == (1, 0)
        assert db.import_replies([reply, sealed_reply(CODE_A, "new")]) == (1, 1)
        assert len(db.replies_for(reply.lookup)) == 2
        assert db.reply_count() == 2


def test_replies_past_the_retention_period_are_not_shown_and_purge_deletes_only_them(app, monkeypatch):
    with app.app_context():
        old, new = sealed_reply(CODE_A, "old"), sealed_reply(CODE_B, "new")
        db.import_replies([old])
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE replies SET imported_on = :day"), {"day": dt.date.today() - dt.timedelta(91)})
        db.import_replies([new])
        assert db.replies_for(old.lookup) == []
        assert db.replies_for(new.lookup) == [new.sealed]
        app.config["PAPILLON_REPLY_RETENTION_DAYS"] = 120
        assert db.replies_for(old.lookup) == [old.sealed]
        assert db.purge_replies() == 0
        app.config["PAPILLON_REPLY_RETENTION_DAYS"] = 90
        assert db.purge_replies() == 1
        assert db.reply_count() == 1
        assert db.replies_for(new.lookup) == [new.sealed]


def test_the_replies_table_names_no_testimony_and_no_time_of_day(app):
    with app.app_context():
        columns = {c["name"]: str(c["type"]) for c in inspect(db.engine).get_columns("replies")}
    assert set(columns) == {"lookup", "id", "sealed", "imported_on"}
    assert columns["imported_on"].upper() == "DATE"


def test_sqlite_replies_have_no_rowid(sqlite_app):
    with sqlite_app.app_context(), db.engine.connect() as conn:
        db.import_replies([sealed_reply(CODE_A)])
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'replies'")).scalar()
        assert "WITHOUT ROWID" in sql.upper()
        with pytest.raises(SQLAlchemyError):
            conn.execute(text("SELECT rowid FROM replies"))


def test_purged_replies_leave_no_copy_in_the_sqlite_files(sqlite_app):
    with sqlite_app.app_context():
        old, kept = sealed_reply(CODE_A, "old"), sealed_reply(CODE_B, "kept")
        db.import_replies([old, kept])
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE replies SET imported_on = :day WHERE lookup = :lookup"),
                {"day": dt.date.today() - dt.timedelta(400), "lookup": old.lookup},
            )
        assert db.purge_replies() == 1
        raw = b"".join(sqlite_files(sqlite_app).values())
    assert old.sealed[:64].encode() not in raw
    assert old.lookup.encode() not in raw
    assert kept.sealed[:64].encode() in raw  # the search would have found it
