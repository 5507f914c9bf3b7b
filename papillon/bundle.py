"""Export bundles: the ciphertext staff carry from the server to the laptop.

A bundle is UTF-8 JSON Lines: a header, one line per record, and a trailer holding
the SHA-256 of every byte before it, so a truncated or altered copy is refused.
The header carries the campaign definitions, so the laptop needs nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
class Bundle:
    created_on: str
    key_ids: list[str]
    campaigns: dict[str, dict]
    records: list[Record]


def _line(doc: Mapping) -> bytes:
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def dump(
    stream: BinaryIO,
    records: Iterable[Record],
    *,
    created_on: str,
    key_ids: Iterable[str],
    campaigns: Mapping[str, dict],
) -> int:
    """Write a bundle to a binary stream (a file, or standard output) and return how many records it holds."""
    records = list(records)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "created_on": created_on,
        "count": len(records),
        "key_ids": sorted(set(key_ids)),
        "campaigns": dict(campaigns),
    }
    digest = hashlib.sha256()
    for line in [_line(header), *(_line(r.to_dict()) for r in records)]:
        digest.update(line)
        stream.write(line)
    stream.write(_line({"sha256": digest.hexdigest()}))
    stream.flush()
    return len(records)


def write(
    path: str | Path,
    records: Iterable[Record],
    *,
    created_on: str,
    key_ids: Iterable[str],
    campaigns: Mapping[str, dict],
) -> int:
    """Write a bundle atomically (temporary file, fsync, rename) and return how many records it holds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            count = dump(fh, records, created_on=created_on, key_ids=key_ids, campaigns=campaigns)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read(path: str | Path) -> Bundle:
    """Read and verify a bundle; any damage raises BundleError before a record is used."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read: {exc.strerror}") from exc
    lines = data.split(b"\n")
    if len(lines) < 3 or lines[-1] != b"":
        raise BundleError(f"{path}: incomplete bundle (truncated?)")
    body, trailer = lines[:-2], lines[-2]
    try:
        expected = json.loads(trailer)["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: the checksum line is missing (truncated?)") from exc
    actual = hashlib.sha256(b"".join(line + b"\n" for line in body)).hexdigest()
    if actual != expected:
        raise BundleError(f"{path}: checksum mismatch: the bundle was altered or damaged")
    try:
        header = json.loads(body[0])
        rows = [json.loads(line) for line in body[1:]]
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: a line is not valid JSON") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BundleError(f"{path}: not a Papillon export bundle")
    if header.get("version") != VERSION:
        raise BundleError(f"{path}: bundle version {_short(header.get('version'))} is not supported")
    _check_header(header, path)
    if header["count"] != len(rows):
        raise BundleError(f"{path}: the header counts {header['count']} records, found {len(rows)}")
    for number, row in enumerate(rows, 2):
        _check_record(row, f"{path}: line {number}")
    return Bundle(
        created_on=header["created_on"],
        key_ids=list(header["key_ids"]),
        campaigns=dict(header["campaigns"]),
        records=[Record(**{k: r[k] for k in RECORD_KEYS}) for r in rows],
    )


# The bundle's checksum has no key: whoever can write the file can write anything in it. So every member that
# reaches the laptop's files and spreadsheets is held to its exact shape.
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
KEY_ID = re.compile(r"[0-9a-f]{16}")
RECORD_ID = re.compile(r"[0-9a-f]{32}")
SEALED_BY = {"server", "browser"}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_header(header: dict, where: str | Path) -> None:
    if not (isinstance(header.get("created_on"), str) and DATE.fullmatch(header["created_on"])):
        raise BundleError(f"{where}: header: created_on must be a date (YYYY-MM-DD)")
    count = header.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise BundleError(f"{where}: header: count must be a whole number")
    key_ids = header.get("key_ids")
    if not (isinstance(key_ids, list) and all(isinstance(k, str) and KEY_ID.fullmatch(k) for k in key_ids)):
        raise BundleError(f"{where}: header: key_ids must be a list of key ids (16 hex digits)")
    definitions = header.get("campaigns")
    if not (isinstance(definitions, dict) and all(isinstance(v, dict) for v in definitions.values())):
        raise BundleError(f"{where}: header: campaigns must map each campaign to its definition")
    if not all(isinstance(k, str) and SLUG.fullmatch(k) for k in definitions):
        raise BundleError(f"{where}: header: a campaign name is not a campaign slug")


def _check_record(row: object, where: str) -> None:
    if not (isinstance(row, dict) and set(row) == RECORD_KEYS):
        raise BundleError(f"{where}: a record line is malformed")
    if not all(isinstance(row[k], str) for k in RECORD_KEYS):
        raise BundleError(f"{where}: every member of a record must be text")
    checks = [
        ("id", RECORD_ID.fullmatch(row["id"])),
        ("campaign", SLUG.fullmatch(row["campaign"])),
        ("form", SLUG.fullmatch(row["form"])),
        ("received_on", DATE.fullmatch(row["received_on"])),
        ("sealed_by", row["sealed_by"] in SEALED_BY),
    ]
    for member, ok in checks:
        if not ok:
            raise BundleError(f"{where}: {member} is not what Papillon writes there ({_short(row[member])})")
