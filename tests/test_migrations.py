"""Migrations: `flask --app wsgi db upgrade` makes the models' tables on SQLite and PostgreSQL, adopts a database
the older init-db made, is harmless to run again, and the models never drift from the revisions.

Each PostgreSQL test gets a database of its own on the test server (``PAPILLON_TEST_POSTGRES_URL``), dropped at the
end; the tests fail, never skip, when the server cannot be reached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pages import ROOT
from services import flask, new_database, unreachable
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import StartupError, create_app, migrations
from app.storage import Base, db, make_engine

HEAD = migrations.head()

# The tables as the older init-db made them, before any revision: frozen here, as the models move on.
INIT_DB = MetaData()
Table(
    "submissions",
    INIT_DB,
    Column("id", String(32), primary_key=True),
    Column("campaign", String(40), nullable=False),
    Column("form", String(40), nullable=False),
    Column("received_on", Date, nullable=False),
    Column("sealed_by", String(8), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("exported", Boolean, nullable=False, index=True),
    sqlite_with_rowid=False,
)
Table(
    "public_lists",
    INIT_DB,
    Column("campaign", String(40), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("signers", Text, nullable=False),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database of each kind that holds nothing yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(new_database("papillon_migrations"))
        except SQLAlchemyError as exc:
            pytest.fail(unreachable(exc), pytrace=False)
        yield url


@pytest.fixture
def config(config: dict[str, object], database_url: str) -> dict[str, object]:
    return {**config, "DATABASE_URL": database_url}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def schema(engine: Engine) -> dict[str, object]:
    """Papillon's tables as the database describes them: SQLite's own DDL, PostgreSQL's catalog."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic%'"))
            # A column added by a later revision is laid out on its line differently: compare words, not spacing.
            return {name: sql and " ".join(sql.split()) for name, sql in rows.all()}
        found = inspect(conn)
        return {
            table: {
                "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in found.get_columns(table)],
                "primary key": found.get_pk_constraint(table),
                "indexes": found.get_indexes(table),
                "unique": found.get_unique_constraints(table),
                "foreign keys": found.get_foreign_keys(table),
            }
            for table in found.get_table_names()
            if table != "alembic_version"
        }


def drift(engine: Engine, metadata: MetaData = Base.metadata) -> list[object]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current(conn)


def rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM submissions ORDER BY id"))]


def store(config: dict[str, object], n: int) -> None:
    app = create_app(config)
    with app.app_context():
        assert db.store(id=f"{n:032x}", campaign="petition", form="sign", sealed_by="server", envelope=f"sealed {n}")
        db.engine.dispose()


def test_upgrade_on_a_fresh_database_makes_the_models_tables_and_columns(config, engine):
    result = flask(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert f"Database ready, at revision {HEAD}." in result.output
    found = inspect(engine)
    assert set(found.get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    for name, table in Base.metadata.tables.items():
        columns = {c["name"]: (c["nullable"], c["type"].python_type) for c in found.get_columns(name)}
        assert columns == {c.name: (c.nullable, c.type.python_type) for c in table.columns}, name
    assert revision(engine) == HEAD


def test_upgrade_makes_the_very_tables_the_older_init_db_made(config, engine, database_url):
    assert flask(config, "db", "upgrade").exit_code == 0
    if engine.dialect.name == "sqlite":
        older = make_engine(database_url.replace("fresh.sqlite3", "older.sqlite3"))
    else:
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA older"))
        older = create_engine(make_url(database_url), connect_args={"options": "-csearch_path=older"})
    Base.metadata.create_all(older)
    try:
        migrated, made = schema(engine), schema(older)
    finally:
        older.dispose()
    assert migrated == made
    if engine.dialect.name == "sqlite":
        assert "WITHOUT ROWID" in migrated["submissions"]
    assert "ix_submissions_exported" in str(migrated)


def test_upgrade_run_twice_changes_nothing_and_exits_0(config, engine):
    assert flask(config, "db", "upgrade").exit_code == 0
    store(config, 1)
    before = (schema(engine), revision(engine), rows(engine))
    again = flask(config, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert again.output == f"Database ready, at revision {HEAD}.\n"
    assert (schema(engine), revision(engine), rows(engine)) == before


def test_two_upgrades_at_once_both_succeed_and_make_the_tables_once(config, engine):
    app = create_app(config)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def upgrade() -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            try:
                db.upgrade()
            except BaseException as exc:  # collected and reported by the test
                errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with app.app_context():
        db.engine.dispose()
    assert errors == []
    assert revision(engine) == HEAD
    assert drift(engine) == []


def test_an_upgrade_that_fails_part_way_leaves_the_database_as_it_was(config, engine, monkeypatch):
    def fails_after_running(conn) -> None:
        upgrade(conn)
        raise RuntimeError("the machine lost power")

    upgrade = migrations.upgrade
    monkeypatch.setattr(migrations, "upgrade", fails_after_running)
    result = flask(config, "db", "upgrade")
    assert isinstance(result.exception, RuntimeError)
    assert inspect(engine).get_table_names() == []
    monkeypatch.undo()
    assert flask(config, "db", "upgrade").exit_code == 0
    assert revision(engine) == HEAD


def test_a_database_made_by_the_older_init_db_is_stamped_and_then_upgrades_cleanly(config, engine):
    INIT_DB.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO submissions VALUES ('a1', 'petition', 'sign', '2026-11-20', 'server', 'sealed', false)")
        )
    kept = rows(engine)
    with pytest.raises(StartupError, match=r"made before migrations: run `flask --app wsgi db upgrade`"):
        create_app(config)
    result = flask(config, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert f"from no revision to {HEAD}" in result.output
    assert revision(engine) == HEAD
    assert [row[:7] for row in rows(engine)] == kept, "every row kept, with the columns added since empty"
    assert drift(engine) == []
    assert flask(config, "db", "upgrade").output == f"Database ready, at revision {HEAD}.\n"
    create_app(config)


def test_a_database_made_before_public_lists_gains_the_table_and_keeps_its_rows(config, engine):
    INIT_DB.tables["submissions"].create(engine)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO submissions VALUES ('a1', 'petition', 'sign', '2026-11-20', 'server', 'sealed', false)")
        )
    assert flask(config, "db", "upgrade").exit_code == 0
    assert "public_lists" in inspect(engine).get_table_names()
    assert [r[0] for r in rows(engine)] == ["a1"]
    assert drift(engine) == []


def test_a_version_stamp_left_beside_no_table_is_upgraded_from_the_start(config, engine):
    assert flask(config, "db", "upgrade").exit_code == 0
    Base.metadata.drop_all(engine)
    assert revision(engine) == HEAD
    assert flask(config, "db", "upgrade").exit_code == 0
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    assert drift(engine) == []


def test_current_prints_the_head_once_upgraded_and_none_before(config):
    before = flask(config, "db", "current")
    assert before.exit_code == 0
    assert before.stdout == "none\n"
    assert "db upgrade" in before.stderr
    assert flask(config, "db", "upgrade").exit_code == 0
    after = flask(config, "db", "current")
    assert after.exit_code == 0
    assert after.output == f"{HEAD} (head)\n"


def test_the_models_and_the_migrations_do_not_drift(config, engine):
    assert flask(config, "db", "upgrade").exit_code == 0
    assert drift(engine) == []


def test_the_drift_check_would_see_a_column_the_migrations_lack(config, engine):
    assert flask(config, "db", "upgrade").exit_code == 0
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["submissions"].append_column(Column("sender", String(45), nullable=True))
    assert [d[0] for d in drift(engine, changed)] == ["add_column"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_refuses_a_database_at_a_revision_this_code_does_not_know(config, engine):
    assert flask(config, "db", "upgrade").exit_code == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0123456789ab'"))
    with pytest.raises(StartupError, match="revision 0123456789ab, which this version of Papillon does not know"):
        create_app(config)
    status = flask(config, "status")
    assert status.exit_code != 0
    assert "0123456789ab" in status.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_on_an_empty_database_starts_and_logs_that_db_upgrade_is_needed(config, caplog):
    with caplog.at_level(logging.WARNING, logger="app"):
        create_app(config)
    assert any("no tables yet: run `flask --app wsgi db upgrade`" in r.getMessage() for r in caplog.records)
    caplog.clear()
    assert flask(config, "db", "upgrade").exit_code == 0
    with caplog.at_level(logging.WARNING, logger="app"):
        create_app(config)
    assert caplog.records == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_flask_command_upgrades_a_database_the_server_refuses(config, engine):
    """The real command, as staff type it: wsgi.py's app loads for it even though a server would refuse to start."""
    INIT_DB.create_all(engine)
    env = {**os.environ, **{k: str(v) for k, v in config.items() if k.isupper() and k != "TESTING"}}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        run = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
        return subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)

    served = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert served.returncode != 0
    assert "made before migrations" in served.stderr
    upgraded = command("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert command("db", "current").stdout == f"{HEAD} (head)\n"
