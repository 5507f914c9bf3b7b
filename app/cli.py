"""Server-side staff commands: ``flask --app wsgi db upgrade | db current | export | purge | status | publish |
translation-template``, and ``init-db``, the older name of ``db upgrade``."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import migrations
from app.storage import PurgeIncomplete, db
from papillon import bundle, languages, signers
from papillon.campaigns import CampaignError, translation_template

P = ParamSpec("P")
R = TypeVar("R")


def current_schema(command: Callable[P, R]) -> Callable[P, R]:
    """Commands that read or write records refuse a database `db upgrade` has not yet put right, and say why."""

    @functools.wraps(command)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        if problem := db.schema_problem:
            raise click.ClickException(problem.message)
        return command(*args, **kwargs)

    return checked


def upgrade() -> None:
    for change in db.upgrade():
        click.echo(change)
    click.echo(f"Database ready, at revision {db.revision()}.")


@click.group("db")
def database() -> None:
    """The database's tables: bring them up to date, or print their revision."""


@database.command("upgrade")
@with_appcontext
def upgrade_command() -> None:
    """Create the tables, or bring them to the latest revision, keeping every record (harmless to run again)."""
    upgrade()


@database.command("current")
@with_appcontext
def current_command() -> None:
    """Print the revision the database is at, and whether it is the latest this version of Papillon knows."""
    revision = db.revision()
    click.echo(f"{revision or 'none'}{' (head)' if revision == migrations.head() else ''}")
    if problem := db.schema_problem:
        click.echo(problem.message, err=True)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """The same as `db upgrade`, under the name older scripts and guides use."""
    upgrade()


@click.command("export")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bundle to this file on the server instead of to standard output.",
)
@click.option("--again", is_flag=True, help="Write again the records already exported and not yet purged.")
@with_appcontext
@current_schema
def export(out: Path | None, again: bool) -> None:
    """Write the records not yet exported to a bundle, on standard output unless --out is given, then mark them
    exported. On standard output the bundle can go straight to the staff's own machine and never rest on the server:

        ssh server '.venv/bin/flask --app wsgi export' > /media/usb/papillon-DATE.bundle
    """
    stdout = sys.stdout.buffer
    if out is None and stdout.isatty():
        raise click.ClickException(
            "the bundle would be written to this terminal: redirect it to a file "
            "(flask --app wsgi export > papillon.bundle), or give --out FILE"
        )
    if out is not None and out.exists():
        raise click.ClickException(f"{out} already exists; choose a new file name so no bundle is overwritten")
    if out is not None and not out.parent.is_dir():
        raise click.ClickException(f"{out.parent} is not a folder")
    with db.exporting(again) as batch:
        known = current_app.extensions["papillon.campaigns"]
        definitions = {slug: known[slug].source for slug in batch.campaigns if slug in known}
        if missing := set(batch.campaigns) - set(definitions):
            click.echo(f"Note: no current definition for campaign(s) {', '.join(sorted(missing))}.", err=True)
        header = {
            "created_on": dt.datetime.now(dt.UTC).date().isoformat(),
            "key_ids": [k.key_id for k in current_app.extensions["papillon.keys"]],
            "campaigns": definitions,
            "count": batch.count,
        }
        if out is None:
            count = bundle.dump(stdout, batch.records, **header)
            where = "standard output"
        else:
            count = bundle.write(out, batch.records, **header)
            where = str(out)
    click.echo(f"{'Exported again' if again else 'Exported'} {count} record(s) to {where}.", err=True)
    if out is not None:
        click.echo(f"Copy {out} to the USB stick, then delete it from this server.", err=True)
    click.echo("Once the bundle opens on the laptop, run 'purge' here.", err=True)


@click.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
@current_schema
def purge(yes: bool) -> None:
    """Delete the records already exported, and erase them from the database's files; records not yet exported
    are never touched."""
    if not yes:
        click.confirm("Delete every record that has already been exported?", abort=True)
    try:
        deleted = db.purge()
    except PurgeIncomplete as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Deleted {deleted} exported record(s), and rewrote the database files without them.")


@click.command("status")
@with_appcontext
@current_schema
def status() -> None:
    """How many records each form holds, exported or waiting."""
    counts = db.counts()
    if not counts:
        click.echo("No records.")
    for (campaign, form, exported), n in sorted(counts.items()):
        click.echo(f"{campaign}/{form}: {n} {'exported' if exported else 'waiting for export'}")


@click.command("publish")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
@current_schema
def publish(path: Path) -> None:
    """Show on each campaign's page the signers listed in PATH (written by decrypt.py --publish on the laptop):
    the count, and the names of those who agreed to be listed. It replaces the lists of the campaigns in PATH.

    A file naming an answer that no form of its campaign publishes (an email, a phone number) is refused whole,
    so an edited or mistaken file cannot put it on a public page."""
    try:
        listings = signers.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, signers.SignersError) as exc:
        raise click.ClickException(f"{path}: {exc}; nothing was published") from exc
    known = current_app.extensions["papillon.campaigns"]
    if unknown := sorted(set(listings) - set(known)):
        raise click.ClickException(f"{path}: no campaign {unknown[0]!r} on this server; nothing was published")
    for slug, listing in sorted(listings.items()):
        shown = {name for form in known[slug].forms.values() if form.publish_consent for name in form.publish}
        for i, signer in enumerate(listing.signers):
            if extra := sorted(set(signer) - shown):
                raise click.ClickException(
                    f"{path}: campaigns.{slug}.signers[{i}]: {extra[0]!r} is not an answer the campaign's forms "
                    f"publish (only {', '.join(sorted(shown)) or 'none'}); nothing was published"
                )
    db.publish({slug: (listing.count, listing.sorted()) for slug, listing in listings.items()})
    for slug, listing in sorted(listings.items()):
        click.echo(f"{slug}: {listing.count} signature(s), {len(listing.signers)} listed by name")


@click.command("translation-template")
@click.argument("campaign")
@click.argument("language", type=click.Choice([tag for tag in languages.NAMES if tag != languages.DEFAULT]))
@with_appcontext
def translation_template_command(campaign: str, language: str) -> None:
    """Print a translation file for CAMPAIGN in LANGUAGE, to save as CAMPAIGN.LANGUAGE.toml beside the campaign:
    the texts already translated, the original's words for the rest (docs/campaigns.md)."""
    found = current_app.extensions["papillon.campaigns"].get(campaign)
    if found is None:
        raise click.ClickException(
            f"no campaign {campaign!r}; the campaigns are: {', '.join(current_app.extensions['papillon.campaigns'])}"
        )
    try:
        click.echo(translation_template(found, language), nl=False)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from exc


def init_app(app: Flask) -> None:
    for command in (database, init_db, export, purge, status, publish, translation_template_command):
        app.cli.add_command(command)
