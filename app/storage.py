"""The only module that speaks SQL: sealed rows in, sealed rows out, nothing about the sender."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from flask import Flask, current_app
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    Engine,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

from app import migrations
from app.site import site
from papillon import bundle, replies


class Base(DeclarativeBase):
    pass


class Submission(Base):
    """One sealed record. The id is chosen by the page, so a repeated POST cannot store twice.

    On SQLite the table has no rowid: rows are keyed, and laid out, by the random id alone, so the file
    does not number them in the order they arrived."""

    __tablename__ = "submissions"
    __table_args__ = ({"sqlite_with_rowid": False},)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(40))
    form: Mapped[str] = mapped_column(String(40))
    received_on: Mapped[dt.date] = mapped_column(Date)
    sealed_by: Mapped[str] = mapped_column(String(8))
    envelope: Mapped[str] = mapped_column(Text)
    exported: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # Only for posts sealed by the server: keyed by a secret of the sender's browser, never by one the server keeps.
    digest: Mapped[str | None] = mapped_column(String(64))


class PublicList(Base):
    """A campaign's public list of signers, as staff published it: a count, and the names of those who agreed."""

    __tablename__ = "public_lists"

    campaign: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    signers: Mapped[str] = mapped_column(Text)  # JSON list of {answer name: text}, sorted


class Reply(Base):
    """One sealed reply to a witness, kept under the lookup id their reply code derives. Nothing in the row names
    the testimony it answers; on SQLite it has no rowid either, so the file does not number replies in the order
    they were imported."""

    __tablename__ = "replies"
    __table_args__ = ({"sqlite_with_rowid": False},)

    lookup: Mapped[str] = mapped_column(String(32), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    imported_on: Mapped[dt.date] = mapped_column(Date)


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """Each SQLite connection syncs every commit and overwrites what it deletes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")
    # After each checkpoint that resets the WAL, cut it back to nothing: no old frames stay in the file.
    cursor.execute("PRAGMA journal_size_limit=0")
    cursor.close()


def owner_only(path: Path) -> None:
    """Create the SQLite file readable by its owner alone before SQLite opens it: SQLite gives its ``-wal`` and
    ``-shm`` files the permissions of the database file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    path.chmod(0o600)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(0o600)


def make_engine(url: str) -> Engine:
    """An engine for the URL; a bare ``postgresql://`` URL gets psycopg 3, the driver Papillon installs.

    Parameters never appear in SQLAlchemy's error messages, so an error log cannot carry a record or its id."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url[len(bare) :]
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"), hide_parameters=True)
    if engine.dialect.name == "sqlite":
        if engine.url.database and engine.url.database != ":memory:":
            owner_only(Path(engine.url.database))
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


EXPORTED = (
    Submission.id,
    Submission.campaign,
    Submission.form,
    Submission.received_on,
    Submission.sealed_by,
    Submission.envelope,
)
# A row of the EXPORTED columns, in that order.
ExportedRow = tuple[str, str, str, dt.date, str, str]


def to_record(row: ExportedRow) -> bundle.Record:
    """A submission as its bundle carries it. The export reads these columns, not Submission objects: building an
    ORM object for each row made a large export a third slower."""
    id, campaign, form, received_on, sealed_by, envelope = row
    return bundle.Record(id, campaign, form, received_on.isoformat(), sealed_by, envelope)


@functools.cache
def _insert_once(dialect: str) -> Insert:
    """The insert that does nothing for an id already stored, built once: its parameters come with each call, so
    SQLAlchemy compiles it once too (building it per call was most of the cost of storing an answer)."""
    table = Base.metadata.tables[Submission.__tablename__]
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    raise KeyError(dialect)


@dataclass(frozen=True)
class Export:
    """One export's snapshot: how many records, of which campaigns, and the records, read as they are written."""

    count: int
    campaigns: list[str]
    records: Iterator[bundle.Record]


class SubmissionConflict(Exception):
    """A submission id already stored with other content: nothing was stored, and the sender must be told."""


@dataclass(frozen=True)
class SchemaProblem:
    """Why the database cannot be used as it is; an empty one at least holds nothing that could be misread."""

    message: str
    empty: bool = False


class PurgeIncomplete(RuntimeError):
    """Rows were deleted, but the database could not yet rewrite its files to erase them."""


class Storage:
    """Created once, bound to an app in the factory (the Flask extension pattern)."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        site(app).sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def sessions(self) -> sessionmaker[Session]:
        sessions = site().sessions
        if sessions is None:
            raise RuntimeError("the database is not set up: create_app calls db.init_app")
        return sessions

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    @property
    def engine(self) -> Engine:
        """The engine ``init_app`` bound the sessions to."""
        return cast("Engine", self.sessions.kw["bind"])

    def upgrade(self) -> list[str]:
        """Bring the schema to the latest revision, from nothing or from the tables an older ``init-db`` made;
        harmless to run again, also from two places at once. Returns what changed, for the operator."""
        with self.engine.begin() as conn:
            self._lock_for_migrations(conn)
            before = migrations.current(conn)
            if before is not None and not self._tables(conn):
                conn.execute(text("DELETE FROM alembic_version"))  # a stamp left beside no table: start over
                before = None
            rowids = self._sqlite_table_has_rowid(conn)
            migrations.upgrade(conn)
            after = migrations.current(conn)
        site().schema_problem = None
        changes = []
        if rowids:
            self._erase_sqlite()
            changes.append(
                "The submissions table was rebuilt without rowids, so rows no longer carry their arrival order."
            )
        if after != before:
            changes.append(f"The database went from {f'revision {before}' if before else 'no revision'} to {after}.")
        return changes

    def create_schema(self) -> list[str]:
        """The tables at the latest revision, as ``upgrade`` makes them: the name older callers know."""
        return self.upgrade()

    def revision(self) -> str | None:
        """The revision the database is at; None before its first upgrade."""
        with self.engine.connect() as conn:
            return migrations.current(conn)

    @property
    def schema_problem(self) -> SchemaProblem | None:
        """What ``check_schema`` found at start-up, until ``upgrade`` puts it right."""
        return site().schema_problem

    def check_schema(self) -> SchemaProblem | None:
        """Why this database cannot be used as it is: it holds no tables yet, or tables older or newer than this code.

        None when it is at the latest revision, and when it cannot be reached right now: an outage is answered page
        by page (503), and is no reason to refuse to start."""
        problem = self._schema_problem()
        site().schema_problem = problem
        return problem

    def _schema_problem(self) -> SchemaProblem | None:
        try:
            with self.engine.connect() as conn:
                revision = migrations.current(conn)
                tables = self._tables(conn)
        except SQLAlchemyError:
            return None
        finally:
            self.engine.dispose()  # no connection of the loading process is inherited by forked workers
        head = migrations.head()
        upgrade = "run `flask --app wsgi db upgrade`"
        if not tables:
            return SchemaProblem(f"the database holds no tables yet: {upgrade}", empty=True)
        if revision == head:
            return None
        if revision is None:
            return SchemaProblem(f"the database holds tables made before migrations: {upgrade}, then start again")
        if not migrations.known(revision):
            return SchemaProblem(
                f"the database is at revision {revision}, which this version of Papillon does not know: a newer one?"
            )
        return SchemaProblem(
            f"the database is at revision {revision}, older than this version of Papillon ({head}): {upgrade}, "
            "then start again"
        )

    @staticmethod
    def _tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names()) & set(Base.metadata.tables)

    @staticmethod
    def _lock_for_migrations(conn: Connection) -> None:
        """Take the database's write lock before reading its revision, so that a second upgrade run meanwhile waits
        and then finds nothing to do. SQLite's driver would begin the transaction only at the first row written,
        leaving the tables' DDL outside it: begin it here, so a failed migration leaves the database as it was."""
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('papillon migrations'))"))

    @staticmethod
    def _sqlite_table_has_rowid(conn: Connection) -> bool:
        """A submissions table made before rows lost their rowid: the first revision rebuilds it in id order."""
        if conn.dialect.name != "sqlite":
            return False
        sql = conn.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'submissions'"))
        return sql is not None and "WITHOUT ROWID" not in sql.upper()

    def store(  # noqa: PLR0913 (keyword-only: each call names all six, as the row's columns)
        self, *, id: str, campaign: str, form: str, sealed_by: str, envelope: str, digest: str | None = None
    ) -> bool:
        """Store a sealed record once; False when that submission id was already stored with the same content.

        A repeat is not an error: the insert does nothing, so no database log records a failed statement
        naming the id, with the time it was retried. The same id with other content raises SubmissionConflict:
        acknowledging it would lose those answers. Browser envelopes are compared as they are; two envelopes the
        server sealed differ even for the same answers, so their ``digest`` of what was sent is compared (a row from
        before digests were kept has none, and counts as the same)."""
        values = {
            "id": id,
            "campaign": campaign,
            "form": form,
            "received_on": dt.datetime.now(dt.UTC).date(),
            "sealed_by": sealed_by,
            "envelope": envelope,
            "exported": False,
            "digest": digest,
        }
        with self.engine.begin() as conn:
            if conn.execute(_insert_once(self.engine.dialect.name), values).first() is not None:
                return True
            columns = (
                Submission.campaign,
                Submission.form,
                Submission.sealed_by,
                Submission.envelope,
                Submission.digest,
            )
            earlier = conn.execute(select(*columns).where(Submission.id == id)).first()
        if earlier is None:
            return False
        same = (earlier.campaign, earlier.form, earlier.sealed_by) == (campaign, form, sealed_by) and (
            earlier.envelope == envelope if sealed_by == "browser" else earlier.digest in (None, digest)
        )
        if not same:
            raise SubmissionConflict(id)
        return False

    def unexported(self) -> list[Submission]:
        with self.session() as session:
            query = select(Submission).where(Submission.exported.is_(False))
            return list(session.scalars(query.order_by(Submission.campaign, Submission.form, Submission.id)))

    def mark_exported(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        with self.session() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                session.execute(update(Submission).where(Submission.id.in_(chunk)).values(exported=True))

    @contextmanager
    def exporting(self, again: bool = False) -> Iterator[Export]:
        """The records to export, as one snapshot: what it counts is what it streams and, once the caller's block
        ends without an error, what it marks exported; a record that arrives meanwhile waits for the next export.
        Rows stream a few hundred at a time, so memory does not grow with the table, and an error anywhere (a full
        disk, a cut connection, a crash) marks nothing. ``again``: the records exported and not yet purged.

        SQLite takes the write lock for the export's length (a submission meanwhile waits for it); PostgreSQL
        reads one repeatable snapshot, and its update marks only the rows that snapshot holds."""
        sqlite = self.engine.dialect.name == "sqlite"
        options = {} if sqlite else {"isolation_level": "REPEATABLE READ"}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            if sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            chosen = Submission.exported.is_(again)
            count = conn.scalar(select(func.count()).select_from(Submission).where(chosen)) or 0
            used = sorted(conn.scalars(select(Submission.campaign).where(chosen).distinct()))
            query = select(*EXPORTED).where(chosen).order_by(Submission.campaign, Submission.form, Submission.id)
            rows = conn.execute(query.execution_options(yield_per=500))
            yield Export(count, used, map(to_record, rows))
            rows.close()
            if not again:
                conn.execute(update(Submission).where(Submission.exported.is_(False)).values(exported=True))

    def purge(self, erase_attempts: int = 20) -> int:
        """Delete only rows already written to a bundle, then rewrite the database's files so that the deleted
        rows, and the order the others arrived in, are gone from them too (see SECURITY.md for the limits)."""
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(Submission).where(Submission.exported.is_(True))).rowcount
        if self.engine.dialect.name == "sqlite":
            self._erase_sqlite(erase_attempts)
        elif self.engine.dialect.name == "postgresql":
            self._rewrite_postgresql()
        return deleted

    def _erase_sqlite(self, attempts: int = 20) -> None:
        """Copy the WAL into the database and truncate it, rebuild the file in key order, and truncate again.

        A reader that stays in the middle of a transaction (a request being served) holds old frames in the
        WAL: retry for a few seconds, then say so rather than claim the rows are gone."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            waited = conn.execute(text("PRAGMA busy_timeout")).scalar_one()
            conn.execute(text("PRAGMA busy_timeout = 250"))
            try:
                for attempt in range(attempts):
                    busy = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()[0]
                    if not busy:
                        conn.execute(text("VACUUM"))
                        busy = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()[0]
                        if not busy:
                            return
                    time.sleep(0.1 * (attempt + 1))
            finally:
                conn.execute(text(f"PRAGMA busy_timeout = {int(waited)}"))
        raise PurgeIncomplete(
            "the exported records were deleted, but another connection kept the database busy, so copies may "
            "remain in its files; run purge again (stop the server first if it keeps happening)"
        )

    def _rewrite_postgresql(self) -> None:
        """Give every kept row the same xmin (one update), then rewrite the table in id order (CLUSTER): its
        files then hold neither the deleted rows nor the order the kept ones arrived in."""
        with self.session() as session:
            session.execute(update(Submission).values(exported=Submission.exported))
        self._cluster("submissions", "submissions_pkey")

    def _cluster(self, table: str, index: str) -> None:
        """Rewrite a PostgreSQL table in key order, without its deleted rows."""
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SET lock_timeout = '10s'"))
                conn.execute(text(f"CLUSTER {table} USING {index}"))
        except OperationalError as exc:
            raise PurgeIncomplete(
                "the exported records were deleted, but another connection held the table, so their copies may "
                "remain in its files; run purge again (stop the server first if it keeps happening)"
            ) from exc

    def publish(self, listings: dict[str, tuple[int, list[dict[str, str]]]]) -> None:
        """Replace the public lists of these campaigns, all at once."""
        with self.session() as session:
            session.execute(delete(PublicList).where(PublicList.campaign.in_(list(listings))))
            session.add_all(
                PublicList(campaign=slug, count=count, signers=json.dumps(signers, ensure_ascii=False))
                for slug, (count, signers) in listings.items()
            )

    def public_list(self, campaign: str) -> tuple[int, list[dict[str, str]]] | None:
        with self.session() as session:
            row = session.get(PublicList, campaign)
            return None if row is None else (row.count, json.loads(row.signers))

    def import_replies(self, sealed: Iterable[replies.SealedReply]) -> tuple[int, int]:
        """Keep each sealed reply under its lookup id, all at once; returns how many were new and how many were
        already kept (a bundle imported twice adds nothing)."""
        table = Base.metadata.tables[Reply.__tablename__]
        insert = sqlite.insert if self.engine.dialect.name == "sqlite" else postgresql.insert
        today = dt.datetime.now(dt.UTC).date()
        rows = [{"lookup": r.lookup, "id": r.digest, "sealed": r.sealed, "imported_on": today} for r in sealed]
        statement = insert(table).on_conflict_do_nothing(index_elements=["lookup", "id"]).returning(table.c.id)
        added = 0
        with self.engine.begin() as conn:
            for row in rows:
                added += conn.execute(statement, row).first() is not None
        return added, len(rows) - added

    def _reply_cutoff(self) -> dt.date:
        """The first import day whose replies are still kept."""
        days: int = current_app.config["PAPILLON_REPLY_RETENTION_DAYS"]
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)

    def replies_for(self, lookup: str) -> list[str]:
        """The sealed replies kept under a lookup id, within the retention period: an empty list for a lookup id
        that has none, exactly as for one that never existed. Ordered by the replies' own ids, which say nothing
        of when they were written."""
        query = select(Reply.sealed).where(Reply.lookup == lookup, Reply.imported_on >= self._reply_cutoff())
        with self.engine.connect() as conn:
            return list(conn.scalars(query.order_by(Reply.id)))

    def purge_replies(self, erase_attempts: int = 20) -> int:
        """Delete the replies imported longer ago than the retention period, then rewrite the database's files
        as ``purge`` does, so they are gone from them too; returns how many were deleted."""
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(Reply).where(Reply.imported_on < self._reply_cutoff())).rowcount
        if self.engine.dialect.name == "sqlite":
            self._erase_sqlite(erase_attempts)
        elif self.engine.dialect.name == "postgresql":
            self._cluster("replies", "replies_pkey")
        return deleted

    def reply_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Reply)) or 0

    def ping(self) -> None:
        """Ask the database the cheapest question; raises SQLAlchemyError while it cannot answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def counts(self) -> dict[tuple[str, str, bool], int]:
        with self.session() as session:
            query = select(Submission.campaign, Submission.form, Submission.exported, func.count())
            rows = session.execute(query.group_by(Submission.campaign, Submission.form, Submission.exported))
            return {(c, f, e): n for c, f, e, n in rows}


db = Storage()
