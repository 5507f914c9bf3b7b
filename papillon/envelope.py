"""Envelope format v2: answers sealed with HPKE to every organizer key.

The browser's ``app/static/seal.js`` builds the very same envelopes; SECURITY.md
describes the format byte for byte. Version 2 seals a choice as its id and the page's
language as ``locale``; version 1 (a choice as its English label) still opens.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from papillon.keys import PublicKey, raw_public_bytes
from papillon.keys import key_id as _key_id

VERSION = 2
VERSIONS = (1, 2)
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
PAD_BLOCK = 512
ENC_BYTES = 32
TAG_BYTES = 16
MAX_PADDED_BYTES = 64 * 1024
MAX_RECIPIENTS = 16


class EnvelopeError(ValueError):
    """An envelope is malformed, sealed to other keys, or does not open."""


def info(campaign: str, form: str, version: int = VERSION) -> bytes:
    """HPKE ``info``: binds an envelope to its place and its version, so a moved record fails to open and a
    relabelled version cannot make its answers read as another version's."""
    return f"papillon/v{version}/{campaign}/{form}".encode()


def pad(data: bytes) -> bytes:
    """Pad with spaces to a whole number of blocks (JSON ignores trailing white space)."""
    blocks = max(1, -(-len(data) // PAD_BLOCK))
    return data + b" " * (blocks * PAD_BLOCK - len(data))


def plaintext(
    answers: Mapping[str, object], form_version: int, locale: str, reply: Mapping[str, str] | None = None
) -> bytes:
    """The padded document a record seals; ``reply``: where and how staff can answer it (papillon.replies)."""
    doc: dict[str, object] = {"answers": dict(answers), "form_version": form_version, "locale": locale}
    if reply is not None:
        doc["reply"] = dict(reply)
    return pad(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class Envelope:
    sealed: dict[str, bytes]
    version: int = VERSION

    def to_json(self) -> str:
        recipients = [
            {"key_id": kid, "sealed": base64.b64encode(ct).decode("ascii")} for kid, ct in self.sealed.items()
        ]
        return json.dumps({"version": self.version, "recipients": recipients}, separators=(",", ":"))

    @property
    def padded_length(self) -> int:
        return len(next(iter(self.sealed.values()))) - ENC_BYTES - TAG_BYTES


def seal(data: bytes, keys: Iterable[PublicKey], campaign: str, form: str) -> Envelope:
    """Seal already padded plaintext once per key."""
    place = info(campaign, form)
    return Envelope({k.key_id: SUITE.encrypt(data, k.to_crypto(), info=place) for k in keys})


def parse(
    text: str | bytes,
    expected_key_ids: Iterable[str] | None = None,
    max_padded: int = MAX_PADDED_BYTES,
    versions: Iterable[int] = VERSIONS,
) -> Envelope:
    """Check an envelope's shape without opening it: what the server can verify of browser sealing.

    The server passes its current key ids and version, so an envelope sealed to other keys, or by a page
    from before an upgrade, is refused.
    """
    if len(text) > 2 * (max_padded + 256) * MAX_RECIPIENTS:
        raise EnvelopeError("the envelope is too large")
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise EnvelopeError("the envelope is not valid JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"version", "recipients"}:
        raise EnvelopeError("the envelope must hold exactly 'version' and 'recipients'")
    if type(doc["version"]) is not int or doc["version"] not in set(versions):
        raise EnvelopeError(f"unknown envelope version {doc['version']!r}")
    sealed = _recipients(doc["recipients"])
    if expected_key_ids is not None and set(sealed) != set(expected_key_ids):
        raise EnvelopeError("the envelope is not sealed to exactly the current organizer keys")
    _check_lengths(sealed, max_padded)
    return Envelope(sealed, doc["version"])


def _recipients(recipients: object) -> dict[str, bytes]:
    """Each recipient's sealed copy by key id; a malformed or repeated recipient refuses the whole envelope."""
    if not isinstance(recipients, list) or not recipients:
        raise EnvelopeError("the envelope has no recipients")
    sealed: dict[str, bytes] = {}
    for item in recipients:
        if not isinstance(item, dict) or set(item) != {"key_id", "sealed"}:
            raise EnvelopeError("each recipient must hold exactly 'key_id' and 'sealed'")
        kid, ct = item["key_id"], item["sealed"]
        if not isinstance(kid, str) or not isinstance(ct, str):
            raise EnvelopeError("key_id and sealed must be strings")
        if kid in sealed:
            raise EnvelopeError(f"key {kid} appears twice")
        try:
            sealed[kid] = binascii.a2b_base64(ct, strict_mode=True)
        except (ValueError, binascii.Error) as exc:
            raise EnvelopeError("sealed is not valid base64") from exc
    if len(sealed) > MAX_RECIPIENTS:
        raise EnvelopeError("the envelope has too many recipients")
    return sealed


def _check_lengths(sealed: Mapping[str, bytes], max_padded: int) -> None:
    """Every copy the same whole number of pad blocks, within the limit: all a server can tell of sealed answers."""
    lengths = {len(ct) for ct in sealed.values()}
    if len(lengths) != 1:
        raise EnvelopeError("the sealed copies differ in length")
    padded = lengths.pop() - ENC_BYTES - TAG_BYTES
    if padded <= 0 or padded % PAD_BLOCK:
        raise EnvelopeError("the sealed length does not match the padding")
    if padded > max_padded:
        raise EnvelopeError("the sealed answers are too large")


def open_envelope(
    envelope: Envelope, private: X25519PrivateKey, campaign: str, form: str, key_id: str | None = None
) -> dict[str, object]:
    """Open with one private key and return the plaintext document (``key_id``: the key's id, if known, saves
    deriving it again for every record)."""
    place = info(campaign, form, envelope.version)
    kid = key_id or _key_id(raw_public_bytes(private.public_key()))
    ct = envelope.sealed.get(kid)
    if ct is None:
        raise EnvelopeError(
            f"the record is not sealed to key {kid}; it is sealed to {', '.join(sorted(envelope.sealed))}"
        )
    try:
        data = SUITE.decrypt(ct, private, info=place)
    except InvalidTag as exc:
        raise EnvelopeError("the record does not open: altered, or moved from another campaign or form") from exc
    if len(data) % PAD_BLOCK:
        raise EnvelopeError("the opened record is not padded")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("the opened record is not UTF-8 JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("answers"), dict):
        raise EnvelopeError("the opened record holds no answers")
    return doc
