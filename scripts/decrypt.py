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
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

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
    "Check",
    "Possible duplicate",
]
EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_WRITTEN = 0, 1, 2
BATCH = 128  # records per task sent to a worker: large enough that passing them costs little
IN_FLIGHT = 16  # tasks queued ahead of the writer, so memory stays bounded however large the bundle


# Record lines on their way to be opened: the bundle's name, the lines' numbers, the lines.
Batch = tuple[str, list[int], list[bytes]]


class Refusal(Exception):
    """A problem to report in one line, with no traceback."""


def cell(value: object) -> str:
    """Spreadsheet-safe text: lists joined, booleans as yes/no, control characters replaced, formulas defused.

    Every cell goes through here, headers included: a rewritten bundle can put anything in any of them."""
    if value.__class__ is str:
        text = value
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = "; ".join(str(v) for v in value)
    elif value is None:
        text = ""
    else:
        text = str(value)
    if text.isprintable():  # no control character: only a formula start needs a look
        return "'" + text if text.lstrip(" ").startswith(FORMULA_START) else text
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


def quoted(text: str) -> str:
    """One CSV field, quoted only where it must be, as the csv module writes it."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(cells: Iterable[str]) -> str:
    """Cells already made safe by ``cell``, as one CSV line."""
    return ",".join([quoted(c) for c in cells])


@dataclass(frozen=True)
class Layout:
    """What opening needs to know of one form, worked out once rather than for every record."""

    definition: campaigns.Form
    labels: dict[str, dict[str, str]]  # field name -> choice id -> label in the campaign's own language
    identities: dict[str, list[str]]

    @classmethod
    def of(cls, definition: campaigns.Form) -> Layout:
        labels = {f.name: {c.id: c.label for c in f.choices} for f in definition.fields if f.choices}
        return cls(definition, labels, identities(definition))

    def shown(self, name: str, value: object) -> object:
        """A choice as its label in the campaign's own language, whatever language the page was in."""
        labels = self.labels.get(name)
        if labels is None:
            return value
        if isinstance(value, str):
            return labels.get(value, value)
        if isinstance(value, list):
            return [labels.get(v, v) if isinstance(v, str) else v for v in value]
        return value


class Row(NamedTuple):
    """One opened record, made ready for its spreadsheet where it was opened, so the writer only writes (a
    named tuple: thousands a second cross from the workers, and tuples cross cheaply)."""

    id: str
    place: tuple[str, str]
    received_on: str
    sealed_by: str
    locale: str
    line: str  # the CSV line up to the Possible duplicate column, which only the writer can fill in
    flagged: bool
    identities: tuple[tuple[str, int], ...]  # (what, keyed digest): compared for duplicates, never kept in clear
    chosen: tuple[tuple[str, str], ...]  # (field, choice id) for the report's counts
    jsonl: str | None = None
    loose: dict | None = None  # a form the bundle does not define: its answers, laid out by the writer
    listed: dict[str, str] | None = None  # what the signer agreed to have listed publicly, if they did
    countable: bool = False  # a signature on a form that keeps a public count


class Failure(NamedTuple):
    """A record line that did not open, and why; ``sealed_to`` names the keys it is sealed to, when that is why."""

    where: str
    why: str
    id: str | None = None
    sealed_to: tuple[str, ...] = ()
    malformed: bool = False  # the line is not a record as Papillon writes it: the bundle is damaged


@dataclass
class Opener:
    """Everything opening needs: the key, the forms, and the key for comparing identities. It is sent to each
    worker once, as plain values, so it travels under any way of starting processes."""

    private_raw: bytes
    key_id: str
    definitions: dict[tuple[str, str], campaigns.Form]
    salt: bytes
    jsonl: bool
    layouts: dict[tuple[str, str], Layout] = field(init=False, repr=False)
    key: X25519PrivateKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = X25519PrivateKey.from_private_bytes(self.private_raw)
        self.layouts = {place: Layout.of(d) for place, d in self.definitions.items()}

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("private_raw", "key_id", "definitions", "salt", "jsonl")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def open_batch(self, batch: Batch) -> list[Row | Failure]:
        name, numbers, lines = batch
        return [self.open(f"{name}: line {number}", line) for number, line in zip(numbers, lines, strict=True)]

    def open(self, where: str, line: bytes) -> Row | Failure:
        """A record line's row, or why it does not open; never an exception."""
        try:
            record = bundle.parse_record(line, where)
        except bundle.BundleError as exc:
            return Failure(where, str(exc).removeprefix(f"{where}: "), malformed=True)
        try:
            sealed = envelope.parse(record.envelope)
        except envelope.EnvelopeError as exc:
            return self.failed(record, str(exc))
        try:
            doc = envelope.open_envelope(sealed, self.key, record.campaign, record.form, key_id=self.key_id)
        except envelope.EnvelopeError as exc:
            elsewhere = () if self.key_id in sealed.sealed else tuple(sorted(sealed.sealed))
            return self.failed(record, str(exc), elsewhere)
        place = (record.campaign, record.form)
        layout = self.layouts.get(place)
        answers = doc["answers"]
        if layout is None:
            return self.loose(record, place, doc, answers)
        definition = layout.definition
        if sealed.version == 1:
            answers = choices_as_ids(definition, answers)
        problems = definition.check(answers)
        notes = [f"{name}: {message}" for name, message in problems.items()]
        if doc.get("form_version") != definition.version:
            notes.append(f"made under form version {doc.get('form_version')}")
        # An answer with no column of its own is kept in the Check column rather than lost.
        fields = definition.fields
        known = {f.name for f in fields}
        notes += [f"{name} (no column): {cell(answers[name])}" for name in answers if name not in known]
        locale = cell(doc.get("locale"))
        check = "; ".join(notes)
        cells = [cell(layout.shown(f.name, answers.get(f.name))) for f in fields]
        cells += [locale, cell(doc.get("form_version")), record.received_on, record.sealed_by, record.id, cell(check)]
        chosen = tuple(
            (name, choice)
            for name in layout.labels
            for choice in (answers.get(name) if isinstance(answers.get(name), list) else [answers.get(name)])
            if isinstance(choice, str) and choice
        )
        return Row(
            id=record.id,
            place=place,
            received_on=record.received_on,
            sealed_by=record.sealed_by,
            locale=locale,
            line=csv_line(cells),
            flagged=bool(notes),
            identities=self.digests(layout, answers),
            chosen=chosen,
            jsonl=self.jsonl_line(record, doc, answers, notes),
            # A signature is listed on its answers alone: a note about the form's version is no reason to drop it.
            listed=None if problems else definition.published(answers),
            countable=bool(definition.publish_consent) and not problems,
        )

    def loose(self, record: bundle.Record, place: tuple[str, str], doc: dict, answers: dict) -> Row:
        trailing = [cell(doc.get("locale")), cell(doc.get("form_version")), record.received_on, record.sealed_by]
        return Row(
            id=record.id,
            place=place,
            received_on=record.received_on,
            sealed_by=record.sealed_by,
            locale=trailing[0],
            line=csv_line([*trailing, record.id]),
            flagged=True,
            identities=(),
            chosen=(),
            jsonl=self.jsonl_line(record, doc, answers, ["no form definition in the bundle"]),
            loose=answers,
        )

    def failed(self, record: bundle.Record, why: str, sealed_to: tuple[str, ...] = ()) -> Failure:
        return Failure(f"{record.id} ({record.campaign}/{record.form})", why, record.id, sealed_to)

    def jsonl_line(self, record: bundle.Record, doc: dict, answers: dict, notes: list[str]) -> str | None:
        if not self.jsonl:
            return None
        line = {
            "record_id": record.id,
            "received_on": record.received_on,
            "sealed_by": record.sealed_by,
            "locale": doc.get("locale"),
            "form_version": doc.get("form_version"),
            "answers": answers,
            "check": notes,
        }
        return json.dumps(line, ensure_ascii=False) + "\n"

    def digests(self, layout: Layout, answers: dict) -> tuple[tuple[str, int], ...]:
        found = []
        for kind, names in layout.identities.items():
            values = [str(answers.get(n) or "").strip().casefold() for n in names]
            if all(values):
                digest = hashlib.blake2b("\0".join(values).encode(), key=self.salt, digest_size=8).digest()
                found.append((kind, int.from_bytes(digest, "big")))
        return tuple(found)


_opener: Opener | None = None


def _start_worker(opener: Opener) -> None:
    global _opener
    _opener = opener


def _open_batch(batch: Batch) -> list[Row | Failure]:
    assert _opener is not None
    return _opener.open_batch(batch)


def batches(surveys: list[bundle.Survey]) -> Iterator[Batch]:
    """Every record line of every bundle, unparsed, in batches: parsing is left to where records are opened."""
    for found in surveys:
        numbers: list[int] = []
        lines: list[bytes] = []
        for number, line in bundle.record_lines(found):
            numbers.append(number)
            lines.append(line)
            if len(lines) == BATCH:
                yield str(found.path), numbers, lines
                numbers, lines = [], []
        if lines:
            yield str(found.path), numbers, lines


def opened(surveys: list[bundle.Survey], opener: Opener, jobs: int) -> Iterator[list[Row | Failure]]:
    """Each batch's rows (or why they did not open), in bundle order, opened on ``jobs`` processes while this
    one writes; with one job, opened here."""
    if jobs <= 1:
        for batch in batches(surveys):
            yield opener.open_batch(batch)
        return
    slots = threading.Semaphore(IN_FLIGHT)

    def tasks() -> Iterator[Batch]:
        for batch in batches(surveys):
            slots.acquire()  # the pool's feeder waits here until the writer has caught up
            yield batch

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(jobs, initializer=_start_worker, initargs=(opener,)) as pool:
        for results in pool.imap(_open_batch, tasks()):
            slots.release()
            yield results


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
    csv: IO[str] | None = None
    jsonl: IO[str] | None = None
    seen: dict[tuple[str, int], str] = field(default_factory=dict)  # identity digest -> first record with it

    def open(self, labels: list[str], created: list[Path]) -> None:
        self.csv = open(self.csv_path, "x", encoding="utf-8-sig", newline="", opener=owner_only)  # noqa: SIM115
        created.append(self.csv_path)
        self.csv.write(csv_line(cell(label) for label in [*labels, *TRAILING_COLUMNS]) + "\r\n")
        if self.jsonl_path is not None:
            self.jsonl = open(self.jsonl_path, "x", encoding="utf-8", opener=owner_only)  # noqa: SIM115
            created.append(self.jsonl_path)

    def close(self) -> None:
        for fh in (self.csv, self.jsonl):
            if fh is not None:
                fh.close()


class Writer:
    """The spreadsheets of one run: rows as records open, duplicates flagged, counts for the summary."""

    def __init__(self, out: Path, definitions: dict[tuple[str, str], campaigns.Form], jsonl: bool) -> None:
        self.out = out
        self.definitions = definitions
        self.jsonl = jsonl
        self.created: list[Path] = []  # every file this run made, so a run that fails part way keeps none
        self.sheets: dict[tuple[str, str], Sheet] = {}
        self.tally: Counter = Counter()
        self.failures: list[str] = []
        self.sealed_to: set[str] = set()  # the keys of the records that were not sealed to this one
        self.per_day: Counter = Counter()
        self.per_language: Counter = Counter()
        self.chosen: Counter = Counter()
        self.listings: dict[str, signers.Listing] = {}
        self.listed: set[tuple[str, tuple[str, int]]] = set()  # (campaign, identity) of everyone already listed
        self.ids: set[str] | None = None  # with several bundles: the records written, so each is written once

    def targets(self, place: tuple[str, str]) -> list[Path]:
        name = f"{place[0]}-{place[1]}"
        return [self.out / f"{name}.csv", *([self.out / f"{name}.jsonl"] if self.jsonl else [])]

    def make_folder(self) -> None:
        """The output folder, made when the first file needs it, so a refused run leaves no folder behind."""
        missing = [folder for folder in [self.out, *self.out.parents] if not folder.exists()]
        for folder in reversed(missing):
            folder.mkdir(mode=0o700)
            self.created.append(folder)

    def once(self, record_id: str | None) -> bool:
        """False for a record already written from an earlier bundle (export --again)."""
        if self.ids is None or record_id is None:
            return True
        if record_id in self.ids:
            return False
        self.ids.add(record_id)
        return True

    def failed(self, failure: Failure) -> None:
        if not self.once(failure.id):
            return
        self.failures.append(plain(f"{failure.where}: {failure.why}"))
        self.sealed_to.update(failure.sealed_to)
        self.tally["failed"] += 1
        self.tally["elsewhere"] += bool(failure.sealed_to)

    def sheet(self, place: tuple[str, str], row: Row) -> Sheet:
        sheet = self.sheets.get(place)
        if sheet is None:
            self.make_folder()
            csv_path, *jsonl_path = self.targets(place)
            columns = sorted(row.loose) if row.loose is not None else []
            sheet = self.sheets[place] = Sheet(csv_path, jsonl_path[0] if jsonl_path else None, columns=columns)
            definition = self.definitions.get(place)
            sheet.open([f.label for f in definition.fields] if definition else columns, self.created)
        return sheet

    def add(self, row: Row) -> None:
        if not self.once(row.id):
            return
        place = row.place
        sheet = self.sheet(place, row)
        line = row.line
        if row.loose is not None:
            # No definition: the first record's answers name the columns, and the rest go to the Check column.
            extra = [f"{name} (no column): {cell(v)}" for name, v in row.loose.items() if name not in sheet.columns]
            head = csv_line(cell(row.loose.get(name)) for name in sheet.columns)
            check = csv_line([cell("; ".join(["no form definition in the bundle", *extra]))])
            line = f"{head},{line},{check}" if sheet.columns else f"{line},{check}"
        duplicates = []
        for kind, digest in row.identities:
            first = sheet.seen.setdefault((kind, digest), row.id)
            if first != row.id:
                duplicates.append(f"same {kind} as {first}")
        assert sheet.csv is not None
        sheet.csv.write(f"{line},{csv_line([cell('; '.join(duplicates))])}\r\n" if duplicates else f"{line},\r\n")
        if row.jsonl is not None and sheet.jsonl is not None:
            sheet.jsonl.write(row.jsonl)
        sheet.rows += 1
        tally = self.tally
        tally["opened"] += 1
        tally[row.sealed_by] += 1
        tally["flagged"] += row.flagged
        self.per_day[(*place, row.received_on)] += 1
        self.per_language[(*place, row.locale)] += 1
        for name, choice in row.chosen:
            self.chosen[(*place, name, choice)] += 1
        if row.countable:
            self.count_signer(place[0], row, bool(duplicates))

    def count_signer(self, campaign: str, row: Row, duplicate: bool) -> None:
        """A signature counts once per person, and names them if any of their signatures agreed to it."""
        listing = self.listings.setdefault(campaign, signers.Listing())
        listing.count += not duplicate
        people = {(campaign, identity) for identity in row.identities}
        if row.listed is not None and not (people & self.listed):
            listing.signers.append(row.listed)
            self.listed |= people

    def close(self) -> None:
        for sheet in self.sheets.values():
            sheet.close()

    def discard(self) -> None:
        """Remove everything this run wrote: a run that stops part way leaves nothing half written."""
        self.close()
        for path in reversed(self.created):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        self.created.clear()


class Progress:
    """A progress bar on a terminal; nothing when the output goes to a file."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        stream = stream or sys.stderr
        self.total, self.stream, self.done = total, stream, 0
        self.shown = stream.isatty() and total > 0
        self.step = max(1, total // 200)

    def advance(self, by: int = 1) -> None:
        before = self.done
        self.done += by
        if self.shown and (self.done // self.step != before // self.step or self.done >= self.total):
            filled = 30 * min(self.done, self.total) // self.total
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
            found = bundle.survey(path, lines=False)
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


def nothing_opened(writer: Writer, private: keys.PrivateKey) -> str:
    """Why a key opens none of the records, in one line: the keys they were sealed to."""
    to = ", ".join(sorted(writer.sealed_to)) or "no readable key id"
    return (
        f"the key {plain(private.name)} ({private.fingerprint}) opens none of the {writer.tally['failed']} "
        f"record(s), which are sealed to {to}; use the key those records were sealed to. Nothing was written."
    )


# What --salvage can and cannot promise: the sealed answers cannot change without failing to open, but a line that
# still reads may have had its unsealed members (date received, sealing path) changed, and nothing shows which.
DAMAGED = [
    "Damaged bundle, opened with --salvage. The lines named below were not opened. The answers in every record",
    "that did open are as they were sealed, but in a damaged bundle its date received and sealing path may have",
    "been changed:",
]


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
        lines += ["", *DAMAGED, *damaged]
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


def write_report(out: Path, writer: Writer, damaged: list[str]) -> Path:
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
    if damaged:
        items = "".join(f"<li>{html.escape(plain(line))}</li>" for line in damaged)
        parts += [
            '<h2 class="bad">Damaged bundle</h2>',
            f"<p>{html.escape(' '.join(DAMAGED))}</p>",
            f"<ul>{items}</ul>",
        ]
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
    writer = Writer(args.out, definitions, args.jsonl)
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise Refusal(
            f"{args.out} already exists and is not empty; choose a new --out folder so nothing is overwritten"
        )
    if args.publish is not None and args.publish.exists():
        raise Refusal(f"{args.publish} already exists; choose a new --publish file so nothing is overwritten")
    private = load_private(args.key, args.passphrase_file)
    if len(surveys) > 1:
        writer.ids = set()
    try:
        return write_all(args, surveys, writer, private)
    except BaseException:
        writer.discard()
        raise


def write_all(args: argparse.Namespace, surveys: list[bundle.Survey], writer: Writer, private: keys.PrivateKey) -> int:
    """Open every record into the spreadsheets, then write the summary, the report and the public list."""
    progress = Progress(sum(found.count for found in surveys))
    opener = Opener(
        private.key.private_bytes_raw(), private.key_id, writer.definitions, secrets.token_bytes(16), args.jsonl
    )
    try:
        for results in opened(surveys, opener, args.jobs):
            for result in results:
                if isinstance(result, Row):
                    writer.add(result)
                elif result.malformed and not args.salvage:
                    raise Refusal(
                        f"{result.where}: {result.why}. Nothing was written. (--salvage opens the intact records.)"
                    )
                else:
                    writer.failed(result)
            progress.advance(len(results))
    finally:
        writer.close()
        progress.finish()
    if writer.tally["failed"] and writer.tally["failed"] == writer.tally["elsewhere"] and not writer.tally["opened"]:
        writer.discard()
        raise Refusal(nothing_opened(writer, private))
    writer.make_folder()
    damaged = [problem for found in surveys for problem in found.report]
    written = [path for place in sorted(writer.sheets) for path in writer.targets(place)]
    written.append(write_summary(args.out, writer, surveys, private))
    writer.created.append(written[-1])
    written.append(write_report(args.out, writer, damaged))
    writer.created.append(written[-1])
    if args.publish is not None:
        with open(args.publish, "x", encoding="utf-8", opener=owner_only) as fh:
            writer.created.append(args.publish)
            fh.write(signers.dumps(writer.listings))
        written.append(args.publish)
    for path in written:
        print(f"Wrote {path}")
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
        print(f"decrypt: cannot write the output: {exc}. Nothing was kept.", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN
    except Exception:
        traceback.print_exc()
        print("decrypt: stopped by an unexpected error (please report it). Nothing was kept.", file=sys.stderr)
        return EXIT_NOTHING_WRITTEN


if __name__ == "__main__":
    sys.exit(main())
