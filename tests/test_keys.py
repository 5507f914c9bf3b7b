"""papillon/keys.py: public keys for the server, passphrase-sealed private keys for the laptop, the keys folder.

That a keys folder it refuses stops the server is tests/test_app.py's to show.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pages import FAST_KDF, private_key_text

from papillon import keys
from papillon.keys import KeyFileError

PASSPHRASE = b"twelve or more characters"


@pytest.fixture(scope="module")
def private() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def test_public_key_round_trips_through_its_file(private):
    text = keys.dumps_public("butterfly-2026", private.public_key())
    loaded = keys.loads_public(text, "butterfly-2026.pub")
    assert loaded.name == "butterfly-2026"
    assert loaded.raw == keys.raw_public_bytes(private.public_key())
    assert loaded.to_crypto().public_bytes_raw() == loaded.raw
    doc = json.loads(text)
    assert doc["type"] == keys.PUBLIC_TYPE
    assert doc["key_id"] == loaded.key_id


def test_key_id_is_a_short_hash_of_the_public_key(private):
    """As SECURITY.md defines it: old bundles and every page's sealing settings name keys by it."""
    raw = keys.raw_public_bytes(private.public_key())
    kid = keys.key_id(raw)
    assert re.fullmatch(r"[0-9a-f]{16}", kid)
    assert kid == hashlib.sha256(raw).hexdigest()[:16]
    assert keys.key_id(bytes(32)) != kid


def test_fingerprint_is_eight_groups_of_four_starting_with_the_key_id(private):
    """As SECURITY.md defines it: staff compare it by eye with the one keygen printed."""
    raw = keys.raw_public_bytes(private.public_key())
    fp = keys.fingerprint(raw)
    assert re.fullmatch(r"[0-9A-F]{4}( [0-9A-F]{4}){7}", fp)
    assert fp.replace(" ", "").lower().startswith(keys.key_id(raw))
    assert fp.replace(" ", "").lower() == hashlib.sha256(raw).hexdigest()[:32]


def test_private_key_round_trips_with_its_passphrase(private):
    text = keys.dumps_private("laptop", private, PASSPHRASE, **FAST_KDF)
    opened = keys.loads_private(text, PASSPHRASE, "laptop.key")
    assert opened.name == "laptop"
    assert opened.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) == private.private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    assert opened.key_id == keys.key_id(keys.raw_public_bytes(private.public_key()))
    assert opened.fingerprint == keys.fingerprint(keys.raw_public_bytes(private.public_key()))


def test_private_key_file_does_not_hold_the_raw_private_key(private):
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    text = keys.dumps_private("laptop", private, PASSPHRASE, **FAST_KDF)
    assert base64.b64encode(raw).decode() not in text
    assert raw.hex() not in text
    assert json.loads(text)["kdf"]["opslimit"] == FAST_KDF["opslimit"]


def test_wrong_passphrase_raises_key_file_error(private):
    text = keys.dumps_private("laptop", private, PASSPHRASE, **FAST_KDF)
    with pytest.raises(KeyFileError, match="wrong passphrase") as err:
        keys.loads_private(text, b"not the passphrase at all", "laptop.key")
    assert "laptop.key" in str(err.value)


def test_damaged_private_key_file_raises_key_file_error(private):
    doc = json.loads(keys.dumps_private("laptop", private, PASSPHRASE, **FAST_KDF))
    doc["sealed_private_key"] = "%%%"
    with pytest.raises(KeyFileError, match="base64"):
        keys.loads_private(json.dumps(doc), PASSPHRASE)
    with pytest.raises(KeyFileError, match="not JSON"):
        keys.loads_private("garbage", PASSPHRASE)


def test_a_public_key_file_is_not_accepted_as_a_private_key(private):
    with pytest.raises(KeyFileError, match="not a Papillon private key"):
        keys.loads_private(keys.dumps_public("x", private.public_key()), PASSPHRASE)


def test_public_key_with_a_key_id_that_does_not_match_is_refused(private):
    doc = json.loads(keys.dumps_public("x", private.public_key()))
    doc["key_id"] = "0" * 16
    with pytest.raises(KeyFileError, match="key_id does not match"):
        keys.loads_public(json.dumps(doc), "x.pub")


# --- the server's keys folder -------------------------------------------------------------


@pytest.fixture
def folder(tmp_path, private):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "organizer.pub").write_text(keys.dumps_public("organizer", private.public_key()))
    return folder


def test_load_public_dir_reads_every_public_key_and_ignores_readme(folder):
    (folder / "README.md").write_text("Put public keys here.")
    other = X25519PrivateKey.generate()
    (folder / "second.pub").write_text(keys.dumps_public("second", other.public_key()))
    loaded = keys.load_public_dir(folder)
    assert [k.name for k in loaded] == ["organizer", "second"]


def pem(private: X25519PrivateKey) -> str:
    return private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("organizer.key", "papillon"),
        ("disguised.pub", "papillon"),
        ("copy.json", "papillon"),
        (".backup.key", "papillon"),
        ("README.md", "pasted into the readme"),
        ("server.pem", "pem"),
        ("disguised.pub", "pem"),
    ],
)
def test_load_public_dir_refuses_a_private_key_whatever_its_name_or_form(folder, private, name, kind):
    path = folder / name
    papillon_key = private_key_text(private, PASSPHRASE)
    path.write_text({"papillon": papillon_key, "pem": pem(private)}.get(kind, "Our keys.\n\n" + papillon_key))
    with pytest.raises(KeyFileError, match="private key") as err:
        keys.load_public_dir(folder)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not a Papillon key file (not JSON)"),
        (
            json.dumps({"type": "papillon-public-key", "version": 1, "algorithm": "X25519", "public_key": "AAAA"}),
            "public_key must be 32 bytes",
        ),
        (json.dumps({"type": "something-else", "version": 1}), "not a Papillon public key (type or version)"),
    ],
    ids=["not json", "short key", "another type"],
)
def test_load_public_dir_refuses_a_public_key_file_that_holds_no_public_key(folder, content, words):
    path = folder / "other.pub"
    path.write_text(content)
    with pytest.raises(KeyFileError, match=re.escape(words)) as err:
        keys.load_public_dir(folder)
    assert str(path) in str(err.value)


def test_load_public_dir_refuses_a_stray_file(folder):
    path = folder / "notes.txt"
    path.write_text("remember to rotate the key")
    with pytest.raises(KeyFileError, match=r"not a public key \(\*\.pub\)") as err:
        keys.load_public_dir(folder)
    assert str(path) in str(err.value)
    assert "private key" not in str(err.value).split(";")[0]


def test_load_public_dir_refuses_an_empty_folder(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "README.md").write_text("Put public keys here.")
    with pytest.raises(KeyFileError, match="no public key") as err:
        keys.load_public_dir(folder)
    assert str(folder) in str(err.value)


def test_load_public_dir_refuses_a_missing_folder(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        keys.load_public_dir(tmp_path / "nowhere")


def test_load_public_dir_refuses_the_same_key_twice(folder, private):
    (folder / "copy.pub").write_text(keys.dumps_public("copy", private.public_key()))
    with pytest.raises(KeyFileError, match="twice"):
        keys.load_public_dir(folder)


@pytest.mark.parametrize("name", [".organizer.pub", "organizer.pub~", ".organizer.pub.swp", ".gitkeep"])
def test_load_public_dir_refuses_hidden_and_leftover_files_by_name(folder, private, name):
    path = folder / name
    path.write_text(keys.dumps_public("copy", X25519PrivateKey.generate().public_key()))
    with pytest.raises(KeyFileError, match="not a public key") as err:
        keys.load_public_dir(folder)
    assert str(path) in str(err.value)


def test_load_public_dir_refuses_a_subfolder(folder, private):
    (folder / "old").mkdir()
    (folder / "old" / "organizer.key").write_text(private_key_text(private, PASSPHRASE))
    with pytest.raises(KeyFileError, match="not a plain file") as err:
        keys.load_public_dir(folder)
    assert str(folder / "old") in str(err.value)


def test_a_public_key_file_can_say_it_is_a_demo_key(private):
    assert keys.loads_public(keys.dumps_public("try-it", private.public_key(), demo=True)).demo is True
    assert keys.loads_public(keys.dumps_public("butterfly", private.public_key())).demo is False


def test_a_demo_key_made_before_the_demo_member_is_known_by_its_name(private):
    assert keys.loads_public(keys.dumps_public("demo-NOT-FOR-REAL-USE", private.public_key())).demo is True
    assert keys.loads_public(keys.dumps_public("democracy-now", private.public_key())).demo is False
