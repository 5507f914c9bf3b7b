"""Alembic's entry point: runs the revisions on the connection Papillon's storage passes in, never on a URL of its
own, so the engine keeps its SQLite pragmas, owner-only files and parameter-free error messages."""

from alembic import context

from app.storage import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Papillon's migrations run on the app's engine: use `flask --app wsgi db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
