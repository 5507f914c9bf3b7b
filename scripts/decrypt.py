"""Open an export bundle on the offline laptop and write one spreadsheet per form.

    python scripts/decrypt.py BUNDLE [BUNDLE ...] --key KEYFILE --out DIR [--passphrase-file FILE]

Writes DIR/<campaign>-<form>.csv (UTF-8 with BOM, so spreadsheets show every script)
and DIR/summary.txt. A choice shows as its label in the campaign's own language, whatever
language the page was read in; the Language column says which that was. Needs no network
and uses only Papillon's format modules.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from papillon import bundle, campaigns, envelope, keys

# What a spreadsheet may run as a formula when a cell starts with it (OWASP's CSV injection list, with the
# full-width forms that some spreadsheets read the same way).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TRAILING_COLUMNS = ["Language", "Date received", "Sealed by", "Record id", "Check"]


class Refusal(Exception):
    """A problem to report in one line, with no traceback."""


@dataclass
class Sheet:
    columns: list[str]
    labels: list[str]
    rows: list[list[str]] = field(default_factory=list)


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


def read_bundles(paths: list[Path]) -> tuple[list[bundle.Record], dict[str, dict], set[str]]:
    records: dict[str, bundle.Record] = {}
    definitions: dict[str, dict] = {}
    key_ids: set[str] = set()
    for path in paths:
        try:
            data = bundle.read(path)
        except bundle.BundleError as exc:
            raise Refusal(f"{exc}. Nothing was written.") from exc
        definitions.update(data.campaigns)
        key_ids.update(data.key_ids)
        for record in data.records:
            records.setdefault(record.id, record)
    return list(records.values()), definitions, key_ids


def sheet_for(definition: campaigns.Form | None, answers: dict) -> Sheet:
    if definition is None:
        names = sorted(answers)
        return Sheet(columns=names, labels=names)
    return Sheet(columns=[f.name for f in definition.fields], labels=[f.label for f in definition.fields])


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


def shown(definition: campaigns.Form | None, name: str, value: object) -> object:
    """A choice as its label in the campaign's own language, whatever language the page was in."""
    f = next((f for f in definition.fields if f.name == name), None) if definition else None
    if f is None or not f.choices:
        return value
    if isinstance(value, str):
        return f.choice_label(value)
    if isinstance(value, list):
        return [f.choice_label(v) if isinstance(v, str) else v for v in value]
    return value


def open_all(
    records: list[bundle.Record], definitions: dict[str, dict], private: keys.PrivateKey
) -> tuple[dict, Counter, list[str]]:
    forms: dict[tuple[str, str], campaigns.Form] = {}
    for slug, raw in definitions.items():
        try:
            for form in campaigns.from_dict(raw, f"bundle campaign {slug}").forms.values():
                forms[slug, form.slug] = form
        except campaigns.CampaignError as exc:
            print(f"Warning: {plain(exc)}; its answers are written without labels or checks.", file=sys.stderr)
    sheets: dict[tuple[str, str], Sheet] = {}
    tally: Counter = Counter()
    failures: list[str] = []
    step = max(1, len(records) // 20)
    for n, record in enumerate(records, 1):
        place = (record.campaign, record.form)
        try:
            sealed = envelope.parse(record.envelope)
            doc = envelope.open_envelope(sealed, private.key, *place)
        except envelope.EnvelopeError as exc:
            failures.append(plain(f"{record.id} ({record.campaign}/{record.form}): {exc}"))
            tally["failed"] += 1
            continue
        answers = doc["answers"]
        definition = forms.get(place)
        if definition is not None and sealed.version == 1:
            answers = choices_as_ids(definition, answers)
        notes = []
        if definition is None:
            notes.append("no form definition in the bundle")
        else:
            problems = definition.check(answers)
            notes += [f"{name}: {message}" for name, message in problems.items()]
            if doc.get("form_version") != definition.version:
                notes.append(f"made under form version {doc.get('form_version')}")
        sheet = sheets.setdefault(place, sheet_for(definition, answers))
        # An answer with no column of its own is kept in the Check column rather than lost.
        notes += [f"{name} (no column): {cell(answers[name])}" for name in answers if name not in sheet.columns]
        row = [cell(shown(definition, name, answers.get(name))) for name in sheet.columns]
        row += [cell(doc.get("locale")), cell(record.received_on), cell(record.sealed_by), cell(record.id)]
        row.append(cell("; ".join(notes)))
        sheet.rows.append(row)
        tally["opened"] += 1
        tally[record.sealed_by] += 1
        tally["flagged"] += bool(notes)
        if n % step == 0 or n == len(records):
            print(f"\rOpened {n} of {len(records)} records", end="", file=sys.stderr)
    if records:
        print(file=sys.stderr)
    return sheets, tally, failures


def nothing_opened(records: list[bundle.Record], private: keys.PrivateKey) -> str:
    """Why a key opened none of the records, in one line: the keys they were sealed to, as far as they say."""
    sealed_to: set[str] = set()
    for record in records:
        try:
            sealed_to.update(envelope.parse(record.envelope).sealed)
        except envelope.EnvelopeError:
            continue
    to = ", ".join(sorted(sealed_to)) or "no readable key id"
    return (
        f"the key {plain(private.name)} ({private.fingerprint}) opens none of the {len(records)} record(s), "
        f"which are sealed to {to}; use the key those records were sealed to. Nothing was written."
    )


def owner_only(path: str, flags: int) -> int:
    """Open for ``open(opener=...)`` so that plaintext files are readable by their owner alone."""
    return os.open(path, flags, 0o600)


def write_outputs(
    out: Path, sheets: dict, tally: Counter, failures: list[str], private: keys.PrivateKey, bundle_key_ids: set[str]
) -> list[Path]:
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    targets = {place: out / f"{place[0]}-{place[1]}.csv" for place in sheets}
    clash = [p for p in [*targets.values(), out / "summary.txt"] if p.exists()]
    if clash:
        raise Refusal(f"{clash[0]} already exists; choose a new --out folder so nothing is overwritten")
    written = []
    for place, sheet in sorted(sheets.items()):
        with open(targets[place], "x", encoding="utf-8-sig", newline="", opener=owner_only) as fh:
            writer = csv.writer(fh)
            writer.writerow([cell(label) for label in [*sheet.labels, *TRAILING_COLUMNS]])
            writer.writerows(sheet.rows)
        written.append(targets[place])
    lines = [
        "Papillon export opened",
        f"Key used: {plain(private.name)} ({private.fingerprint})",
        f"Records opened: {tally['opened']}",
        f"  sealed in the browser: {tally['browser']}, sealed on arrival at the server: {tally['server']}",
        f"Records that could not be opened: {tally['failed']}",
        f"Records with answers that do not fit their form (see the Check column): {tally['flagged']}",
        "",
        *(f"{p.name}: {len(sheets[place].rows)} row(s)" for place, p in sorted(targets.items())),
    ]
    if private.key_id not in bundle_key_ids:
        lines.append("Note: the server did not list this key when it exported; records may be sealed to other keys.")
    if failures:
        lines += ["", "Not opened:", *failures]
    summary = out / "summary.txt"
    with open(summary, "x", encoding="utf-8", opener=owner_only) as fh:
        fh.write("\n".join(lines) + "\n")
    written.append(summary)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Open Papillon export bundles offline and write spreadsheets.")
    parser.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE", help="export bundle file(s)")
    parser.add_argument("--key", required=True, type=Path, help="your private key file (NAME.key)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the CSV files and summary")
    parser.add_argument("--passphrase-file", type=Path, help="read the passphrase from the first line of this file")
    args = parser.parse_args(argv)
    try:
        records, definitions, bundle_key_ids = read_bundles(args.bundles)
        private = load_private(args.key, args.passphrase_file)
        sheets, tally, failures = open_all(records, definitions, private)
        if records and not tally["opened"]:
            raise Refusal(nothing_opened(records, private))
        written = write_outputs(args.out, sheets, tally, failures, private, bundle_key_ids)
    except Refusal as exc:
        print(f"decrypt: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"decrypt: cannot write the output: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"Wrote {path}")
    print(f"Opened {tally['opened']} record(s); {tally['failed']} could not be opened.")
    return 1 if tally["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
