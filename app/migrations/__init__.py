"""The schema's history as Alembic revisions, run on the app's own engine, so no alembic.ini is needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

HERE = Path(__file__).resolve().parent


def config(connection: Connection) -> Config:
    """Alembic's settings for revisions run on ``connection``, which env.py hands to them."""
    settings = Config(attributes={"connection": connection})
    settings.set_main_option("script_location", str(HERE).replace("%", "%%"))
    return settings


def head() -> str:
    """The revision this version of Papillon's models was written for."""
    revision = ScriptDirectory(str(HERE)).get_current_head()
    if revision is None:
        raise RuntimeError(f"no revision in {HERE / 'versions'}: this copy of Papillon is incomplete")
    return revision


def known(revision: str) -> bool:
    """Whether ``revision`` is one of ours: a database upgraded by a newer Papillon is at one that is not."""
    return revision in {script.revision for script in ScriptDirectory(str(HERE)).walk_revisions()}


def current(connection: Connection) -> str | None:
    """The revision the database says it is at; None before its first upgrade."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Run on ``connection`` every revision the database has not had yet."""
    command.upgrade(config(connection), "head")
