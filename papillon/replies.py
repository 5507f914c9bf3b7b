"""Anonymous replies, format v1: the reply code a witness keeps, what it derives, and the sealed replies.

A witness's browser makes a reply code and derives from it, with HKDF-SHA256, a lookup id and an X25519 key
pair; both go inside the sealed testimony only. Staff seal each reply to that key on the laptop
(``scripts/reply.py``) and carry a replies bundle to the server, which keeps lookup id -> sealed replies and
nothing else. ``app/static/replies.js`` derives and opens the very same bytes; SECURITY.md describes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from papillon import envelope

# Crockford's base32: digits and capitals without I, L, O and U, so that nothing reads as something else.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 28  # 140 bits
GROUP = 4
# Read as the digit they look like, as Crockford's base32 does.
LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
SEPARATORS = re.compile(r"[\s\-_.]+")

SALT = b"papillon/v1/reply-code"
LOOKUP_INFO = b"papillon/v1/reply-code/lookup"
KEY_INFO = b"papillon/v1/reply-code/x25519"
LOOKUP_BYTES = 16
LOOKUP = re.compile(r"[0-9a-f]{32}")
# "r-" and the first 12 hex digits of the lookup id: the letter keeps a spreadsheet from reading it as a number.
HANDLE = re.compile(r"r-[0-9a-f]{12}")
MESSAGE_MAX = 4000
# A sealed reply: enc, then at least one pad block and at most this many bytes of padded plaintext, then the tag.
MAX_PADDED = 16 * 1024

# A follow-up the witness writes back is stored like an answer to this built-in form, so that it is exported,
# opened and checked as every other record is.
CAMPAIGN = "replies"
FOLLOW_UP = "follow-up"
FOLLOW_UP_FIELD = "message"
FOLLOW_UP_SOURCE: dict[str, object] = {
    "slug": CAMPAIGN,
    "title": "Replies",
    "language": "en",
    "body": "Messages a witness wrote back after reading a reply, with the reply handle of their testimony.",
    "forms": [
        {
            "slug": FOLLOW_UP,
            "title": "Write back",
            "version": 1,
            "fields": [
                {
                    "name": FOLLOW_UP_FIELD,
                    "type": "long_text",
                    "label": "Your message",
                    "required": True,
                    "max_length": MESSAGE_MAX,
                }
            ],
        }
    ],
}

BUNDLE_FORMAT = "papillon-replies"
BUNDLE_VERSION = 1


class ReplyError(ValueError):
    """A reply code, a reply member, a sealed reply or a replies bundle is not as Papillon makes them."""


def new_code() -> str:
    """A fresh reply code, in the canonical form ``derive`` reads."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def shown(code: str) -> str:
    """The code as a person copies it: groups of four, joined by hyphens."""
    canonical = normalize(code)
    return "-".join(canonical[i : i + GROUP] for i in range(0, CODE_LENGTH, GROUP))


def normalize(text: str) -> str:
    """The canonical code from what a person typed: any case, spaces or hyphens, O for 0 and I or L for 1."""
    code = SEPARATORS.sub("", text).upper().translate(LOOKALIKES)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        raise ReplyError(f"a reply code has {CODE_LENGTH} letters and digits")
    return code


@dataclass(frozen=True)
class ReplyKeys:
    """What a reply code derives: where its replies are kept, and the key that opens them."""

    lookup: str
    private: X25519PrivateKey

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    def member(self) -> dict[str, str]:
        """The ``reply`` member of a sealed testimony or follow-up: all staff need to answer it."""
        return {"lookup": self.lookup, "public_key": base64.b64encode(self.public).decode("ascii")}


def _hkdf(code: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=SALT, info=info).derive(code.encode("ascii"))


def derive(code: str) -> ReplyKeys:
    """The lookup id and reply key of a code (typed or canonical)."""
    canonical = normalize(code)
    lookup = _hkdf(canonical, LOOKUP_INFO, LOOKUP_BYTES).hex()
    return ReplyKeys(lookup, X25519PrivateKey.from_private_bytes(_hkdf(canonical, KEY_INFO, 32)))


@dataclass(frozen=True)
class Member:
    """A sealed record's ``reply`` member, checked: the witness's lookup id and reply public key."""

    lookup: str
    public_key: bytes

    @property
    def handle(self) -> str:
        return handle(self.lookup)


def handle(lookup: str) -> str:
    """How staff name a witness to answer: the start of the lookup id, the same for the testimony and every
    follow-up made with its code."""
    return f"r-{lookup[:12]}"


def read_member(value: object) -> Member:
    """The ``reply`` member of an opened record, held to the exact shape the page seals."""
    if not isinstance(value, dict) or set(value) != {"lookup", "public_key"}:
        raise ReplyError("the reply member must hold exactly 'lookup' and 'public_key'")
    lookup, public_key = value["lookup"], value["public_key"]
    if not isinstance(lookup, str) or not LOOKUP.fullmatch(lookup):
        raise ReplyError("the reply lookup id must be 32 lower-case hex digits")
    try:
        raw = binascii.a2b_base64(public_key, strict_mode=True) if isinstance(public_key, str) else b""
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise ReplyError("the reply public key must be 32 bytes in base64")
    return Member(lookup, raw)


def reply_info(lookup: str) -> bytes:
    """HPKE ``info`` of a reply: binds it to its lookup id, so a reply moved to another one fails to open."""
    return b"papillon/v1/reply/" + lookup.encode("ascii")


def plaintext(message: str, written_on: str) -> bytes:
    doc = {"message": message, "written_on": written_on}
    return envelope.pad(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def seal(message: str, written_on: str, member: Member) -> str:
    """One reply, sealed to the witness's reply key alone: base64 of ``enc || ciphertext+tag``."""
    data = plaintext(message, written_on)
    if len(data) > MAX_PADDED:
        raise ReplyError(f"a reply is at most {MESSAGE_MAX} characters")
    recipient = X25519PublicKey.from_public_bytes(member.public_key)
    sealed = envelope.SUITE.encrypt(data, recipient, info=reply_info(member.lookup))
    return base64.b64encode(sealed).decode("ascii")


def check_sealed(sealed: object) -> bytes:
    """A sealed reply's bytes, if its shape is one ``seal`` makes: what the server can check without opening it."""
    try:
        raw = binascii.a2b_base64(sealed, strict_mode=True) if isinstance(sealed, str) else None
    except binascii.Error:
        raw = None
    if raw is None:
        raise ReplyError("a sealed reply must be base64")
    padded = len(raw) - envelope.ENC_BYTES - envelope.TAG_BYTES
    if padded <= 0 or padded % envelope.PAD_BLOCK or padded > MAX_PADDED:
        raise ReplyError("a sealed reply's length does not match its padding")
    return raw


def open_reply(sealed: str, keys: ReplyKeys) -> dict[str, str]:
    """Open one reply with the keys a code derives: ``message`` and ``written_on``."""
    raw = check_sealed(sealed)
    try:
        data = envelope.SUITE.decrypt(raw, keys.private, info=reply_info(keys.lookup))
    except InvalidTag as exc:
        raise ReplyError("the reply does not open with this code") from exc
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplyError("the opened reply is not UTF-8 JSON") from exc
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("message", "written_on")):
        raise ReplyError("the opened reply holds no message")
    return {"message": doc["message"], "written_on": doc["written_on"]}


# --- the replies bundle: laptop to server --------------------------------------------------------


@dataclass(frozen=True)
class SealedReply:
    """One line of a replies bundle: where the reply is kept, and the reply, sealed."""

    lookup: str
    sealed: str

    @property
    def digest(self) -> str:
        """The reply's own id: the same sealed reply imported twice is kept once."""
        return hashlib.sha256(self.sealed.encode("ascii")).hexdigest()[:32]


def _line(doc: Mapping[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"


def write_bundle(path: str | Path, replies: Iterable[SealedReply], created_on: str) -> int:
    """Write a replies bundle atomically: a header, one line per reply in lookup order (not the order staff wrote
    them), and the SHA-256 of every byte before it. Returns how many replies it holds."""
    ordered = sorted(replies, key=lambda r: (r.lookup, r.sealed))
    lines = [
        _line({"count": len(ordered), "created_on": created_on, "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION})
    ]
    lines += [_line({"lookup": r.lookup, "sealed": r.sealed}) for r in ordered]
    body = b"".join(lines)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body + _line({"sha256": hashlib.sha256(body).hexdigest()}))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(ordered)


def read_bundle(data: bytes, where: str = "the replies bundle") -> list[SealedReply]:
    """Every reply of a replies bundle, or a refusal naming the first problem: a truncated, altered or
    malformed bundle is refused whole."""
    lines = data.split(b"\n")
    if len(lines) < 3 or lines[-1] != b"":
        raise ReplyError(f"{where} is truncated or is not a replies bundle")
    *content, trailer = lines[:-1]
    body = b"".join(line + b"\n" for line in content)
    try:
        expected = json.loads(trailer)["sha256"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise ReplyError(f"{where}: the checksum line is missing (truncated?)") from exc
    if expected != hashlib.sha256(body).hexdigest():
        raise ReplyError(f"{where}: checksum mismatch: the bundle was altered or damaged")
    header = _json(content[0], f"{where}: line 1")
    if header.get("format") != BUNDLE_FORMAT or header.get("version") != BUNDLE_VERSION:
        raise ReplyError(f"{where} is not a replies bundle of version {BUNDLE_VERSION}")
    if header.get("count") != len(content) - 1:
        counted, held = header.get("count"), len(content) - 1
        raise ReplyError(f"{where}: the header counts {counted!r} replies, the bundle holds {held}")
    return list(_replies(content[1:], where))


def _replies(lines: list[bytes], where: str) -> Iterator[SealedReply]:
    for number, line in enumerate(lines, 2):
        doc = _json(line, f"{where}: line {number}")
        lookup, sealed = doc.get("lookup"), doc.get("sealed")
        if set(doc) != {"lookup", "sealed"} or not isinstance(lookup, str) or not LOOKUP.fullmatch(lookup):
            raise ReplyError(f"{where}: line {number}: not a reply line")
        try:
            check_sealed(sealed)
        except ReplyError as exc:
            raise ReplyError(f"{where}: line {number}: {exc}") from exc
        yield SealedReply(lookup, str(sealed))


def _json(line: bytes, where: str) -> dict[str, object]:
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplyError(f"{where}: not valid JSON") from exc
    if not isinstance(doc, dict):
        raise ReplyError(f"{where}: not a JSON object")
    return doc
