"""Cross-cutting: key rotation as staff do it. Add a new key, later remove the old one, and every record still
opens."""

from __future__ import annotations

import csv
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import form_tokens, private_key_text

from app import create_app
from app.site import site
from app.storage import db
from papillon import keys

PASSPHRASE = "a rotation passphrase, long enough"


def key_files(folder: Path, name: str) -> tuple[X25519PrivateKey, Path]:
    """A key pair as keygen writes it on the laptop (cheap passphrase settings, for speed)."""
    private = X25519PrivateKey.generate()
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / f"{name}.key"
    key_path.write_text(private_key_text(private, PASSPHRASE.encode(), name))
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    return private, key_path


def serve_and_collect(config: dict, server_keys: Path, what: str, out: Path) -> tuple[str, list[str]]:
    """Restart the server with the keys folder as it is now, take one testimony, export it to a bundle."""
    app = create_app({**config, "PAPILLON_KEYS_DIR": str(server_keys)})
    with app.app_context():
        db.create_schema()
    client = app.test_client()
    page = client.get("/petition/testimony").get_data(as_text=True)
    fingerprints = [k.fingerprint for k in site(app).keys]
    assert client.post("/petition/testimony", data={**form_tokens(page), "what_happened": what}).status_code == 303
    result = app.test_cli_runner().invoke(args=["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return page, fingerprints


def opened(script, bundles: list[Path], key_path: Path, out: Path) -> tuple[int, set[str]]:
    passphrase = str(key_path.parent / "passphrase.txt")
    args = ["--key", str(key_path), "--out", str(out), "--jobs", "1", "--passphrase-file", passphrase]
    code = script("decrypt").main([*map(str, bundles), *args])
    path = out / "petition-testimony.csv"
    if not path.exists():
        return code, set()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return code, {row["What happened?"] for row in csv.DictReader(fh)}


def test_rotating_keys_loses_no_record(config, tmp_path, script):
    server_keys = tmp_path / "server-keys"
    server_keys.mkdir()
    old, old_key = key_files(tmp_path / "laptop-old", "butterfly-2025")
    new, new_key = key_files(tmp_path / "laptop-new", "butterfly-2026")

    # 1. Today the server holds the old public key only.
    (server_keys / "butterfly-2025.pub").write_text(keys.dumps_public("butterfly-2025", old.public_key()))
    serve_and_collect(config, server_keys, "before the new key", tmp_path / "1.bundle")

    # 2. Staff add the new public key and restart: answers are now sealed to both, and the page says so.
    (server_keys / "butterfly-2026.pub").write_text(keys.dumps_public("butterfly-2026", new.public_key()))
    page, fingerprints = serve_and_collect(config, server_keys, "while both keys", tmp_path / "2.bundle")
    assert len(fingerprints) == 2
    assert all(f in page for f in fingerprints)

    # 3. Once the old records are opened, staff remove the old public key and restart.
    (server_keys / "butterfly-2025.pub").unlink()
    serve_and_collect(config, server_keys, "after the old key", tmp_path / "3.bundle")

    bundles = [tmp_path / f"{n}.bundle" for n in (1, 2, 3)]
    code, texts = opened(script, bundles, old_key, tmp_path / "opened-old")
    assert (code, texts) == (1, {"before the new key", "while both keys"})
    assert "not sealed to key" in (tmp_path / "opened-old" / "summary.txt").read_text()
    code, texts = opened(script, bundles, new_key, tmp_path / "opened-new")
    assert (code, texts) == (1, {"while both keys", "after the old key"})
    # A record sealed to both keys opens with either alone, and every record opens with one of them.
    code, texts = opened(script, bundles[1:], new_key, tmp_path / "opened-new-only")
    assert (code, texts) == (0, {"while both keys", "after the old key"})
