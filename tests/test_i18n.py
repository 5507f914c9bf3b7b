"""app/i18n.py: the page's language, from its address or Accept-Language, never a cookie; every page in all nine
languages, and the interface catalogs that translate it. (The language tags themselves: tests/test_languages.py.)"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import gettext
from pages import ROOT, form_data, form_tokens, page_tokens, stored

from app import i18n
from app.i18n import TRANSLATIONS
from app.site import site
from papillon import envelope, languages

PAGES = ["/", "/petition/", "/petition/sign", "/petition/testimony", "/petition/sign/thanks", "/letter/"]
HTML_LANG = re.compile(r'<html lang="([^"]+)">')
SWITCHER = re.compile(r'<nav class="languages"[^>]*>(.*?)</nav>', re.S)
PLACEHOLDER = re.compile(r"%\(\w+\)\w")
LINK = re.compile(r'<a href="([^"]+)" lang="([^"]+)" hreflang="([^"]+)"( aria-current="true")?>([^<]+)</a>')
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class TextLanguages(HTMLParser):
    """Each text of a page with the language a screen reader reads it in: the nearest ``lang`` around it."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.open: list[tuple[str, str, str]] = []
        self.texts: list[tuple[str, str]] = []
        self.links: list[tuple[dict[str, str | None], str, list[str]]] = []  # with the ids of what holds them
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "a":
            self.links.append((named, self.open[-1][1], [element_id for *_, element_id in self.open]))
        if tag not in VOID:
            self.open.append((tag, named.get("lang", self.open[-1][1] if self.open else ""), named.get("id", "")))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if data.strip() and self.open:
            self.texts.append((" ".join(data.split()), self.open[-1][1]))


def in_language(app: Flask, tag: str, message: str, **values: object) -> str:
    """A catalog message as a page in ``tag`` shows it."""
    with app.test_request_context(f"/{tag}/"):
        return gettext(message, **values)


def switcher(body: str) -> list[tuple[str, str, str, bool, str]]:
    nav = SWITCHER.search(body)
    assert nav, "every page has the language switcher"
    return [(href, lang, hreflang, bool(current), name) for href, lang, hreflang, current, name in LINK.findall(nav[1])]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("tag", list(languages.NAMES))
def test_every_page_is_served_in_every_language_by_its_address(client: FlaskClient, path: str, tag: str) -> None:
    response = client.get(f"/{tag}{path}", headers={"Accept-Language": "de"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert HTML_LANG.search(body)[1] == tag
    assert response.headers["Content-Language"] == tag
    assert "Accept-Language" not in response.headers.get("Vary", "")


@pytest.mark.parametrize(
    ("accept", "tag"),
    [
        ("ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        ("zh-TW,zh;q=0.9", "zh-Hant"),
        ("zh-CN", "zh-Hans"),
        ("zh-Hant-HK", "zh-Hant"),
        ("fil-PH", "tl"),
        ("th", "th"),
        ("vi-VN", "vi"),
        ("es-MX,es;q=0.9", "es"),
        ("fr-CA", "fr"),
        ("de-DE, ko;q=0.5", "ko"),
        ("ko;q=0, fr", "fr"),
        ("de", "en"),
        ("", "en"),
    ],
)
def test_accept_language_picks_the_language_of_an_address_that_names_none(
    client: FlaskClient, accept: str, tag: str
) -> None:
    response = client.get("/petition/sign", headers={"Accept-Language": accept})
    assert HTML_LANG.search(response.get_data(as_text=True))[1] == tag
    assert response.headers["Content-Language"] == tag
    assert "Accept-Language" in response.headers["Vary"]


def test_the_address_wins_over_accept_language(client: FlaskClient) -> None:
    body = client.get("/fr/petition/", headers={"Accept-Language": "ko"}).get_data(as_text=True)
    assert HTML_LANG.search(body)[1] == "fr"


@pytest.mark.parametrize("path", PAGES)
def test_the_switcher_names_each_language_in_itself_and_links_to_the_same_page(client: FlaskClient, path: str) -> None:
    links = switcher(client.get(f"/th{path}").get_data(as_text=True))
    assert [(lang, name) for _, lang, _, _, name in links] == list(languages.NAMES.items())
    assert [href for href, *_ in links] == [f"/{tag}{path}" for tag in languages.NAMES]
    assert all(lang == hreflang for _, lang, hreflang, _, _ in links)
    assert [lang for _, lang, _, current, _ in links if current] == ["th"]


def test_the_switcher_on_a_missing_page_leads_to_the_campaigns(client: FlaskClient) -> None:
    response = client.get("/ko/nowhere/at/all")
    assert response.status_code == 404
    links = switcher(response.get_data(as_text=True))
    assert [href for href, *_ in links] == [f"/{tag}/" for tag in languages.NAMES]


def test_no_cookie_or_storage_remembers_the_language(client: FlaskClient, app: Flask) -> None:
    for path in ["/ko/", "/ko/petition/", "/ko/petition/sign/thanks"]:
        assert "Set-Cookie" not in client.get(path).headers, path
    form_page = client.get("/ko/petition/sign")
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert set(session) == {"csrf_token"}
    # The next page, with that cookie and no address language, follows the browser again.
    body = client.get("/petition/", headers={"Accept-Language": "th"}).get_data(as_text=True)
    assert HTML_LANG.search(body)[1] == "th"
    assert form_page.status_code == 200


def test_links_forms_and_redirects_keep_the_language_of_the_address(client: FlaskClient, app: Flask) -> None:
    campaign_page = client.get("/ko/petition/").get_data(as_text=True)
    assert 'href="/ko/petition/sign"' in campaign_page
    assert 'href="/ko/"' in campaign_page
    page = client.get("/ko/petition/sign").get_data(as_text=True)
    assert 'action="/ko/petition/sign"' in page
    data = {**form_tokens(page), **form_data({"signing_as": "individual", "name": "Ada"})}
    response = client.post("/ko/petition/sign", data=data)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ko/petition/sign/thanks"
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'href="/ko/petition/"' in thanks


def test_a_form_opened_in_one_language_can_be_sent_from_another(
    client: FlaskClient, app: Flask, organizer_key: X25519PrivateKey
) -> None:
    """Switching language between opening the form and sending it keeps the CSRF and submission-id flow."""
    tokens = page_tokens(client)
    client.get("/zh-Hant/petition/sign")  # the person switched language on the way
    response = client.post("/ko/petition/sign", data={**tokens, "signing_as": "organization", "name": "김민준"})
    assert response.status_code == 303
    [row] = stored(app)
    assert row.id == tokens["submission_id"]
    doc = envelope.open_envelope(envelope.parse(row.envelope), organizer_key, "petition", "sign")
    assert doc["locale"] == "ko"
    assert doc["answers"]["signing_as"] == "organization"


def test_the_stored_row_does_not_say_which_language_the_answer_came_in(client: FlaskClient, app: Flask) -> None:
    """A seized database must not tell a Korean witness's row from an English one: the language is sealed."""
    for tag in ("en", "ko"):
        page = client.get(f"/{tag}/petition/testimony").get_data(as_text=True)
        response = client.post(f"/{tag}/petition/testimony", data={**form_tokens(page), "what_happened": "x"})
        assert response.status_code == 303
    rows = stored(app)
    assert len(rows) == 2
    visible = [(r.campaign, r.form, r.received_on, r.sealed_by, r.exported, len(r.envelope)) for r in rows]
    assert visible[0] == visible[1]
    assert all(set(json.loads(r.envelope)) == {"version", "recipients"} for r in rows)


@pytest.mark.parametrize("status", [400, 404, 405, 413, 429, 500, 503])
@pytest.mark.parametrize("tag", [t for t in languages.NAMES if t != "en"])
def test_every_error_page_speaks_the_page_language(app: Flask, status: int, tag: str) -> None:
    from app.views import STATUS_MESSAGES, error_response

    with app.test_request_context(f"/{tag}/"):
        body, code = error_response(status)
        english = STATUS_MESSAGES[status]._args[0]
        translated = gettext(english)
    assert code == status
    assert translated != english
    assert html.escape(translated, quote=False) in body


def test_the_page_gives_the_browser_its_language_and_its_messages(client: FlaskClient, app: Flask) -> None:
    page = client.get("/th/petition/testimony").get_data(as_text=True)
    seal = json.loads(html.unescape(re.search(r'data-seal="([^"]+)"', page)[1]))
    assert seal["locale"] == "th"
    ready = "Your answers are sealed in this browser before they leave it; only the organizers can open them."
    assert seal["messages"]["ready"] == in_language(app, "th", ready) != ready
    assert "<script>" not in page
    assert "<script >" not in page


def test_korean_and_english_pages_offer_the_same_choice_ids_under_their_own_labels(client: FlaskClient) -> None:
    values = re.compile(r'<input[^>]*name="signing_as"[^>]*value="([^"]+)"[^>]*>\s*<label[^>]*>([^<]+)</label>')
    english = values.findall(client.get("/en/petition/sign").get_data(as_text=True))
    korean = values.findall(client.get("/ko/petition/sign").get_data(as_text=True))
    assert [v for v, _ in english] == [v for v, _ in korean] == ["individual", "organization"]
    assert [label for _, label in english] == ["An individual", "An organization"]
    assert [label for _, label in korean] == ["개인", "단체"]


def test_refusals_beside_the_fields_are_in_the_page_language(client: FlaskClient, app: Flask) -> None:
    page = client.get("/ko/petition/testimony").get_data(as_text=True)
    response = client.post("/ko/petition/testimony", data={**form_tokens(page), "what_happened": " "})
    assert response.status_code == 400
    body = html.unescape(response.get_data(as_text=True))
    assert "무슨 일이 있었는지 알려 주세요." in body  # the campaign's own words for this field, translated
    summary = "Please correct the answers marked below. Nothing was stored yet."
    assert in_language(app, "ko", summary) in body
    page = client.get("/th/petition/sign").get_data(as_text=True)
    data = {**form_tokens(page), "signing_as": "individual", "name": "x" * 121}
    body = html.unescape(client.post("/th/petition/sign", data=data).get_data(as_text=True))
    too_long = in_language(app, "th", "Please keep this under %(max_length)d characters.", max_length=120)
    assert too_long in body
    assert "120" in too_long
    assert "Please keep" not in too_long
    assert stored(app) == []


@pytest.mark.parametrize("tag", [t for t in languages.NAMES if t != "en"])
def test_error_pages_and_the_scripts_refusals_are_in_the_page_language(
    client: FlaskClient, app: Flask, tag: str
) -> None:
    missing = "There is no page at this address."
    body = html.unescape(client.get(f"/{tag}/nowhere/").get_data(as_text=True))
    assert in_language(app, tag, missing) in body
    assert missing not in body
    tokens = page_tokens(client, f"/{tag}/petition/sign")
    reply = client.post(
        f"/{tag}/petition/sign",
        data={**tokens, "envelope": "{}"},
        headers={"Accept": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.get_json()["error"].startswith(
        in_language(app, tag, "The sealed answers were refused: %(reason)s. Nothing was stored.", reason="")[:8]
    )


def test_a_draft_translation_says_so_and_links_to_the_english_original(client: FlaskClient, app: Flask) -> None:
    body = client.get("/ko/petition/sign").get_data(as_text=True)
    note = re.search(r'<p class="notice draft" id="draft-note">(.*?)</p>', body, re.S)
    assert note, "the Korean test translation is marked reviewed = false"
    assert 'href="/en/petition/sign"' in note[1]
    draft = "This page is a draft translation that a fluent speaker has not checked yet."
    assert in_language(app, "ko", draft) in html.unescape(note[1])
    assert 'id="draft-note"' not in client.get("/en/petition/sign").get_data(as_text=True)


@pytest.mark.parametrize("tag", [t for t in languages.NAMES if t != "en"])
def test_the_link_to_the_english_original_is_read_in_the_page_language_it_is_written_in(
    client: FlaskClient, app: Flask, tag: str
) -> None:
    site(app).reviewed_catalogs.discard(tag)  # a draft page, however far review has come
    page = TextLanguages(client.get(f"/{tag}/petition/sign").get_data(as_text=True))
    [(link, around)] = [(attrs, lang) for attrs, lang, within in page.links if "draft-note" in within]
    assert link["href"] == "/en/petition/sign"
    assert link["hreflang"] == "en"
    assert link.get("lang", around) == around == tag
    words = in_language(app, tag, "Read it in the original English")
    assert (words, tag) in page.texts
    assert words != "Read it in the original English"


def test_a_reviewed_translation_on_a_reviewed_catalog_carries_no_draft_note(client: FlaskClient, app: Flask) -> None:
    site(app).reviewed_catalogs |= {"fr", "ko"}
    assert 'id="draft-note"' not in client.get("/fr/petition/sign").get_data(as_text=True)
    # The catalog was reviewed, the campaign's Korean translation was not: the note stays.
    assert 'id="draft-note"' in client.get("/ko/petition/sign").get_data(as_text=True)


def test_every_draft_catalog_is_announced_on_its_pages(client: FlaskClient, app: Flask) -> None:
    drafts = set(languages.NAMES) - site(app).reviewed_catalogs
    for tag in languages.NAMES:
        shown = 'id="draft-note"' in client.get(f"/{tag}/").get_data(as_text=True)
        assert shown == (tag in drafts), tag


def test_an_untranslated_body_shows_in_its_own_language_with_a_note(client: FlaskClient, app: Flask) -> None:
    french = client.get("/fr/petition/").get_data(as_text=True)
    assert 'id="original-note"' in french
    assert '<div lang="en">' in french
    assert "The first paragraph of the test petition." in french
    assert "<h1>Pétition de test</h1>" in french
    korean = client.get("/ko/petition/").get_data(as_text=True)
    assert 'id="original-note"' not in korean
    assert '<div lang="ko">' in korean
    assert "테스트 청원의 첫 번째 문단입니다." in korean


def test_untranslated_campaign_words_are_marked_with_their_own_language(client: FlaskClient) -> None:
    """The letter has no translation: its words show in English, marked so a screen reader says them right, and
    the page's own words around them stay in the page's language."""
    body = client.get("/vi/letter/sign").get_data(as_text=True)
    assert '<a href="/vi/letter/" lang="en">Test letter</a>' in body
    assert '<label for="name"><span lang="en">Your name</span> <span class="req">(bắt buộc)</span></label>' in body
    assert '<button type="submit" lang="en">Sign the letter</button>' in body


def campaign_page(client: FlaskClient, tag: str, path: str) -> str:
    if path != "refused testimony":
        return client.get(f"/{tag}{path}").get_data(as_text=True)
    page = client.get(f"/{tag}/petition/testimony").get_data(as_text=True)
    response = client.post(f"/{tag}/petition/testimony", data={**form_tokens(page), "what_happened": " "})
    assert response.status_code == 400
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/", "/petition/", "/petition/sign", "/petition/testimony", "/petition/sign/thanks", "refused testimony"]
)
@pytest.mark.parametrize("tag", ["fr", "ko", "vi"])
def test_each_campaign_text_is_marked_with_the_language_it_shows_in(
    client: FlaskClient, app: Flask, tag: str, path: str
) -> None:
    """French is partly translated, Korean wholly, Vietnamese not at all: whatever shows in English says so."""
    campaign = site(app).localized["petition", tag]
    original = site(app).campaigns["petition"]
    translated = original.translations[tag].texts if tag in original.translations else {}
    expected = {text: tag if key in translated else "en" for key, text in campaign.text_keys().items() if key != "body"}
    texts = TextLanguages(campaign_page(client, tag, path)).texts
    checked = [(text, lang) for text, lang in texts if text in expected]
    assert checked, "the page shows some of the campaign's texts"
    assert [(text, lang) for text, lang in checked if lang != expected[text]] == []
    if path == "refused testimony":
        error = campaign.forms["testimony"].fields[0].error
        shown = [lang for text, lang in texts if text.endswith(error)]
        assert shown == [expected[error]] * 2, "in the summary and beside the field"


def test_a_partly_translated_form_marks_its_english_words_as_english(client: FlaskClient) -> None:
    """petition.fr.toml translates the titles, the button and one question's choices, and nothing else."""
    body = client.get("/fr/petition/sign").get_data(as_text=True)
    assert HTML_LANG.search(body)[1] == "fr"
    texts = TextLanguages(body).texts
    for english in [
        "Your name",
        "I am signing as",
        "If you sign as an individual, you may leave this empty.",
        "Workers' rights",
        "Your answers are sealed for the organizers before they are stored.",
    ]:
        assert (english, "en") in texts, english
    for french in ["Formulaire", "Une personne", "Signer la pétition", "Pétition de test", "(obligatoire)"]:
        assert (french, "fr") in texts, french
    assert "Signer la pétition de test" not in body, "a discreet form names its topic nowhere in its heading"
    assert '<label for="name"><span lang="en">Your name</span> <span class="req">(obligatoire)</span></label>' in body


# --- the interface catalogs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_messages(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """Every message the code and templates mark today, gathered as `make messages` gathers them."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    keywords = ["-k", "_l", "-k", "lazy_gettext", "-k", "N_"]
    subprocess.run(
        [pybabel, "extract", "-F", "babel.cfg", *keywords, "-o", pot, "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as fh:
        return read_po(fh)


def read_catalog(tag: str) -> Catalog:
    with (TRANSLATIONS / languages.CATALOGS[tag] / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=None)


def test_the_template_catalog_holds_every_message_of_the_code(code_messages: Catalog) -> None:
    """`make messages` was run after the last change of wording."""
    with (TRANSLATIONS / "messages.pot").open("rb") as fh:
        committed = read_po(fh)
    assert {m.id for m in code_messages if m.id} == {m.id for m in committed if m.id}


@pytest.mark.parametrize("tag", [t for t in languages.NAMES if t != languages.DEFAULT])
def test_every_catalog_translates_every_message_and_keeps_its_placeholders(code_messages: Catalog, tag: str) -> None:
    catalog = read_catalog(tag)

    def translated(message_id: str | tuple[str, ...]) -> bool:
        found = catalog.get(message_id)
        strings = found.string if found and isinstance(found.string, tuple) else (found.string if found else "",)
        return all(strings)

    missing = [m.id for m in code_messages if m.id and not translated(m.id)]
    assert missing == [], f"{tag}: {len(missing)} message(s) not translated"
    for message in catalog:
        if message.id:
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            expected = set(PLACEHOLDER.findall(ids[-1]))
            assert all(set(PLACEHOLDER.findall(text)) == expected for text in strings), (tag, message.id)
            assert list(message.check(catalog)) == [], (tag, message.id)


# The interface catalogs a fluent speaker has checked, message by message. A language goes in only once that is
# done, in the same change that deletes its `#, fuzzy` line; every other catalog must stay marked a draft.
REVIEWED_CATALOGS: frozenset[str] = frozenset()


def catalog_header(tag: str) -> str:
    """The comments above a catalog's header entry, where its ``#, fuzzy`` flag and its DRAFT note sit."""
    text = (TRANSLATIONS / languages.CATALOGS[tag] / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    return text.split('msgid ""', 1)[0]


def test_the_reviewed_catalogs_are_languages_we_serve() -> None:
    assert set(REVIEWED_CATALOGS) <= set(languages.NAMES) - {languages.DEFAULT}


@pytest.mark.parametrize("tag", [t for t in languages.NAMES if t != languages.DEFAULT])
def test_a_catalog_no_fluent_speaker_has_checked_is_marked_a_fuzzy_draft(tag: str) -> None:
    header = catalog_header(tag)
    flagged = "#, fuzzy" in header.splitlines()
    drafted = re.search(r"^#.*\bDRAFT\b", header, re.M) is not None
    if tag in REVIEWED_CATALOGS:
        assert not flagged, f"{tag} is listed as reviewed but still marked a draft"
        assert not drafted, f"{tag} is listed as reviewed but still marked a draft"
        assert not read_catalog(tag).fuzzy
    else:
        assert flagged, f"{tag}: not in REVIEWED_CATALOGS, so its header must keep `#, fuzzy`"
        assert drafted, f"{tag}: a draft catalog says DRAFT in its header comment"
        assert read_catalog(tag).fuzzy


def copy_catalogs(tmp_path: Path) -> Path:
    folder = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, folder)
    return folder


def test_catalogs_are_refused_when_one_is_missing(tmp_path: Path) -> None:
    folder = copy_catalogs(tmp_path)
    shutil.rmtree(folder / "th")
    with pytest.raises(i18n.CatalogError, match="ภาษาไทย catalog is missing"):
        i18n.check_catalogs(folder)


def test_catalogs_are_refused_when_one_changed_since_it_was_compiled(tmp_path: Path) -> None:
    folder = copy_catalogs(tmp_path)
    po = folder / "vi" / "LC_MESSAGES" / "messages.po"
    compiled = po.with_suffix(".mo").stat().st_mtime
    os.utime(po, (compiled + 60, compiled + 60))
    with pytest.raises(i18n.CatalogError, match="make translations"):
        i18n.check_catalogs(folder)


def test_only_a_catalog_whose_header_is_not_fuzzy_counts_as_reviewed(tmp_path: Path) -> None:
    folder = copy_catalogs(tmp_path)
    po = folder / "es" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text(encoding="utf-8").replace("#, fuzzy\n", "", 1), encoding="utf-8")
    mo = po.with_suffix(".mo")
    os.utime(mo, (po.stat().st_mtime + 1, po.stat().st_mtime + 1))
    reviewed = i18n.check_catalogs(folder)
    assert "es" in reviewed
    assert "en" in reviewed
    others = {t for t in languages.NAMES if t not in {"en", "es"} and not read_catalog(t).fuzzy}
    assert reviewed - {"es", "en"} == others
