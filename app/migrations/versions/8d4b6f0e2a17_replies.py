"""Sealed replies for witnesses, by lookup id: what `import-replies` loads and `/replies` looks up.

A row holds a lookup id (derived from a reply code that only the witness holds), the reply's own id (a digest of
it, so a bundle imported twice keeps each reply once), the sealed reply, and the day it was imported, from which
replies expire. Nothing in it names the testimony it answers (see SECURITY.md, "Anonymous replies").

Revision ID: 8d4b6f0e2a17
Revises: 3c1e7a9d2b40
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "8d4b6f0e2a17"
down_revision = "3c1e7a9d2b40"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("lookup", sa.String(32), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("imported_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("lookup", "id"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("replies")
