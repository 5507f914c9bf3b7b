"""make offline-kit: the laptop installs the staff scripts with no network, then makes, restores and uses keys, and
seals replies."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import ROOT, Laptop, typed_sheet

from papillon import bundle, envelope, keys, replies

PIN = re.compile(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+) --hash=sha256:([0-9a-f]{64})")
KIT_PASSPHRASE = "the kit's own passphrase"


def test_the_kit_holds_the_scripts_their_formats_and_wheels_pinned_by_hash(offline_kit: Laptop) -> None:
    kit = offline_kit.kit
    assert {p.name for p in kit.iterdir()} == {
        "INSTALL.txt",
        "papillon",
        "requirements.txt",
        "scripts",
        "staff-guide.md",
        "wheels",
    }
    assert not list((kit / "papillon").glob("*.toml"))  # formats only; no web app, no campaign of the server
    assert {p.name for p in (kit / "scripts").iterdir()} >= {"keygen.py", "decrypt.py", "reply.py", "laptop.py"}
    pins = [PIN.fullmatch(line) for line in (kit / "requirements.txt").read_text().splitlines()]
    assert pins
    assert all(pins)
    digests = {hashlib.sha256(wheel.read_bytes()).hexdigest(): wheel.name for wheel in (kit / "wheels").iterdir()}
    assert {pin.group(3) for pin in pins} == set(digests)
    for pin in pins:
        name, version = digests[pin.group(3)].split("-")[:2]
        assert (name.lower(), version) == (pin.group(1).lower(), pin.group(2))
    assert {pin.group(1).lower() for pin in pins} >= {"cryptography", "pynacl"}
    assert "--require-hashes" in (kit / "INSTALL.txt").read_text()


def test_a_wheel_changed_on_the_way_is_refused_by_its_hash(offline_kit: Laptop, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    shutil.copytree(offline_kit.kit / "wheels", wheels)
    changed = next(wheels.glob("pynacl-*.whl"))
    changed.write_bytes(changed.read_bytes() + b"\0")
    fetched = offline_kit.run(
        *("-m", "pip", "download", "--no-index", "--find-links", wheels, "--require-hashes", "--dest", tmp_path / "d"),
        *("-r", offline_kit.kit / "requirements.txt"),
        cwd=tmp_path,
    )
    assert fetched.returncode != 0
    assert "DO NOT MATCH THE HASHES" in fetched.stderr
    assert changed.name in fetched.stderr


def test_the_kit_environment_has_the_two_libraries_no_flask_and_no_network(offline_kit: Laptop, tmp_path: Path) -> None:
    assert offline_kit.run("-c", "import cryptography, nacl", cwd=tmp_path).returncode == 0
    flask = offline_kit.run("-c", "import flask", cwd=tmp_path)
    assert flask.returncode != 0
    assert "No module named 'flask'" in flask.stderr
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # open to this machine's own programs
        reach = offline_kit.run(
            "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)", cwd=tmp_path
        )
    assert reach.returncode != 0, reach.stderr
    assert "OSError" in reach.stderr, reach.stderr


def test_the_kit_makes_a_key_with_its_sheet_and_restores_it_with_no_network(
    offline_kit: Laptop, tmp_path: Path
) -> None:
    (tmp_path / "passphrase.txt").write_text(KIT_PASSPHRASE + "\n")
    made = offline_kit.script(
        "keygen",
        *("--out", "keys-private", "--name", "butterfly", "--passphrase-file", "passphrase.txt"),
        *("--paper", "butterfly-sheet.txt"),
        cwd=tmp_path,
    )
    assert made.returncode == 0, made.stderr
    key_text = (tmp_path / "keys-private" / "butterfly.key").read_text()
    fingerprint = keys.loads_public((tmp_path / "keys-private" / "butterfly.pub").read_text()).fingerprint
    assert f"Fingerprint: {fingerprint}" in made.stdout
    (tmp_path / "typed.txt").write_text(typed_sheet((tmp_path / "butterfly-sheet.txt").read_text()))
    restored = offline_kit.script(
        "keygen", "--restore", "typed.txt", "--out", "restored", "--name", "butterfly", cwd=tmp_path
    )
    assert restored.returncode == 0, restored.stderr
    assert f"Fingerprint: {fingerprint}" in restored.stdout
    rebuilt = (tmp_path / "restored" / "butterfly.key").read_text()
    assert keys.sealed_contents(rebuilt) == keys.sealed_contents(key_text)


def test_the_kit_opens_a_bundle_with_no_network(
    offline_kit: Laptop, tmp_path: Path, organizer_key: X25519PrivateKey, organizer_key_file: Path
) -> None:
    public = keys.PublicKey(name="organizer", raw=keys.raw_public_bytes(organizer_key.public_key()))
    data = envelope.plaintext({"name": "Zqv kit signer"}, 1, "vi")
    record = bundle.Record(
        id="b" * 32,
        campaign="letter",
        form="sign",
        received_on="2026-11-25",
        sealed_by="server",
        envelope=envelope.seal(data, [public], "letter", "sign").to_json(),
    )
    path = tmp_path / "export.bundle"
    bundle.write(path, [record], created_on="2026-11-25", key_ids=[public.key_id], campaigns={})
    opened = offline_kit.script(
        "decrypt",
        *(path, "--key", organizer_key_file, "--out", tmp_path / "answers"),
        *("--passphrase-file", organizer_key_file.parent / "passphrase.txt"),
        cwd=tmp_path,
    )
    assert opened.returncode == 0, opened.stderr
    assert "Zqv kit signer" in (tmp_path / "answers" / "letter-sign.csv").read_text(encoding="utf-8-sig")


def test_building_a_kit_never_reinstalls_the_dev_environment(tmp_path: Path) -> None:
    """The dev environment is made when missing, and left alone when only older than pyproject.toml."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()
    args = ["make", "-n", "-W", "pyproject.toml", f"VENV={venv}", f"KIT={tmp_path / 'kit'}", "offline-kit"]
    planned = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip download" in planned
    assert "-m venv" not in planned
    assert "pip install" not in planned
    (venv / ".installed").unlink()
    assert "-m venv" in subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_the_kit_seals_a_reply_with_no_network(
    offline_kit: Laptop, tmp_path: Path, organizer_key: X25519PrivateKey, organizer_key_file: Path
) -> None:
    public = keys.PublicKey(name="organizer", raw=keys.raw_public_bytes(organizer_key.public_key()))
    witness = replies.derive("7K2M9QXR4HBD0A1C5E6F8G9JTVWZ")
    data = envelope.plaintext({"what_happened": "Zqv kit testimony"}, 1, "vi", reply=witness.member())
    record = bundle.Record(
        id="c" * 32,
        campaign="open-letter",
        form="testimony",
        received_on="2026-11-25",
        sealed_by="browser",
        envelope=envelope.seal(data, [public], "open-letter", "testimony").to_json(),
    )
    path = tmp_path / "export.bundle"
    bundle.write(path, [record], created_on="2026-11-25", key_ids=[public.key_id], campaigns={})
    handle = replies.handle(witness.lookup)
    (tmp_path / "replies.csv").write_text(f"handle,message\n{handle},Zqv kit reply\n", encoding="utf-8-sig")
    sealed = offline_kit.script(
        "reply",
        *("replies.csv", "--bundle", path, "--key", organizer_key_file, "--out", "replies.bundle"),
        *("--passphrase-file", organizer_key_file.parent / "passphrase.txt"),
        cwd=tmp_path,
    )
    assert sealed.returncode == 0, sealed.stderr
    assert "Sealed 1 reply for 1 witness" in sealed.stdout
    [reply] = replies.read_bundle((tmp_path / "replies.bundle").read_bytes())
    assert replies.open_reply(reply.sealed, witness)["message"] == "Zqv kit reply"
