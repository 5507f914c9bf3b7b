"""The only module that speaks SQL: sealed rows in, sealed rows out, nothing about the sender."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import Flask, current_app
from sqlalchemy import Boolean, Date, Engine, String, Text, create_engine, delete, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class Submission(Base):
    """One sealed record. The id is chosen by the page, so a repeated POST cannot store twice."""

    __tablename__ = "submissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign: Mapped[str] = mapped_column(String(40))
    form: Mapped[str] = mapped_column(String(40))
    received_on: Mapped[dt.date] = mapped_column(Date)
    sealed_by: Mapped[str] = mapped_column(String(8))
    envelope: Mapped[str] = mapped_column(Text)
    exported: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for the URL; a bare ``postgresql://`` URL gets psycopg 3, the driver Papillon installs."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            url = "postgresql+psycopg://" + url[len(bare) :]
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Storage:
    """Created once, bound to an app in the factory (the Flask extension pattern)."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["papillon.storage"] = sessionmaker(engine, expire_on_commit=False)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return current_app.extensions["papillon.storage"]

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def create_schema(self) -> None:
        Base.metadata.create_all(self.sessions.kw["bind"])

    def store(self, *, id: str, campaign: str, form: str, sealed_by: str, envelope: str) -> bool:
        """Store a sealed record once; False when that submission id was already stored."""
        row = Submission(
            id=id,
            campaign=campaign,
            form=form,
            received_on=dt.datetime.now(dt.UTC).date(),
            sealed_by=sealed_by,
            envelope=envelope,
            exported=False,
        )
        try:
            with self.session() as session:
                session.add(row)
        except IntegrityError:
            with self.session() as session:
                if session.get(Submission, id) is None:
                    raise
            return False
        return True

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

    def purge(self) -> int:
        """Delete only rows already written to a bundle."""
        with self.session() as session:
            return session.execute(delete(Submission).where(Submission.exported.is_(True))).rowcount

    def counts(self) -> dict[tuple[str, str, bool], int]:
        with self.session() as session:
            query = select(Submission.campaign, Submission.form, Submission.exported, func.count())
            rows = session.execute(query.group_by(Submission.campaign, Submission.form, Submission.exported))
            return {(c, f, e): n for c, f, e, n in rows}


db = Storage()
