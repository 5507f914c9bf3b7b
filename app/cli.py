"""Server-side staff commands: ``flask --app wsgi init-db | export | purge | status``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.storage import db
from papillon import bundle


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the tables if they do not exist yet (safe to run again)."""
    db.create_schema()
    click.echo("Database ready.")


@click.command("export")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle file to write."
)
@with_appcontext
def export(out: Path) -> None:
    """Write every record not yet exported to a bundle, then mark those records exported."""
    if out.exists():
        raise click.ClickException(f"{out} already exists; choose a new file name so no bundle is overwritten")
    if not out.parent.is_dir():
        raise click.ClickException(f"{out.parent} is not a folder")
    rows = db.unexported()
    used = {r.campaign for r in rows}
    definitions = {slug: c.source for slug, c in current_app.extensions["papillon.campaigns"].items() if slug in used}
    missing = used - set(definitions)
    if missing:
        click.echo(f"Note: no current definition for campaign(s) {', '.join(sorted(missing))}.", err=True)
    records = [
        bundle.Record(
            id=r.id,
            campaign=r.campaign,
            form=r.form,
            received_on=r.received_on.isoformat(),
            sealed_by=r.sealed_by,
            envelope=r.envelope,
        )
        for r in rows
    ]
    count = bundle.write(
        out,
        records,
        created_on=dt.datetime.now(dt.UTC).date().isoformat(),
        key_ids=[k.key_id for k in current_app.extensions["papillon.keys"]],
        campaigns=definitions,
    )
    db.mark_exported(r.id for r in records)
    click.echo(
        f"Exported {count} record(s) to {out}. Carry it to the laptop, then run 'purge' here once it opens there."
    )


@click.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def purge(yes: bool) -> None:
    """Delete the records already exported; records not yet exported are never touched."""
    if not yes:
        click.confirm("Delete every record that has already been exported?", abort=True)
    click.echo(f"Deleted {db.purge()} exported record(s).")


@click.command("status")
@with_appcontext
def status() -> None:
    """How many records each form holds, exported or waiting."""
    counts = db.counts()
    if not counts:
        click.echo("No records.")
    for (campaign, form, exported), n in sorted(counts.items()):
        click.echo(f"{campaign}/{form}: {n} {'exported' if exported else 'waiting for export'}")


def init_app(app: Flask) -> None:
    for command in (init_db, export, purge, status):
        app.cli.add_command(command)
