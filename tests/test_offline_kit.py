"""make offline-kit: the laptop installs the staff scripts with no network and opens a bundle with them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import ROOT

from papillon import bundle, envelope, keys


def test_the_kit_installs_with_no_index_into_a_fresh_environment_and_opens_a_bundle(
    tmp_path: Path, organizer_key: X25519PrivateKey, organizer_key_file: Path
) -> None:
    kit = tmp_path / "kit"
    made = subprocess.run(["make", f"KIT={kit}", "offline-kit"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    assert {p.name for p in kit.iterdir()} == {
        "INSTALL.txt",
        "papillon",
        "requirements.txt",
        "scripts",
        "staff-guide.md",
        "wheels",
    }
    assert not list((kit / "papillon").glob("*.toml"))  # formats only; no web app, no campaign of the server

    laptop = tmp_path / "laptop"
    subprocess.run([sys.executable, "-m", "venv", laptop / "env"], check=True)
    python = laptop / "env" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PIP_INDEX_URL", "PIP_FIND_LINKS"}}
    env["PIP_NO_INDEX"] = "1"  # as on a laptop with no network: nothing may come from an index
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            kit / "wheels",
            "-r",
            kit / "requirements.txt",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    assert subprocess.run([python, "-c", "import flask"], capture_output=True, env=env, check=False).returncode != 0

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
    path = laptop / "export.bundle"
    bundle.write(path, [record], created_on="2026-11-25", key_ids=[public.key_id], campaigns={})
    opened = subprocess.run(
        [
            python,
            kit / "scripts" / "decrypt.py",
            path,
            "--key",
            organizer_key_file,
            "--out",
            laptop / "answers",
            "--passphrase-file",
            organizer_key_file.parent / "passphrase.txt",
        ],
        cwd=laptop,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    assert "Zqv kit signer" in (laptop / "answers" / "letter-sign.csv").read_text(encoding="utf-8-sig")
