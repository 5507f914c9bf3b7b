"""The sealed submissions and the public lists of signers.

A database made before migrations, by ``init-db``, already holds some or all of these tables: they are kept and
only the missing ones are made, so it takes this revision in place. A SQLite submissions table made while rows still
had rowids is rebuilt without them, in id order; the storage erases the old pages afterwards.

Revision ID: f59aa27b77f0
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f59aa27b77f0"
down_revision = None
branch_labels = None
depends_on = None

COLUMNS = "id, campaign, form, received_on, sealed_by, envelope, exported"


def _create_submissions() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("campaign", sa.String(40), nullable=False),
        sa.Column("form", sa.String(40), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("sealed_by", sa.String(8), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("exported", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_submissions_exported", "submissions", ["exported"])


def _has_rowid(bind: sa.Connection) -> bool:
    sql = bind.scalar(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'submissions'"))
    return "WITHOUT ROWID" not in sql.upper()


def upgrade() -> None:
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    if "submissions" in tables and bind.dialect.name == "sqlite" and _has_rowid(bind):
        op.rename_table("submissions", "submissions_with_rowid")
        op.execute("DROP INDEX IF EXISTS ix_submissions_exported")
        _create_submissions()
        op.execute(
            f"INSERT INTO submissions ({COLUMNS}) SELECT {COLUMNS} FROM submissions_with_rowid ORDER BY id"  # noqa: S608 (our own column names)
        )
        op.drop_table("submissions_with_rowid")
    elif "submissions" not in tables:
        _create_submissions()
    if "public_lists" not in tables:
        op.create_table(
            "public_lists",
            sa.Column("campaign", sa.String(40), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("signers", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("campaign"),
        )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: that would delete every record not yet exported")
