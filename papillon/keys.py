"""Key files: public keys for the server, passphrase-sealed private keys for the laptop.

Both are small JSON documents so that a person can tell them apart by reading them.
A private key file holds the X25519 private key sealed with ``SecretBox`` under a key
derived from the passphrase with argon2id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

PUBLIC_TYPE = "papillon-public-key"
PRIVATE_TYPE = "papillon-private-key"
VERSION = 1
ALGORITHM = "X25519"
KEY_ID_BYTES = 8
FINGERPRINT_BYTES = 16

# argon2id costs for new private key files; the file records the ones it was made with.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE

README_NAMES = {"README.md", "README", "README.txt"}
# What private key material looks like in a file, whatever the file is called.
PRIVATE_MARKERS = (b"PRIVATE KEY", PRIVATE_TYPE.encode(), b"sealed_private_key")
DEMO_LEGACY_NAME = "demo-NOT-FOR-REAL-USE"


class KeyFileError(Exception):
    """A key file is missing, damaged, of the wrong kind, or the passphrase is wrong."""


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes
    demo: bool = False

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.raw)

    def to_b64(self) -> str:
        return _b64(self.raw)

    def to_crypto(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"{what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise KeyFileError(f"{what} is not valid base64") from exc


def key_id(raw_public: bytes) -> str:
    """The short name of a public key that every envelope uses to say who can open it."""
    return hashlib.sha256(raw_public).digest()[:KEY_ID_BYTES].hex()


def fingerprint(raw_public: bytes) -> str:
    """What staff compare by eye: the key id followed by more of the same hash, in groups of four."""
    digest = hashlib.sha256(raw_public).digest()[:FINGERPRINT_BYTES].hex().upper()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def raw_public_bytes(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def dumps_public(name: str, public: X25519PublicKey, *, demo: bool = False) -> str:
    raw = raw_public_bytes(public)
    doc = {
        "type": PUBLIC_TYPE,
        "version": VERSION,
        "algorithm": ALGORITHM,
        "name": name,
        "key_id": key_id(raw),
        "public_key": _b64(raw),
    }
    if demo:
        doc["demo"] = True
    return json.dumps(doc, indent=2) + "\n"


def _load_json(text: str, source: str) -> dict[str, object]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeyFileError(f"{source}: not a Papillon key file (not JSON)") from exc
    if not isinstance(doc, dict):
        raise KeyFileError(f"{source}: not a Papillon key file")
    return doc


def _name(doc: Mapping[str, object], source: str) -> str:
    """The name a key file gives its key; a file without one is known by its file name."""
    name = doc.get("name")
    return name if isinstance(name, str) else Path(source).stem


def loads_public(text: str, source: str = "public key") -> PublicKey:
    if "PRIVATE KEY" in text:
        raise KeyFileError(f"{source}: this is a private key; it must never be on the server")
    doc = _load_json(text, source)
    if doc.get("type") == PRIVATE_TYPE:
        raise KeyFileError(f"{source}: this is a private key; it must never be on the server")
    if doc.get("type") != PUBLIC_TYPE or doc.get("version") != VERSION:
        raise KeyFileError(f"{source}: not a Papillon public key (type or version)")
    if doc.get("algorithm") != ALGORITHM:
        raise KeyFileError(f"{source}: unsupported algorithm {doc.get('algorithm')!r}")
    raw = _unb64(doc.get("public_key"), f"{source}: public_key")
    if len(raw) != 32:
        raise KeyFileError(f"{source}: public_key must be 32 bytes")
    if doc.get("key_id") not in (None, key_id(raw)):
        raise KeyFileError(f"{source}: key_id does not match the key")
    name = _name(doc, source)
    # Demo keys made before the "demo" member existed are known by their name.
    demo = doc.get("demo") is True or name == DEMO_LEGACY_NAME
    return PublicKey(name=name, raw=raw, demo=demo)


def load_public_dir(directory: str | Path) -> list[PublicKey]:
    """Every public key in a folder, refusing the folder if anything else is in it.

    The server calls this at start-up: a private key or a stray file in the keys folder is a mistake that
    must stop the server rather than be skipped. Every entry is looked at, hidden ones included, and every
    file's content is searched for private key material whatever its name.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise KeyFileError(f"{folder}: the keys folder does not exist")
    keys: list[PublicKey] = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.is_symlink():
            raise KeyFileError(f"{path}: not a plain file; only public keys (*.pub) may be in the keys folder")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot be read ({exc.strerror})") from exc
        if any(marker in data for marker in PRIVATE_MARKERS):
            raise KeyFileError(f"{path}: a private key; it must never be on the server: remove it now")
        if path.name in README_NAMES:
            continue
        if path.suffix != ".pub" or path.name.startswith("."):
            raise KeyFileError(f"{path}: not a public key (*.pub); only public keys may be in the keys folder")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyFileError(f"{path}: cannot be read as a public key") from exc
        keys.append(loads_public(text, str(path)))
    if not keys:
        raise KeyFileError(f"{folder}: no public key (*.pub) found; make one with scripts/keygen.py")
    ids = [k.key_id for k in keys]
    if len(set(ids)) != len(ids):
        raise KeyFileError(f"{folder}: the same public key is there twice")
    return keys


def read_passphrase_file(path: str | Path) -> bytes:
    """The passphrase on the first line of a file (for scripted use; people are asked instead)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the passphrase file {path}: {exc}") from exc
    return (lines[0] if lines else "").encode("utf-8")


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )


@dataclass(frozen=True)
class SealedKey:
    """What a private key file holds, still sealed: enough to rebuild the file, never enough to open it."""

    public: bytes
    opslimit: int
    memlimit: int
    salt: bytes
    sealed: bytes

    LAYOUT = ">II16s32s72s"  # opslimit, memlimit, salt, public key, nonce + secretbox of the 32-byte key

    def to_bytes(self, magic: bytes) -> bytes:
        return magic + struct.pack(self.LAYOUT, self.opslimit, self.memlimit, self.salt, self.public, self.sealed)

    @classmethod
    def from_bytes(cls, data: bytes, magic: bytes) -> SealedKey:
        if not data.startswith(magic) or len(data) != len(magic) + struct.calcsize(cls.LAYOUT):
            raise KeyFileError("not a Papillon key sheet, or a line is missing")
        opslimit, memlimit, salt, public, sealed = struct.unpack(cls.LAYOUT, data[len(magic) :])
        return cls(public=public, opslimit=opslimit, memlimit=memlimit, salt=salt, sealed=sealed)

    def dumps(self, name: str) -> str:
        """The private key file for these sealed contents."""
        doc = {
            "type": PRIVATE_TYPE,
            "version": VERSION,
            "algorithm": ALGORITHM,
            "name": name,
            "key_id": key_id(self.public),
            "public_key": _b64(self.public),
            "kdf": {"name": "argon2id", "opslimit": self.opslimit, "memlimit": self.memlimit, "salt": _b64(self.salt)},
            "sealed_private_key": _b64(self.sealed),
        }
        return json.dumps(doc, indent=2) + "\n"


def dumps_private(
    name: str,
    private: X25519PrivateKey,
    passphrase: bytes,
    *,
    opslimit: int | None = None,
    memlimit: int | None = None,
) -> str:
    opslimit = OPSLIMIT if opslimit is None else opslimit
    memlimit = MEMLIMIT if memlimit is None else memlimit
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_derive(passphrase, salt, opslimit, memlimit))
    sealed = SealedKey(
        public=raw_public_bytes(private.public_key()),
        opslimit=opslimit,
        memlimit=memlimit,
        salt=salt,
        sealed=bytes(box.encrypt(raw_private)),
    )
    return sealed.dumps(name)


def sealed_contents(text: str, source: str = "private key") -> SealedKey:
    """The sealed contents of a private key file, read without its passphrase (for a paper backup)."""
    doc = _load_json(text, source)
    if doc.get("type") != PRIVATE_TYPE or doc.get("version") != VERSION:
        raise KeyFileError(f"{source}: not a Papillon private key file")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id":
        raise KeyFileError(f"{source}: unknown passphrase scheme")
    opslimit, memlimit = kdf.get("opslimit"), kdf.get("memlimit")
    if not isinstance(opslimit, int) or not isinstance(memlimit, int):
        raise KeyFileError(f"{source}: damaged passphrase settings")
    public = _unb64(doc.get("public_key"), f"{source}: public_key")
    salt = _unb64(kdf.get("salt"), f"{source}: salt")
    sealed = _unb64(doc.get("sealed_private_key"), f"{source}: sealed_private_key")
    if (len(public), len(salt), len(sealed)) != (32, 16, 72):
        raise KeyFileError(f"{source}: damaged key file")
    return SealedKey(public=public, opslimit=opslimit, memlimit=memlimit, salt=salt, sealed=sealed)


@dataclass(frozen=True)
class PrivateKey:
    name: str
    key: X25519PrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(name=self.name, raw=raw_public_bytes(self.key.public_key()))

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint


def loads_private(text: str, passphrase: bytes, source: str = "private key") -> PrivateKey:
    """Open a private key file; a wrong passphrase and a damaged file are told apart where possible."""
    doc = _load_json(text, source)
    sealed = sealed_contents(text, source)
    try:
        box = nacl.secret.SecretBox(_derive(passphrase, sealed.salt, sealed.opslimit, sealed.memlimit))
        raw_private = box.decrypt(sealed.sealed)
    except nacl.exceptions.CryptoError as exc:
        raise KeyFileError(f"{source}: wrong passphrase, or the key file is damaged") from exc
    private = X25519PrivateKey.from_private_bytes(raw_private)
    if raw_public_bytes(private.public_key()) != sealed.public:
        raise KeyFileError(f"{source}: the private key does not match its public key")
    return PrivateKey(name=_name(doc, source), key=private)
