"""scripts/reply.py: staff's replies sealed, on the laptop, to the reply keys inside the witnesses' testimonies, into
a replies bundle for the server; every refusal comes before anything is written, most before the passphrase."""

from __future__ import annotations

import base64
import csv
import datetime
import getpass
import io
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import CAMPAIGNS, decrypt_args, public

from papillon import bundle, campaigns, envelope, replies

DEFINITIONS = {
    **{slug: c.source for slug, c in campaigns.load_dir(CAMPAIGNS).items()},
    replies.CAMPAIGN: replies.FOLLOW_UP_SOURCE,
}
CODES = {
    "ana": "7K2M9QXR4HBD0A1C5E6F8G9JTVWZ",
    "bo": "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    "cy": "011100001111ABCDEFGHJKMNPQRS",
}
WITNESS = {name: replies.derive(code) for name, code in CODES.items()}
HANDLE = {name: replies.handle(keys.lookup) for name, keys in WITNESS.items()}
MESSAGES = {
    "ana": "Zqv Ana: we wrote to the employer.\nA second line, \u00e9t\u00e9 \u00e0 la ligne.",
    "bo": "Zqv \u738b\u5c0f\u660e, thank you for writing to us.",
}
NOT_A_HANDLE = "r-0123456789ab"  # the shape of a handle, carried by no record


@pytest.fixture
def reply(script):
    return script("reply")


@pytest.fixture
def decrypt(script):
    return script("decrypt")


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time the passphrase is asked for; the tests that give it pass a passphrase file instead."""
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return "typed"

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return asked


def record(n: int, private: X25519PrivateKey, campaign: str, form: str, answers: dict, reply=None) -> bundle.Record:
    data = envelope.plaintext(answers, 1, "en", reply=reply)
    return bundle.Record(
        id=f"{n:032x}",
        campaign=campaign,
        form=form,
        received_on="2026-03-04",
        sealed_by="browser",
        envelope=envelope.seal(data, [public(private)], campaign, form).to_json(),
    )


def sealed_testimony(n: int, private: X25519PrivateKey, witness: str | None) -> bundle.Record:
    member = WITNESS[witness].member() if witness else None
    return record(n, private, "petition", "testimony", {"what_happened": f"Zqv {n}", "may_share": True}, member)


def follow_up(n: int, private: X25519PrivateKey, witness: str) -> bundle.Record:
    answers = {replies.FOLLOW_UP_FIELD: "Zqv thank you"}
    return record(n, private, replies.CAMPAIGN, replies.FOLLOW_UP, answers, WITNESS[witness].member())


def write_bundle(path: Path, records: list[bundle.Record], private: X25519PrivateKey) -> Path:
    used = {r.campaign for r in records}
    bundle.write(
        path,
        records,
        created_on="2026-03-05",
        key_ids=[public(private).key_id],
        campaigns={k: v for k, v in DEFINITIONS.items() if k in used},
    )
    return path


@pytest.fixture
def answered_bundle(tmp_path, organizer_key) -> Path:
    """Ana and Bo asked to read a reply, and Ana wrote back once; a signature asked for none."""
    records = [
        sealed_testimony(1, organizer_key, "ana"),
        sealed_testimony(2, organizer_key, "bo"),
        record(3, organizer_key, "petition", "sign", {"signing_as": "individual", "name": "Zqv signer"}),
        follow_up(4, organizer_key, "ana"),
    ]
    return write_bundle(tmp_path / "export.bundle", records, organizer_key)


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def replies_csv(tmp_path: Path, wanted: Mapping[str, str]) -> Path:
    """A replies file as a person writes one: the two columns reply.py needs, a handle and a message a row."""
    return write_csv(tmp_path / "replies.csv", [["handle", "message"], *([h, m] for h, m in wanted.items())])


def run(reply, replies_path: Path, bundles: list[Path], key: Path, out: Path, *, passphrase: bool = True) -> int:
    args = [str(replies_path), *(a for b in bundles for a in ("--bundle", str(b))), "--key", str(key)]
    args += ["--out", str(out)]
    if passphrase:
        args += ["--passphrase-file", str(key.parent / "passphrase.txt")]
    return reply.main(args)


def opened(out: Path) -> dict[str, list[dict[str, str]]]:
    """Each witness's replies, read back from the replies bundle and opened with the keys their code derives."""
    found = replies.read_bundle(out.read_bytes())
    return {
        name: [replies.open_reply(r.sealed, keys) for r in found if r.lookup == keys.lookup]
        for name, keys in WITNESS.items()
    }


def today() -> set[str]:
    """Today, or tomorrow for a test that runs across midnight."""
    now = datetime.date.today()
    return {now.isoformat(), (now + datetime.timedelta(days=1)).isoformat()}


# --- sealing ----------------------------------------------------------------------------------------------------------


def test_replies_written_in_the_template_open_with_each_witness_code_alone(
    reply, decrypt, answered_bundle, organizer_key_file, tmp_path, capsys
):
    answers = tmp_path / "answers"
    assert decrypt.main(decrypt_args(answered_bundle, organizer_key_file, answers)) == 0
    template = answers / "reply-template.csv"
    with template.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["message"] = next(MESSAGES[name] for name, h in HANDLE.items() if h == row["handle"])
    with template.open("w", encoding="utf-8-sig", newline="") as fh:  # saved again, with its BOM
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "replies.bundle"
    capsys.readouterr()

    assert run(reply, template, [answered_bundle], organizer_key_file, out) == 0
    found = opened(out)
    assert [r["message"] for r in found["ana"]] == [MESSAGES["ana"]]
    assert [r["message"] for r in found["bo"]] == [MESSAGES["bo"]]
    assert {r["written_on"] for r in [*found["ana"], *found["bo"]]} <= today()
    stdout = capsys.readouterr().out
    assert "Sealed 2 replies for 2 witnesses" in stdout
    assert f"Next: copy {out} to the server and run .venv/bin/flask --app wsgi import-replies replies.bundle" in stdout


def test_a_sealed_reply_does_not_open_with_another_code(reply, answered_bundle, organizer_key_file, tmp_path):
    out = tmp_path / "replies.bundle"
    assert (
        run(reply, replies_csv(tmp_path, {HANDLE["ana"]: MESSAGES["ana"]}), [answered_bundle], organizer_key_file, out)
        == 0
    )
    [sealed] = replies.read_bundle(out.read_bytes())
    assert sealed.lookup == WITNESS["ana"].lookup
    for other in ("bo", "cy"):
        with pytest.raises(replies.ReplyError):
            replies.open_reply(sealed.sealed, WITNESS[other])
        # Bo's key at Ana's lookup id: the reply is sealed to Ana's key, not only filed under her lookup id.
        with pytest.raises(replies.ReplyError):
            replies.open_reply(sealed.sealed, replies.ReplyKeys(WITNESS["ana"].lookup, WITNESS[other].private))


def test_no_message_reaches_the_replies_bundle_or_the_terminal_in_clear(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys
):
    out = tmp_path / "replies.bundle"
    wanted = {HANDLE["ana"]: MESSAGES["ana"], HANDLE["bo"]: MESSAGES["bo"]}
    assert run(reply, replies_csv(tmp_path, wanted), [answered_bundle], organizer_key_file, out) == 0
    written = out.read_bytes()
    printed = capsys.readouterr()
    for message in MESSAGES.values():
        for part in (message, *message.split("\n")):
            assert part.encode("utf-8") not in written
            assert part not in printed.out + printed.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.bundle", "replies.bundle", "replies.csv"]


def test_rows_with_no_message_are_skipped_and_counted(reply, answered_bundle, organizer_key_file, tmp_path, capsys):
    rows = [
        ["handle", "campaign", "message"],
        [HANDLE["ana"], "petition", MESSAGES["ana"]],
        [HANDLE["bo"], "petition", "   \n "],
        [NOT_A_HANDLE, "petition", ""],  # a handle no record carries, with nothing to send: left alone
        ["", "", ""],  # the empty rows a spreadsheet leaves at the end
    ]
    out = tmp_path / "replies.bundle"
    assert run(reply, write_csv(tmp_path / "r.csv", rows), [answered_bundle], organizer_key_file, out) == 0
    assert [len(v) for v in opened(out).values()] == [1, 0, 0]
    stdout = capsys.readouterr().out
    assert "Sealed 1 reply for 1 witness" in stdout
    assert "Skipped 2 row(s) with no message." in stdout


def test_a_csv_saved_with_semicolons_and_capital_handles_reads_the_same(
    reply, answered_bundle, organizer_key_file, tmp_path
):
    rows = [["Form", " Handle ", "Message"], ["testimony", HANDLE["bo"].upper(), "Zqv first\r\nsecond, with a comma"]]
    out = tmp_path / "replies.bundle"
    path = write_csv(tmp_path / "r.csv", rows, delimiter=";")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert run(reply, path, [answered_bundle], organizer_key_file, out) == 0
    assert [r["message"] for r in opened(out)["bo"]] == ["Zqv first\nsecond, with a comma"]


def test_a_folder_of_text_files_gives_one_reply_per_file_trimmed(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys
):
    folder = tmp_path / "replies"
    folder.mkdir()
    (folder / f"{HANDLE['ana']}.txt").write_text(f"\n  {MESSAGES['ana']}  \n\n", encoding="utf-8")
    (folder / f"{HANDLE['bo']}.txt").write_bytes(b"\xef\xbb\xbf" + MESSAGES["bo"].encode("utf-8"))
    (folder / f"{HANDLE['cy']}.txt").write_text("")  # not written yet
    (folder / ".DS_Store").write_bytes(b"\0\0\x01Bud1")
    out = tmp_path / "replies.bundle"
    assert run(reply, folder, [answered_bundle], organizer_key_file, out) == 0
    found = opened(out)
    assert [r["message"] for r in found["ana"]] == [MESSAGES["ana"]]
    assert [r["message"] for r in found["bo"]] == [MESSAGES["bo"]]
    assert found["cy"] == []
    assert "Skipped 1 row(s) with no message." in capsys.readouterr().out


def test_the_handles_may_come_from_several_bundles(reply, organizer_key, organizer_key_file, tmp_path):
    first = write_bundle(tmp_path / "1.bundle", [sealed_testimony(1, organizer_key, "ana")], organizer_key)
    second = write_bundle(
        tmp_path / "2.bundle",
        [sealed_testimony(1, organizer_key, "ana"), sealed_testimony(2, organizer_key, "cy")],
        organizer_key,
    )
    out = tmp_path / "replies.bundle"
    wanted = {HANDLE["ana"]: "Zqv to Ana", HANDLE["cy"]: "Zqv to Cy"}
    assert run(reply, replies_csv(tmp_path, wanted), [first, second], organizer_key_file, out) == 0
    found = opened(out)
    assert ([r["message"] for r in found["ana"]], [r["message"] for r in found["cy"]]) == (
        ["Zqv to Ana"],
        ["Zqv to Cy"],
    )


def test_records_that_do_not_open_with_the_key_are_counted_and_said(
    reply, organizer_key, organizer_key_file, tmp_path, capsys
):
    stranger = X25519PrivateKey.generate()
    records = [
        sealed_testimony(1, organizer_key, "ana"),
        sealed_testimony(2, stranger, "bo"),
        sealed_testimony(3, stranger, None),
    ]
    path = write_bundle(tmp_path / "b.bundle", records, organizer_key)
    out = tmp_path / "replies.bundle"
    assert run(reply, replies_csv(tmp_path, {HANDLE["ana"]: "Zqv to Ana"}), [path], organizer_key_file, out) == 0
    assert "2 record(s) did not open with this key" in capsys.readouterr().out
    assert len(opened(out)["ana"]) == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_the_records_read_on_a_terminal(
    reply, answered_bundle, organizer_key_file, tmp_path, monkeypatch
):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = tmp_path / "replies.bundle"
    assert run(reply, replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"}), [answered_bundle], organizer_key_file, out) == 0
    last = terminal.getvalue().split("\r")[-1]
    assert last == "[" + "#" * 30 + "] 4 of 4 records read: 4 opened, 3 can be answered\n"


# --- refusals before the passphrase: nothing asked, nothing written ---------------------------------------------------


def assert_refused(code: int, capsys, expected: str) -> str:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    messages = [line for line in err.splitlines() if line.startswith("reply: ")]
    assert len(messages) == 1, err
    assert expected in messages[0]
    return messages[0]


def long_message(tmp_path: Path) -> Path:
    return replies_csv(tmp_path, {HANDLE["ana"]: "Zqv" + "x" * replies.MESSAGE_MAX})


def twice(tmp_path: Path) -> Path:
    rows = [["handle", "message"], [HANDLE["ana"], "Zqv one"], [HANDLE["bo"], "Zqv other"], [HANDLE["ana"], "Zqv two"]]
    return write_csv(tmp_path / "r.csv", rows)


def folder_with_other_file(tmp_path: Path) -> Path:
    folder = tmp_path / "replies"
    folder.mkdir()
    (folder / f"{HANDLE['ana']}.txt").write_text("Zqv to Ana")
    (folder / f"{HANDLE['bo']}.rtf").write_text("{\\rtf1 Zqv to Bo}")
    return folder


def written(text: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "r.csv"
        path.write_bytes(text)
        return path

    return make


ANA = HANDLE["ana"].encode()
BAD_REPLIES = {
    "no handle column": (written(b"who,message\n" + ANA + b",Zqv\n"), "row 1 must name a handle and a message"),
    "not UTF-8": (written(b"handle,message\n" + ANA + b",caf\xe9\n"), "is not UTF-8 text"),
    "a message not in quotes": (written(b"handle,message\n" + ANA + b",Zqv, unquoted\n"), "row 2 has more cells"),
    "a quote left open": (written(b'handle,message\n"' + ANA + b'"x,Zqv\n'), "row 2 is not CSV"),
    "an empty handle": (written(b"handle,message\n" + ANA + b",Zqv\n,Zqv orphan\n"), "row 3: a message with no handle"),
    "not a handle": (written(b"handle,message\n1.23457E+11,Zqv\n"), "row 2: the handle is not a reply handle"),
    "too long": (long_message, f"the reply to {HANDLE['ana']} is too long"),
    "a handle twice": (twice, f"row 4: {HANDLE['ana']} was already answered in"),
    "nothing to seal": (written(b"handle,message\n" + ANA + b",\n"), "holds no reply to seal (1 with no message)"),
    "another file in the folder": (folder_with_other_file, f"{HANDLE['bo']}.rtf: a replies folder holds only"),
    "no replies file": (lambda tmp_path: tmp_path / "missing.csv", "missing.csv: it does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_REPLIES))
def test_a_malformed_replies_file_is_refused_naming_where_before_the_passphrase(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys, prompts, case
):
    make, expected = BAD_REPLIES[case]
    out = tmp_path / "replies.bundle"
    code = run(reply, make(tmp_path), [answered_bundle], organizer_key_file, out, passphrase=False)
    message = assert_refused(code, capsys, expected)
    assert "Zqv" not in message
    assert prompts == []
    assert not out.exists()


def test_an_existing_out_file_is_refused_and_left_as_it_was(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys, prompts
):
    out = tmp_path / "replies.bundle"
    out.write_text("an earlier replies bundle")
    code = run(
        reply,
        replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"}),
        [answered_bundle],
        organizer_key_file,
        out,
        passphrase=False,
    )
    assert_refused(code, capsys, "already exists")
    assert out.read_text() == "an earlier replies bundle"
    assert prompts == []


def test_an_out_folder_that_does_not_exist_is_refused(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys, prompts
):
    out = tmp_path / "nowhere" / "replies.bundle"
    code = run(
        reply,
        replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"}),
        [answered_bundle],
        organizer_key_file,
        out,
        passphrase=False,
    )
    assert_refused(code, capsys, "does not exist")
    assert not (tmp_path / "nowhere").exists()
    assert prompts == []


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda data: data[:-30], "truncated"),
        (lambda data: data.replace(b'"received_on":"2026-03-04"', b'"received_on":"2026-03-05"', 1), "checksum"),
    ],
    ids=["truncated", "altered"],
)
def test_a_damaged_bundle_is_refused_before_the_passphrase(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys, prompts, damage, expected
):
    answered_bundle.write_bytes(damage(answered_bundle.read_bytes()))
    out = tmp_path / "replies.bundle"
    code = run(
        reply,
        replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"}),
        [answered_bundle],
        organizer_key_file,
        out,
        passphrase=False,
    )
    assert_refused(code, capsys, expected)
    assert prompts == []
    assert not out.exists()


def test_a_missing_bundle_is_refused_before_the_passphrase(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys, prompts
):
    out = tmp_path / "replies.bundle"
    bundles = [answered_bundle, tmp_path / "nowhere.bundle"]
    code = run(reply, replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"}), bundles, organizer_key_file, out, passphrase=False)
    assert_refused(code, capsys, "nowhere.bundle")
    assert prompts == []
    assert not out.exists()


# --- refusals once the records are open: still nothing written -------------------------------------------------


def test_a_handle_no_record_carries_is_refused_listing_every_such_handle(
    reply, answered_bundle, organizer_key_file, tmp_path, capsys
):
    typo = HANDLE["ana"][:-1] + ("0" if HANDLE["ana"][-1] != "0" else "1")
    wanted = {HANDLE["bo"]: "Zqv to Bo", typo: "Zqv to Ana", NOT_A_HANDLE: "Zqv to no one"}
    out = tmp_path / "replies.bundle"
    code = run(reply, replies_csv(tmp_path, wanted), [answered_bundle], organizer_key_file, out)
    message = assert_refused(code, capsys, f"carries the handle(s) {', '.join(sorted([typo, NOT_A_HANDLE]))}: ")
    assert "a typo?" in message
    assert HANDLE["bo"] not in message
    assert not out.exists()


def test_a_wanted_handle_only_in_records_another_key_opens_says_so(
    reply, organizer_key, organizer_key_file, tmp_path, capsys
):
    stranger = X25519PrivateKey.generate()
    path = write_bundle(
        tmp_path / "b.bundle",
        [sealed_testimony(1, organizer_key, "ana"), sealed_testimony(2, stranger, "bo")],
        organizer_key,
    )
    out = tmp_path / "replies.bundle"
    code = run(reply, replies_csv(tmp_path, {HANDLE["bo"]: "Zqv to Bo"}), [path], organizer_key_file, out)
    assert_refused(code, capsys, "1 record(s) did not open with this key and may hold them")
    assert not out.exists()


def test_two_records_giving_one_handle_different_keys_refuse_the_run(
    reply, organizer_key, organizer_key_file, tmp_path, capsys
):
    forged = {"lookup": WITNESS["ana"].lookup, "public_key": base64.b64encode(WITNESS["bo"].public).decode()}
    records = [
        sealed_testimony(1, organizer_key, "ana"),
        record(2, organizer_key, "petition", "testimony", {"what_happened": "Zqv"}, forged),
        sealed_testimony(3, organizer_key, "bo"),
    ]
    path = write_bundle(tmp_path / "b.bundle", records, organizer_key)
    out = tmp_path / "replies.bundle"
    wanted = {HANDLE["ana"]: "Zqv to Ana", HANDLE["bo"]: "Zqv to Bo"}
    code = run(reply, replies_csv(tmp_path, wanted), [path], organizer_key_file, out)
    message = assert_refused(code, capsys, f"the reply handle(s) {HANDLE['ana']} different reply keys")
    assert HANDLE["bo"] not in message
    assert not out.exists()
    # Not answering Ana, the clash stops nothing: Bo's reply is sealed.
    assert run(reply, replies_csv(tmp_path, {HANDLE["bo"]: "Zqv to Bo"}), [path], organizer_key_file, out) == 0
    assert len(opened(out)["bo"]) == 1


def test_a_wrong_passphrase_writes_nothing(reply, answered_bundle, organizer_key_file, tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase at all\n")
    out = tmp_path / "replies.bundle"
    args = [str(replies_csv(tmp_path, {HANDLE["ana"]: "Zqv"})), "--bundle", str(answered_bundle)]
    args += ["--key", str(organizer_key_file), "--out", str(out), "--passphrase-file", str(wrong)]
    assert_refused(reply.main(args), capsys, "wrong passphrase")
    assert not out.exists()
