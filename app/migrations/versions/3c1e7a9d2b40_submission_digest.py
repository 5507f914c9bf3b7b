"""A digest of what the page without JavaScript sent, so a repeated post can be told from a changed one.

The digest is an HMAC of the submission id and the plaintext under a key that only the sender's browser can give
again (see SECURITY.md, "Exactly once"); older rows have none.

Revision ID: 3c1e7a9d2b40
Revises: f59aa27b77f0
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3c1e7a9d2b40"
down_revision = "f59aa27b77f0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("digest")
