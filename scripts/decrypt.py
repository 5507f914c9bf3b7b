"""Open export bundles on the offline laptop and write one spreadsheet per form.

    python scripts/decrypt.py BUNDLE [BUNDLE ...] --key KEYFILE --out DIR
        [--passphrase-file FILE] [--jobs N] [--salvage] [--jsonl]

Writes DIR/<campaign>-<form>.csv (UTF-8 with BOM, so spreadsheets show every script),
with --jsonl DIR/<campaign>-<form>.jsonl too, DIR/summary.txt, and DIR/report.html (counts
and charts that open in a browser with no network). A record whose witness asked to read a
reply shows its reply handle; DIR/reply-template.csv then lists each handle once, for
scripts/reply.py to seal the replies staff write in it. A choice shows as
its label in the campaign's own language, whatever language the page was read in; the
Language column says which that was. Bundles are read as streams and records opened on
every core, so memory stays the same whatever the bundle's size. Needs no network and
uses only Papillon's format modules.

Exit codes: 0 every record opened; 1 some did not (the outputs are written and
summary.txt lists each one and why); 2 nothing was written.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple, cast

# Papillon's formats (papillon/, beside this folder) and laptop.py (in it), found the same way whether the script
# runs from the project, from the offline kit, or is loaded by path as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from laptop import NOTHING_KEPT, ProgressBar, Refusal, exit_code, load_private, owner_only

from papillon import bundle, campaigns, envelope, keys, replies, signers

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
    "Reply handle",
    "Check",
    "Possible duplicate",
]
# The replies staff write: one row per witness who can be answered, read back by scripts/reply.py.
TEMPLATE = "reply-template.csv"
TEMPLATE_COLUMNS = ["handle", "campaign", "form", "received_on", "message"]
EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_WRITTEN = 0, 1, NOTHING_KEPT
BATCH = 128  # records per task sent to a worker: large enough that passing them costs little
IN_FLIGHT = 16  # tasks queued ahead of the writer, so memory stays bounded however large the bundle


# Record lines on their way to be opened: the bundle's name, the lines' numbers, the lines.
Batch = tuple[str, list[int], list[bytes]]
Place = tuple[str, str]  # (campaign, form)
# A record's answers as sealed: JSON from the browser, so any value until its form has checked it.
Answers = dict[str, object]


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


def reply_of(doc: Mapping[str, object]) -> tuple[str, str | None]:
    """A record's reply handle ("" when the witness asked for no reply), and what is wrong with its ``reply``
    member when that does not read: a bad member is noted, never a reason to stop."""
    if "reply" not in doc:
        return "", None
    try:
        return replies.read_member(doc["reply"]).handle, None
    except replies.ReplyError as exc:
        return "", f"reply: {exc}; this record cannot be answered"


# --- opening: the same work in this process or in a worker -------------------------------------------------------


def choices_as_ids(definition: campaigns.Form, answers: Answers) -> Answers:
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
    found: dict[str, list[str]] = {}
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

    def chosen(self, answers: Answers) -> tuple[tuple[str, str], ...]:
        """(field, choice id) of every choice made, for the report's counts."""
        made = []
        for name in self.labels:
            value = answers.get(name)
            for choice in value if isinstance(value, list) else [value]:
                if isinstance(choice, str) and choice:
                    made.append((name, choice))
        return tuple(made)

    def notes(self, doc: Mapping[str, object], answers: Answers, problems: Mapping[str, str]) -> list[str]:
        """What the Check column says of a record: its problems, an older form version, answers with no column."""
        notes = [f"{name}: {message}" for name, message in problems.items()]
        if doc.get("form_version") != self.definition.version:
            notes.append(f"made under form version {doc.get('form_version')}")
        # An answer with no column of its own is kept in the Check column rather than lost.
        known = {f.name for f in self.definition.fields}
        notes += [f"{name} (no column): {cell(answers[name])}" for name in answers if name not in known]
        return notes


def keeps_off_the_list(
    definition: campaigns.Form, doc: Mapping[str, object], problems: dict[str, str]
) -> dict[str, str]:
    """The problems that keep a signature off the public list and out of its count. Under the form's current version,
    any: the page could not have sent such answers. Under an older one the questions may have changed since (one
    became a single choice, say), so only a problem with what the list shows, or with the consent, keeps it off."""
    if doc.get("form_version") == definition.version:
        return problems
    needed = {*definition.publish, definition.publish_consent}
    return {name: problem for name, problem in problems.items() if name in needed}


class Row(NamedTuple):
    """One opened record, made ready for its spreadsheet where it was opened, so the writer only writes (a
    named tuple: thousands a second cross from the workers, and tuples cross cheaply)."""

    id: str
    place: Place
    received_on: str
    sealed_by: str
    locale: str
    line: str  # the CSV line up to the Possible duplicate column, which only the writer can fill in
    flagged: bool
    identities: tuple[tuple[str, int], ...]  # (what, keyed digest): compared for duplicates, never kept in clear
    chosen: tuple[tuple[str, str], ...]  # (field, choice id) for the report's counts
    jsonl: str | None = None
    loose: Answers | None = None  # a form the bundle does not define: its answers, laid out by the writer
    listed: dict[str, str] | None = None  # what the signer agreed to have listed publicly, if they did
    countable: bool = False  # a signature on a form that keeps a public count
    handle: str = ""  # the reply handle, when the witness can be answered
    notes: tuple[str, ...] = ()  # of a form the bundle does not define: what its Check column says besides


class Failure(NamedTuple):
    """A record line that did not open, and why; ``sealed_to`` holds the ids of the keys it is sealed to, when that
    is why."""

    where: str
    why: str
    id: str | None = None
    sealed_to: tuple[str, ...] = ()
    malformed: bool = False  # the line is not a record as Papillon writes it: the bundle is damaged


def sealed_to(key_ids: Iterable[str], known: Mapping[str, bundle.Key]) -> str:
    """The keys a record is sealed to, as staff know them: by fingerprint and name where a bundle's header
    describes the key, else by key id."""
    return ", ".join(plain(known[kid].label) if kid in known else kid for kid in sorted(key_ids))


@dataclass
class Opener:
    """Everything opening needs: the key, the forms, and the key for comparing identities; and, to say which key a
    record needs, how this key and those the bundles describe are known. It is sent to each worker once, as plain
    values, so it travels under any way of starting processes."""

    private_raw: bytes
    key_id: str
    definitions: dict[Place, campaigns.Form]
    salt: bytes
    jsonl: bool
    key_label: str = ""  # this key as staff know it: its fingerprint and name
    known: dict[str, bundle.Key] = field(default_factory=dict)  # the keys the bundles' headers describe
    layouts: dict[Place, Layout] = field(init=False, repr=False)
    key: X25519PrivateKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = X25519PrivateKey.from_private_bytes(self.private_raw)
        self.layouts = {place: Layout.of(d) for place, d in self.definitions.items()}

    def __getstate__(self) -> dict[str, object]:
        names = ("private_raw", "key_id", "definitions", "salt", "jsonl", "key_label", "known")
        return {k: getattr(self, k) for k in names}

    def __setstate__(self, state: dict[str, object]) -> None:
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
        if self.key_id not in sealed.sealed:
            why = f"the record is not sealed to key {self.key_label or self.key_id}; it is sealed to "
            return self.failed(record, why + sealed_to(sealed.sealed, self.known), tuple(sorted(sealed.sealed)))
        try:
            doc: Mapping[str, object] = envelope.open_envelope(
                sealed, self.key, record.campaign, record.form, key_id=self.key_id
            )
        except envelope.EnvelopeError as exc:
            return self.failed(record, str(exc))
        place = (record.campaign, record.form)
        layout = self.layouts.get(place)
        answers = cast(Answers, doc["answers"])  # open_envelope refuses a document whose answers are no object
        if layout is None:
            return self.loose(record, place, doc, answers)
        if sealed.version == 1:
            answers = choices_as_ids(layout.definition, answers)
        return self.row(record, layout, doc, answers)

    def row(self, record: bundle.Record, layout: Layout, doc: Mapping[str, object], answers: Answers) -> Row:
        """A record of a form the bundle defines: checked against it and laid out in its columns."""
        definition = layout.definition
        problems = definition.check(answers)
        notes = layout.notes(doc, answers, problems)
        handle, bad_reply = reply_of(doc)
        notes += [bad_reply] if bad_reply else []
        blocking = keeps_off_the_list(definition, doc, problems)
        locale = cell(doc.get("locale"))
        cells = [cell(layout.shown(f.name, answers.get(f.name))) for f in definition.fields]
        cells += [locale, cell(doc.get("form_version")), record.received_on, record.sealed_by, record.id]
        cells += [cell(handle), cell("; ".join(notes))]
        return Row(
            id=record.id,
            place=(record.campaign, record.form),
            received_on=record.received_on,
            sealed_by=record.sealed_by,
            locale=locale,
            line=csv_line(cells),
            flagged=bool(notes),
            identities=self.digests(layout, answers),
            chosen=layout.chosen(answers),
            jsonl=self.jsonl_line(record, doc, answers, notes, handle),
            listed=None if blocking else definition.published(answers),
            countable=bool(definition.publish_consent) and not blocking,
            handle=handle,
        )

    def loose(self, record: bundle.Record, place: Place, doc: Mapping[str, object], answers: Answers) -> Row:
        """A record of a form the bundle does not define: its answers go to the writer, which lays them out."""
        trailing = [cell(doc.get("locale")), cell(doc.get("form_version")), record.received_on, record.sealed_by]
        handle, bad_reply = reply_of(doc)
        notes = (bad_reply,) if bad_reply else ()
        return Row(
            id=record.id,
            place=place,
            received_on=record.received_on,
            sealed_by=record.sealed_by,
            locale=trailing[0],
            line=csv_line([*trailing, record.id, cell(handle)]),
            flagged=True,
            identities=(),
            chosen=(),
            jsonl=self.jsonl_line(record, doc, answers, ["no form definition in the bundle", *notes], handle),
            loose=answers,
            handle=handle,
            notes=notes,
        )

    def failed(self, record: bundle.Record, why: str, sealed_to: tuple[str, ...] = ()) -> Failure:
        return Failure(f"{record.id} ({record.campaign}/{record.form})", why, record.id, sealed_to)

    def jsonl_line(
        self, record: bundle.Record, doc: Mapping[str, object], answers: Answers, notes: list[str], handle: str
    ) -> str | None:
        if not self.jsonl:
            return None
        line = {
            "record_id": record.id,
            "received_on": record.received_on,
            "sealed_by": record.sealed_by,
            "locale": doc.get("locale"),
            "form_version": doc.get("form_version"),
            "answers": answers,
            "reply_handle": handle or None,
            "check": notes,
        }
        return json.dumps(line, ensure_ascii=False) + "\n"

    def digests(self, layout: Layout, answers: Answers) -> tuple[tuple[str, int], ...]:
        """Each identity the answers give, as a digest keyed for this run alone: comparable, never readable."""
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

    def line(self, row: Row) -> str:
        """The row's CSV line up to its Possible duplicate column.

        A form the bundle does not define has no columns but those its first record's answers name; any other
        answer goes to the Check column."""
        if row.loose is None:
            return row.line
        extra = [f"{name} (no column): {cell(v)}" for name, v in row.loose.items() if name not in self.columns]
        head = csv_line(cell(row.loose.get(name)) for name in self.columns)
        check = csv_line([cell("; ".join(["no form definition in the bundle", *row.notes, *extra]))])
        return f"{head},{row.line},{check}" if self.columns else f"{row.line},{check}"

    def duplicates(self, row: Row) -> list[str]:
        """Which earlier records of this sheet gave the same identity; the first to give one is remembered."""
        found = []
        for kind, digest in row.identities:
            first = self.seen.setdefault((kind, digest), row.id)
            if first != row.id:
                found.append(f"same {kind} as {first}")
        return found

    def write(self, line: str, duplicates: list[str], jsonl: str | None) -> None:
        assert self.csv is not None
        self.csv.write(f"{line},{csv_line([cell('; '.join(duplicates))])}\r\n" if duplicates else f"{line},\r\n")
        if jsonl is not None and self.jsonl is not None:
            self.jsonl.write(jsonl)
        self.rows += 1

    def close(self) -> None:
        for fh in (self.csv, self.jsonl):
            if fh is not None:
                fh.close()


class Writer:
    """The spreadsheets of one run: rows as records open, duplicates flagged, counts for the summary."""

    def __init__(self, out: Path, definitions: dict[Place, campaigns.Form], jsonl: bool) -> None:
        self.out = out
        self.definitions = definitions
        self.jsonl = jsonl
        self.created: list[Path] = []  # every file this run made, so a run that fails part way keeps none
        self.sheets: dict[Place, Sheet] = {}
        self.tally: Counter[str] = Counter()
        self.failures: list[str] = []
        self.sealed_to: set[str] = set()  # the keys of the records that were not sealed to this one
        self.per_day: Counter[tuple[str, str, str]] = Counter()
        self.per_language: Counter[tuple[str, str, str]] = Counter()
        self.chosen: Counter[tuple[str, str, str, str]] = Counter()
        self.listings: dict[str, signers.Listing] = {}
        self.listed: set[tuple[str, tuple[str, int]]] = set()  # (campaign, identity) of everyone already listed
        self.ids: set[str] | None = None  # with several bundles: the records written, so each is written once
        # Each reply handle and the record that stands for it in the reply template: the testimony where there is
        # one (rather than a follow-up), then the earliest.
        self.answerable: dict[str, tuple[bool, str, str, Place]] = {}
        self.answerable_per_form: Counter[Place] = Counter()

    def targets(self, place: Place) -> list[Path]:
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
            self.tally["repeated"] += 1
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

    def sheet(self, place: Place, row: Row) -> Sheet:
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
        """An opened record into its form's spreadsheet and into the counts, once however many bundles hold it."""
        if not self.once(row.id):
            return
        sheet = self.sheet(row.place, row)
        line = sheet.line(row)
        duplicates = sheet.duplicates(row)
        sheet.write(line, duplicates, row.jsonl)
        self.count(row, duplicate=bool(duplicates))

    def count(self, row: Row, *, duplicate: bool) -> None:
        """An added record in the summary's and the report's counts, and in the public list."""
        place = row.place
        tally = self.tally
        tally["opened"] += 1
        tally[row.sealed_by] += 1
        tally["flagged"] += row.flagged
        self.per_day[(*place, row.received_on)] += 1
        self.per_language[(*place, row.locale)] += 1
        for name, choice in row.chosen:
            self.chosen[(*place, name, choice)] += 1
        if row.countable:
            self.count_signer(place[0], row, duplicate)
        if row.handle:
            self.count_answerable(row)

    def count_answerable(self, row: Row) -> None:
        """A record that can be answered, in the counts and in the reply template."""
        self.tally["answerable"] += 1
        self.answerable_per_form[row.place] += 1
        candidate = (row.place[0] == replies.CAMPAIGN, row.received_on, row.id, row.place)
        kept = self.answerable.setdefault(row.handle, candidate)
        if candidate < kept:
            self.answerable[row.handle] = candidate

    def write_template(self) -> Path:
        """The reply template: each handle once, with where and when its witness wrote, and an empty message for
        staff to fill in; spreadsheet-safe like every sheet, and readable by its owner alone like them."""
        if (self.out / TEMPLATE).exists():
            raise Refusal(f"a form's spreadsheet is named {TEMPLATE}, which the reply template needs; nothing was kept")
        rows = sorted((place, received_on, handle) for handle, (_, received_on, _, place) in self.answerable.items())
        path = self.out / TEMPLATE
        with open(path, "x", encoding="utf-8-sig", newline="", opener=owner_only) as fh:
            self.created.append(path)
            fh.write(csv_line(cell(name) for name in TEMPLATE_COLUMNS) + "\r\n")
            for (campaign, form), received_on, handle in rows:
                fh.write(csv_line(cell(value) for value in (handle, campaign, form, received_on, "")) + "\r\n")
        return path

    def count_signer(self, campaign: str, row: Row, duplicate: bool) -> None:
        """A signature counts once per person, and names them if any of their signatures agreed to it."""
        listing = self.listings.setdefault(campaign, signers.Listing())
        listing.count += not duplicate
        people = {(campaign, identity) for identity in row.identities}
        if row.listed is not None and not (people & self.listed):
            listing.signers.append(row.listed)
            self.listed |= people

    def publish(self, path: Path) -> None:
        """The public list of signers, for flask publish; removed with the rest if the run stops after it."""
        self.write_file(path, signers.dumps(self.listings))

    def write_file(self, path: Path, text: str) -> Path:
        """A new file of this run, counted as made once it exists, so one cut short (a full disk) is removed too."""
        with open(path, "x", encoding="utf-8", opener=owner_only) as fh:
            self.created.append(path)
            fh.write(text)
        return path

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


class Progress(ProgressBar):
    """The progress bar: the records read, and of those how many opened and how many did not."""

    def counted(self, tally: Mapping[str, int]) -> str:
        return counted(tally)


# --- the run ---------------------------------------------------------------------------------------------------


def survey_all(paths: list[Path], salvage: bool) -> list[bundle.Survey]:
    """Read every bundle once before anything is opened or written; damage refuses the run unless salvaging."""
    surveys: list[bundle.Survey] = []
    for path in paths:
        try:
            found = bundle.survey(path, lines=False)
        except bundle.BundleError as exc:
            raise Refusal(f"{exc}. Nothing was written.") from exc
        if found.report and not salvage:
            raise Refusal(f"{found.report[0]}. Nothing was written. (--salvage opens the intact records.)")
        surveys.append(found)
    return surveys


def form_definitions(surveys: list[bundle.Survey]) -> dict[Place, campaigns.Form]:
    """Each form the bundles define; a campaign that does not read is warned of, and its answers kept."""
    forms: dict[Place, campaigns.Form] = {}
    for found in surveys:
        for slug, raw in found.campaigns.items():
            try:
                for form in campaigns.from_dict(raw, f"bundle campaign {slug}").forms.values():
                    forms[slug, form.slug] = form
            except campaigns.CampaignError as exc:
                print(f"Warning: {plain(exc)}; its answers are written without labels or checks.", file=sys.stderr)
    return forms


def nothing_opened(writer: Writer, private: keys.PrivateKey, surveys: list[bundle.Survey]) -> str:
    """Why a key opens none of the records, in one line: the keys they were sealed to, by fingerprint and name
    where the bundles' headers describe them."""
    to = sealed_to(writer.sealed_to, bundle.known_keys(surveys)) or "no readable key id"
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
        *answerable(writer),
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
    return writer.write_file(out / "summary.txt", "\n".join(lines) + "\n")


def answerable(writer: Writer) -> list[str]:
    """How many records can be answered, and how: for the summary, the report and the terminal."""
    records, witnesses = writer.tally["answerable"], len(writer.answerable)
    if not records:
        return ["Records that can be answered (see the Reply handle column): 0"]
    return [
        f"Records that can be answered (see the Reply handle column): {records}, from {witnesses} witness(es)",
        f"  write each reply in the message column of {TEMPLATE}, then seal them with scripts/reply.py",
    ]


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


def report_counts(writer: Writer) -> list[str]:
    """The report's opening: how many opened, and the records per form, day and language."""
    per_form = [[c, f, writer.sheets[c, f].rows] for c, f in sorted(writer.sheets)]
    head = ["Campaign", "Form", "Records"]
    if writer.answerable:
        head.append("Can be answered")
        for row in per_form:
            row.append(writer.answerable_per_form[str(row[0]), str(row[1])])
    return [
        f"<p>{writer.tally['opened']} record(s) opened; {writer.tally['failed']} could not be opened.</p>",
        *(f"<p>{html.escape(line.strip())}</p>" for line in answerable(writer) if writer.answerable),
        "<h2>Records per form</h2>",
        table(head, per_form),
        "<h2>Records per day</h2>",
        table(["Campaign", "Form", "Day", "Records"], [[*k, n] for k, n in sorted(writer.per_day.items())]),
        "<h2>Records per language</h2>",
        table(["Campaign", "Form", "Language", "Records"], [[*k, n] for k, n in sorted(writer.per_language.items())]),
    ]


def report_charts(writer: Writer) -> list[str]:
    """Each choice question of each form written, as a chart of how often each choice was made."""
    parts = []
    for place in sorted(writer.sheets):
        definition = writer.definitions.get(place)
        for f in definition.fields if definition else ():
            if not f.choices:
                continue
            counts = [(c.label, writer.chosen[(*place, f.name, c.id)]) for c in f.choices]
            parts += [f"<h2>{html.escape(f'{place[0]} / {place[1]}: {f.label}')}</h2>", bar_chart(counts)]
    return parts


def report_problems(writer: Writer, damaged: list[str]) -> list[str]:
    """The damage a salvaged bundle showed, and every record that did not open."""
    parts = []
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
    return parts


def write_report(out: Path, writer: Writer, damaged: list[str]) -> Path:
    """report.html: counts per form, day and language, each choice question as a chart, what did not open.

    Every text from the bundle is escaped, and the page's own policy forbids loading or running anything."""
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Papillon report</title><style>{REPORT_STYLE}</style></head><body>",
        "<h1>Papillon report</h1>",
        *report_counts(writer),
        *report_charts(writer),
        *report_problems(writer, damaged),
        "</body></html>",
    ]
    return writer.write_file(out / "report.html", "\n".join(parts) + "\n")


@dataclass(frozen=True)
class Options:
    """The command line, read: what one run is asked to do."""

    bundles: list[Path]
    key: Path
    out: Path
    passphrase_file: Path | None
    jobs: int
    salvage: bool
    jsonl: bool
    publish: Path | None


@dataclass(frozen=True)
class Outcome:
    """What a run that wrote its outputs did: the files, in the order they are listed, and what opened."""

    written: tuple[Path, ...]
    opened: int
    failed: int
    damaged: bool  # a bundle opened with --salvage
    repeated: int = 0  # records already read from another of the bundles, written once
    answerable: tuple[str, ...] = ()  # what the summary says of the records that can be answered, when some can

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed or self.damaged else EXIT_OK


def refuse_to_overwrite(options: Options) -> None:
    """Refuse before the passphrase is asked for if an output is already there: nothing is ever overwritten."""
    out = options.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Refusal(f"{out} already exists and is not empty; choose a new --out folder so nothing is overwritten")
    if options.publish is not None and options.publish.exists():
        raise Refusal(f"{options.publish} already exists; choose a new --publish file so nothing is overwritten")


def run(options: Options) -> int:
    """Open the bundles and write the outputs, say what was written, and the exit code; a run that stops part
    way, for whatever reason, keeps nothing."""
    surveys = survey_all(options.bundles, options.salvage)
    writer = Writer(options.out, form_definitions(surveys), options.jsonl)
    refuse_to_overwrite(options)
    private = load_private(options.key, options.passphrase_file)
    if len(surveys) > 1:
        writer.ids = set()
    try:
        outcome = write_all(options, surveys, writer, private)
        show(outcome)
    except BaseException:
        writer.discard()
        raise
    return outcome.exit_code


def write_all(options: Options, surveys: list[bundle.Survey], writer: Writer, private: keys.PrivateKey) -> Outcome:
    """Open every record into the spreadsheets, then write the summary, the report and the public list."""
    open_all(options, surveys, writer, private)
    tally = writer.tally
    if tally["failed"] and tally["failed"] == tally["elsewhere"] and not tally["opened"]:
        raise Refusal(nothing_opened(writer, private, surveys))
    writer.make_folder()
    damaged = [problem for found in surveys for problem in found.report]
    written = [path for place in sorted(writer.sheets) for path in writer.targets(place)]
    if writer.answerable:
        written.append(writer.write_template())
    written.append(write_summary(options.out, writer, surveys, private))
    written.append(write_report(options.out, writer, damaged))
    if options.publish is not None:
        writer.publish(options.publish)
        written.append(options.publish)
    return Outcome(
        tuple(written),
        tally["opened"],
        tally["failed"],
        damaged=bool(damaged),
        repeated=tally["repeated"],
        answerable=tuple(answerable(writer)) if writer.answerable else (),
    )


def open_all(options: Options, surveys: list[bundle.Survey], writer: Writer, private: keys.PrivateKey) -> None:
    """Every record of every bundle, opened on ``--jobs`` processes, into the writer's spreadsheets."""
    progress = Progress(sum(found.count for found in surveys))
    opener = Opener(
        private.key.private_bytes_raw(),
        private.key_id,
        writer.definitions,
        secrets.token_bytes(16),
        options.jsonl,
        key_label=plain(f"{private.fingerprint} ({private.name})"),
        known=bundle.known_keys(surveys),
    )
    try:
        for results in opened(surveys, opener, options.jobs):
            for result in results:
                take(writer, result, salvage=options.salvage)
            progress.advance(len(results), writer.tally)
    finally:
        writer.close()
        progress.finish()


def counted(tally: Mapping[str, int]) -> str:
    """What the records read so far came to, as the progress bar says it."""
    repeated = f", {tally.get('repeated', 0)} already read from another bundle" if tally.get("repeated") else ""
    opened, failed = tally.get("opened", 0), tally.get("failed", 0)
    return f"records read: {opened} opened, {failed} could not be opened{repeated}"


def take(writer: Writer, result: Row | Failure, *, salvage: bool) -> None:
    """One record's row, or why it did not open; a line that is no record refuses the run unless salvaging."""
    if isinstance(result, Row):
        writer.add(result)
    elif result.malformed and not salvage:
        raise Refusal(f"{result.where}: {result.why}. Nothing was written. (--salvage opens the intact records.)")
    else:
        writer.failed(result)


def show(outcome: Outcome) -> None:
    for path in outcome.written:
        print(f"Wrote {path}")
    repeated = (
        f" {outcome.repeated} already read from another bundle (each is written once)." if outcome.repeated else ""
    )
    print(f"Opened {outcome.opened} record(s); {outcome.failed} could not be opened.{repeated}")
    for line in outcome.answerable:
        print(line)


def command_line() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = command_line()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    options = Options(**vars(args))
    return exit_code("decrypt", lambda: run(options), writing="the output", kept="Nothing was kept.")


if __name__ == "__main__":
    sys.exit(main())
