"""Server-side staff commands: ``flask --app wsgi db upgrade | db current | export | purge | status | publish |
import-replies | purge-replies | translation-template``, and ``init-db``, the older name of ``db upgrade``.

Each command reads its options and says what a plain function did: ``export_bundle``, ``purge_exported``,
``publish_listings`` and the rest need only an app context, so tests call them directly. Their refusals are
``click.ClickException``, which the flask command prints as ``Error: ...``."""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import migrations
from app.site import site
from app.storage import Export, PurgeIncomplete, db
from papillon import bundle, languages, replies, signers
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


def _upgrade() -> None:
    """`db upgrade` and `init-db`: bring the tables to the latest revision, and say what changed."""
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
    _upgrade()


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
    _upgrade()


@dataclass(frozen=True)
class BundleHeader:
    """What a bundle says before its records, so that the laptop needs nothing else to open and check them."""

    created_on: str
    keys: list[bundle.Key]
    campaigns: dict[str, dict[str, object]]
    count: int

    @property
    def key_ids(self) -> list[str]:
        return [key.key_id for key in self.keys]

    def write(self, out: Path | BinaryIO, records: Iterable[bundle.Record]) -> int:
        """Write the bundle: to a new file atomically, or to a stream as the records come; returns their count."""
        members: bundle.Members = {
            "created_on": self.created_on,
            "key_ids": self.key_ids,
            "keys": self.keys,
            "campaigns": self.campaigns,
            "count": self.count,
        }
        if isinstance(out, Path):
            return bundle.write(out, records, **members)
        return bundle.dump(out, records, **members)


def export_header(batch: Export) -> BundleHeader:
    """The header of ``batch``'s bundle: today's date, the keys this server seals to (id, name and fingerprint, so
    the laptop can name them as staff know them), and the current definition of each campaign the batch holds
    records of (a campaign whose file is gone has none; witnesses' follow-ups have the built-in one)."""
    known = {replies.CAMPAIGN: replies.FOLLOW_UP_SOURCE, **{slug: c.source for slug, c in site().campaigns.items()}}
    return BundleHeader(
        created_on=dt.datetime.now(dt.UTC).date().isoformat(),
        keys=[bundle.Key(key.key_id, bundle.key_name(key.name), key.fingerprint) for key in site().keys],
        campaigns={slug: known[slug] for slug in batch.campaigns if slug in known},
        count=batch.count,
    )


def export_bundle(out: Path | BinaryIO | Callable[[], BinaryIO], again: bool = False) -> int:
    """Write the records not yet exported to ``out``, a new file or a binary stream (or a function that gives
    one), then mark them exported; returns how many were written. ``again``: write instead those exported and not
    yet purged (they stay marked).

    With no record to write, no bundle is written: no file is made, nothing goes to the stream (the function is not
    called), and 0 is returned. A refused file name reads and marks nothing; an error part way (a full disk, a
    closed pipe) marks nothing. The records of a campaign whose file is gone go too, with a note on standard
    error."""
    if isinstance(out, Path):
        _refuse_to_overwrite(out)
    with db.exporting(again) as batch:
        if batch.count == 0:
            return 0
        header = export_header(batch)
        if missing := sorted(set(batch.campaigns) - set(header.campaigns)):
            click.echo(f"Note: no current definition for campaign(s) {', '.join(missing)}.", err=True)
        return header.write(out() if callable(out) else out, batch.records)


def _refuse_to_overwrite(out: Path) -> None:
    if out.exists():
        raise click.ClickException(f"{out} already exists; choose a new file name so no bundle is overwritten")
    if not out.parent.is_dir():
        raise click.ClickException(f"{out.parent} is not a folder")


def _standard_output() -> BinaryIO:
    """Standard output, unless it is a terminal: a bundle is for a file or a pipe, not for a screen to scroll."""
    stream = sys.stdout.buffer
    if stream.isatty():
        raise click.ClickException(
            "the bundle would be written to this terminal: redirect it to a file "
            "(.venv/bin/flask --app wsgi export > papillon.bundle), or give --out FILE"
        )
    return stream


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

        ssh server 'cd /srv/papillon && .venv/bin/flask --app wsgi export' > /media/usb/papillon-DATE.bundle

    With nothing to export it says so, writes no bundle and marks nothing."""
    count = export_bundle(_standard_output if out is None else out, again)
    if count == 0:
        nothing = "No record has been exported and not yet purged" if again else "Nothing is waiting for export"
        click.echo(f"{nothing}; no bundle was written.", err=True)
        if out is None and not sys.stdout.isatty():
            click.echo("If standard output went to a file, that file is empty: delete it.", err=True)
        return
    where = "standard output" if out is None else str(out)
    click.echo(f"{'Exported again' if again else 'Exported'} {count} record(s) to {where}.", err=True)
    if out is not None:
        click.echo(f"Copy {out} to the USB stick, then delete it from this server.", err=True)
    click.echo("Once the bundle opens on the laptop, run 'purge' here.", err=True)


def purge_exported() -> int:
    """Delete the records already exported and erase them from the database's files; returns how many were deleted.
    Records not yet exported are never touched."""
    try:
        return db.purge()
    except PurgeIncomplete as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
@current_schema
def purge(yes: bool) -> None:
    """Delete the records already exported, and erase them from the database's files; records not yet exported
    are never touched."""
    if not yes:
        click.confirm("Delete every record that has already been exported?", abort=True)
    deleted = purge_exported()
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
    if kept := db.reply_count():
        click.echo(f"Replies kept for witnesses: {kept}")


def publish_listings(path: Path) -> dict[str, signers.Listing]:
    """Replace the public lists of the campaigns the signers file at ``path`` names, all at once; returns them.

    The file is refused whole, and nothing published, if it is not a signers file, names a campaign this server
    does not have, or names an answer no form of its campaign publishes (an edited or mistaken file could otherwise
    put an email or a phone number on a public page)."""
    listings = _read_listings(path)
    _check_listings(path, listings)
    db.publish({slug: (listing.count, listing.sorted()) for slug, listing in listings.items()})
    return listings


def _read_listings(path: Path) -> dict[str, signers.Listing]:
    try:
        listings = signers.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, signers.SignersError) as exc:
        raise click.ClickException(f"{path}: {exc}; nothing was published") from exc
    return listings


def _check_listings(path: Path, listings: dict[str, signers.Listing]) -> None:
    known = site().campaigns
    if unknown := sorted(set(listings) - set(known)):
        raise click.ClickException(f"{path}: no campaign {unknown[0]!r} on this server; nothing was published")
    for slug, listing in sorted(listings.items()):
        forms = known[slug].forms.values()
        shown = {name for form in forms if form.publish_consent for name in form.publish}
        for i, signer in enumerate(listing.signers):
            if extra := sorted(set(signer) - shown):
                raise click.ClickException(
                    f"{path}: campaigns.{slug}.signers[{i}]: {extra[0]!r} is not an answer the campaign's forms "
                    f"publish (only {', '.join(sorted(shown)) or 'none'}); nothing was published"
                )


@click.command("publish")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
@current_schema
def publish(path: Path) -> None:
    """Show on each campaign's page the signers listed in PATH (written by decrypt.py --publish on the laptop):
    the count, and the names of those who agreed to be listed. It replaces the lists of the campaigns in PATH.

    A file naming an answer that no form of its campaign publishes (an email, a phone number) is refused whole,
    so an edited or mistaken file cannot put it on a public page."""
    for slug, listing in sorted(publish_listings(path).items()):
        click.echo(f"{slug}: {listing.count} signature(s), {len(listing.signers)} listed by name")


def import_replies_file(path: Path) -> tuple[int, int]:
    """Keep the sealed replies of a replies bundle (written by scripts/reply.py on the laptop); returns how many
    were new and how many were already kept. A truncated, altered or malformed bundle is refused whole and nothing
    is kept."""
    try:
        sealed = replies.read_bundle(path.read_bytes(), str(path))
    except replies.ReplyError as exc:
        raise click.ClickException(f"{exc}; nothing was imported") from exc
    return db.import_replies(sealed)


@click.command("import-replies")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
@current_schema
def import_replies(path: Path) -> None:
    """Keep the sealed replies in PATH, a replies bundle written by scripts/reply.py on the laptop, so that each
    witness can read theirs at /replies with their reply code. The server cannot open them, nor tell which
    testimony each one answers. Importing the same bundle again adds nothing."""
    added, kept = import_replies_file(path)
    days = current_app.config["PAPILLON_REPLY_RETENTION_DAYS"]
    click.echo(f"Imported {added} reply(ies){f' ({kept} already here)' if kept else ''}.")
    click.echo(f"Witnesses can read them at /replies for {days} days; then purge-replies deletes them.")
    click.echo(f"Delete {path} from this server once it is imported.")


def purge_old_replies() -> int:
    """Delete the replies older than the retention period and erase them from the database's files."""
    try:
        return db.purge_replies()
    except PurgeIncomplete as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("purge-replies")
@with_appcontext
@current_schema
def purge_replies() -> None:
    """Delete the replies imported more than PAPILLON_REPLY_RETENTION_DAYS days ago, and erase them from the
    database's files (run it daily, with purge). Newer replies are kept."""
    deleted = purge_old_replies()
    days = current_app.config["PAPILLON_REPLY_RETENTION_DAYS"]
    click.echo(f"Deleted {deleted} reply(ies) imported more than {days} days ago.")


def campaign_translation(slug: str, language: str) -> str:
    """A translation file for campaign ``slug`` in ``language``: what is already translated, the original for the
    rest."""
    found = site().campaigns.get(slug)
    if found is None:
        raise click.ClickException(f"no campaign {slug!r}; the campaigns are: {', '.join(site().campaigns)}")
    try:
        return translation_template(found, language)
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("translation-template")
@click.argument("campaign")
@click.argument("language", type=click.Choice([tag for tag in languages.NAMES if tag != languages.DEFAULT]))
@with_appcontext
def translation_template_command(campaign: str, language: str) -> None:
    """Print a translation file for CAMPAIGN in LANGUAGE, to save as CAMPAIGN.LANGUAGE.toml beside the campaign:
    the texts already translated, the original's words for the rest (docs/campaigns.md)."""
    click.echo(campaign_translation(campaign, language), nl=False)


def init_app(app: Flask) -> None:
    commands = (database, init_db, export, purge, status, publish, import_replies, purge_replies)
    for command in (*commands, translation_template_command):
        app.cli.add_command(command)
