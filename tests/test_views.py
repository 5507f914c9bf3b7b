"""app/views.py: the campaign pages, the sealing settings a form page carries, and the submission loop (plain
answers sealed here or an envelope sealed in the browser, each stored once, refusals that store nothing, a 503 when
the database is down). How a form renders its fields and reads the answers is in tests/test_forms.py."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import shutil
import socket
import sqlite3
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask_babel import gettext
from pages import (
    CAMPAIGNS,
    FORMS,
    SUBMISSION,
    Controls,
    definition,
    form_data,
    form_tokens,
    open_row,
    page_tokens,
    public,
    script_envelope,
    stored,
    valid_answers,
)
from sqlalchemy.exc import OperationalError

from app.forms import new_submission_id
from app.site import site
from app.storage import db
from papillon import campaigns as c
from papillon import envelope, languages, replies


def typed_text(answers: dict[str, c.Answer]) -> list[str]:
    """The answers a person typed (choices aside): none can occur by chance in base64 or a page."""
    return [v for v in answers.values() if isinstance(v, str) and v.startswith(("Zqv", "zqv", "+1", "H2X"))]


def post(client, campaign: str, form: str, data: dict[str, object]):
    return client.post(f"/{campaign}/{form}", data=data)


# --- pages ----------------------------------------------------------------------------


def test_index_lists_both_campaigns(client, app):
    response = client.get("/")
    assert response.status_code == 200
    body = html.unescape(response.get_data(as_text=True))
    for slug, campaign in site(app).campaigns.items():
        assert campaign.title in body
        assert f'href="/{slug}/"' in body


@pytest.mark.parametrize("slug", ["petition", "letter"])
def test_campaign_page_shows_its_text_and_links_to_its_forms(client, app, slug):
    campaign = site(app).campaigns[slug]
    response = client.get(f"/{slug}/")
    assert response.status_code == 200
    body = html.unescape(response.get_data(as_text=True))
    assert campaign.title in body
    for paragraph in campaign.paragraphs():
        assert paragraph in body
    for form in campaign.forms.values():
        assert f'href="/{slug}/{form.slug}"' in body
        assert form.title in body


@pytest.mark.parametrize(
    "path", ["/nowhere/", "/nowhere/sign", "/letter/testimony", "/letter/nothing", "/petition/x/thanks"]
)
def test_unknown_campaign_or_form_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "There is no page at this address." in response.get_data(as_text=True)


def test_posting_to_an_unknown_form_is_404_and_stores_nothing(client, app):
    response = client.post("/letter/testimony", data={"what_happened": "x"})
    assert response.status_code == 404
    assert stored(app) == []


def test_healthz_answers_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n"


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_form_page_carries_the_sealing_settings_for_the_browser(client, app, organizer_key, campaign, form):
    controls = Controls(client.get(f"/{campaign}/{form}").get_data(as_text=True))
    form_tag = controls.form_tag()
    assert form_tag["method"] == "post"
    assert form_tag["action"] == f"/{campaign}/{form}"
    seal = json.loads(form_tag["data-seal"])
    key = public(organizer_key)
    assert seal["info"] == f"papillon/v2/{campaign}/{form}"
    assert seal["version"] == envelope.VERSION
    assert seal["keys"] == [{"key_id": key.key_id, "public_key": key.to_b64()}]
    assert seal["pad_block"] == envelope.PAD_BLOCK
    assert seal["form_version"] == definition(campaign, form).version


def test_static_files_are_addressed_by_their_content_so_no_stale_script_meets_a_new_page(client, app):
    page = client.get("/petition/sign").get_data(as_text=True)
    for name in ("seal.js", "exit.js", "papillon.css"):
        digest = hashlib.sha256((Path(app.static_folder) / name).read_bytes()).hexdigest()[:12]
        assert f"/static/{name}?v={digest}" in page
        with client.get(f"/static/{name}?v={digest}") as response:
            assert response.status_code == 200


def test_form_page_shows_the_key_fingerprint(client, organizer_key):
    body = client.get("/petition/sign").get_data(as_text=True)
    assert public(organizer_key).fingerprint in body


def test_each_form_page_gets_a_fresh_submission_id(client):
    first = page_tokens(client)["submission_id"]
    second = page_tokens(client)["submission_id"]
    assert first != second
    assert len(first) == 32


# --- discreet on a shared phone: a neutral title, a word about private windows, sealing said once ---------------

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.S)
HEADING = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)
WORD = re.compile(r"\w+")


def in_language(app, tag: str, message: str) -> str:
    with app.test_request_context(f"/{tag}/"):
        return gettext(message)


def title_and_heading(client, path: str) -> tuple[str, str]:
    page = client.get(path).get_data(as_text=True)
    title, heading = TITLE.search(page), HEADING.search(page)
    assert title, path
    assert heading, path
    return html.unescape(title[1]).strip(), html.unescape(heading[1]).strip()


def topic_words(campaign: c.Campaign, form: c.Form) -> set[str]:
    return {w.casefold() for w in WORD.findall(f"{campaign.title} {form.title}") if len(w) > 2}


def assert_names_no_topic(app, client, campaign_slug: str, form_slug: str, tag: str) -> None:
    campaign = site(app).localized[campaign_slug, tag]
    form = campaign.forms[form_slug]
    words = topic_words(campaign, form) | topic_words(site(app).campaigns[campaign_slug], form)
    neutral = in_language(app, tag, "Form")
    for path, shown in [
        (f"/{tag}/{campaign_slug}/{form_slug}", (neutral, neutral)),
        (f"/{tag}/{campaign_slug}/{form_slug}/thanks", (in_language(app, tag, "Thank you"),) * 2),
    ]:
        title, heading = title_and_heading(client, path)
        assert (title, heading) == shown, path
        said = {w.casefold() for w in WORD.findall(f"{title} {heading}")}
        assert said.isdisjoint(words), path
        assert form.title not in title
        assert campaign.title not in title


@pytest.mark.parametrize("tag", ["en", "fr", "ko", "th"])
@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_a_form_and_its_thank_you_page_name_no_topic_in_their_title_or_heading(client, app, campaign, form, tag):
    assert definition(campaign, form).discreet, "the tests' own forms keep the default"
    assert_names_no_topic(app, client, campaign, form, tag)


@pytest.mark.parametrize("tag", list(languages.NAMES))
def test_the_shipped_testimony_form_gives_nothing_away_in_its_title(shipped_campaigns, client, app, tag):
    for campaign in site(app).campaigns.values():
        for form in campaign.forms.values():
            assert form.discreet, f"{campaign.slug}/{form.slug} keeps the default"
            assert_names_no_topic(app, client, campaign.slug, form.slug, tag)
    title, heading = title_and_heading(client, f"/{tag}/open-letter/testimony")
    for word in ("harm", "report", "anonym", "letter", "traffick"):
        assert word not in f"{title} {heading}".casefold()


def test_the_form_title_shows_nowhere_on_a_discreet_form_page(client, app):
    page = html.unescape(client.get("/petition/testimony").get_data(as_text=True))
    assert definition("petition", "testimony").title not in page


@pytest.fixture
def not_discreet(config, tmp_path) -> Path:
    """The tests' campaigns, with the letter's form opted out of the neutral title."""
    folder = tmp_path / "campaigns"
    shutil.copytree(CAMPAIGNS, folder)
    letter = folder / "letter.toml"
    text = letter.read_text(encoding="utf-8")
    assert text.count('submit = "Sign the letter"\n') == 1
    letter.write_text(text.replace('submit = "Sign the letter"\n', 'submit = "Sign the letter"\ndiscreet = false\n'))
    config["PAPILLON_CAMPAIGNS_DIR"] = str(folder)
    return folder


def test_a_form_that_opts_out_shows_its_own_title_on_its_pages(not_discreet, client, app):
    form = site(app).campaigns["letter"].forms["sign"]
    assert not form.discreet
    assert title_and_heading(client, "/letter/sign") == (form.title, form.title)
    title, heading = title_and_heading(client, "/letter/sign/thanks")
    assert (title, heading) == (form.title, "Thank you")
    assert site(app).campaigns["petition"].forms["sign"].discreet
    assert title_and_heading(client, "/petition/sign") == ("Form", "Form")


def test_an_opted_out_title_left_untranslated_is_marked_with_its_language(not_discreet, client, app):
    page = client.get("/vi/letter/sign").get_data(as_text=True)
    assert '<title lang="en">Sign the test letter</title>' in page
    assert '<h1 lang="en">Sign the test letter</h1>' in page
    thanks = client.get("/vi/letter/sign/thanks").get_data(as_text=True)
    assert '<title lang="en">Sign the test letter</title>' in thanks
    assert "<title>Biểu mẫu</title>" in client.get("/vi/petition/sign").get_data(as_text=True)


@pytest.mark.parametrize("value", ['"no"', "0", "1"])
def test_discreet_must_be_true_or_false(value):
    text = (CAMPAIGNS / "letter.toml").read_text(encoding="utf-8")
    text = text.replace('submit = "Sign the letter"\n', f'submit = "Sign the letter"\ndiscreet = {value}\n')
    with pytest.raises(c.CampaignError, match=r"forms\[0\]\.discreet: must be bool"):
        c.from_dict(tomllib.loads(text), "letter.toml")


@pytest.mark.parametrize("tag", list(languages.NAMES))
@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_each_form_page_suggests_a_private_window_calmly_in_its_language(client, app, campaign, form, tag):
    page = client.get(f"/{tag}/{campaign}/{form}").get_data(as_text=True)
    hint = "On a shared phone or computer, a private window keeps this page out of the history."
    said = in_language(app, tag, hint)
    assert f'<p class="hint" id="private-hint">{html.escape(said, quote=False)}</p>' in page
    assert (said == hint) == (tag == "en")


SEALING_WORDS = re.compile(r"\bseal", re.I)


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_the_page_says_how_answers_are_sealed_once_beside_the_button(client, app, organizer_key, campaign, form):
    page = client.get(f"/{campaign}/{form}").get_data(as_text=True)
    main = page[page.index('<main id="main">') : page.index("</main>")]
    before, note = main.split('<div class="sealing" id="sealing-note">', 1)
    note, after = note.split("</div>", 1)
    # Before the note: the fields and the campaign's own words only; the interface says nothing of sealing there.
    own = definition(campaign, form).intro
    assert not SEALING_WORDS.search(html.unescape(re.sub(r'data-seal="[^"]*"', "", before)).replace(own, ""))
    assert after.strip().startswith('<button type="submit"')
    assert after.count("<button") == 1
    # With JavaScript off the noscript note says it; with it on, seal.js says it in #seal-status, empty till then.
    assert note.count("<noscript>") == 1
    assert '<p id="seal-status" role="status" aria-live="polite" tabindex="-1" hidden></p>' in note
    assert public(organizer_key).fingerprint in note
    assert page.count(public(organizer_key).fingerprint) == 1


@pytest.mark.parametrize("path", ["/open-letter/sign", "/open-letter/testimony", "/declaration/sign"])
def test_a_shipped_form_says_nothing_of_sealing_before_the_note_beside_its_button(shipped_campaigns, client, path):
    main = client.get(path).get_data(as_text=True).split('<main id="main">', 1)[1]
    before = main.split('<div class="sealing" id="sealing-note">', 1)[0]
    assert not SEALING_WORDS.search(html.unescape(re.sub(r'data-seal="[^"]*"', "", before)))


# --- the no-JavaScript path: the server seals ------------------------------------------


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_valid_post_is_sealed_by_the_server_and_opens_to_the_answers(
    client, app, submit, organizer_key, campaign, form
):
    answers = valid_answers(definition(campaign, form))
    response = submit(campaign, form, answers)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/{campaign}/{form}/thanks"
    (row,) = stored(app)
    assert (row.campaign, row.form, row.sealed_by) == (campaign, form, "server")
    doc = open_row(row, organizer_key)
    assert doc == {"answers": answers, "form_version": 1, "locale": "en"}
    assert typed_text(answers)
    for text in typed_text(answers):
        assert text not in row.envelope


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_thank_you_page_repeats_none_of_the_submitted_text(client, app, submit, campaign, form):
    answers = valid_answers(definition(campaign, form))
    response = submit(campaign, form, answers)
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    body = html.unescape(thanks.get_data(as_text=True))
    assert definition(campaign, form).thanks in body
    assert typed_text(answers)
    for text in typed_text(answers):
        assert text.splitlines()[0] not in body


def test_non_latin_answers_are_sealed_intact(client, app, submit, organizer_key):
    name = "\u738b\u5c0f\u660e \u0e2a\u0e21\u0e0a\u0e32\u0e22 \uae40\ubbfc\uc900"
    response = submit("petition", "sign", {"signing_as": "individual", "name": name})
    assert response.status_code == 303
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"]["name"] == name


# --- refusals: 4xx and nothing stored (the messages beside the fields: tests/test_forms.py) ---------------


def test_re_rendered_form_after_an_error_keeps_the_same_submission_id(client, app, submit):
    tokens = page_tokens(client, "/petition/sign")
    response = post(client, "petition", "sign", {**tokens, "signing_as": "individual"})
    assert response.status_code == 400
    assert SUBMISSION.search(response.get_data(as_text=True)).group(1) == tokens["submission_id"]
    fixed = post(client, "petition", "sign", {**tokens, "signing_as": "individual", "name": "Ada"})
    assert fixed.status_code == 303
    assert [r.id for r in stored(app)] == [tokens["submission_id"]]


@pytest.mark.parametrize("token", [None, "", "not-a-real-token"])
def test_missing_or_bad_csrf_token_is_refused_and_nothing_stored(client, app, token):
    tokens = page_tokens(client, "/petition/testimony")
    data = {"submission_id": tokens["submission_id"], "what_happened": "Zqv something"}
    if token is not None:
        data["csrf_token"] = token
    response = post(client, "petition", "testimony", data)
    assert response.status_code == 400
    assert "This page had expired" in response.get_data(as_text=True)
    assert stored(app) == []


def error_summary(response) -> str:
    page = response.get_data(as_text=True)
    return page.split('id="error-summary"', 1)[1].split("</div>", 1)[0]


CORRECT_BELOW = "Please correct the answers marked below."


def test_an_expired_page_with_every_answer_right_asks_to_correct_nothing(client, app):
    tokens = page_tokens(client, "/petition/testimony")
    response = post(client, "petition", "testimony", {**tokens, "csrf_token": "expired", "what_happened": "Zqv x"})
    assert response.status_code == 400
    summary = error_summary(response)
    assert "This page had expired" in summary
    assert CORRECT_BELOW not in summary
    assert "<li>" not in summary
    assert stored(app) == []


def test_an_expired_page_with_a_wrong_answer_lists_the_answer_to_correct(client, app):
    tokens = page_tokens(client, "/petition/testimony")
    response = post(client, "petition", "testimony", {**tokens, "csrf_token": "expired", "what_happened": " "})
    assert response.status_code == 400
    summary = error_summary(response)
    assert "This page had expired" in summary
    assert CORRECT_BELOW in summary
    assert summary.count("<li>") == 1
    assert 'href="#what_happened"' in summary
    assert stored(app) == []


def test_a_csrf_token_from_another_session_is_refused(app, client):
    other = app.test_client()
    tokens = page_tokens(other, "/petition/testimony")
    page_tokens(client, "/petition/testimony")
    response = post(client, "petition", "testimony", {**tokens, "what_happened": "Zqv something"})
    assert response.status_code == 400
    assert stored(app) == []


@pytest.mark.parametrize(
    "submission_id",
    [None, "", "abc", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "../" + "0" * 29, "0" * 16 + " " + "0" * 15],
)
def test_missing_or_malformed_submission_id_is_refused_and_nothing_stored(client, app, submission_id):
    tokens = page_tokens(client, "/petition/testimony")
    data = {"csrf_token": tokens["csrf_token"], "what_happened": "Zqv something"}
    if submission_id is not None:
        data["submission_id"] = submission_id
    response = post(client, "petition", "testimony", data)
    assert response.status_code == 400
    assert "submission number" in response.get_data(as_text=True)
    assert stored(app) == []


def test_a_repeated_post_with_the_same_submission_id_and_answers_stores_one_row(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    first = post(client, "petition", "testimony", {**tokens, "what_happened": "first try"})
    again = post(client, "petition", "testimony", {**tokens, "what_happened": "first try"})
    assert first.status_code == again.status_code == 303
    (row,) = stored(app)
    assert row.id == tokens["submission_id"]
    assert open_row(row, organizer_key)["answers"]["what_happened"] == "first try"


def test_changed_answers_sent_again_from_the_same_page_come_back_with_409_not_dropped(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    assert post(client, "petition", "testimony", {**tokens, "what_happened": "first try"}).status_code == 303
    again = post(client, "petition", "testimony", {**tokens, "what_happened": "second try"})
    assert again.status_code == 409
    page = html.unescape(again.get_data(as_text=True))
    assert "already received, and these are different" in page
    assert "second try" in page, "the changed answers are back on the page, nothing lost"
    fresh = form_tokens(again.get_data(as_text=True))["submission_id"]
    assert fresh != tokens["submission_id"]
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"]["what_happened"] == "first try"
    resent = {**page_tokens(client, "/petition/testimony"), "submission_id": fresh, "what_happened": "second try"}
    assert post(client, "petition", "testimony", resent).status_code == 303
    assert sorted(open_row(r, organizer_key)["answers"]["what_happened"] for r in stored(app)) == [
        "first try",
        "second try",
    ]


def test_the_same_answers_under_the_same_number_from_another_browser_are_not_taken_for_a_repeat(
    client, app, organizer_key
):
    """The check that a post is a repeat is keyed by the sender's cookie: knowing a submission number, no one else
    can confirm a guess of its answers (a 303 would say "yes, these were the answers")."""
    tokens = page_tokens(client, "/petition/testimony")
    for _ in range(2):  # the same browser, sending again: a repeat
        assert post(client, "petition", "testimony", {**tokens, "what_happened": "guess me"}).status_code == 303
    other = app.test_client()
    guess = {**page_tokens(other, "/petition/testimony"), "submission_id": tokens["submission_id"]}
    assert post(other, "petition", "testimony", {**guess, "what_happened": "guess me"}).status_code == 409
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"]["what_happened"] == "guess me"


def test_the_stored_digest_of_a_plain_post_cannot_be_checked_with_anything_the_server_keeps(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    assert post(client, "petition", "testimony", {**tokens, "what_happened": "guess me"}).status_code == 303
    (row,) = stored(app)
    doc = open_row(row, organizer_key)
    sent = row.id.encode() + b"\0" + envelope.plaintext(doc["answers"], doc["form_version"], doc["locale"])
    server_secret = str(app.config["SECRET_KEY"]).encode()
    assert row.digest is not None
    assert row.digest not in {hashlib.sha256(sent).hexdigest(), hmac.new(server_secret, sent, "sha256").hexdigest()}
    with client.session_transaction() as cookie:
        browser_secret = cookie["csrf_token"]
    assert browser_secret.encode() not in Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()


# --- the browser path: the page seals, the server checks the envelope's shape -------------


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_a_browser_sealed_envelope_is_stored_as_sealed_by_browser(client, app, organizer_key, campaign, form):
    answers = valid_answers(definition(campaign, form))
    tokens = page_tokens(client, f"/{campaign}/{form}")
    sealed = script_envelope([public(organizer_key)], campaign, form, answers)
    response = post(client, campaign, form, {**tokens, "envelope": sealed})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/{campaign}/{form}/thanks"
    (row,) = stored(app)
    assert (row.id, row.sealed_by) == (tokens["submission_id"], "browser")
    assert open_row(row, organizer_key)["answers"] == answers


def test_the_sealing_script_asking_for_json_gets_the_thank_you_address_instead_of_a_redirect(
    client, app, organizer_key
):
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([public(organizer_key)], "petition", "testimony", {"what_happened": "x"})
    response = client.post(
        "/petition/testimony", data={**tokens, "envelope": sealed}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.get_json() == {"thanks": "/petition/testimony/thanks"}
    (row,) = stored(app)
    assert row.sealed_by == "browser"


def test_an_envelope_sealed_to_another_key_is_refused_and_nothing_stored(client, app):
    stranger = public(X25519PrivateKey.generate(), "stranger")
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([stranger], "petition", "testimony", {"what_happened": "x"})
    response = post(client, "petition", "testimony", {**tokens, "envelope": sealed})
    assert response.status_code == 400
    assert "not sealed to exactly the current organizer keys" in html.unescape(response.get_data(as_text=True))
    assert stored(app) == []


def test_an_envelope_sealed_to_an_extra_key_is_refused(client, app, organizer_key):
    stranger = public(X25519PrivateKey.generate(), "stranger")
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([public(organizer_key), stranger], "petition", "testimony", {"what_happened": "x"})
    response = post(client, "petition", "testimony", {**tokens, "envelope": sealed})
    assert response.status_code == 400
    assert stored(app) == []


@pytest.mark.parametrize("bad", ["{}", "not json", '{"version":1,"recipients":[]}', '{"answers":{"x":"plain"}}'])
def test_a_malformed_envelope_is_refused_and_nothing_stored(client, app, bad):
    tokens = page_tokens(client, "/petition/testimony")
    response = post(client, "petition", "testimony", {**tokens, "envelope": bad})
    assert response.status_code == 400
    assert "Nothing was stored." in response.get_data(as_text=True)
    assert "plain" not in response.get_data(as_text=True)
    assert stored(app) == []


def test_an_envelope_without_a_valid_csrf_token_is_refused(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([public(organizer_key)], "petition", "testimony", {"what_happened": "x"})
    data = {"submission_id": tokens["submission_id"], "csrf_token": "forged", "envelope": sealed}
    response = post(client, "petition", "testimony", data)
    assert response.status_code == 400
    assert stored(app) == []


def test_a_refused_envelope_gets_a_json_error_when_the_script_asks_for_json(client, app):
    tokens = page_tokens(client, "/petition/testimony")
    response = client.post(
        "/petition/testimony",
        data={**tokens, "envelope": "{}"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.is_json
    assert "Nothing was stored." in response.get_json()["error"]
    assert stored(app) == []


def test_a_repeated_browser_envelope_with_the_same_submission_id_stores_one_row(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([public(organizer_key)], "petition", "testimony", {"what_happened": "x"})
    for _ in range(3):
        assert post(client, "petition", "testimony", {**tokens, "envelope": sealed}).status_code == 303
    assert len(stored(app)) == 1


def test_the_same_submission_id_with_another_envelope_is_refused_with_409_and_the_first_kept(
    client, app, organizer_key
):
    tokens = page_tokens(client, "/petition/testimony")
    keys = [public(organizer_key)]
    first = script_envelope(keys, "petition", "testimony", {"what_happened": "first"})
    other = script_envelope(keys, "petition", "testimony", {"what_happened": "second"})
    assert post(client, "petition", "testimony", {**tokens, "envelope": first}).status_code == 303
    response = client.post(
        "/petition/testimony", data={**tokens, "envelope": other}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 409
    assert "already received, and these are different" in response.get_json()["error"]
    page = post(client, "petition", "testimony", {**tokens, "envelope": other})
    assert page.status_code == 409
    assert "reload the page" in html.unescape(page.get_data(as_text=True))
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"]["what_happened"] == "first"


def test_the_same_submission_id_on_another_form_is_refused_with_409(client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    keys = [public(organizer_key)]
    testimony = script_envelope(keys, "petition", "testimony", {"what_happened": "x"})
    assert post(client, "petition", "testimony", {**tokens, "envelope": testimony}).status_code == 303
    signature = script_envelope(keys, "petition", "sign", {"signing_as": "individual", "name": "Ada"})
    sign_tokens = {**page_tokens(client, "/petition/sign"), "submission_id": tokens["submission_id"]}
    assert post(client, "petition", "sign", {**sign_tokens, "envelope": signature}).status_code == 409
    assert [(r.campaign, r.form) for r in stored(app)] == [("petition", "testimony")]


def test_a_client_chosen_submission_id_is_accepted(client, app):
    tokens = page_tokens(client, "/petition/testimony")
    chosen = new_submission_id()
    data = {**tokens, "submission_id": chosen, **form_data({"what_happened": "x", "may_share": True})}
    assert post(client, "petition", "testimony", data).status_code == 303
    assert [r.id for r in stored(app)] == [chosen]


def test_the_browsers_own_favicon_request_gets_an_empty_answer_not_a_404(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 204
    assert response.data == b""


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_head_on_a_form_page_answers_like_get_and_stores_nothing(client, app, campaign, form):
    response = client.head(f"/{campaign}/{form}")
    assert response.status_code == 200
    assert response.data == b""
    assert stored(app) == []


def test_the_trailing_slash_redirect_never_echoes_the_host_header(client):
    response = client.get("/petition", headers={"Host": "attacker.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == "/petition/"
    assert "attacker.example" not in str(response.headers)
    assert b"attacker.example" not in response.data


def test_a_host_outside_trusted_hosts_is_refused(config):
    from app import create_app

    client = create_app({**config, "TRUSTED_HOSTS": ["papillon.example"]}).test_client()
    assert client.get("/", headers={"Host": "papillon.example"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_each_form_says_without_javascript_the_server_reads_the_answers_for_a_moment(client, campaign, form):
    page = client.get(f"/{campaign}/{form}").get_data(as_text=True)
    notice = page[page.index("<noscript>") : page.index("</noscript>")]
    assert "the server reads them for a moment to seal them" in notice


# --- the database failing: a kind 503 in the page's language, nothing stored, nothing of the answers logged --------

TYPED_WHILE_DOWN = "Zqv Marigold Quartzwhistle saw it \u0e15\u0e33\u0e23\u0e27\u0e08"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, SQLAlchemy's statements included, from before the app exists."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    return caplog


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post_testimony(client, tag: str, **headers: str):
    tokens = page_tokens(client, f"/{tag}/petition/testimony")
    return client.post(
        f"/{tag}/petition/testimony", data={**tokens, "what_happened": TYPED_WHILE_DOWN}, headers=headers
    )


def busy_message(app, tag: str) -> str:
    from app.views import STATUS_MESSAGES

    with app.test_request_context(f"/{tag}/"):
        translated = str(STATUS_MESSAGES[503])
    assert translated != STATUS_MESSAGES[503]._args[0], f"the 503 page is translated into {tag}"
    return translated


def assert_told_to_try_again(app, response, tag: str, logs: pytest.LogCaptureFixture) -> None:
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert f'<html lang="{tag}">' in page
    assert busy_message(app, tag) in html.unescape(page)
    assert 'id="error-message"' in page
    logged = logs.text + "\n".join(r.getMessage() for r in logs.records)
    assert "answered 503, nothing stored" in logged
    for text in (page, logged):
        assert TYPED_WHILE_DOWN not in text
        assert "Marigold" not in text


def failing_store(**_values: object) -> bool:
    raise OperationalError("INSERT INTO submissions ...", None, sqlite3.OperationalError("disk I/O error"))


@pytest.mark.parametrize("tag", ["ko", "th"])
def test_a_database_error_while_storing_answers_503_in_the_page_language(client, app, logs, monkeypatch, tag):
    monkeypatch.setattr(db, "store", failing_store)
    assert_told_to_try_again(app, post_testimony(client, tag), tag, logs)
    monkeypatch.undo()
    assert stored(app) == []


@pytest.mark.parametrize("tag", ["es", "zh-Hant"])
def test_a_database_error_answers_the_sealing_script_with_a_json_503_in_its_language(
    client, app, logs, monkeypatch, organizer_key, tag
):
    monkeypatch.setattr(db, "store", failing_store)
    tokens = page_tokens(client, f"/{tag}/petition/testimony")
    sealed = script_envelope([public(organizer_key)], "petition", "testimony", {"what_happened": "x"})
    response = client.post(
        f"/{tag}/petition/testimony", data={**tokens, "envelope": sealed}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 503
    assert response.get_json() == {"error": busy_message(app, tag)}
    assert sealed not in logs.text


@pytest.mark.parametrize("tag", ["fr", "vi"])
@pytest.mark.parametrize("failure", ["PostgreSQL on a closed port", "a damaged SQLite file"])
def test_a_database_that_cannot_be_reached_answers_503_and_stores_nothing(config, tmp_path, logs, failure, tag):
    from app import create_app

    if failure == "a damaged SQLite file":
        damaged = tmp_path / "damaged.sqlite3"
        damaged.write_bytes(b"not a database, whatever it once was " * 200)
        config["DATABASE_URL"] = f"sqlite:///{damaged}"
    else:
        config["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/postgres"
    app = create_app(config)
    client = app.test_client()
    assert client.get(f"/{tag}/petition/").status_code == 200, "the campaign's text needs no database"
    assert_told_to_try_again(app, post_testimony(client, tag), tag, logs)
    if failure == "a damaged SQLite file":
        assert TYPED_WHILE_DOWN.encode() not in damaged.read_bytes()


def test_a_form_page_served_again_is_the_first_page_with_only_its_token_and_number_new(client, app):
    """Form pages are rendered once per form and language, then given new values: nothing else may differ."""
    pages = [client.get("/ko/petition/sign").get_data(as_text=True) for _ in range(3)]
    tokens = [form_tokens(page) for page in pages]
    assert len({t["submission_id"] for t in tokens}) == 3
    for page, token in zip(pages[1:], tokens[1:], strict=True):
        same = pages[0].replace(tokens[0]["csrf_token"], token["csrf_token"])
        assert same.replace(tokens[0]["submission_id"], token["submission_id"]) == page
    assert '<html lang="th">' in client.get("/th/petition/sign").get_data(as_text=True)


def test_the_values_a_served_again_page_carries_are_accepted(client, app):
    page_tokens(client, "/petition/testimony")
    again = page_tokens(client, "/petition/testimony")
    assert post(client, "petition", "testimony", {**again, "what_happened": "x"}).status_code == 303
    assert [r.id for r in stored(app)] == [again["submission_id"]]


# --- a form offering replies: the reply box, and without JavaScript the code made here and shown once ---------------

REPLY_CODE = re.compile(r'<p class="reply-code" id="reply-code" lang="en" translate="no">([^<]*)</p>')
SHOWN_CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(?:-[0-9A-HJKMNP-TV-Z]{4}){6}")
TOLD = "Zqv Hollyhock saw the raid \u0e15\u0e33\u0e23\u0e27\u0e08"


@pytest.fixture
def offering_replies(config, tmp_path) -> Path:
    """The tests' campaigns, with the petition's testimony form offering replies."""
    folder = tmp_path / "campaigns"
    shutil.copytree(CAMPAIGNS, folder)
    petition = folder / "petition.toml"
    text = petition.read_text(encoding="utf-8")
    assert text.count('thanks = "Thank you for telling us."\n') == 1
    petition.write_text(
        text.replace('thanks = "Thank you for telling us."\n', 'thanks = "Thank you for telling us."\nreplies = true\n')
    )
    config["PAPILLON_CAMPAIGNS_DIR"] = str(folder)
    return folder


def reply_box(page: str) -> dict[str, str | None] | None:
    found = Controls(page).named("reply")
    assert len(found) <= 1
    return found[0][1] if found else None


def ask_for_a_reply(client, tokens: dict[str, str], told: str = TOLD, **extra: str):
    return post(client, "petition", "testimony", {**tokens, "what_happened": told, "reply": "yes", **extra})


def test_a_form_offering_replies_has_the_reply_box_its_script_and_the_hidden_thank_you_section(
    offering_replies, client, app
):
    page = client.get("/petition/testimony").get_data(as_text=True)
    box = reply_box(page)
    assert box is not None
    assert (box["type"], box["value"], box["id"], "checked" in box) == ("checkbox", "yes", "reply-choice", False)
    assert '<label for="reply-choice">I want to be able to read a reply</label>' in page
    assert 'id="reply-choice-help"' in page
    form = page[page.index("<form") : page.index("</form>")]
    assert form.index('id="reply-choice"') < form.index('id="sealing-note"')
    assert re.search(r'<script src="/static/replies\.js\?v=[0-9a-f]+" defer></script>', page)
    section = page[page.index('<section id="reply-thanks"') : page.index("</section>")]
    assert page.index("</form>") < page.index('<section id="reply-thanks"') < page.index("</main>")
    assert section.startswith('<section id="reply-thanks" hidden tabindex="-1" data-title="Thank you">')
    assert REPLY_CODE.search(section)[1] == ""
    assert "<h1>Thank you</h1>" in section
    assert "Thank you for telling us." in section
    assert "It cannot be shown again." in section
    assert 'href="/replies"' in section
    assert 'href="/petition/"' in section


@pytest.mark.parametrize("path", ["/petition/testimony", "/petition/sign", "/letter/sign"])
def test_a_form_without_replies_has_no_reply_box_nor_its_script(client, path):
    page = client.get(path).get_data(as_text=True)
    assert reply_box(page) is None
    assert "replies.js" not in page
    assert 'id="reply-thanks"' not in page


def test_without_javascript_a_reply_asked_for_shows_its_code_once_on_the_thank_you_page_itself(
    offering_replies, client, app, organizer_key
):
    tokens = page_tokens(client, "/petition/testimony")
    response = ask_for_a_reply(client, tokens)
    assert response.status_code == 200, "never a redirect: the code must not travel in an address"
    assert "Location" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    shown = REPLY_CODE.search(page)[1]
    assert SHOWN_CODE.fullmatch(shown)
    assert SHOWN_CODE.findall(page) == [shown]
    assert shown.replace("-", "") not in page
    assert shown not in str(response.headers)
    assert "Thank you for telling us." in page
    assert 'href="/replies"' in page
    assert TOLD not in html.unescape(page)
    (row,) = stored(app)
    assert (row.id, row.sealed_by) == (tokens["submission_id"], "server")
    doc = open_row(row, organizer_key)
    assert doc["answers"]["what_happened"] == TOLD
    assert doc["reply"] == replies.derive(shown).member()
    assert list(doc) == ["answers", "form_version", "locale", "reply"]
    for said in (shown, replies.normalize(shown), replies.derive(shown).lookup):
        assert said not in row.envelope
        assert said.encode() not in Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()


def test_each_testimony_asking_for_a_reply_gets_a_code_of_its_own(offering_replies, client, app, organizer_key):
    codes = [
        REPLY_CODE.search(ask_for_a_reply(client, page_tokens(client, "/petition/testimony")).get_data(as_text=True))[1]
        for _ in range(3)
    ]
    assert len(set(codes)) == 3
    members = [open_row(row, organizer_key)["reply"] for row in stored(app)]
    assert sorted(m["lookup"] for m in members) == sorted(replies.derive(c).lookup for c in codes)


def test_a_testimony_asking_for_a_reply_sent_again_is_stored_once_and_its_code_not_shown_again(
    offering_replies, client, app, organizer_key
):
    tokens = page_tokens(client, "/petition/testimony")
    first = REPLY_CODE.search(ask_for_a_reply(client, tokens).get_data(as_text=True))[1]
    again = ask_for_a_reply(client, tokens)
    assert again.status_code == 200
    page = again.get_data(as_text=True)
    assert REPLY_CODE.search(page) is None
    assert SHOWN_CODE.search(page) is None
    said = html.unescape(page[page.index('<p id="reply-already">') :].split("</p>", 1)[0])
    assert "had already arrived" in said
    assert "cannot be shown again" in said
    assert 'href="/replies"' in page
    (row,) = stored(app)
    assert open_row(row, organizer_key)["reply"] == replies.derive(first).member()


@pytest.mark.parametrize("change", ["other answers", "no reply asked"])
def test_a_changed_testimony_under_the_same_number_comes_back_with_409_and_its_box_as_sent(
    offering_replies, client, app, organizer_key, change
):
    tokens = page_tokens(client, "/petition/testimony")
    assert ask_for_a_reply(client, tokens).status_code == 200
    if change == "other answers":
        response = ask_for_a_reply(client, tokens, told="Zqv another account")
    else:
        response = post(client, "petition", "testimony", {**tokens, "what_happened": TOLD})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "already received, and these are different" in html.unescape(page)
    assert ("checked" in reply_box(page)) == (change == "other answers")
    assert REPLY_CODE.search(page)[1] == ""
    assert len(stored(app)) == 1


def test_a_testimony_first_sent_without_a_reply_then_asking_for_one_is_refused_with_409(offering_replies, client, app):
    tokens = page_tokens(client, "/petition/testimony")
    assert post(client, "petition", "testimony", {**tokens, "what_happened": TOLD}).status_code == 303
    assert ask_for_a_reply(client, tokens).status_code == 409
    assert len(stored(app)) == 1


@pytest.mark.parametrize("asked", [True, False])
def test_a_page_that_comes_back_with_errors_keeps_the_reply_box_as_it_was(offering_replies, client, app, asked):
    tokens = page_tokens(client, "/petition/testimony")
    data = {**tokens, "what_happened": "  ", **({"reply": "yes"} if asked else {})}
    response = post(client, "petition", "testimony", data)
    assert response.status_code == 400
    assert ("checked" in reply_box(response.get_data(as_text=True))) == asked
    assert SHOWN_CODE.search(response.get_data(as_text=True)) is None
    assert stored(app) == []


@pytest.mark.parametrize("value", ["y", "no", "", "YES"])
def test_a_reply_box_with_a_value_no_page_sends_is_refused(offering_replies, client, app, value):
    response = ask_for_a_reply(client, page_tokens(client, "/petition/testimony"), reply=value)
    assert response.status_code == 400
    assert stored(app) == []


def test_a_reply_box_sent_with_an_envelope_is_refused(offering_replies, client, app, organizer_key):
    tokens = page_tokens(client, "/petition/testimony")
    sealed = script_envelope([public(organizer_key)], "petition", "testimony", {"what_happened": "x"})
    response = post(client, "petition", "testimony", {**tokens, "envelope": sealed, "reply": "yes"})
    assert response.status_code == 400
    assert stored(app) == []


def test_a_bot_asking_for_a_reply_is_shown_a_code_as_a_person_would_be_and_nothing_stored(
    offering_replies, client, app
):
    response = ask_for_a_reply(client, page_tokens(client, "/petition/testimony"), website="http://spam.example")
    assert response.status_code == 200
    assert SHOWN_CODE.fullmatch(REPLY_CODE.search(response.get_data(as_text=True))[1])
    assert stored(app) == []


def test_the_thank_you_page_of_a_form_offering_replies_links_to_where_they_are_read(offering_replies, client):
    assert 'href="/ko/replies"' in client.get("/ko/petition/testimony/thanks").get_data(as_text=True)
    assert "/replies" not in client.get("/petition/sign/thanks").get_data(as_text=True)
