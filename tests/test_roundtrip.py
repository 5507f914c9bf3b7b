"""Cross-cutting: the whole sealed loop. A person answers every form, staff export and decrypt, and only the laptop
reads it.

Every typed answer below is distinctive, so finding its bytes anywhere on the server side
(the database file, its write-ahead log, the logs, the console) would be a leak.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from pages import CAMPAIGNS, decrypt_args, form_data, form_tokens
from sqlalchemy.engine import make_url

from app.site import site
from app.storage import db
from papillon import bundle
from papillon import campaigns as c

# Typed answers: long enough and unusual enough that none can occur by chance in ciphertext.
TYPED = {
    ("petition", "sign"): {
        "signing_as": "organization",
        "name": "Quillon Ravensworth \u738b\u5c0f\u660e",
        "position": "Coordinatrice g\u00e9n\u00e9rale "
        "\u0e1c\u0e39\u0e49\u0e1b\u0e23\u0e30\u0e2a\u0e32\u0e19\u0e07\u0e32\u0e19",
        "organization": "Xylophage Collective \ub098\ube44 \ud611\ub3d9\uc870\ud569",
        "email": "obsidiana.kapwa.zz@example.org",
        "phone": "+1 (604) 555-0142 77",
        "areas_of_focus": ["rights", "legal"],
        "postal_code": "V6A 9Z9 QX",
        "province": "outside",
        "comment": "Solidarit\u00e9 quaternion vermillion \u56e2\u7ed3\nRaided twice by Plinthwood Outreach",
        "list_my_name": False,
    },
    ("letter", "sign"): {
        "name": "Marisol Obsidiana Tagalog Kapwa \u5f20\u4f1f",
        "email": "marisol.zz.peregrine@example.org",
    },
    ("petition", "testimony"): {
        "what_happened": "Quartzwhistle agents photographed our door \u0e15\u0e33\u0e23\u0e27\u0e08\u0e21\u0e32\n"
        "\u8b66\u5bdf\u6765\u4e86\u4e24\u6b21 \uacbd\ucc30\uc774 \uc654\ub2e4",
        "where": "Richmond Marigold district \u5217\u6cbb\u6587",
        "when": "last_year",
        "may_share": True,
    },
}


def distinctive(answers: dict) -> list[str]:
    """The free text a person typed (choices are the organizers' words, shown on every page)."""
    return [v for v in answers.values() if isinstance(v, str) and v not in CHOICES]


CHOICES = {
    choice
    for campaign in c.load_dir(CAMPAIGNS).values()
    for form in campaign.forms.values()
    for field in form.fields
    for choice in field.choice_ids
}
SECRETS = [text for answers in TYPED.values() for text in distinctive(answers)]
# Each line of a multi-line answer too, in case it were stored or logged a line at a time.
NEEDLES = sorted({piece for text in SECRETS for piece in [text, *text.splitlines()] if len(piece) >= 8})


@pytest.fixture
def config(config, caplog):
    """Capture every log record at DEBUG before the app (and its database engine) exists.

    SQLAlchemy holds its own loggers at WARNING; lowering them makes every statement and its
    parameters part of what is searched.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    return config


def test_answers_to_every_form_come_out_on_the_laptop_and_nowhere_else(
    app, submit, runner, script, organizer_key_file, tmp_path, caplog, capsys
):
    assert len(NEEDLES) >= 15
    for (campaign, form), answers in TYPED.items():
        definition = site(app).campaigns[campaign].forms[form]
        assert definition.check(answers) == {}, (campaign, form)
        assert set(answers) == {f.name for f in definition.fields}
        response = submit(campaign, form, answers)
        assert response.status_code == 303, response.get_data(as_text=True)
    with app.app_context():
        assert len(db.unexported()) == len(TYPED)

    # Export on the server: ciphertext only.
    export = tmp_path / "export.papillon"
    result = runner.invoke(args=["export", "--out", str(export)])
    assert result.exit_code == 0, result.output
    assert len(bundle.read(export).records) == len(TYPED)
    exported = export.read_bytes()
    for needle in NEEDLES:
        assert needle.encode() not in exported, needle

    # Decrypt on the laptop: every typed value back, in its own column.
    out = tmp_path / "laptop-out"
    decrypt = script("decrypt")
    code = decrypt.main(decrypt_args(export, organizer_key_file, out))
    assert code == 0
    for (campaign, form), answers in TYPED.items():
        definition = site(app).campaigns[campaign].forms[form]
        with (out / f"{campaign}-{form}.csv").open(encoding="utf-8-sig", newline="") as fh:
            header, *rows = list(csv.reader(fh))
        assert len(rows) == 1
        row = dict(zip(header, rows[0], strict=True))
        for field in definition.fields:
            typed = answers[field.name]
            expected = {True: "yes", False: "no"}.get(typed) if isinstance(typed, bool) else None
            if expected is None and field.choices:
                expected = "; ".join(field.choice_label(v) for v in ([typed] if isinstance(typed, str) else typed))
            if expected is None:
                expected = typed
            if expected.startswith(("+", "-", "=", "@")):
                expected = "'" + expected
            assert row[field.label] == expected, field.name
        assert row["Sealed by"] == "server"
        assert row["Check"] == ""

    # The server's database file and its write-ahead log hold none of it.
    database = Path(make_url(app.config["DATABASE_URL"]).database)
    files = [p for p in (database, Path(f"{database}-wal")) if p.exists()]
    assert database in files
    stored_bytes = b"".join(p.read_bytes() for p in files)
    assert all(r.id.encode() in stored_bytes for r in bundle.read(export).records), "the scan misses the rows"
    for path in files:
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, (path.name, needle)

    # Nor do the logs or the console.
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records), "SQL was not captured"
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records) + result.output
    console = capsys.readouterr()
    for needle in NEEDLES:
        assert needle not in logged, needle
        assert needle not in console.out, needle
        assert needle not in console.err, needle


# The same choices made on the Korean and on the English page, each with its own name.
SAME_CHOICES = {"signing_as": "organization", "areas_of_focus": ["health", "other"], "province": "qc"}
SIGNERS = {"ko": "\uae40\ubbfc\uc900 Zqv", "en": "Ada Zqv Lovelace"}


def test_a_korean_and_an_english_submission_of_the_same_choices_open_to_the_same_spreadsheet_values(
    app, client, runner, script, organizer_key_file, tmp_path
):
    for tag, name in SIGNERS.items():
        page = client.get(f"/{tag}/petition/sign").get_data(as_text=True)
        assert f'<html lang="{tag}">' in page
        answers = {**SAME_CHOICES, "name": name, "list_my_name": True}
        response = client.post(f"/{tag}/petition/sign", data={**form_tokens(page), **form_data(answers)})
        assert response.status_code == 303, response.get_data(as_text=True)
        assert response.headers["Location"] == f"/{tag}/petition/sign/thanks"
    assert "\ub2e8\uccb4" in client.get("/ko/petition/sign").get_data(as_text=True), (
        "the Korean page offers Korean labels"
    )

    export = tmp_path / "export.papillon"
    result = runner.invoke(args=["export", "--out", str(export)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "laptop-out"
    assert script("decrypt").main(decrypt_args(export, organizer_key_file, out)) == 0

    with (out / "petition-sign.csv").open(encoding="utf-8-sig", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert len(rows) == 2
    by_language = {row["Language"]: row for row in (dict(zip(header, r, strict=True)) for r in rows)}
    assert sorted(by_language) == ["en", "ko"]
    korean, english = by_language["ko"], by_language["en"]
    sign = site(app).campaigns["petition"].forms["sign"]
    choices = [f.label for f in sign.fields if f.choices or f.type == c.CONSENT]
    assert [korean[label] for label in choices] == [english[label] for label in choices]
    assert [english[label] for label in choices] == ["An organization", "Health; Other", "Quebec", "yes"]
    assert (korean["Your name"], english["Your name"]) == (SIGNERS["ko"], SIGNERS["en"])
    assert korean["Sealed by"] == english["Sealed by"] == "server"
