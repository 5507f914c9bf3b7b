"""A private key on paper: the key file's sealed contents in short groups a person can type back in.

The sheet holds the key still sealed under its passphrase (a found sheet opens nothing) and its
public half, so a restored key is checked against the fingerprint printed on the sheet. Every
line carries its own check, so a typing mistake is reported with its line number rather than
surfacing later as a "wrong passphrase"; a last check covers the whole, so a missing line is
caught too.

    Papillon key recovery sheet ...
    01  7Z0QH MXK4R 2V9TB C1E8S  4F
    ...
    CHECK  K3M9Q2VA
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from papillon import keys

MAGIC = b"PK1"
# Crockford's base32: no I, L, O or U, so nothing on the sheet can be read as two different characters.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
READ_AS = {"O": "0", "I": "1", "L": "1"}
GROUP, GROUPS = 5, 4
# Read with every space taken out: a two-digit number, the line's characters, its two-character check.
NUMBERED = re.compile(r"[0-9]|[OIL][0-9]")  # O1 typed for 01 counts too
LINE = re.compile(r"([0-9]{2})(.+)(..)")
TOTAL = re.compile(r"CHECK(.{8})")


class SheetError(ValueError):
    """A sheet typed back in does not hold a whole key; the message names the line to look at again."""


def _b32(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    length = -(-len(data) * 8 // 5)
    bits <<= length * 5 - len(data) * 8
    return "".join(ALPHABET[(bits >> (5 * (length - 1 - i))) & 31] for i in range(length))


def _unb32(text: str, size: int) -> bytes:
    bits = 0
    for char in text:
        bits = bits << 5 | ALPHABET.index(char)
    bits >>= len(text) * 5 - size * 8
    return bits.to_bytes(size, "big")


def _check(number: int, data: str) -> str:
    return _b32(hashlib.sha256(f"{number}:{data}".encode()).digest()[:2])[:2]


def _total(payload: bytes) -> str:
    return _b32(hashlib.sha256(payload).digest()[:5])


@dataclass(frozen=True)
class Sheet:
    name: str
    sealed: keys.SealedKey

    def lines(self) -> list[str]:
        """The numbered lines of groups, each ending with its check."""
        text = _b32(self.sealed.to_bytes(MAGIC))
        width = GROUP * GROUPS
        out = []
        for number, start in enumerate(range(0, len(text), width), 1):
            data = text[start : start + width]
            groups = " ".join(data[i : i + GROUP] for i in range(0, len(data), GROUP))
            out.append(f"{number:02d}  {groups}  {_check(number, data)}")
        out.append(f"CHECK  {_total(self.sealed.to_bytes(MAGIC))}")
        return out

    def text(self) -> str:
        fingerprint = keys.fingerprint(self.sealed.public)
        return "\n".join(
            [
                "Papillon key recovery sheet",
                "",
                f"Key name:    {self.name}",
                f"Fingerprint: {fingerprint}",
                "",
                "This sheet holds the private key still sealed under its passphrase: without the",
                "passphrase it opens nothing. Keep it somewhere safe and apart from the laptop, and",
                "keep the passphrase apart from it. To rebuild the key file, type the lines below",
                "into a text file exactly as printed (capitals or not, spaces as you like), then run:",
                "",
                "    python scripts/keygen.py --restore SHEET.txt --out DIR --name NAME",
                "",
                "Each line ends with a check of two characters; a typing mistake is reported with its",
                "line number. The restored key must show the fingerprint above.",
                "",
                *self.lines(),
                "",
            ]
        )


def restore(text: str) -> keys.SealedKey:
    """The sealed key on a sheet typed back in; refuses, naming the line, anything mistyped or missing."""
    found: dict[int, str] = {}
    total = None
    for raw in text.splitlines():
        typed = "".join(raw.upper().split())
        if typed.startswith("CHECK"):
            total = _read_total(typed)
        # Told apart before O, I and L are read as digits, so that no line of the sheet's own text looks numbered.
        elif NUMBERED.match(typed):
            number, data = _read_line(typed)
            if number in found:
                raise SheetError(f"line {number:02d} is there twice")
            found[number] = data
    payload = _payload(found)
    if total is None:
        raise SheetError("the CHECK line at the end is missing")
    if _total(payload) != total:
        raise SheetError("the sheet is incomplete: a line at the end is missing, or the CHECK line is mistyped")
    try:
        return keys.SealedKey.from_bytes(payload, MAGIC)
    except keys.KeyFileError as exc:
        raise SheetError(str(exc)) from exc


def _read_total(typed: str) -> str:
    if not (match := TOTAL.fullmatch(typed)):
        raise SheetError("the CHECK line cannot be read; type it as printed: CHECK and eight characters")
    return "".join(READ_AS.get(c, c) for c in match.group(1))


def _read_line(typed: str) -> tuple[int, str]:
    """One numbered line's number and characters, once its own check shows it typed as printed."""
    line = "".join(READ_AS.get(c, c) for c in typed)
    if not (match := LINE.fullmatch(line)):
        leading = re.split(r"[^0-9]", line, maxsplit=1)[0][:2]
        raise SheetError(f"line {leading}: cannot be read; type it as printed: two-digit number, groups, check")
    number, data, check = int(match.group(1)), match.group(2), match.group(3)
    if bad := next((c for c in data + check if c not in ALPHABET), None):
        raise SheetError(f"line {number:02d}: {bad!r} is not a character that sheets use; look at it again")
    if _check(number, data) != check:
        raise SheetError(f"line {number:02d}: a character is mistyped (its check {check} does not match)")
    return number, data


def _payload(found: dict[int, str]) -> bytes:
    """The lines' characters joined in order, as the bytes they spell; refused when a line is missing."""
    if not found:
        raise SheetError("no numbered line of groups found; type the lines as printed, with their numbers")
    if missing := [n for n in range(1, max(found) + 1) if n not in found]:
        raise SheetError(f"line {missing[0]:02d} is missing")
    payload_text = "".join(found[n] for n in sorted(found))
    try:
        return _unb32(payload_text, len(payload_text) * 5 // 8)
    except ValueError as exc:
        raise SheetError("the lines do not hold a whole key") from exc
