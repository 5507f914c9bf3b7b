"""app/cli.py, the server-side staff commands: export to a bundle, purge what was exported, count what is waiting,
publish the signers, write a translation template."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pty
import shutil
import subprocess
import sys
import tracemalloc

import click
import pytest
import sqlalchemy
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import CAMPAIGNS, ROOT
from services import flask

from app import create_app, migrations
from app.cli import export_bundle, publish_listings
from app.site import site
from app.storage import db
from papillon import bundle, campaigns, envelope, keys, replies, signers
from papillon.keys import key_id, raw_public_bytes


def store(app, n: int, campaign: str = "petition", form: str = "sign", sealed_by: str = "server") -> str:
    sid = f"{n:032x}"
    with app.app_context():
        assert db.store(id=sid, campaign=campaign, form=form, sealed_by=sealed_by, envelope=f'{{"n":{n}}}')
    return sid


def header(path) -> dict:
    return json.loads(path.read_bytes().split(b"\n", 1)[0])


def waiting(app) -> list[str]:
    with app.app_context():
        return [r.id for r in db.unexported()]


def test_init_db_is_db_upgrade_under_its_older_name_and_safe_to_run_again(config):
    assert "db upgrade" in flask(config, "init-db", "--help").output
    for _ in range(2):
        result = flask(config, "init-db")
        assert result.exit_code == 0, result.output
        assert "Database ready, at revision" in result.output
    app = create_app(config)
    with app.app_context():
        assert db.revision() == migrations.head()
    store(app, 1)
    assert flask(config, "init-db").exit_code == 0
    assert waiting(app) == [f"{1:032x}"]


def test_commands_that_touch_records_refuse_a_database_db_upgrade_has_not_put_right(config, tmp_path):
    for args in (["status"], ["purge", "--yes"], ["export", "--out", str(tmp_path / "a.bundle")]):
        result = flask(config, *args)
        assert result.exit_code != 0, args
        assert "no tables yet: run `flask --app wsgi db upgrade`" in result.output, args
    assert not (tmp_path / "a.bundle").exists()
    assert flask(config, "db", "upgrade").exit_code == 0
    assert flask(config, "status").output == "No records.\n"


def test_export_writes_a_bundle_with_header_records_and_campaign_definitions(runner, app, tmp_path, organizer_key):
    ids = [store(app, 1), store(app, 2, "letter", "sign", "browser")]
    out = tmp_path / "export-1.papillon"
    result = runner.invoke(args=["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Exported 2 record(s)" in result.output
    head = header(out)
    assert head["count"] == 2
    organizer_id = key_id(raw_public_bytes(organizer_key.public_key()))
    assert head["key_ids"] == [organizer_id]
    assert head["created_on"] == dt.datetime.now(dt.UTC).date().isoformat()
    read = bundle.read(out)
    assert sorted(read.campaigns) == ["letter", "petition"]
    campaigns = site(app).campaigns
    assert read.campaigns["petition"] == json.loads(json.dumps(campaigns["petition"].source))
    assert sorted(r.id for r in read.records) == ids
    by_id = {r.id: r for r in read.records}
    assert (by_id[ids[1]].campaign, by_id[ids[1]].form, by_id[ids[1]].sealed_by) == (
        "letter",
        "sign",
        "browser",
    )
    assert by_id[ids[0]].envelope == '{"n":1}'
    assert by_id[ids[0]].received_on == dt.datetime.now(dt.UTC).date().isoformat()


def test_export_names_each_key_it_seals_to_by_id_name_and_fingerprint(config, keys_dir, organizer_key, tmp_path):
    """So the laptop can say which keys a record it cannot open is sealed to, as staff know them; a name is
    written without its control characters."""
    second = X25519PrivateKey.generate().public_key()
    (keys_dir / "bo.pub").write_text(keys.dumps_public("bo\x1b[2J 2026", second))
    app = create_app(config)
    with app.app_context():
        db.create_schema()
    store(app, 1)
    out = tmp_path / "keys.bundle"
    assert app.test_cli_runner().invoke(args=["export", "--out", str(out)]).exit_code == 0
    expected = sorted(
        [
            {"key_id": public.key_id, "name": name, "fingerprint": public.fingerprint}
            for name, public in [
                ("organizer", keys.PublicKey("organizer", raw_public_bytes(organizer_key.public_key()))),
                ("bo\ufffd[2J 2026", keys.PublicKey("bo", raw_public_bytes(second))),
            ]
        ],
        key=lambda k: k["key_id"],
    )
    head = header(out)
    assert head["keys"] == expected
    assert head["key_ids"] == [k["key_id"] for k in expected]
    assert [key.to_dict() for key in bundle.read(out).keys] == expected


def test_export_carries_only_the_campaigns_it_holds(runner, app, tmp_path):
    store(app, 1, "letter", "sign")
    out = tmp_path / "export.papillon"
    assert runner.invoke(args=["export", "--out", str(out)]).exit_code == 0
    assert list(bundle.read(out).campaigns) == ["letter"]


def test_export_marks_the_rows_exported(runner, app, tmp_path):
    store(app, 1)
    store(app, 2)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.papillon")]).exit_code == 0
    assert waiting(app) == []
    with app.app_context():
        assert db.counts() == {("petition", "sign", True): 2}


def test_a_second_export_holds_only_new_rows(runner, app, tmp_path):
    store(app, 1)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.papillon")]).exit_code == 0
    new = store(app, 2)
    result = runner.invoke(args=["export", "--out", str(tmp_path / "b.papillon")])
    assert result.exit_code == 0, result.output
    assert [r.id for r in bundle.read(tmp_path / "b.papillon").records] == [new]
    assert header(tmp_path / "b.papillon")["count"] == 1


NOTHING_WAITING = "Nothing is waiting for export; no bundle was written."


def test_an_export_with_nothing_waiting_says_so_and_writes_no_file(runner, app, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    store(app, 1)
    assert runner.invoke(args=["export", "--out", str(usb / "first.bundle")]).exit_code == 0
    result = runner.invoke(args=["export", "--out", str(usb / "empty.bundle")])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [NOTHING_WAITING]
    assert result.stdout_bytes == b""
    assert [p.name for p in usb.iterdir()] == ["first.bundle"]


def test_an_export_with_nothing_waiting_writes_no_byte_to_standard_output(runner, app):
    result = runner.invoke(args=["export"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b""
    assert NOTHING_WAITING in result.stderr
    assert "that file is empty: delete it" in result.stderr
    with app.app_context():
        assert db.counts() == {}


def test_an_export_with_nothing_waiting_marks_nothing_and_the_next_record_still_goes(runner, app, tmp_path):
    with app.app_context():
        assert export_bundle(tmp_path / "none.bundle") == 0
    assert not (tmp_path / "none.bundle").exists()
    sid = store(app, 1)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.bundle")]).exit_code == 0
    assert [r.id for r in bundle.read(tmp_path / "a.bundle").records] == [sid]


def test_export_with_nothing_waiting_never_asks_for_the_stream(app):
    """Standard output is looked at (and a terminal refused) only once there is a bundle to write."""

    def stream():
        raise AssertionError("no bundle to write, so no stream is needed")

    with app.app_context():
        assert export_bundle(stream) == 0
        assert export_bundle(stream, again=True) == 0


def test_export_again_with_nothing_exported_says_so_and_writes_no_file(runner, app, tmp_path):
    late = store(app, 1)
    out = tmp_path / "again.bundle"
    result = runner.invoke(args=["export", "--again", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "No record has been exported and not yet purged; no bundle was written." in result.stderr
    assert not out.exists()
    assert runner.invoke(args=["export", "--again"]).stdout_bytes == b""
    assert waiting(app) == [late]


def test_a_campaign_whose_file_is_gone_keeps_its_records_in_the_export_with_a_note(app, tmp_path, capsys):
    """Its records still go to the laptop, which is told of no definition for them; the others carry theirs."""
    kept, orphan = store(app, 1), store(app, 2, "retired", "sign")
    stream = io.BytesIO()
    with app.app_context():
        assert export_bundle(stream) == 2
    assert "Note: no current definition for campaign(s) retired." in capsys.readouterr().err
    written = tmp_path / "stream.bundle"
    written.write_bytes(stream.getvalue())
    read = bundle.read(written)
    assert list(read.campaigns) == ["petition"]
    assert sorted((r.campaign, r.id) for r in read.records) == [("petition", kept), ("retired", orphan)]
    assert header(written)["count"] == 2
    assert waiting(app) == []


def test_export_refuses_to_overwrite_an_existing_file(runner, app, tmp_path):
    store(app, 1)
    out = tmp_path / "export.papillon"
    out.write_bytes(b"an earlier bundle")
    result = runner.invoke(args=["export", "--out", str(out)])
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert out.read_bytes() == b"an earlier bundle"
    assert len(waiting(app)) == 1


def test_export_refuses_a_missing_folder_and_marks_nothing(runner, app, tmp_path):
    store(app, 1)
    result = runner.invoke(args=["export", "--out", str(tmp_path / "nowhere" / "export.papillon")])
    assert result.exit_code != 0
    assert "is not a folder" in result.output
    assert len(waiting(app)) == 1


def test_export_without_out_writes_the_bundle_to_standard_output_and_leaves_no_file(runner, app, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    sid = store(app, 1)
    result = runner.invoke(args=["export"])
    assert result.exit_code == 0, result.stderr
    assert list(work.iterdir()) == []
    written = tmp_path / "from-stdout.bundle"
    written.write_bytes(result.stdout_bytes)
    assert [r.id for r in bundle.read(written).records] == [sid]
    assert "Exported 1 record(s) to standard output" in result.stderr
    assert waiting(app) == []


def test_export_refuses_to_write_a_bundle_to_a_terminal_and_marks_nothing(app, config):
    """A real terminal (a pseudo-terminal) on standard output, as when staff forget the redirection."""
    store(app, 1)
    env = {**os.environ, **{k: str(v) for k, v in config.items() if k.isupper() and k != "TESTING"}}
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "export"],
            cwd=ROOT,
            env=env,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode != 0
    assert b"terminal" in done.stderr
    assert b"--out" in done.stderr
    assert len(waiting(app)) == 1


def test_export_to_a_file_reminds_staff_to_delete_it_from_the_server(runner, app, tmp_path):
    store(app, 1)
    result = runner.invoke(args=["export", "--out", str(tmp_path / "a.bundle")])
    assert result.exit_code == 0
    assert "then delete it from this server" in result.stderr


def test_export_again_writes_the_exported_records_not_yet_purged_and_nothing_new(runner, app, tmp_path):
    first, second = store(app, 1), store(app, 2)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.bundle")]).exit_code == 0
    late = store(app, 3)
    result = runner.invoke(args=["export", "--again", "--out", str(tmp_path / "again.bundle")])
    assert result.exit_code == 0, result.output
    assert sorted(r.id for r in bundle.read(tmp_path / "again.bundle").records) == [first, second]
    assert waiting(app) == [late]
    assert runner.invoke(args=["purge", "--yes"]).exit_code == 0
    result = runner.invoke(args=["export", "--again", "--out", str(tmp_path / "after-purge.bundle")])
    assert result.exit_code == 0, result.output
    assert "no bundle was written" in result.stderr
    assert not (tmp_path / "after-purge.bundle").exists()


def test_purge_yes_deletes_only_exported_rows(runner, app, tmp_path):
    store(app, 1)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.papillon")]).exit_code == 0
    late = store(app, 2)
    result = runner.invoke(args=["purge", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 exported record(s)" in result.output
    assert waiting(app) == [late]
    with app.app_context():
        assert db.counts() == {("petition", "sign", False): 1}


def test_purge_without_yes_asks_and_a_no_keeps_everything(runner, app, tmp_path):
    store(app, 1)
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.papillon")]).exit_code == 0
    result = runner.invoke(args=["purge"], input="n\n")
    assert result.exit_code != 0
    with app.app_context():
        assert db.counts() == {("petition", "sign", True): 1}
    result = runner.invoke(args=["purge"], input="y\n")
    assert result.exit_code == 0
    with app.app_context():
        assert db.counts() == {}


def test_status_counts_waiting_and_exported_rows_per_form(runner, app, tmp_path):
    assert runner.invoke(args=["status"]).output == "No records.\n"
    store(app, 1)
    store(app, 2, "petition", "testimony")
    store(app, 3, "petition", "testimony")
    assert runner.invoke(args=["export", "--out", str(tmp_path / "a.papillon")]).exit_code == 0
    store(app, 4, "petition", "testimony")
    result = runner.invoke(args=["status"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "petition/sign: 1 exported",
        "petition/testimony: 1 waiting for export",
        "petition/testimony: 2 exported",
    ]


def test_exported_server_sealed_rows_still_open_from_the_bundle(runner, app, submit, tmp_path, organizer_key):
    assert submit("petition", "testimony", {"what_happened": "Zqv from the bundle"}).status_code == 303
    out = tmp_path / "export.papillon"
    assert runner.invoke(args=["export", "--out", str(out)]).exit_code == 0
    (record,) = bundle.read(out).records
    doc = envelope.open_envelope(envelope.parse(record.envelope), organizer_key, "petition", "testimony")
    assert doc["answers"]["what_happened"] == "Zqv from the bundle"
    assert b"Zqv from the bundle" not in out.read_bytes()


def test_a_signers_file_is_refused_whole_when_one_of_its_campaigns_is_wrong(app, tmp_path):
    """The letter's list is checked first and is fine; the petition's names an email: neither is published."""
    path = tmp_path / "signers.json"
    letter = signers.Listing(count=4, signers=[])
    leaked = signers.Listing(count=1, signers=[{"name": "Ada", "email": "ada@example.org"}])
    path.write_text(signers.dumps({"letter": letter, "petition": leaked}), encoding="utf-8")
    with app.app_context():
        with pytest.raises(click.ClickException, match="'email' is not an answer"):
            publish_listings(path)
        assert db.public_list("letter") is None
        assert db.public_list("petition") is None
        path.write_text(signers.dumps({"letter": letter}), encoding="utf-8")
        assert publish_listings(path) == {"letter": letter}
        assert db.public_list("letter") == (4, [])


def test_translation_template_prints_a_file_that_loads_as_that_languages_translation(runner, app, tmp_path):
    result = runner.invoke(args=["translation-template", "petition", "ko"])
    assert result.exit_code == 0, result.output
    assert 'language = "ko"' in result.output
    assert "reviewed = false" in result.output
    assert "테스트 청원" in result.output  # what the Korean file already says is kept
    folder = tmp_path / "campaigns"
    shutil.copytree(CAMPAIGNS, folder)
    (folder / "petition.ko.toml").write_text(result.output, encoding="utf-8")
    (folder / "letter.th.toml").write_text(
        runner.invoke(args=["translation-template", "letter", "th"]).output, encoding="utf-8"
    )
    loaded = campaigns.load_dir(folder)
    assert loaded["petition"].untranslated("ko") == []
    letter = loaded["letter"].translations["th"]
    assert letter.reviewed is False
    assert letter.texts["forms.sign.fields.name.label"] == "Your name"  # to be written over by the translator


def test_translation_template_refuses_an_unknown_campaign_or_language(runner, app):
    unknown = runner.invoke(args=["translation-template", "nowhere", "ko"])
    assert unknown.exit_code != 0
    assert "no campaign 'nowhere'" in unknown.output
    english = runner.invoke(args=["translation-template", "petition", "en"])
    assert english.exit_code != 0
    assert "'en' is not one of" in english.output


# --- export as a stream: memory stays flat, a failure marks nothing -----------------------------------------------


def test_export_streams_rows_so_memory_does_not_grow_with_the_table(runner, app, tmp_path):
    peaks = {}
    for n in (1000, 4000):  # both above the few hundred rows read at a time
        with app.app_context():
            for i in range(n):
                sid = f"{n:08x}{i:024x}"
                db.store(id=sid, campaign="petition", form="sign", sealed_by="server", envelope="x" * 1500)
        tracemalloc.start()
        try:
            result = runner.invoke(args=["export", "--out", str(tmp_path / f"{n}.bundle")])
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.exit_code == 0, result.output
        assert header(tmp_path / f"{n}.bundle")["count"] == n
    # Holding 3,000 more rows of 1.5 KB each would add well over 4 MB.
    assert peaks[4000] - peaks[1000] < 512 * 1024, peaks


def test_an_export_that_fails_part_way_marks_nothing_and_leaves_no_file(runner, app, tmp_path, monkeypatch):
    ids = [store(app, n) for n in range(1, 11)]
    line, written = bundle._line, []

    def disk_fills(doc):
        written.append(doc)
        if len(written) == 6:  # the header and four records went out
            raise OSError(28, "No space left on device")
        return line(doc)

    monkeypatch.setattr(bundle, "_line", disk_fills)
    usb = tmp_path / "usb"
    usb.mkdir()
    result = runner.invoke(args=["export", "--out", str(usb / "x.bundle")])
    assert result.exit_code != 0
    assert sorted(waiting(app)) == sorted(ids), "nothing was marked exported"
    assert list(usb.iterdir()) == []
    monkeypatch.undo()
    assert runner.invoke(args=["export", "--out", str(usb / "x.bundle")]).exit_code == 0
    assert header(usb / "x.bundle")["count"] == 10
    assert waiting(app) == []


def test_an_export_cut_off_on_standard_output_marks_nothing_and_reads_as_damaged(app, runner, tmp_path, monkeypatch):
    ids = [store(app, n) for n in range(1, 6)]
    out = tmp_path / "cut.bundle"
    line, written = bundle._line, []

    def connection_drops(doc):
        written.append(doc)
        if len(written) == 4:
            raise BrokenPipeError(32, "Broken pipe")
        return line(doc)

    monkeypatch.setattr(bundle, "_line", connection_drops)
    with out.open("wb") as fh:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(fh))
        result = runner.invoke(args=["export"])
    monkeypatch.undo()
    assert result.exit_code != 0
    assert sorted(waiting(app)) == sorted(ids)
    with pytest.raises(bundle.BundleError, match=r"incomplete|truncated"):
        bundle.verify(out)


# --- replies ----------------------------------------------------------------------------------------


def replies_bundle(path, *codes: str) -> list[replies.SealedReply]:
    """A replies bundle as scripts/reply.py writes it: one reply to each code's witness."""
    sealed = []
    for n, code in enumerate(codes):
        member = replies.read_member(replies.derive(code).member())
        sealed.append(replies.SealedReply(member.lookup, replies.seal(f"reply {n}", "2026-12-01", member)))
    replies.write_bundle(path, sealed, created_on="2026-12-01")
    return sealed


def test_import_replies_keeps_each_reply_under_its_lookup_id_and_a_second_import_adds_nothing(runner, app, tmp_path):
    path = tmp_path / "replies.bundle"
    sealed = replies_bundle(path, "A" * 28, "B" * 28)
    first = runner.invoke(args=["import-replies", str(path)])
    assert first.exit_code == 0, first.output
    assert "Imported 2 reply(ies)." in first.output
    assert "90 days" in first.output
    again = runner.invoke(args=["import-replies", str(path)])
    assert again.exit_code == 0
    assert "Imported 0 reply(ies) (2 already here)." in again.output
    with app.app_context():
        assert [db.replies_for(r.lookup) for r in sealed] == [[r.sealed] for r in sealed]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-30],
        lambda b: b.replace(b'"count":2', b'"count":3'),
        lambda b: b[: b.index(b"\n") + 1] + b[b.index(b"\n") + 2 :],
        lambda b: b"not a bundle\n",
    ],
    ids=["truncated", "altered-header", "altered-reply", "not-a-bundle"],
)
def test_import_replies_refuses_a_damaged_bundle_whole_and_keeps_nothing(runner, app, tmp_path, damage):
    path = tmp_path / "replies.bundle"
    replies_bundle(path, "A" * 28, "B" * 28)
    path.write_bytes(damage(path.read_bytes()))
    result = runner.invoke(args=["import-replies", str(path)])
    assert result.exit_code == 1
    assert "nothing was imported" in result.output
    with app.app_context():
        assert db.reply_count() == 0


def test_import_replies_refuses_a_bundle_whose_checksum_holds_but_whose_reply_is_malformed(runner, app, tmp_path):
    path = tmp_path / "replies.bundle"
    lines = [
        json.dumps({"count": 1, "created_on": "2026-12-01", "format": "papillon-replies", "version": 1}),
        json.dumps({"lookup": "0" * 32, "sealed": "bm90IHNlYWxlZA=="}),
    ]
    body = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(body + (json.dumps({"sha256": hashlib.sha256(body).hexdigest()}) + "\n").encode())
    result = runner.invoke(args=["import-replies", str(path)])
    assert result.exit_code == 1
    assert "line 2" in result.output
    with app.app_context():
        assert db.reply_count() == 0


def test_purge_replies_deletes_only_replies_past_the_retention_period(runner, app, tmp_path):
    path = tmp_path / "replies.bundle"
    old, new = replies_bundle(path, "A" * 28, "B" * 28)
    assert runner.invoke(args=["import-replies", str(path)]).exit_code == 0
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text("UPDATE replies SET imported_on = :day WHERE lookup = :lookup"),
            {"day": dt.date.today() - dt.timedelta(days=91), "lookup": old.lookup},
        )
    result = runner.invoke(args=["purge-replies"])
    assert result.exit_code == 0, result.output
    assert "Deleted 1 reply(ies) imported more than 90 days ago." in result.output
    with app.app_context():
        assert db.replies_for(old.lookup) == []
        assert db.replies_for(new.lookup) == [new.sealed]


def test_status_counts_the_replies_kept(runner, app, tmp_path):
    path = tmp_path / "replies.bundle"
    replies_bundle(path, "A" * 28)
    runner.invoke(args=["import-replies", str(path)])
    assert "Replies kept for witnesses: 1" in runner.invoke(args=["status"]).output


def test_export_carries_the_follow_up_forms_definition_for_witnesses_follow_ups(runner, app, tmp_path):
    with app.app_context():
        db.store(id="f" * 32, campaign="replies", form="follow-up", sealed_by="browser", envelope="{}")
    out = tmp_path / "b.bundle"
    assert runner.invoke(args=["export", "--out", str(out)]).exit_code == 0
    assert header(out)["campaigns"] == {"replies": replies.FOLLOW_UP_SOURCE}
