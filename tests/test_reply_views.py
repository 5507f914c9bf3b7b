"""app/replies.py: the page where a witness reads replies with their reply code (the script's lookup id answered
with sealed replies, a page without JavaScript answered with the replies opened in memory), a wrong code looking
exactly like an unanswered one, and the follow-up written back, sealed in the browser or here. The reply box of a
testimony form is in tests/test_views.py; the format itself in tests/test_replies.py."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import gettext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pages import Controls, form_tokens, open_row, public, row_count, stored
from werkzeug.test import TestResponse

from app import create_app
from app.replies import FOLLOW_UP_FORM
from app.storage import db
from papillon import envelope, replies

CODE = "7K2M9QXR4HBD0A1C5E6F8G9JTVWZ"
UNANSWERED = "ZZZZ0000ZZZZ1111ZZZZ2222ZZZZ"
WRONG = "QQQQ9999QQQQ8888QQQQ7777QQQQ"
EXPIRED = "EEEE5555EEEE6666EEEE7777EEEE"
# Words a reply or a follow-up holds: none can occur by chance in a page, a log or base64.
FIRST = "Zqv we read your account \u00e9t\u00e9; can you tell us the street?"
SECOND = "Zqv second reply <b>not markup</b>\nwith a second line"
WRITTEN_BACK = "Zqv Marigold answers: near the old mill \u0e15\u0e33\u0e23\u0e27\u0e08"
JSON = {"Accept": "application/json"}
FORM_TYPE = "application/x-www-form-urlencoded"
TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S)
HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)
SUBMISSION_VALUE = re.compile(r'(name="submission_id" type="hidden" value=")[^"]+"')
TOKEN_VALUE = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+"')


def put_replies(app: Flask, code: str, *messages: tuple[str, str]) -> None:
    """Replies to a code, sealed as the laptop seals them and imported as import-replies does."""
    keys = replies.derive(code)
    member = replies.read_member(keys.member())
    with app.app_context():
        db.import_replies(replies.SealedReply(keys.lookup, replies.seal(text, day, member)) for text, day in messages)


def page(client: FlaskClient, path: str = "/replies") -> dict[str, str]:
    """The hidden values of the replies page: the CSRF token (both forms share it) and the follow-up's number."""
    response = client.get(path)
    assert response.status_code == 200
    return form_tokens(response.get_data(as_text=True))


def look_up(client: FlaskClient, code: str, path: str = "/replies") -> TestResponse:
    """What a page without JavaScript posts: the code as typed."""
    return client.post(path, data={"csrf_token": page(client, path)["csrf_token"], "code": code})


def look_up_id(client: FlaskClient, lookup: str) -> TestResponse:
    """What replies.js posts: the lookup id alone, asking for JSON."""
    return client.post("/replies", data={"csrf_token": page(client)["csrf_token"], "lookup": lookup}, headers=JSON)


def main(response: TestResponse) -> str:
    text = response.get_data(as_text=True)
    return text[text.index('<main id="main">') : text.index("</main>")]


def follow_up_envelope(organizer_key: X25519PrivateKey, message: str, code: str = CODE) -> str:
    """What seal.js posts from the follow-up form: the message and the code's reply member, sealed."""
    data = envelope.plaintext({"message": message}, 1, "en", reply=replies.derive(code).member())
    return envelope.seal(data, [public(organizer_key)], replies.CAMPAIGN, replies.FOLLOW_UP).to_json()


def database_bytes(app: Flask) -> bytes:
    path = Path(str(app.config["DATABASE_URL"]).removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


# --- the page ----------------------------------------------------------------------------------------------------


def test_the_replies_page_carries_what_its_scripts_rely_on(client, organizer_key):
    response = client.get("/replies")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    for script in ("seal.js", "replies.js"):
        assert re.search(rf'<script src="/static/{script}\?v=[0-9a-f]+" defer></script>', text)
    controls = Controls(text)
    lookup, follow_up = (attrs for tag, attrs in controls.tags if tag == "form")
    assert (lookup["id"], lookup["action"], lookup["method"]) == ("lookup-form", "/replies", "post")
    assert set(json.loads(lookup["data-replies"])["messages"]) == {"reading", "bad_code", "failed", "unsupported"}
    ((_, code),) = controls.named("code")
    assert {k: code[k] for k in ("id", "type", "autocomplete", "autocapitalize", "spellcheck")} == {
        "id": "code",
        "type": "text",
        "autocomplete": "off",
        "autocapitalize": "characters",
        "spellcheck": "false",
    }
    assert "required" in code
    assert '<p id="lookup-status" role="status" aria-live="polite" tabindex="-1" hidden></p>' in text
    assert '<section id="replies-found" aria-labelledby="replies-title" hidden>' in text
    assert '<ol id="reply-list" class="replies"></ol>' in text
    assert re.search(r'<p id="no-replies" hidden>[^<]+</p>', text)
    assert (follow_up["id"], follow_up["action"], "hidden" in follow_up) == (
        "follow-up-form",
        "/replies/follow-up",
        True,
    )
    seal = json.loads(follow_up["data-seal"])
    key = public(organizer_key)
    assert seal["info"] == "papillon/v2/replies/follow-up"
    assert (seal["version"], seal["form_version"], seal["pad_block"]) == (envelope.VERSION, 1, envelope.PAD_BLOCK)
    assert seal["keys"] == [{"key_id": key.key_id, "public_key": key.to_b64()}]
    assert seal["fields"] == [{"name": "message", "type": "long_text"}]
    assert set(seal["checks"]["message"]) == {"missing", "long"}
    assert seal["honeypot"] == "website"
    ((tag, message),) = controls.named("message")
    assert (tag, message["id"], message["maxlength"], "required" in message) == ("textarea", "message", "4000", True)
    assert controls.named("website")
    assert '<p id="seal-status" role="status" aria-live="polite" tabindex="-1" hidden></p>' in text
    assert not controls.named("code")[1:], "no code is held before one is looked up"


REPLY_PAGES = ["/replies", "/replies/thanks", "/ko/replies"]


@pytest.mark.parametrize("path", REPLY_PAGES)
def test_the_reply_pages_run_no_inline_script_and_load_nothing_from_elsewhere(client, app, path):
    assert_needs_nothing_the_policy_forbids(app, client.get(path))


def test_a_looked_up_page_and_a_refused_code_run_no_inline_script_either(client, app):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    assert_needs_nothing_the_policy_forbids(app, look_up(client, CODE))
    assert_needs_nothing_the_policy_forbids(app, look_up(client, "not a code"))


def assert_needs_nothing_the_policy_forbids(app: Flask, response: TestResponse) -> None:
    text = response.get_data(as_text=True)
    assert "<main" in text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text)
    assert not re.search(r"<style\b", text)
    assert not re.search(r"\sstyle=", text)
    assert not re.search(r"\son[a-z]+=", text)
    for url in re.findall(r'\b(?:src|href|action)="([^"]*)"', text):
        assert url.startswith(("/", "#")) or html.unescape(url) == app.config["PAPILLON_QUICK_EXIT_URL"], url
    assert "'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("tag", ["ko", "th", "fr"])
def test_the_replies_page_in_a_named_language_keeps_it_in_every_address_and_in_what_it_seals(client, app, tag):
    response = client.get(f"/{tag}/replies")
    assert response.status_code == 200
    assert response.headers["Content-Language"] == tag
    text = response.get_data(as_text=True)
    assert f'<html lang="{tag}">' in text
    lookup, follow_up = (attrs for name, attrs in Controls(text).tags if name == "form")
    assert lookup["action"] == f"/{tag}/replies"
    assert follow_up["action"] == f"/{tag}/replies/follow-up"
    assert json.loads(follow_up["data-seal"])["locale"] == tag
    with app.test_request_context(f"/{tag}/"):
        neutral, hint = (
            gettext("Messages"),
            gettext("On a shared phone or computer, a private window keeps this page out of the history."),
        )
    assert (html.unescape(TITLE.search(text)[1]), html.unescape(HEADING.search(text)[1])) == (neutral, neutral)
    assert f'<p class="hint" id="private-hint">{html.escape(hint, quote=False)}</p>' in text
    answered = look_up(client, CODE, f"/{tag}/replies")
    assert f'<html lang="{tag}">' in answered.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/replies", "/replies/thanks"])
def test_the_reply_pages_name_no_topic_in_their_tab_title_or_heading(client, path):
    text = client.get(path).get_data(as_text=True)
    said = f"{TITLE.search(text)[1]} {HEADING.search(text)[1]}".casefold()
    assert said.strip() in {"messages messages", "thank you thank you"}
    for word in ("repl", "testimon", "harm", "report", "letter", "petition"):
        assert word not in said


def test_without_javascript_the_page_says_the_code_travels_to_the_server_for_that_request(client):
    text = client.get("/replies").get_data(as_text=True)
    lookup = text[text.index('id="lookup-form"') : text.index("</form>")]
    note = lookup[lookup.index("<noscript>") : lookup.index("</noscript>")]
    assert "HTTPS" in note
    assert "only for this request" in note
    assert "never leaves this device" in note


@pytest.mark.parametrize(
    ("path", "link"), [("/petition/", "/replies"), ("/letter/", "/replies"), ("/ko/petition/", "/ko/replies")]
)
def test_every_campaign_page_links_to_the_replies_page(client, path, link):
    assert f'href="{link}"' in client.get(path).get_data(as_text=True)


def test_the_replies_address_is_not_taken_for_a_campaign_or_form(client):
    assert client.get("/replies/").status_code == 404
    assert client.get("/replies/follow-up").status_code == 404
    assert client.post("/replies/thanks").status_code == 404


# --- looking up: the script's lookup id -------------------------------------------------------------------------


def test_a_lookup_id_is_answered_with_its_sealed_replies_and_an_unknown_one_with_none(client, app):
    put_replies(app, CODE, (FIRST, "2026-01-02"), (SECOND, "2026-01-05"))
    put_replies(app, UNANSWERED.replace("Z", "Y"), ("Zqv for someone else", "2026-01-03"))
    response = look_up_id(client, replies.derive(CODE).lookup)
    assert response.status_code == 200
    sealed = response.get_json()["replies"]
    assert len(sealed) == 2
    keys = replies.derive(CODE)
    assert sorted(replies.open_reply(s, keys)["message"] for s in sealed) == sorted([FIRST, SECOND])
    assert FIRST not in response.get_data(as_text=True)
    assert look_up_id(client, replies.derive(UNANSWERED).lookup).get_json() == {"replies": []}


def test_a_wrong_code_an_unanswered_one_and_one_whose_replies_expired_get_the_very_same_json(client, app):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    put_replies(app, EXPIRED, (SECOND, "2026-01-02"))
    with app.app_context(), db.engine.begin() as conn:
        old = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=app.config["PAPILLON_REPLY_RETENTION_DAYS"] + 1)
        conn.execute(
            sa.text("UPDATE replies SET imported_on = :day WHERE lookup = :lookup"),
            {"day": old, "lookup": replies.derive(EXPIRED).lookup},
        )
    answered = look_up_id(client, replies.derive(CODE).lookup)
    found = [look_up_id(client, replies.derive(code).lookup) for code in (WRONG, UNANSWERED, EXPIRED)]
    assert [r.status_code for r in found] == [200, 200, 200]
    assert found[0].data == found[1].data == found[2].data
    assert found[0].get_json() == {"replies": []}
    assert len(answered.get_json()["replies"]) == 1  # the same request finds replies that are there
    headers = [{k: v for k, v in r.headers if k != "Set-Cookie"} for r in found]
    assert headers[0] == headers[1] == headers[2]


# --- looking up without JavaScript: the code, used in memory -------------------------------------------------------


def test_a_code_without_javascript_opens_its_replies_in_order_and_offers_the_follow_up(client, app):
    put_replies(app, CODE, (SECOND, "2026-02-10"), (FIRST, "2026-01-02"))
    response = look_up(client, "7k2m 9qxr-4hbd 0a1c 5e6f 8g9j tvwz")
    assert response.status_code == 200
    text = main(response)
    items = re.findall(r"<li>.*?</li>", text, re.S)
    assert items == [
        f'<li><p class="written-on"><time datetime="{day}">{day}</time></p>'
        f'<p class="message">{html.escape(message, quote=False)}</p></li>'
        for message, day in [(FIRST, "2026-01-02"), (SECOND, "2026-02-10")]
    ]
    assert "<b>not markup</b>" not in text
    assert '<section id="replies-found" aria-labelledby="replies-title">' in text
    assert re.search(r'<p id="no-replies" hidden>', text)
    follow_up = next(attrs for tag, attrs in Controls(text).tags if tag == "form" and attrs["id"] == "follow-up-form")
    assert "hidden" not in follow_up
    ((_, held),) = [c for c in Controls(text).named("code") if c[1].get("type") == "hidden"]
    assert held["value"] == CODE


def test_a_code_without_replies_says_so_calmly_and_still_offers_the_follow_up(client, app):
    text = main(look_up(client, UNANSWERED))
    assert '<ol id="reply-list" class="replies"></ol>' in text
    assert re.search(r'<p id="no-replies">No messages for this code yet', text)
    follow_up = next(attrs for tag, attrs in Controls(text).tags if tag == "form" and attrs["id"] == "follow-up-form")
    assert "hidden" not in follow_up


def test_a_reply_that_does_not_open_is_left_out_not_an_error(client, app):
    keys = replies.derive(CODE)
    stranger = replies.read_member(replies.derive(WRONG).member())
    with app.app_context():
        db.import_replies(
            [replies.SealedReply(keys.lookup, replies.seal("Zqv sealed to another code", "2026-01-01", stranger))]
        )
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    response = look_up(client, CODE)
    assert response.status_code == 200
    text = html.unescape(main(response))
    assert FIRST in text
    assert "another code" not in text
    assert text.count("<li>") == 1


def normalized(response: TestResponse, code: str) -> str:
    """A page with what differs from one visit to the next taken out: its token, its number, the code it holds."""
    text = TOKEN_VALUE.sub(r'\1"', SUBMISSION_VALUE.sub(r'\1"', response.get_data(as_text=True)))
    return text.replace(replies.normalize(code), "CODE")


def test_a_wrong_code_and_an_unanswered_one_get_the_very_same_page(client, app):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    wrong, unanswered = look_up(client, WRONG), look_up(client, UNANSWERED)
    assert wrong.status_code == unanswered.status_code == 200
    assert normalized(wrong, WRONG) == normalized(unanswered, UNANSWERED)
    assert len(wrong.data) == len(unanswered.data)


@pytest.mark.parametrize("typed", ["Zqv-my-secret-guess", CODE[:-1], CODE + "X", "U" + CODE[1:], " "])
def test_a_malformed_code_comes_back_with_a_message_beside_the_field_and_is_not_shown_again(client, app, typed):
    response = look_up(client, typed)
    assert response.status_code == 400
    text = main(response)
    error = re.search(r'<p class="error" id="code-error">([^<]+)</p>', text)
    assert error
    assert "28 letters and digits" in error[1]
    assert 'aria-invalid="true"' in text
    if typed.strip():
        assert typed not in response.get_data(as_text=True)
    assert '<section id="replies-found" aria-labelledby="replies-title" hidden>' in text
    assert form_tokens(response.get_data(as_text=True))["csrf_token"], "the page can be used again at once"


# --- refusals ---------------------------------------------------------------------------------------------------------

LOOKUP = replies.derive(CODE).lookup


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({"lookup": LOOKUP}, JSON),
        ({"code": CODE}, {}),
        ({"csrf_token": True}, JSON),
        ({"csrf_token": True, "lookup": LOOKUP, "code": CODE}, JSON),
        ({"csrf_token": True, "lookup": LOOKUP, "submission_id": "0" * 32}, JSON),
        ({"csrf_token": True, "lookup": [LOOKUP, LOOKUP]}, JSON),
        ({"csrf_token": True, "code": [CODE, CODE]}, {}),
        ({"csrf_token": True, "lookup": LOOKUP.upper()}, JSON),
        ({"csrf_token": True, "lookup": LOOKUP[:-1]}, JSON),
        ({"csrf_token": True, "lookup": LOOKUP + "0"}, JSON),
        ({"csrf_token": True, "lookup": "../" + LOOKUP[3:]}, JSON),
        ({"csrf_token": True, "lookup": LOOKUP}, {}),
        ({"csrf_token": True, "code": CODE}, JSON),
    ],
    ids=[
        "no token, lookup",
        "no token, code",
        "neither",
        "both",
        "an unknown field",
        "a repeated lookup",
        "a repeated code",
        "upper-case lookup",
        "short lookup",
        "long lookup",
        "a path for a lookup",
        "a lookup asking for a page",
        "a code asking for json",
    ],
)
def test_a_lookup_body_no_page_sends_is_refused_whole(client, app, fields, headers):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    token = page(client)["csrf_token"]
    data = {name: token if value is True else value for name, value in fields.items()}
    response = client.post("/replies", data=data, headers=headers)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert FIRST not in html.unescape(text)
    assert 'class="message"' not in text
    if headers:
        assert response.get_json()["error"]
    else:
        assert 'id="error-message"' in text
    assert row_count(app) == 0


def test_a_lookup_that_is_not_a_form_post_is_refused(client, app):
    token = page(client)["csrf_token"]
    body = json.dumps({"csrf_token": token, "lookup": LOOKUP})
    response = client.post("/replies", data=body, content_type="application/json", headers=JSON)
    assert response.status_code == 415
    assert "replies" not in response.get_json()


def test_a_stale_page_is_refused_with_a_clear_message_and_nothing_looked_up(client, app, monkeypatch):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    page(client)
    by_script = client.post("/replies", data={"csrf_token": "expired", "lookup": LOOKUP}, headers=JSON)
    assert by_script.status_code == 400
    assert by_script.get_json() == {"error": "This page has expired. Please reload it and type your code again."}
    by_page = client.post("/replies", data={"csrf_token": "expired", "code": CODE})
    assert by_page.status_code == 400
    text = main(by_page)
    assert "This page had expired, so nothing was looked up. Please type your code again." in text
    assert FIRST not in html.unescape(text)
    assert '<section id="replies-found" aria-labelledby="replies-title" hidden>' in text
    assert CODE not in by_page.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/replies", "/replies/follow-up"])
def test_lookups_and_follow_ups_are_rate_limited_like_answers(config, path):
    app = create_app({**config, "RATELIMIT_ENABLED": True, "RATELIMIT_SUBMIT": "2 per minute"})
    with app.app_context():
        db.create_schema()
    client = app.test_client()
    token = page(client)["csrf_token"]
    statuses = [client.post(path, data={"csrf_token": token, "code": UNANSWERED}).status_code for _ in range(3)]
    assert 429 not in statuses[:2]
    assert statuses[2] == 429
    assert "Too many tries" in client.post(path, data={"csrf_token": token, "code": UNANSWERED}).get_data(as_text=True)


# --- writing back ---------------------------------------------------------------------------------------------------


def test_a_follow_up_sealed_in_the_browser_is_stored_under_replies_and_opens_to_the_message(client, app, organizer_key):
    tokens = page(client)
    sealed = follow_up_envelope(organizer_key, WRITTEN_BACK)
    response = client.post("/replies/follow-up", data={**tokens, "envelope": sealed}, headers=JSON)
    assert response.status_code == 200
    assert response.get_json() == {"thanks": "/replies/thanks"}
    (row,) = stored(app)
    assert (row.id, row.campaign, row.form, row.sealed_by) == (
        tokens["submission_id"],
        "replies",
        "follow-up",
        "browser",
    )
    doc = open_row(row, organizer_key)
    assert doc["answers"] == {"message": WRITTEN_BACK}
    assert replies.read_member(doc["reply"]).lookup == LOOKUP
    thanks = client.get("/replies/thanks")
    assert thanks.status_code == 200
    assert "the same code" in thanks.get_data(as_text=True)


def test_a_follow_up_envelope_sent_again_is_stored_once_and_a_changed_one_refused_with_409(client, app, organizer_key):
    tokens = page(client)
    sealed = follow_up_envelope(organizer_key, WRITTEN_BACK)
    for _ in range(2):
        assert client.post("/replies/follow-up", data={**tokens, "envelope": sealed}).status_code == 303
    other = follow_up_envelope(organizer_key, "Zqv something else")
    changed = client.post("/replies/follow-up", data={**tokens, "envelope": other}, headers=JSON)
    assert changed.status_code == 409
    assert "already received" in changed.get_json()["error"]
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"] == {"message": WRITTEN_BACK}


@pytest.mark.parametrize(
    "problem",
    ["sealed to another key", "not an envelope", "no token", "with a code", "with a message"],
)
def test_a_follow_up_envelope_that_is_not_right_is_refused_and_nothing_stored(client, app, organizer_key, problem):
    tokens = page(client)
    sealed = follow_up_envelope(organizer_key, WRITTEN_BACK)
    data: dict[str, str] = {**tokens, "envelope": sealed}
    if problem == "sealed to another key":
        data["envelope"] = follow_up_envelope(X25519PrivateKey.generate(), WRITTEN_BACK)
    elif problem == "not an envelope":
        data["envelope"] = json.dumps({"answers": {"message": WRITTEN_BACK}})
    elif problem == "no token":
        data["csrf_token"] = "expired"
    elif problem == "with a code":
        data["code"] = CODE
    else:
        data["message"] = WRITTEN_BACK
    response = client.post("/replies/follow-up", data=data, headers=JSON)
    assert response.status_code == 400
    assert response.get_json()["error"]
    assert stored(app) == []


def test_a_follow_up_without_javascript_is_sealed_here_with_the_codes_reply_member(client, app, organizer_key):
    looked_up = look_up(client, CODE)
    tokens = form_tokens(looked_up.get_data(as_text=True))
    data = {**tokens, "code": CODE, "message": f"  {WRITTEN_BACK}\r\n"}
    response = client.post("/replies/follow-up", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/replies/thanks"
    (row,) = stored(app)
    assert (row.id, row.campaign, row.form, row.sealed_by) == (
        tokens["submission_id"],
        "replies",
        "follow-up",
        "server",
    )
    doc = open_row(row, organizer_key)
    assert doc["answers"] == {"message": WRITTEN_BACK}
    assert (doc["form_version"], doc["locale"]) == (1, "en")
    member = replies.read_member(doc["reply"])
    assert member.lookup == replies.derive(CODE).lookup
    assert member.public_key == replies.derive(CODE).public
    assert list(doc) == ["answers", "form_version", "locale", "reply"]


def test_a_follow_up_without_javascript_sent_again_is_stored_once_and_a_changed_one_comes_back_with_409(
    client, app, organizer_key
):
    tokens = form_tokens(look_up(client, CODE).get_data(as_text=True))
    for _ in range(2):
        sent = client.post("/replies/follow-up", data={**tokens, "code": CODE, "message": WRITTEN_BACK})
        assert sent.status_code == 303
    changed = client.post("/replies/follow-up", data={**tokens, "code": CODE, "message": "Zqv changed my mind"})
    assert changed.status_code == 409
    text = html.unescape(main(changed))
    assert "already received, and these are different" in text
    assert "Zqv changed my mind" in text, "the message is back on the page, nothing lost"
    assert form_tokens(changed.get_data(as_text=True))["submission_id"] != tokens["submission_id"]
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"] == {"message": WRITTEN_BACK}


@pytest.mark.parametrize(
    ("message", "token", "said"),
    [
        ("   ", None, "This field is required."),
        ("Zqv " + "x" * 4000, None, "Please keep this under 4000 characters."),
        (WRITTEN_BACK, "expired", "This page had expired. Please check your answers and send them again."),
    ],
    ids=["empty", "too long", "expired page"],
)
def test_a_follow_up_without_javascript_that_cannot_be_stored_comes_back_with_the_message_kept(
    client, app, message, token, said
):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    tokens = form_tokens(look_up(client, CODE).get_data(as_text=True))
    data = {**tokens, "code": CODE, "message": message, **({"csrf_token": token} if token else {})}
    response = client.post("/replies/follow-up", data=data)
    assert response.status_code == 400
    text = main(response)
    assert said in html.unescape(text)
    if message.strip():
        ((_, textarea),) = Controls(text).named("message")
        assert html.unescape(text.split('id="message"', 1)[1].split("</textarea>", 1)[0]).endswith(message)
        assert textarea.get("aria-invalid") == ("true" if token is None else None)
    ((_, held),) = [c for c in Controls(text).named("code") if c[1].get("type") == "hidden"]
    assert held["value"] == CODE
    assert FIRST in html.unescape(text), "the replies are still there to read"
    assert form_tokens(response.get_data(as_text=True))["submission_id"] == tokens["submission_id"]
    assert stored(app) == []


@pytest.mark.parametrize("code", [None, "", "Zqv not a code", CODE[:-1]])
def test_a_follow_up_without_javascript_and_without_a_whole_code_is_refused(client, app, code):
    data = {**page(client), "message": WRITTEN_BACK, **({} if code is None else {"code": code})}
    response = client.post("/replies/follow-up", data=data)
    assert response.status_code == 400
    assert WRITTEN_BACK not in html.unescape(response.get_data(as_text=True))
    if code:
        assert code not in response.get_data(as_text=True)
    assert stored(app) == []


@pytest.mark.parametrize(
    "extra",
    [{"reply": "yes"}, {"lookup": LOOKUP}, {"what_happened": "x"}, {"message": ["a", "b"]}],
    ids=["a reply box", "a lookup", "a field of another form", "a repeated message"],
)
def test_a_follow_up_body_no_page_sends_is_refused_whole(client, app, extra):
    data = {**page(client), "code": CODE, "message": WRITTEN_BACK, **extra}
    assert client.post("/replies/follow-up", data=data).status_code == 400
    assert stored(app) == []


def test_a_follow_up_without_its_submission_number_is_refused(client, app):
    data = {"csrf_token": page(client)["csrf_token"], "code": CODE, "message": WRITTEN_BACK}
    assert client.post("/replies/follow-up", data=data).status_code == 400
    assert stored(app) == []


def test_a_bot_filling_the_honeypot_is_thanked_and_nothing_stored(client, app):
    data = {**page(client), "code": CODE, "message": WRITTEN_BACK, "website": "http://spam.example"}
    response = client.post("/replies/follow-up", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/replies/thanks"
    assert stored(app) == []


# --- nothing in the clear, anywhere -----------------------------------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, SQLAlchemy's statements included."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    return caplog


def test_lookups_and_follow_ups_leave_nothing_in_the_clear_in_the_database_or_the_log(client, app, organizer_key, logs):
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    logs.clear()
    assert look_up(client, CODE).status_code == 200
    assert look_up(client, UNANSWERED).status_code == 200
    assert look_up_id(client, replies.derive(UNANSWERED).lookup).status_code == 200
    tokens = form_tokens(look_up(client, CODE).get_data(as_text=True))
    assert client.post("/replies/follow-up", data={**tokens, "code": CODE, "message": WRITTEN_BACK}).status_code == 303
    scripted = page(client)
    sealed = follow_up_envelope(organizer_key, WRITTEN_BACK + " again", UNANSWERED)
    assert client.post("/replies/follow-up", data={**scripted, "envelope": sealed}).status_code == 303
    assert len(stored(app)) == 2
    logged = logs.text + "\n".join(str(r.args) for r in logs.records)
    saved = database_bytes(app)
    for code in (CODE, UNANSWERED):
        for said in (code, replies.shown(code), replies.derive(code).lookup):
            assert said not in logged
        assert code.encode() not in saved
    assert replies.derive(UNANSWERED).lookup.encode() not in saved
    for text in (FIRST, WRITTEN_BACK, "Marigold"):
        assert text not in logged
        assert text.encode() not in saved


# --- random posts: never a 5xx, and a row only from a valid follow-up ----------------------------------------------

NAMES = ["csrf_token", "submission_id", "lookup", "code", "message", "envelope", "website", "reply", "pow"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/replies", "/replies/follow-up"]),
    fields=st.lists(
        st.tuples(
            st.sampled_from(NAMES) | st.text(max_size=6),
            st.sampled_from(["TOKEN", "0" * 32, CODE, LOOKUP, "{}", "yes"]) | st.text(max_size=30),
        ),
        max_size=6,
    ),
    as_json=st.booleans(),
)
def test_random_posts_at_the_reply_pages_never_cause_a_5xx_nor_an_invalid_row(
    app, client, organizer_key, path, fields, as_json
):
    token = page(client)["csrf_token"]
    data = [(name, token if value == "TOKEN" else value) for name, value in fields]
    body = urlencode(data)
    response = client.post(path, data=body, content_type=FORM_TYPE, headers=JSON if as_json else {})
    assert response.status_code < 500
    for row in stored(app):
        assert (row.campaign, row.form) == ("replies", "follow-up")
        doc = open_row(row, organizer_key)
        assert FOLLOW_UP_FORM.check(doc["answers"]) == {}
        assert replies.read_member(doc["reply"]).lookup == LOOKUP


def test_a_lookup_with_a_reply_and_one_without_are_the_same_size_on_the_wire_and_never_cached(client, app):
    """SECURITY.md, "Anonymous replies": a hostile network sees padded answers, so one reply and none look alike."""
    put_replies(app, CODE, (FIRST, "2026-01-02"))
    answered = look_up_id(client, replies.derive(CODE).lookup)
    unanswered = look_up_id(client, replies.derive(UNANSWERED).lookup)
    assert len(answered.get_json()["replies"]) == 1
    assert len(answered.data) == len(unanswered.data) == app.config["PAPILLON_PAD_BYTES"]
    pages = [look_up(client, code) for code in (CODE, UNANSWERED)]
    assert len(pages[0].data) == len(pages[1].data)
    assert all(r.headers["Cache-Control"] == "no-store" for r in [answered, unanswered, *pages])
