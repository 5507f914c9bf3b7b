"""Export bundles: the ciphertext staff carry from the server to the laptop.

A bundle is UTF-8 JSON Lines: a header, one line per record, and a trailer holding
the SHA-256 of every byte before it, so a truncated or altered copy is refused.
The header carries the campaign definitions, so the laptop needs nothing else, and the
name and fingerprint of each key the server seals to, so the laptop can say which key a
record it cannot open needs, as staff know it.
Bundles are read as streams, a line at a time, so a bundle of any size reads in
the same memory: ``verify`` (or ``survey``, which reports damage instead of refusing)
first, then ``records``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypedDict

from papillon.campaigns import SLUG

FORMAT = "papillon-bundle"
VERSION = 1
RECORD_KEYS = {"id", "campaign", "form", "received_on", "sealed_by", "envelope"}


class BundleError(ValueError):
    """A bundle is missing, truncated, altered or of an unknown format."""


@dataclass(frozen=True)
class Record:
    id: str
    campaign: str
    form: str
    received_on: str
    sealed_by: str
    envelope: str

    def to_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(RECORD_KEYS)}


@dataclass(frozen=True)
class Key:
    """A key the server sealed to when it exported, as staff know it: public, like the key itself."""

    key_id: str
    name: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint, "key_id": self.key_id, "name": self.name}

    @property
    def label(self) -> str:
        """How the laptop names the key: its fingerprint, then its name."""
        return f"{self.fingerprint} ({self.name})"


def key_name(name: str) -> str:
    """A key's name as a bundle may carry it: control characters replaced, at most ``KEY_NAME_MAX`` characters."""
    shown = "".join(c if c.isprintable() else "\ufffd" for c in name)[:KEY_NAME_MAX]
    return shown or "unnamed"


@dataclass(frozen=True)
class Bundle:
    created_on: str
    key_ids: list[str]
    campaigns: dict[str, dict[str, object]]
    records: list[Record]
    keys: list[Key] = field(default_factory=list)  # empty for a bundle of a Papillon that did not write them


class Members(TypedDict):
    """A header's members as ``dump`` and ``write`` take them, for a caller that builds them once."""

    created_on: str
    key_ids: Iterable[str]
    campaigns: Mapping[str, dict[str, object]]
    count: int | None
    keys: Iterable[Key] | None


def _line(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def dump(  # noqa: PLR0913 - past the stream and records, the arguments are the header's members, named at each call
    stream: BinaryIO,
    records: Iterable[Record],
    *,
    created_on: str,
    key_ids: Iterable[str],
    campaigns: Mapping[str, dict[str, object]],
    count: int | None = None,
    keys: Iterable[Key] | None = None,
) -> int:
    """Write a bundle to a binary stream (a file, or standard output) and return how many records it holds.

    Given their ``count``, the records are written as they come, one at a time, never all held at once; if fewer
    or more come, no checksum is written, so the bundle reads as damaged rather than as complete. ``keys``: the
    name and fingerprint of each of ``key_ids`` (the header then has a ``keys`` member; without, none)."""
    if count is None:
        records = list(records)
        count = len(records)
    ids = sorted(set(key_ids))
    header: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "created_on": created_on,
        "count": count,
        "key_ids": ids,
        "campaigns": dict(campaigns),
    }
    if keys is not None:
        header["keys"] = _keys_member(keys, ids)
    digest = hashlib.sha256()
    written = 0
    for line in itertools.chain([_line(header)], (_line(r.to_dict()) for r in records)):
        digest.update(line)
        stream.write(line)
        written += 1
    if written - 1 != count:
        raise BundleError(f"{count} records were to be written, {written - 1} came: no checksum was written")
    stream.write(_line({"sha256": digest.hexdigest()}))
    stream.flush()
    return count


def write(  # noqa: PLR0913 - as for dump: past the path and records, the header's members
    path: str | Path,
    records: Iterable[Record],
    *,
    created_on: str,
    key_ids: Iterable[str],
    campaigns: Mapping[str, dict[str, object]],
    count: int | None = None,
    keys: Iterable[Key] | None = None,
) -> int:
    """Write a bundle atomically (temporary file, fsync, rename) and return how many records it holds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            count = dump(
                fh, records, created_on=created_on, key_ids=key_ids, campaigns=campaigns, count=count, keys=keys
            )
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


@dataclass
class Survey:
    """What one streaming pass found in a bundle: its header and, for a damaged one, what is wrong and where.

    ``places`` (campaign, form) are collected on the way, so the laptop can check its outputs before it opens
    anything."""

    path: Path
    created_on: str = ""
    key_ids: list[str] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)  # empty when the header has no ``keys`` member
    campaigns: dict[str, dict[str, object]] = field(default_factory=dict)
    count: int = 0
    places: set[tuple[str, str]] = field(default_factory=set)
    damage: list[str] = field(default_factory=list)  # the file as a whole: truncated, checksum, count
    problems: list[str] = field(default_factory=list)  # single lines, by number
    bad_lines: set[int] = field(default_factory=set)

    @property
    def intact(self) -> bool:
        return not (self.damage or self.problems)

    @property
    def report(self) -> list[str]:
        return [*self.damage, *self.problems]


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each line of a file with its number, read in chunks; a last line without its newline comes as is."""
    try:
        with path.open("rb", buffering=1 << 20) as fh:
            yield from enumerate(fh, 1)
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read: {exc.strerror}") from exc


def survey(path: str | Path, *, lines: bool = True) -> Survey:
    """Read a bundle once, in constant memory, and report every problem instead of stopping at the first.

    With ``lines=False`` the record lines are counted and checksummed but not parsed: for a reader that parses
    each line where it opens it, and reports a malformed one there."""
    path = Path(path)
    found = Survey(path)
    digest = hashlib.sha256()
    previous: tuple[int, bytes] | None = None
    records = 0
    for number, line in _lines(path):
        if previous is not None:
            digest.update(previous[1])
            if previous[0] > 1:
                records += 1
                if lines:
                    _survey_record(found, *previous)
        elif not line.endswith(b"\n"):
            break
        if number == 1:
            _survey_header(found, line)
        previous = (number, line)
    if previous is None or previous[0] < 2 or not previous[1].endswith(b"\n"):
        found.damage.append(f"{path}: incomplete bundle (truncated?)")
        if previous is not None and previous[0] > 1 and lines:
            _survey_record(found, *previous)
        return found
    try:
        expected = json.loads(previous[1])["sha256"]
    except (ValueError, KeyError, TypeError):
        found.damage.append(f"{path}: the checksum line is missing (truncated?)")
        if lines:
            _survey_record(found, *previous)
        return found
    if digest.hexdigest() != expected:
        found.damage.append(f"{path}: checksum mismatch: the bundle was altered or damaged")
    if found.created_on and found.count != records:
        found.damage.append(f"{path}: the header counts {found.count} records, found {records}")
    return found


def _survey_header(found: Survey, line: bytes) -> None:
    try:
        header = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        found.problems.append(f"{found.path}: line 1: not valid JSON")
        found.bad_lines.add(1)
        return
    problem = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        problem = f"{found.path}: not a Papillon export bundle"
    elif header.get("version") != VERSION:
        problem = f"{found.path}: bundle version {_short(header.get('version'))} is not supported"
    else:
        try:
            _check_header(header, found.path)
        except BundleError as exc:
            problem = str(exc)
    if problem:
        found.problems.append(problem)
        found.bad_lines.add(1)
        return
    found.created_on = header["created_on"]
    found.key_ids = list(header["key_ids"])
    found.keys = [Key(k["key_id"], k["name"], k["fingerprint"]) for k in header.get("keys", [])]
    found.campaigns = dict(header["campaigns"])
    found.count = header["count"]


def _survey_record(found: Survey, number: int, line: bytes) -> None:
    try:
        record = parse_record(line, f"{found.path}: line {number}")
    except BundleError as exc:
        found.problems.append(str(exc))
        found.bad_lines.add(number)
        return
    found.places.add((record.campaign, record.form))


def parse_record(line: bytes, where: str) -> Record:
    """One record line, held to the exact shape Papillon writes, or a refusal naming ``where``."""
    try:
        row = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON") from exc
    _check_record(row, where)
    return Record(row["id"], row["campaign"], row["form"], row["received_on"], row["sealed_by"], row["envelope"])


def verify(path: str | Path) -> Survey:
    """Stream through a bundle and refuse it, naming the first problem, unless every byte is as written."""
    found = survey(path)
    if not found.intact:
        raise BundleError(found.report[0])
    return found


def record_lines(found: Survey) -> Iterator[tuple[int, bytes]]:
    """The record lines of a surveyed bundle with their numbers, unparsed, so the laptop can parse them where
    it opens them: the header, the checksum trailer and every line the survey named as damaged are left out."""
    last = found.count + 1 if found.intact else None
    for number, line in _lines(found.path):
        if number == 1 or number in found.bad_lines:
            continue
        if last is not None and number > last:
            return
        if last is None and line.startswith(b'{"sha256":'):
            continue
        yield number, line


def records(found: Survey) -> Iterator[Record]:
    """The well-formed records of a surveyed bundle, a line at a time (a damaged line is skipped: the survey
    names it)."""
    for number, line in record_lines(found):
        try:
            yield parse_record(line, f"line {number}")
        except BundleError:
            continue  # a line the survey already named


def read(path: str | Path) -> Bundle:
    """Read and verify a whole bundle into memory (for the server's tests and small tools; the laptop streams)."""
    found = verify(path)
    return Bundle(
        created_on=found.created_on,
        key_ids=found.key_ids,
        campaigns=found.campaigns,
        records=list(records(found)),
        keys=found.keys,
    )


def known_keys(surveys: Iterable[Survey]) -> dict[str, Key]:
    """Every key the surveyed bundles' headers name and describe, by key id (the first description wins)."""
    found: dict[str, Key] = {}
    for survey in surveys:
        for key in survey.keys:
            found.setdefault(key.key_id, key)
    return found


# The bundle's checksum has no key: whoever can write the file can write anything in it. So every member that
# reaches the laptop's files and spreadsheets is held to its exact shape.
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
KEY_ID = re.compile(r"[0-9a-f]{16}")
FINGERPRINT = re.compile(r"[0-9A-F]{4}( [0-9A-F]{4}){7}")
KEY_NAME_MAX = 100
KEY_MEMBERS = {"key_id", "name", "fingerprint"}
RECORD_ID = re.compile(r"[0-9a-f]{32}")
SEALED_BY = {"server", "browser"}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_header(header: dict[str, object], where: str | Path) -> None:
    created_on = header.get("created_on")
    if not (isinstance(created_on, str) and DATE.fullmatch(created_on)):
        raise BundleError(f"{where}: header: created_on must be a date (YYYY-MM-DD)")
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BundleError(f"{where}: header: count must be a whole number")
    key_ids = header.get("key_ids")
    if not (isinstance(key_ids, list) and all(isinstance(k, str) and KEY_ID.fullmatch(k) for k in key_ids)):
        raise BundleError(f"{where}: header: key_ids must be a list of key ids (16 hex digits)")
    if "keys" in header:
        _check_keys(header["keys"], key_ids, where)
    definitions = header.get("campaigns")
    if not (isinstance(definitions, dict) and all(isinstance(v, dict) for v in definitions.values())):
        raise BundleError(f"{where}: header: campaigns must map each campaign to its definition")
    if not all(isinstance(k, str) and SLUG.fullmatch(k) for k in definitions):
        raise BundleError(f"{where}: header: a campaign name is not a campaign slug")


def _keys_member(keys: Iterable[Key], key_ids: list[str]) -> list[dict[str, str]]:
    """The header's ``keys``, in key id order, checked as the laptop will check them, so that the server never
    writes a bundle the laptop refuses."""
    member = [key.to_dict() for key in sorted(keys, key=lambda k: k.key_id)]
    _check_keys(member, key_ids, "the bundle to write")
    return member


def _check_keys(keys: object, key_ids: list[str], where: str | Path) -> None:
    """``keys``: a list of {key_id, name, fingerprint}, one for each of ``key_ids`` and no other, each fingerprint
    beginning with its key id (as every fingerprint does), each name printable text."""
    problem = f"{where}: header: keys must give the key id, name and fingerprint of each key in key_ids, once"
    if not (isinstance(keys, list) and all(isinstance(k, dict) and k.keys() == KEY_MEMBERS for k in keys)):
        raise BundleError(problem)
    if not all(isinstance(k["key_id"], str) and KEY_ID.fullmatch(k["key_id"]) for k in keys):
        raise BundleError(problem)
    ids = [k["key_id"] for k in keys]
    if len(set(ids)) != len(ids) or set(ids) != set(key_ids):
        raise BundleError(problem)
    for key in keys:
        kid, name, fingerprint = key["key_id"], key["name"], key["fingerprint"]
        if not (isinstance(fingerprint, str) and FINGERPRINT.fullmatch(fingerprint)):
            raise BundleError(f"{where}: header: the fingerprint of key {kid} is not a fingerprint")
        if fingerprint.replace(" ", "")[:16] != kid.upper():
            raise BundleError(f"{where}: header: the fingerprint of key {kid} does not begin with its key id")
        if not (isinstance(name, str) and 0 < len(name) <= KEY_NAME_MAX and name.isprintable()):
            raise BundleError(
                f"{where}: header: the name of key {kid} must be printable text of 1 to {KEY_NAME_MAX} characters"
            )


def _check_record(row: object, where: str) -> None:
    if not (isinstance(row, dict) and row.keys() == RECORD_KEYS):
        raise BundleError(f"{where}: a record line is malformed")
    if not all(type(row[k]) is str for k in RECORD_KEYS):
        raise BundleError(f"{where}: every member of a record must be text")
    if (
        RECORD_ID.fullmatch(row["id"])
        and SLUG.fullmatch(row["campaign"])
        and SLUG.fullmatch(row["form"])
        and DATE.fullmatch(row["received_on"])
        and row["sealed_by"] in SEALED_BY
    ):
        return
    checks = [
        ("id", RECORD_ID.fullmatch(row["id"])),
        ("campaign", SLUG.fullmatch(row["campaign"])),
        ("form", SLUG.fullmatch(row["form"])),
        ("received_on", DATE.fullmatch(row["received_on"])),
        ("sealed_by", row["sealed_by"] in SEALED_BY),
    ]
    member = next(member for member, ok in checks if not ok)
    raise BundleError(f"{where}: {member} is not what Papillon writes there ({_short(row[member])})")
