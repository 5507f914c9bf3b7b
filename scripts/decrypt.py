"""Open export bundles on the offline laptop and write one spreadsheet per form.

    python scripts/decrypt.py BUNDLE [BUNDLE ...] --key KEYFILE --out DIR
        [--passphrase-file FILE] [--jobs N] [--salvage] [--jsonl]

Writes DIR/<campaign>-<form>.csv (UTF-8 with BOM, so spreadsheets show every script),
with --jsonl DIR/<campaign>-<form>.jsonl too, DIR/summary.txt, and DIR/report.html (counts
and charts that open in a browser with no network). A choice shows as
its label in the campaign's own language, whatever language the page was read in; the
Language column says which that was. Bundles are read as streams and records opened on
every core, so memory stays the same whatever the bundle's size. Needs no network and
uses only Papillon's format modules.

Exit codes: 0 every record opened; 1 some did not (the outputs are written and
summary.txt lists each one and why); 2 nothing was written.
"""

from __future__ import annotations

import argparse
import collections
import csv
import getpass
import hashlib
import html
import json
import multiprocessing
import os
import re
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from papillon import bundle, campaigns, envelope, keys, signers

# What a spreadsheet may run as a formula when a cell starts with it (OWASP's CSV injection list, with the
# full-width forms that some spreadsheets read the same way).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TRAILING_COLUMNS = [
    "Language",
    "Form version",
    "Date received",
    "Sealed by",
    "Record id",
    "Possible duplicate",
    "Check",
]
EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_WRITTEN = 0, 1, 2
BATCH = 64  # records per task sent to a worker: large enough that passing them costs little
IN_FLIGHT = 64  # tasks queued ahead of the writer, so memory stays bounded however large the bundle


class Refusal(Exception):
    """A problem to report in one line, with no traceback."""


def cell(value: object) -> str:
    """Spreadsheet-safe text: lists joined, booleans as yes/no, control characters replaced, formulas defused.

    Every cell goes through here, headers included: a rewritten bundle can put anything in any of them."""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = "; ".join(str(v) for v in value)
    elif value is None:
        text = ""
    else:
        text = str(value)
    text = CONTROL.sub("\ufffd", text)
    return "'" + text if text.lstrip(" \n").startswith(FORMULA_START) else text


def plain(text: object) -> str:
    """Bundle-controlled text for the terminal and summary.txt: no control characters, so no escape sequences."""
    return CONTROL.sub("\ufffd", str(text).replace("\n", " "))


def read_passphrase(path: Path | None) -> bytes:
    if path is None:
        return getpass.getpass("Passphrase for the private key: ").encode("utf-8")
    try:
        return keys.read_passphrase_file(path)
    except keys.KeyFileError as exc:
        raise Refusal(str(exc)) from exc


def load_private(path: Path, passphrase_file: Path | None) -> keys.PrivateKey:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refusal(f"cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    passphrase = read_passphrase(passphrase_file)
    print("Unlocking the private key (this takes a moment)...", file=sys.stderr)
    try:
        return keys.loads_private(text, passphrase, str(path))
    except keys.KeyFileError as exc:
        raise Refusal(str(exc)) from exc


# --- opening: the same work in this process or in a worker -------------------------------------------------------


def choices_as_ids(definition: campaigns.Form, answers: dict) -> dict:
    """A version 1 record sealed each choice as its English label; read it as the id that label has now."""
    out = dict(answers)
    for f in definition.fields:
        ids = {c.label: c.id for c in f.choices}
        value = out.get(f.name)
        if f.type == campaigns.SINGLE_CHOICE and isinstance(value, str):
            out[f.name] = ids.get(value, value)
        elif f.type == campaigns.MULTIPLE_CHOICE and isinstance(value, list):
            out[f.name] = [ids.get(v, v) if isinstance(v, str) else v for v in value]
    return out


def shown(f: campaigns.Field | None, value: object) -> object:
    """A choice as its label in the campaign's own language, whatever language the page was in."""
    if f is None or not f.choices:
        return value
    if isinstance(value, str):
        return f.choice_label(value)
    if isinstance(value, list):
        return [f.choice_label(v) if isinstance(v, str) else v for v in value]
    return value


def identities(definition: campaigns.Form) -> dict[str, list[str]]:
    """Which answers say who signed: an email field, and a name field with an organization field beside it."""
    names = {f.name for f in definition.fields}
    found = {}
    if emails := [f.name for f in definition.fields if f.type == campaigns.EMAIL]:
        found["email"] = emails[:1]
    organization = next((n for n in ("organization", "organization_name") if n in names), None)
    if "name" in names and organization:
        found["name and organization"] = ["name", organization]
    return found


@dataclass
class Row:
    """One opened record, made ready for its spreadsheet where it was opened, so the writer only writes."""

    columns: list[str]  # the answers' names, in column order
    cells: list[str]  # the answers, then language, form version, date, sealed by and record id
    check: str
    loose: dict | None  # a form the bundle does not define: its answers, laid out by the writer's first row
    identities: list[tuple[str, int]]  # (what, keyed digest): compared for duplicates, never kept in clear
    chosen: list[tuple[str, str]]  # (field, choice id) for the report's counts
    locale: str
    jsonl: str | None
    listed: dict[str, str] | None = None  # what the signer agreed to have listed publicly, if they did
    countable: bool = False  # a signature on a form that keeps a public count


@dataclass
class Opener:
    """Everything opening needs: the key, the forms' definitions, and the key for comparing identities."""

    key: keys.PrivateKey
    definitions: dict[tuple[str, str], campaigns.Form]
    salt: bytes
    jsonl: bool

    def open(self, record: bundle.Record) -> Row | str:
        """A record's row, or why it does not open; never an exception."""
        try:
            sealed = envelope.parse(record.envelope)
            doc = envelope.open_envelope(sealed, self.key.key, record.campaign, record.form, key_id=self.key.key_id)
        except envelope.EnvelopeError as exc:
            return str(exc)
        definition = self.definitions.get((record.campaign, record.form))
        answers = doc["answers"]
        if definition is not None and sealed.version == 1:
            answers = choices_as_ids(definition, answers)
        notes = []
        if definition is None:
            columns = sorted(answers)
            fields: dict[str, campaigns.Field] = {}
        else:
            columns = [f.name for f in definition.fields]
            fields = {f.name: f for f in definition.fields}
            notes += [f"{name}: {message}" for name, message in definition.check(answers).items()]
            if doc.get("form_version") != definition.version:
                notes.append(f"made under form version {doc.get('form_version')}")
            # An answer with no column of its own is kept in the Check column rather than lost.
            notes += [f"{name} (no column): {cell(answers[name])}" for name in answers if name not in fields]
        locale = str(doc.get("locale"))
        cells = [] if definition is None else [cell(shown(fields[name], answers.get(name))) for name in columns]
        cells += [cell(locale), cell(doc.get("form_version")), cell(record.received_on)]
        cells += [cell(record.sealed_by), cell(record.id)]
        jsonl = None
        if self.jsonl:
            line = {
                "record_id": record.id,
                "received_on": record.received_on,
                "sealed_by": record.sealed_by,
                "locale": doc.get("locale"),
                "form_version": doc.get("form_version"),
                "answers": answers,
                "check": notes,
            }
            jsonl = json.dumps(line, ensure_ascii=False) + "\n"
        return Row(
            columns=columns,
            cells=cells,
            check="; ".join(notes),
            loose=answers if definition is None else None,
            identities=self.digests(definition, answers),
            chosen=[
                (f.name, choice)
                for f in fields.values()
                if f.choices
                for choice in (answers.get(f.name) if isinstance(answers.get(f.name), list) else [answers.get(f.name)])
                if isinstance(choice, str) and choice
            ],
            locale=locale,
            jsonl=jsonl,
            listed=definition.published(answers) if definition is not None and not notes else None,
            countable=bool(definition and definition.publish_consent),
        )

    def digests(self, definition: campaigns.Form | None, answers: dict) -> list[tuple[str, int]]:
        found = []
        for kind, names in identities(definition).items() if definition else ():
            values = [str(answers.get(n) or "").strip().casefold() for n in names]
            if all(values):
                digest = hashlib.blake2b("\0".join(values).encode(), key=self.salt, digest_size=8).digest()
                found.append((kind, int.from_bytes(digest, "big")))
        return found


_opener: Opener | None = None


def _start_worker(opener: Opener) -> None:
    global _opener
    _opener = opener


def _open_batch(batch: list[bundle.Record]) -> list[Row | str]:
    return [_opener.open(record) for record in batch]


def _batches(records: Iterable[bundle.Record]) -> Iterator[list[bundle.Record]]:
    batch: list[bundle.Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def opened_records(
    records: Iterable[bundle.Record], opener: Opener, jobs: int
) -> Iterator[tuple[bundle.Record, Row | str]]:
    """Every record with its row (or why it did not open), in bundle order, opened on ``jobs`` processes while
    this one writes."""
    if jobs <= 1:
        for record in records:
            yield record, opener.open(record)
        return
    slots = threading.Semaphore(IN_FLIGHT)
    held: collections.deque[list[bundle.Record]] = collections.deque()

    def tasks() -> Iterator[list[bundle.Record]]:
        for batch in _batches(records):
            slots.acquire()  # the pool's feeder waits here until the writer has caught up
            held.append(batch)
            yield batch

    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_start_worker, initargs=(opener,)) as pool:
        for results in pool.imap(_open_batch, tasks()):
            batch = held.popleft()
            slots.release()
            yield from zip(batch, results, strict=True)


# --- writing ---------------------------------------------------------------------------------------------------


def owner_only(path: str, flags: int) -> int:
    """Open for ``open(opener=...)`` so that plaintext files are readable by their owner alone."""
    return os.open(path, flags, 0o600)


@dataclass
class Sheet:
    """One form's spreadsheet, written a row at a time."""

    csv_path: Path
    jsonl_path: Path | None
    columns: list[str] = field(default_factory=list)
    rows: int = 0
    handles: list[IO[str]] = field(default_factory=list)
    writer: Any = None
    seen: dict[tuple[str, int], str] = field(default_factory=dict)  # identity digest -> first record with it

    def open(self, labels: list[str]) -> None:
        fh = open(self.csv_path, "x", encoding="utf-8-sig", newline="", opener=owner_only)  # noqa: SIM115
        self.handles.append(fh)
        self.writer = csv.writer(fh)
        self.writer.writerow([cell(label) for label in [*labels, *TRAILING_COLUMNS]])
        if self.jsonl_path is not None:
            self.handles.append(open(self.jsonl_path, "x", encoding="utf-8", opener=owner_only))  # noqa: SIM115

    def close(self) -> None:
        for fh in self.handles:
            fh.close()


class Writer:
    """The spreadsheets of one run: rows as records open, duplicates flagged, counts for the summary."""

    def __init__(self, out: Path, definitions: dict[tuple[str, str], campaigns.Form], jsonl: bool) -> None:
        self.out = out
        self.definitions = definitions
        self.jsonl = jsonl
        self.sheets: dict[tuple[str, str], Sheet] = {}
        self.tally: Counter = Counter()
        self.failures: list[str] = []
        self.per_day: Counter = Counter()
        self.per_language: Counter = Counter()
        self.chosen: Counter = Counter()
        self.listings: dict[str, signers.Listing] = {}

    def targets(self, place: tuple[str, str]) -> list[Path]:
        name = f"{place[0]}-{place[1]}"
        return [self.out / f"{name}.csv", *([self.out / f"{name}.jsonl"] if self.jsonl else [])]

    def failed(self, record: bundle.Record, why: str) -> None:
        self.failures.append(plain(f"{record.id} ({record.campaign}/{record.form}): {why}"))
        self.tally["failed"] += 1

    def add(self, record: bundle.Record, row: Row) -> None:
        place = (record.campaign, record.form)
        sheet = self.sheets.get(place)
        if sheet is None:
            csv_path, *jsonl_path = self.targets(place)
            sheet = self.sheets[place] = Sheet(csv_path, jsonl_path[0] if jsonl_path else None, columns=row.columns)
            definition = self.definitions.get(place)
            sheet.open([f.label for f in definition.fields] if definition else row.columns)
        cells, check = row.cells, row.check
        if row.loose is not None:
            # No definition: the first record's answers name the columns, and the rest go to the Check column.
            extra = [
                f"{name} (no column): {cell(value)}" for name, value in row.loose.items() if name not in sheet.columns
            ]
            cells = [cell(row.loose.get(name)) for name in sheet.columns] + cells
            check = "; ".join(["no form definition in the bundle", *extra])
        duplicates = []
        for kind, digest in row.identities:
            first = sheet.seen.setdefault((kind, digest), record.id)
            if first != record.id:
                duplicates.append(f"same {kind} as {first}")
        sheet.writer.writerow([*cells, cell("; ".join(duplicates)), cell(check)])
        if row.jsonl is not None:
            sheet.handles[1].write(row.jsonl)
        sheet.rows += 1
        self.tally["opened"] += 1
        self.tally[record.sealed_by] += 1
        self.tally["flagged"] += bool(check)
        self.per_day[record.campaign, record.form, record.received_on] += 1
        self.per_language[record.campaign, record.form, row.locale] += 1
        self.chosen.update((record.campaign, record.form, name, choice) for name, choice in row.chosen)
        if row.countable:
            listing = self.listings.setdefault(record.campaign, signers.Listing())
            listing.count += 1
            if row.listed is not None and not duplicates:
                listing.signers.append(row.listed)

    def close(self) -> None:
        for sheet in self.sheets.values():
            sheet.close()


class Progress:
    """A progress bar on a terminal; nothing when the output goes to a file."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        stream = stream or sys.stderr
        self.total, self.stream, self.done = total, stream, 0
        self.shown = stream.isatty() and total > 0
        self.step = max(1, total // 200)

    def advance(self) -> None:
        self.done += 1
        if self.shown and (self.done % self.step == 0 or self.done == self.total):
            filled = 30 * self.done // self.total
            bar = "#" * filled + "." * (30 - filled)
            print(f"\r[{bar}] {self.done} of {self.total} records", end="", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(file=self.stream)


# --- the run ---------------------------------------------------------------------------------------------------


def survey_all(paths: list[Path], salvage: bool) -> list[bundle.Survey]:
    """Read every bundle once before anything is opened or written; damage refuses the run unless salvaging."""
    surveys = []
    for path in paths:
        try:
            found = bundle.survey(path)
        except bundle.BundleError as exc:
            raise Refusal(f"{exc}. Nothing was written.") from exc
        if found.report and not salvage:
            raise Refusal(f"{found.report[0]}. Nothing was written. (--salvage opens the intact records.)")
        surveys.append(found)
    return surveys


def form_definitions(surveys: list[bundle.Survey]) -> dict[tuple[str, str], campaigns.Form]:
    forms = {}
    for found in surveys:
        for slug, raw in found.campaigns.items():
            try:
                for form in campaigns.from_dict(raw, f"bundle campaign {slug}").forms.values():
                    forms[slug, form.slug] = form
            except campaigns.CampaignError as exc:
                print(f"Warning: {plain(exc)}; its answers are written without labels or checks.", file=sys.stderr)
    return forms


def unique_records(surveys: list[bundle.Survey]) -> Iterator[bundle.Record]:
    """Every record of every bundle, once: a record exported twice (export --again) is opened once."""
    seen: set[str] | None = set() if len(surveys) > 1 else None
    for found in surveys:
        for record in bundle.records(found):
            if seen is not None:
                if record.id in seen:
                    continue
                seen.add(record.id)
            yield record


def nothing_opened(surveys: list[bundle.Survey], private: keys.PrivateKey) -> str:
    """Why a key opens none of the records, in one line: the keys they were sealed to, as far as they say."""
    sealed_to = set().union(*(found.sealed_to for found in surveys))
    to = ", ".join(sorted(sealed_to)) or "no readable key id"
    total = sum(found.count for found in surveys)
    return (
        f"the key {plain(private.name)} ({private.fingerprint}) opens none of the {total} record(s), "
        f"which are sealed to {to}; use the key those records were sealed to. Nothing was written."
    )


def write_summary(out: Path, writer: Writer, surveys: list[bundle.Survey], private: keys.PrivateKey) -> Path:
    tally = writer.tally
    lines = [
        "Papillon export opened",
        f"Key used: {plain(private.name)} ({private.fingerprint})",
        f"Records opened: {tally['opened']}",
        f"  sealed in the browser: {tally['browser']}, sealed on arrival at the server: {tally['server']}",
        f"Records that could not be opened: {tally['failed']}",
        f"Records with answers that do not fit their form (see the Check column): {tally['flagged']}",
        "",
        *(f"{s.csv_path.name}: {s.rows} row(s)" for _, s in sorted(writer.sheets.items())),
    ]
    if not any(private.key_id in found.key_ids for found in surveys):
        lines.append("Note: the server did not list this key when it exported; records may be sealed to other keys.")
    damaged = [plain(problem) for found in surveys for problem in found.report]
    if damaged:
        lines += ["", "Damaged bundle (opened with --salvage; only intact records were opened):", *damaged]
    if writer.failures:
        lines += ["", "Not opened:", *writer.failures]
    summary = out / "summary.txt"
    with open(summary, "x", encoding="utf-8", opener=owner_only) as fh:
        fh.write("\n".join(lines) + "\n")
    return summary


REPORT_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1b1b1f; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; } td, th { border: 1px solid #c9c6d3; padding: .2rem .6rem; }
th { text-align: left; background: #f3eefa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font: 13px system-ui, sans-serif; fill: #1b1b1f; } .bad { color: #a0001b; }
"""


def bar_chart(rows: list[tuple[str, int]]) -> str:
    """A horizontal bar chart as inline SVG: no script, nothing loaded."""
    if not rows:
        return "<p>No answers.</p>"
    most = max(n for _, n in rows) or 1
    height = 24 * len(rows)
    parts = [f'<svg role="img" width="640" height="{height}" viewBox="0 0 640 {height}">']
    for i, (label, n) in enumerate(rows):
        y = 24 * i
        width = round(300 * n / most)
        parts.append(f'<text x="0" y="{y + 16}">{html.escape(label[:45])}</text>')
        parts.append(f'<rect x="330" y="{y + 4}" width="{width}" height="16" fill="#5b2a86"/>')
        parts.append(f'<text x="{336 + width}" y="{y + 16}">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def table(head: list[str], rows: list[list[object]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{html.escape(str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def write_report(out: Path, writer: Writer) -> Path:
    """report.html: counts per form, day and language, each choice question as a chart, what did not open.

    Every text from the bundle is escaped, and the page's own policy forbids loading or running anything."""
    places = sorted(writer.sheets)
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Papillon report</title><style>{REPORT_STYLE}</style></head><body>",
        "<h1>Papillon report</h1>",
        f"<p>{writer.tally['opened']} record(s) opened; {writer.tally['failed']} could not be opened.</p>",
        "<h2>Records per form</h2>",
        table(["Campaign", "Form", "Records"], [[c, f, writer.sheets[c, f].rows] for c, f in places]),
        "<h2>Records per day</h2>",
        table(["Campaign", "Form", "Day", "Records"], [[*k, n] for k, n in sorted(writer.per_day.items())]),
        "<h2>Records per language</h2>",
        table(["Campaign", "Form", "Language", "Records"], [[*k, n] for k, n in sorted(writer.per_language.items())]),
    ]
    for place in places:
        definition = writer.definitions.get(place)
        for f in definition.fields if definition else ():
            if not f.choices:
                continue
            counts = [(c.label, writer.chosen[(*place, f.name, c.id)]) for c in f.choices]
            parts += [f"<h2>{html.escape(f'{place[0]} / {place[1]}: {f.label}')}</h2>", bar_chart(counts)]
    if writer.failures:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in writer.failures)
        parts += ['<h2 class="bad">Not opened</h2>', f"<ul>{items}</ul>"]
    parts.append("</body></html>")
    report = out / "report.html"
    with open(report, "x", encoding="utf-8", opener=owner_only) as fh:
        fh.write("\n".join(parts) + "\n")
    return report


def run(args: argparse.Namespace) -> int:
    surveys = survey_all(args.bundles, args.salvage)
    definitions = form_definitions(surveys)
    places = set().union(*(found.places for found in surveys))
    writer = Writer(args.out, definitions, args.jsonl)
    clash = [p for place in places for p in writer.targets(place) if p.exists()]
    clash += [args.out / name for name in ("summary.txt", "report.html") if (args.out / name).exists()]
    if args.publish is not None and args.publish.exists():
        clash.append(args.publish)
    if clash:
        raise Refusal(f"{clash[0]} already exists; choose a new --out folder so nothing is overwritten")
    private = load_private(args.key, args.passphrase_file)
    total = sum(found.count for found in surveys)
    if total and not any(private.key_id in found.sealed_to for found in surveys):
        raise Refusal(nothing_opened(surveys, private))

    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    progress = Progress(total)
    opener = Opener(private, definitions, secrets.token_bytes(16), args.jsonl)
    try:
        for record, row in opened_records(unique_records(surveys), opener, args.jobs):
            if isinstance(row, Row):
                writer.add(record, row)
            else:
                writer.failed(record, row)
            progress.advance()
    finally:
        writer.close()
        progress.finish()
    written = [path for place in sorted(writer.sheets) for path in writer.targets(place)]
    written.append(write_summary(args.out, writer, surveys, private))
    written.append(write_report(args.out, writer))
    if args.publish is not None:
        with open(args.publish, "x", encoding="utf-8", opener=owner_only) as fh:
            fh.write(signers.dumps(writer.listings))
        written.append(args.publish)
    for path in written:
        print(f"Wrote {path}")
    damaged = any(found.report for found in surveys)
    print(f"Opened {writer.tally['opened']} record(s); {writer.tally['failed']} could not be opened.")
    return EXIT_SOME_FAILED if writer.tally["failed"] or damaged else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Open Papillon export bundles offline and write spreadsheets.",
        epilog="Exit codes: 0 every record opened; 1 some did not (see summary.txt); 2 nothing was written.",
    )
    parser.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE", help="export bundle file(s)")
    parser.add_argument("--key", required=True, type=Path, help="your private key file (NAME.key)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the CSV files and summary")
    parser.add_argument("--passphrase-file", type=Path, help="read the passphrase from the first line of this file")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes opening records (default: every core)"
    )
    parser.add_argument(
        "--salvage", action="store_true", help="open the intact records of a damaged bundle and list the damage"
    )
    parser.add_argument("--jsonl", action="store_true", help="also write each form's records as JSON Lines")
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="FILE",
        help="also write the public list of signers (a count, and the names of those who agreed) for flask publish",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    try:
        return run(args)
    except Refusal as exc:
        print(f"decrypt: {exc}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    except OSError as exc:
        print(f"decrypt: cannot write the output: {exc}", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN


if __name__ == "__main__":
    sys.exit(main())
