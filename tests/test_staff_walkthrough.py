"""The staff side end to end, as two people would live it, on laptops with no network.

Each makes a key with the offline kit and prints its sheet; the server takes signatures and a testimony; one
laptop is lost and its key comes back from the typed sheet; both open every record; a damaged copy is refused
and salvaged; the report opens in a browser and asks for nothing; only the signers who agreed are published.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from pages import Laptop, typed_sheet
from playwright.sync_api import Browser

from papillon import keys

STAFF = {"ana": "ana's passphrase for the walkthrough", "bo": "bo's passphrase for the walkthrough"}
LISTED = [
    {"signing_as": "individual", "name": "Zqv Listed Lin", "organization": "Butterfly", "list_my_name": True},
    {"signing_as": "organization", "name": "Zqv Listed Álvarez", "email": "alvarez@example.org", "list_my_name": True},
]
UNLISTED = [
    {"signing_as": "individual", "name": "Zqv Quiet Chen", "email": "quiet.chen@example.org"},
    {"signing_as": "individual", "name": "Zqv Quiet Park", "organization": "Quiet Collective", "phone": "555 0199"},
]
TESTIMONY = {"what_happened": "Zqv they came with the police and photographed our papers", "when": "last_month"}


@pytest.fixture
def laptops(offline_kit: Laptop, tmp_path: Path) -> dict[str, Path]:
    """Ana and Bo each make a key with its paper sheet, with the kit's keygen and no network."""
    folders = {}
    for name, passphrase in STAFF.items():
        laptop = folders[name] = tmp_path / name
        laptop.mkdir()
        (laptop / "passphrase.txt").write_text(passphrase + "\n")
        made = offline_kit.script(
            "keygen",
            *("--out", "keys-private", "--name", name, "--passphrase-file", "passphrase.txt"),
            *("--paper", f"{name}-sheet.txt"),
            cwd=laptop,
        )
        assert made.returncode == 0, made.stderr
    return folders


@pytest.fixture
def keys_dir(tmp_path: Path, laptops: dict[str, Path]) -> Path:
    """The server's keys folder: the two public keys the staff handed over, nothing else."""
    folder = tmp_path / "server-keys"
    folder.mkdir()
    for name, laptop in laptops.items():
        shutil.copy(laptop / "keys-private" / f"{name}.pub", folder)
    return folder


def fingerprint(laptop: Path, name: str) -> str:
    return keys.loads_public((laptop / "keys-private" / f"{name}.pub").read_text()).fingerprint


def decrypt(offline_kit: Laptop, laptop: Path, name: str, bundle: Path, out: str, *more: str):
    return offline_kit.script(
        "decrypt",
        *(bundle, "--key", laptop / "keys-private" / f"{name}.key", "--out", out),
        *("--passphrase-file", "passphrase.txt", *more),
        cwd=laptop,
    )


def rows(folder: Path) -> dict[str, list[dict[str, str]]]:
    """Every spreadsheet a decrypt run wrote, by file name."""
    found = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            found[path.name] = list(csv.DictReader(fh))
    return found


def damaged_copy(bundle: Path, form: str) -> tuple[Path, str]:
    """The bundle with one character of every sealed copy of one record changed, as a bad sector would do it."""
    lines = bundle.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if json.loads(line).get("form") == form)
    record = json.loads(lines[at])
    for recipient in json.loads(record["envelope"])["recipients"]:
        sealed = recipient["sealed"]
        middle = len(sealed) // 2
        changed = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1 :]
        assert lines[at].count(sealed) == 1
        lines[at] = lines[at].replace(sealed, changed)
    damaged = bundle.with_name("damaged.bundle")
    damaged.write_text("".join(lines), encoding="utf-8")
    return damaged, record["id"]


def test_two_staff_members_run_the_whole_staff_side_offline(
    offline_kit: Laptop,
    laptops: dict[str, Path],
    client: FlaskClient,
    runner: FlaskCliRunner,
    submit,
    browser: Browser,
    tmp_path: Path,
) -> None:
    ana, bo = laptops["ana"], laptops["bo"]
    ana_fingerprint = fingerprint(ana, "ana")

    # The form shows both fingerprints; people sign, some agreeing to be listed, and one sends a testimony.
    page = client.get("/petition/sign").get_data(as_text=True)
    assert ana_fingerprint in page
    assert fingerprint(bo, "bo") in page
    for answers in [*LISTED, *UNLISTED]:
        assert submit("petition", "sign", answers).status_code == 303
    assert submit("petition", "testimony", TESTIMONY).status_code == 303
    exported = tmp_path / "papillon.bundle"
    result = runner.invoke(args=["export", "--out", str(exported)])
    assert result.exit_code == 0, result.output

    # Ana's laptop is lost: her key comes back from the sheet, typed in with its own spacing.
    shutil.rmtree(ana / "keys-private")
    typed = typed_sheet((ana / "ana-sheet.txt").read_text()).splitlines()
    (ana / "typed.txt").write_text("\n".join(line.replace(" ", "") if i % 2 else line for i, line in enumerate(typed)))
    restored = offline_kit.script("keygen", "--restore", "typed.txt", "--out", "keys-private", "--name", "ana", cwd=ana)
    assert restored.returncode == 0, restored.stderr
    assert f"Fingerprint: {ana_fingerprint}" in restored.stdout

    # Both open every record, and read the same rows.
    opened = decrypt(offline_kit, ana, "ana", exported, "answers", "--publish", "signers.json")
    assert opened.returncode == 0, opened.stderr
    assert decrypt(offline_kit, bo, "bo", exported, "answers").returncode == 0
    sheets = rows(ana / "answers")
    assert sheets == rows(bo / "answers")
    assert sorted(row["Your name"] for row in sheets["petition-sign.csv"]) == sorted(
        a["name"] for a in [*LISTED, *UNLISTED]
    )
    assert [row["What happened?"] for row in sheets["petition-testimony.csv"]] == [TESTIMONY["what_happened"]]

    # A damaged copy is refused whole; --salvage opens what is intact and names the damage.
    damaged, damaged_id = damaged_copy(exported, "testimony")
    refused = decrypt(offline_kit, bo, "bo", damaged, "from-damaged")
    assert refused.returncode == 2, refused.stderr
    assert "checksum mismatch" in refused.stderr, refused.stderr
    assert not (bo / "from-damaged").exists()
    salvaged = decrypt(offline_kit, bo, "bo", damaged, "salvaged", "--salvage")
    assert salvaged.returncode == 1, salvaged.stderr
    assert rows(bo / "salvaged")["petition-sign.csv"] == sheets["petition-sign.csv"]
    assert "petition-testimony.csv" not in rows(bo / "salvaged")
    summary = (bo / "salvaged" / "summary.txt").read_text(encoding="utf-8")
    assert "checksum mismatch" in summary
    assert f"{damaged_id} (petition/testimony)" in summary

    # The report opens in the laptop's browser with its charts, and asks for nothing but itself.
    report = (ana / "answers" / "report.html").as_uri()
    view = browser.new_page()
    requests = []
    view.on("request", lambda r: requests.append(r.url))
    view.goto(report)
    assert view.locator("svg").count() >= 1
    assert view.locator("svg rect").count() >= 1
    assert requests == [report]
    view.close()

    # Ana publishes the list: those who agreed are named on the campaign page, the others only counted.
    result = runner.invoke(args=["publish", str(ana / "signers.json")])
    assert result.exit_code == 0, result.output
    campaign = client.get("/petition/").get_data(as_text=True)
    assert f"{len(LISTED) + len(UNLISTED)} signatures so far" in campaign
    assert "<li>Zqv Listed Lin, Butterfly</li>" in campaign
    assert "<li>Zqv Listed Álvarez</li>" in campaign
    assert "Quiet" not in campaign
    assert "example.org" not in campaign
    assert "0199" not in campaign
