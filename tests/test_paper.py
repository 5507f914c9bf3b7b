"""papillon/paper.py: the paper backup of a private key, written by keygen --paper and typed back in with keygen
--restore."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import struct

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pages import ROOT, SHEET_LINE, decrypt_args, typed_sheet

from papillon import bundle, envelope, keys, paper

PASSPHRASE = "a passphrase long enough"
VECTOR = json.loads((ROOT / "tests" / "vectors" / "paper-sheet.json").read_text(encoding="utf-8"))
# RFC 4648 base32 and Crockford's share their bit order; only the alphabet differs.
TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


@pytest.fixture
def laptop(tmp_path, keygen):
    """A key made with its paper sheet, as staff would on the laptop."""
    (tmp_path / "passphrase.txt").write_text(PASSPHRASE + "\n")
    args = [
        "--out",
        str(tmp_path / "keys"),
        "--name",
        "butterfly",
        "--passphrase-file",
        str(tmp_path / "passphrase.txt"),
    ]
    assert keygen.main([*args, "--paper", str(tmp_path / "sheet.txt")]) == 0
    return tmp_path


def restore(keygen, tmp_path, text: str, name: str = "restored") -> int:
    (tmp_path / "typed.txt").write_text(text)
    return keygen.main(["--restore", str(tmp_path / "typed.txt"), "--out", str(tmp_path / "back"), "--name", name])


def test_a_typed_sheet_rebuilds_the_key_which_opens_with_the_same_passphrase(keygen, laptop):
    original = keys.loads_private((laptop / "keys" / "butterfly.key").read_text(), PASSPHRASE.encode())
    assert restore(keygen, laptop, typed_sheet((laptop / "sheet.txt").read_text())) == 0
    rebuilt = keys.loads_private((laptop / "back" / "restored.key").read_text(), PASSPHRASE.encode())
    raw = lambda k: k.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())  # noqa: E731
    assert raw(rebuilt) == raw(original)
    assert stat.S_IMODE((laptop / "back" / "restored.key").stat().st_mode) == 0o600
    assert keys.loads_public((laptop / "back" / "restored.pub").read_text()).key_id == original.key_id


def test_the_sheet_names_the_fingerprint_and_is_short_enough_to_type(laptop):
    sheet = (laptop / "sheet.txt").read_text()
    public = keys.loads_public((laptop / "keys" / "butterfly.pub").read_text())
    assert f"Fingerprint: {public.fingerprint}" in sheet
    data = [line for line in sheet.splitlines() if SHEET_LINE.match(line)]
    assert len(data) <= 12
    assert all(len(group) <= 5 for line in data for group in line.split()[1:-1])
    assert not set("ILOU") & set("".join(data))  # nothing that reads as another character
    assert stat.S_IMODE((laptop / "sheet.txt").stat().st_mode) == 0o600


def test_a_found_sheet_opens_nothing_without_the_passphrase(keygen, laptop):
    """The sheet holds the key sealed: restored with another passphrase, it does not open."""
    key = keys.loads_private((laptop / "keys" / "butterfly.key").read_text(), PASSPHRASE.encode())
    raw = key.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    sheet = (laptop / "sheet.txt").read_text()
    assert raw.hex() not in sheet.lower()
    assert base64.b64encode(raw).decode() not in sheet
    assert paper._b32(raw) not in sheet.replace(" ", "").replace("\n", "")
    assert restore(keygen, laptop, typed_sheet(sheet)) == 0
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.loads_private((laptop / "back" / "restored.key").read_text(), b"a guess at the passphrase")


def test_a_typing_mistake_is_reported_with_its_line_and_writes_nothing(keygen, laptop, capsys):
    lines = typed_sheet((laptop / "sheet.txt").read_text()).splitlines()
    number, groups = lines[6].split(" ", 1)
    lines[6] = f"{number} {groups[:3]}{'z' if groups[3] != 'z' else 'y'}{groups[4:]}"
    assert restore(keygen, laptop, "\n".join(lines)) == 2
    err = capsys.readouterr().err
    assert "line 07: a character is mistyped" in err
    assert "passphrase" not in err
    assert not (laptop / "back").exists()


def test_a_sheet_typed_without_any_space_restores(keygen, laptop):
    lines = typed_sheet((laptop / "sheet.txt").read_text()).splitlines()
    assert restore(keygen, laptop, "\n".join(line.replace(" ", "") for line in lines)) == 0
    first = keys.sealed_contents((laptop / "keys" / "butterfly.key").read_text())
    assert keys.sealed_contents((laptop / "back" / "restored.key").read_text()) == first


def test_a_sheet_typed_with_spaces_anywhere_restores(keygen, laptop):
    lines = typed_sheet((laptop / "sheet.txt").read_text()).splitlines()
    scattered = [" ".join(line[:4]) + "\t" + line[4:].replace(" ", "   ") + " " for line in lines]
    assert restore(keygen, laptop, "\n".join(scattered)) == 0


def test_the_whole_sheet_as_printed_restores(keygen, laptop):
    """A scanned sheet, its title, fingerprint and instructions included, needs no editing before --restore."""
    assert restore(keygen, laptop, (laptop / "sheet.txt").read_text()) == 0
    first = keys.sealed_contents((laptop / "keys" / "butterfly.key").read_text())
    assert keys.sealed_contents((laptop / "back" / "restored.key").read_text()) == first


@pytest.mark.parametrize(
    ("at", "garble", "message"),
    [
        (4, lambda line: line[:2], "line 05: cannot be read"),
        (4, lambda line: line[:4], "line 05: cannot be read"),
        (-1, lambda line: line[:9], "the CHECK line cannot be read"),
    ],
)
def test_a_line_that_cannot_be_read_is_named_and_not_called_missing(keygen, laptop, capsys, at, garble, message):
    lines = typed_sheet((laptop / "sheet.txt").read_text()).splitlines()
    lines[at] = garble(lines[at])
    assert restore(keygen, laptop, "\n".join(lines)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "missing" not in err
    assert not (laptop / "back").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lines: lines[:3] + lines[4:], "line 04 is missing"),
        (lambda lines: lines[:-2] + lines[-1:], "the sheet is incomplete"),
        (lambda lines: lines[:-1], "the CHECK line at the end is missing"),
        (lambda lines: [], "no numbered line"),
    ],
)
def test_a_missing_line_is_named(keygen, laptop, capsys, change, message):
    lines = typed_sheet((laptop / "sheet.txt").read_text()).splitlines()
    assert restore(keygen, laptop, "\n".join(change(lines))) == 2
    assert message in capsys.readouterr().err


def test_a_sheet_for_an_existing_key_needs_no_passphrase(keygen, laptop):
    sheet = laptop / "again.txt"
    assert keygen.main(["--paper", str(sheet), "--from", str(laptop / "keys" / "butterfly.key")]) == 0
    assert restore(keygen, laptop, typed_sheet(sheet.read_text())) == 0
    first = keys.sealed_contents((laptop / "keys" / "butterfly.key").read_text())
    assert keys.sealed_contents((laptop / "back" / "restored.key").read_text()) == first


def test_keygen_refuses_to_overwrite_a_sheet(keygen, laptop, capsys):
    assert keygen.main(["--paper", str(laptop / "sheet.txt"), "--from", str(laptop / "keys" / "butterfly.key")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_key_restored_from_paper_opens_a_bundle_on_the_laptop(keygen, laptop, script, tmp_path):
    """The staff walkthrough's worst day: the laptop is gone, the sheet and the passphrase are not."""
    key = keys.loads_private((laptop / "keys" / "butterfly.key").read_text(), PASSPHRASE.encode())
    data = envelope.plaintext({"what_happened": "Zqv it happened"}, 1, "th")
    record = bundle.Record(
        id="a" * 32,
        campaign="petition",
        form="testimony",
        received_on="2026-11-25",
        sealed_by="browser",
        envelope=envelope.seal(data, [key.public], "petition", "testimony").to_json(),
    )
    path = tmp_path / "b.papillon"
    bundle.write(path, [record], created_on="2026-11-25", key_ids=[key.key_id], campaigns={})
    (laptop / "keys" / "butterfly.key").unlink()
    assert restore(keygen, laptop, typed_sheet((laptop / "sheet.txt").read_text()), name="butterfly") == 0
    restored = laptop / "back" / "butterfly.key"
    out = tmp_path / "opened"
    (restored.parent / "passphrase.txt").write_text(PASSPHRASE + "\n")
    assert script("decrypt").main(decrypt_args(path, restored, out)) == 0
    assert "Zqv it happened" in (out / "petition-testimony.csv").read_text(encoding="utf-8-sig")


def crockford(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").translate(TO_CROCKFORD)


def sheet_as_described(sealed: keys.SealedKey) -> list[str]:
    """The numbered lines and CHECK line, built from SECURITY.md's words alone rather than from papillon/paper.py."""
    limits = struct.pack(">II", sealed.opslimit, sealed.memlimit)
    payload = b"PK1" + limits + sealed.salt + sealed.public + sealed.sealed
    text = crockford(payload)
    lines = []
    for number, start in enumerate(range(0, len(text), 20), 1):
        chars = text[start : start + 20]
        check = crockford(hashlib.sha256(f"{number}:{chars}".encode("ascii")).digest())[:2]
        lines.append(f"{number:02d}  {' '.join(chars[i : i + 5] for i in range(0, len(chars), 5))}  {check}")
    return [*lines, f"CHECK  {crockford(hashlib.sha256(payload).digest()[:5])}"]


def test_the_vector_sheet_follows_the_format_security_md_describes():
    sealed = keys.sealed_contents(json.dumps(VECTOR["key_file"]))
    assert sealed.to_bytes(paper.MAGIC).hex() == VECTOR["payload"]
    assert sheet_as_described(sealed) == VECTOR["lines"]
    assert len(VECTOR["lines"]) == 12
    assert VECTOR["lines"][-2] == "11  EKKEE XCKA8  PW"
    opened = keys.loads_private(json.dumps(VECTOR["key_file"]), VECTOR["passphrase"].encode())
    assert opened.fingerprint == VECTOR["fingerprint"]


def test_paper_writes_the_vector_sheet_and_reads_it_back():
    sealed = keys.sealed_contents(json.dumps(VECTOR["key_file"]))
    assert paper.Sheet(VECTOR["key_file"]["name"], sealed).lines() == VECTOR["lines"]
    assert paper.restore("\n".join(VECTOR["lines"])) == sealed
