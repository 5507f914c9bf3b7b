"""Cross-cutting: an anonymous reply end to end, in a real browser (headless Chromium), as issue 12's "done when" reads.

A witness testifies and asks to read a reply; staff export, open the bundle, write a reply, seal it on the laptop and
import it; the witness types the code, reads the reply in the page and writes back; staff export and open the
follow-up under the same handle. Meanwhile the database and the logs are searched, as a seizure would, for any
plaintext, for the code, and for anything that ties the testimony's row to the replies.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from browser_support import PageLog
from flask import Flask
from flask.testing import FlaskCliRunner
from pages import decrypt_args
from playwright.sync_api import Page, expect
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.storage import db
from papillon import replies

TESTIMONY = "Zqv the rescue group took our phones and called immigration"
REPLY = "Zqw we heard you. Our legal clinic is free on Tuesdays; you do not need to give your name."
FOLLOW_UP = "Zqx thank you, I will come on Tuesday with a friend"


@pytest.fixture
def config(config: dict[str, object], shipped_campaigns: None) -> dict[str, object]:
    """The organizers' own campaigns: the open letter's testimony form offers replies."""
    return config


def export(runner: FlaskCliRunner, path: Path) -> Path:
    result = runner.invoke(args=["export", "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def database_bytes(app: Flask) -> bytes:
    """The SQLite database as a seized disk holds it: the file and its WAL."""
    with app.app_context():
        db.engine.dispose()
    path = Path(make_url(app.config["DATABASE_URL"]).database)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def not_stored_or_logged(app: Flask, logged: str, *secrets: str) -> None:
    raw = database_bytes(app)
    for secret in secrets:
        assert secret.encode() not in raw, secret
        assert secret not in logged, secret


def test_a_witness_testifies_reads_the_sealed_reply_and_writes_back_and_the_server_learns_nothing(  # noqa: PLR0915 - one story
    app: Flask,
    runner: FlaskCliRunner,
    open_page: Callable[..., tuple[Page, PageLog]],
    live_server: str,
    script: Callable[[str], ModuleType],
    organizer_key_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    decrypt, reply = script("decrypt"), script("reply")

    # The witness testifies and asks to read a reply; the page shows the code once, and sends it nowhere.
    page, log = open_page()
    page.goto("/open-letter/testimony")
    page.fill("textarea[name=what_happened]", TESTIMONY)
    page.check("#reply-choice")
    page.click("form[data-seal] button[type=submit]")
    expect(page.locator("#reply-thanks")).to_be_visible()
    expect(page.locator("form[data-seal]")).to_be_hidden()
    code = page.locator("#reply-code").inner_text().strip()
    assert replies.shown(code) == code
    keys = replies.derive(code)
    assert page.url == f"{live_server}/open-letter/testimony"
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert code not in page.evaluate("document.cookie")
    sent = b"".join(r.body or b"" for r in log.posts())
    assert replies.normalize(code).encode() not in sent
    assert code.encode() not in sent
    assert keys.lookup.encode() not in sent  # sealed inside the testimony only
    assert (log.csp_violations(), log.js_errors(), log.foreign_requests(live_server)) == ([], [], [])

    # Staff export and open it: the testimony can be answered, under its handle.
    answers = tmp_path / "answers-1"
    assert decrypt.main(decrypt_args(export(runner, tmp_path / "one.bundle"), organizer_key_file, answers)) == 0
    (testimony,) = read_csv(answers / "open-letter-testimony.csv")
    handle = replies.handle(keys.lookup)
    assert testimony["Reply handle"] == handle
    template = read_csv(answers / "reply-template.csv")
    assert [row["handle"] for row in template] == [handle]

    # They write the reply in the template, seal it on the laptop and import it on the server.
    filled = tmp_path / "reply-template.csv"
    with filled.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(template[0]))
        writer.writeheader()
        writer.writerow({**template[0], "message": REPLY})
    sealed = tmp_path / "one.replies"
    passphrase = str(organizer_key_file.parent / "passphrase.txt")
    reply_args = [str(filled), "--bundle", str(tmp_path / "one.bundle"), "--key", str(organizer_key_file)]
    assert reply.main([*reply_args, "--passphrase-file", passphrase, "--out", str(sealed)]) == 0
    imported = runner.invoke(args=["import-replies", str(sealed)])
    assert imported.exit_code == 0, imported.output

    # Another day, another browser: the witness types the code as a person would, and reads the reply in the page.
    page, log = open_page()
    page.goto("/replies")
    page.fill("#code", code.lower().replace("-", " "))
    page.click("#lookup-form button[type=submit]")
    expect(page.locator("#reply-list .message")).to_have_text([REPLY])
    expect(page.locator("#no-replies")).to_be_hidden()
    lookup_posts = [r for r in log.posts() if r.url.endswith("/replies")]
    assert len(lookup_posts) == 1
    assert replies.normalize(code).encode() not in (lookup_posts[0].body or b"")
    assert f"lookup={keys.lookup}".encode() in (lookup_posts[0].body or b"")

    # ... and writes back; the follow-up is sealed in the page to the organizers.
    page.fill("#message", FOLLOW_UP)
    page.click("#follow-up-form button[type=submit]")
    page.wait_for_url("**/replies/thanks")
    sent = b"".join(r.body or b"" for r in log.posts())
    assert FOLLOW_UP.encode() not in sent
    assert b"Zqx" not in sent
    assert (log.csp_violations(), log.js_errors(), log.foreign_requests(live_server)) == ([], [], [])

    # Staff open the follow-up under the same handle.
    answers = tmp_path / "answers-2"
    assert decrypt.main(decrypt_args(export(runner, tmp_path / "two.bundle"), organizer_key_file, answers)) == 0
    (follow_up,) = read_csv(answers / "replies-follow-up.csv")
    assert (follow_up["Reply handle"], follow_up["Your message"]) == (handle, FOLLOW_UP)

    # The server's database and logs hold no plaintext, no code, and nothing that ties the testimony to the reply.
    logged = caplog.text
    code_forms = (code, replies.normalize(code), code.lower().replace("-", " "))
    not_stored_or_logged(app, logged, TESTIMONY, REPLY, FOLLOW_UP, "Zqv", "Zqw", "Zqx", *code_forms, handle)
    assert keys.lookup not in logged
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM submissions")).all()
        kept = conn.execute(text("SELECT * FROM replies")).all()
    assert len(kept) == 1
    public_key = keys.member()["public_key"]
    for row in rows:
        cells = " ".join(str(value) for value in row)
        assert keys.lookup not in cells
        assert handle[2:] not in cells
        assert public_key not in cells
    testimony_id = testimony["Record id"]
    assert all(testimony_id not in " ".join(str(value) for value in row) for row in kept)


def test_without_javascript_a_witness_gets_a_code_reads_the_reply_and_writes_back_and_the_server_keeps_no_code(
    app: Flask,
    runner: FlaskCliRunner,
    open_page: Callable[..., tuple[Page, PageLog]],
    script: Callable[[str], ModuleType],
    organizer_key_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tor Browser at its safest level: the server makes the code and uses it in memory, and keeps nothing of it."""
    caplog.set_level(logging.DEBUG)
    decrypt, reply = script("decrypt"), script("reply")
    page, _ = open_page(javascript=False)
    page.goto("/open-letter/testimony")
    page.fill("textarea[name=what_happened]", TESTIMONY)
    page.check("#reply-choice")
    page.click("form[data-seal] button[type=submit]")
    code = page.locator(".reply-code").first.inner_text().strip()
    keys = replies.derive(code)
    assert "/thanks" not in page.url
    assert code not in page.url

    answers = tmp_path / "answers"
    assert decrypt.main(decrypt_args(export(runner, tmp_path / "one.bundle"), organizer_key_file, answers)) == 0
    (template,) = read_csv(answers / "reply-template.csv")
    assert template["handle"] == replies.handle(keys.lookup)
    filled = tmp_path / "replies"
    filled.mkdir()
    (filled / f"{template['handle']}.txt").write_text(REPLY + "\n", encoding="utf-8")
    passphrase = str(organizer_key_file.parent / "passphrase.txt")
    args = [str(filled), "--bundle", str(tmp_path / "one.bundle"), "--key", str(organizer_key_file)]
    assert reply.main([*args, "--passphrase-file", passphrase, "--out", str(tmp_path / "one.replies")]) == 0
    assert runner.invoke(args=["import-replies", str(tmp_path / "one.replies")]).exit_code == 0

    page, _ = open_page(javascript=False)
    page.goto("/replies")
    page.fill("#code", code)
    page.click("#lookup-form button[type=submit]")
    expect(page.locator("#reply-list .message")).to_have_text([REPLY])
    page.fill("#message", FOLLOW_UP)
    page.click("#follow-up-form button[type=submit]")
    page.wait_for_url("**/replies/thanks")

    answers = tmp_path / "answers-2"
    assert decrypt.main(decrypt_args(export(runner, tmp_path / "two.bundle"), organizer_key_file, answers)) == 0
    (follow_up,) = read_csv(answers / "replies-follow-up.csv")
    assert (follow_up["Reply handle"], follow_up["Your message"]) == (template["handle"], FOLLOW_UP)
    code_forms = (code, replies.normalize(code))
    not_stored_or_logged(app, caplog.text, TESTIMONY, REPLY, FOLLOW_UP, "Zqv", "Zqw", "Zqx", *code_forms)
    assert keys.lookup not in caplog.text
