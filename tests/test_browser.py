"""Cross-cutting: the forms in a real browser (headless Chromium), sealed in the page or, without JavaScript, by the
server; what leaves the page, what the person sees, and the record staff open.

Every test runs the app on a live local server and watches everything the page sends and complains about.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from browser_support import (
    SEAL_JS_GZIP_BUDGET,
    TIME_BUILD_ENVELOPE,
    TYPICAL_ANSWERS,
    WITHOUT_X25519,
    PageLog,
    median,
    origin,
    parse_form_body,
    seal_js_gzip_size,
    serve,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from pages import FORMS, decrypt_args, open_row, stored
from playwright.sync_api import Page, Route, expect

from app import create_app, pow, security
from app.site import site
from app.storage import db
from papillon import campaigns as c
from papillon import envelope, keys

pytestmark = pytest.mark.browser

# Every form of the campaigns made for the tests (tests/test_accessibility.py opens the shipped ones).
FORM_IDS = [f"{campaign}/{form}" for campaign, form in FORMS]
SEALING_FIELDS = {"csrf_token", "submission_id", "envelope"}


# --- the browser and the live server ---------------------------------------------------------------------------


# --- what a person types ---------------------------------------------------------------------------------------


@dataclass
class Plan:
    """How to fill one form, and the answers the organizers must then find in the record."""

    campaign: str
    form: c.Form
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (fill | choose | tick, name, value)
    expected: dict[str, c.Answer] = field(default_factory=dict)
    typed: list[str] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{self.campaign}/{self.form.slug}"


def typed_value(f: c.Field) -> str:
    """A distinctive value per field: a random ASCII token, Chinese, Thai and Korean, line breaks in long text."""
    token = f"pp{secrets.token_hex(6)}"
    if f.type == c.LONG_TEXT:
        return f"{token} 第一行：蝴蝶\nบรรทัดที่สอง ผีเสื้อ\n셋째 줄 나비 & “quoted”"  # noqa: RUF001 - Chinese punctuation
    if f.type == c.EMAIL:
        return f"{token}@example.org"
    if f.type == c.PHONE:
        return f"+1 (604) 555-{secrets.randbelow(10_000):04d}"
    if f.type == c.POSTAL_CODE:
        letters = "ABCEGHJKLMNPRSTVXY"
        return f"{secrets.choice(letters)}{secrets.randbelow(10)}{secrets.choice(letters)} {secrets.randbelow(10)}Q7"
    return f"{token} 蝴蝶 ผีเสื้อ 나비 & co."


def plan_for(app: Flask, campaign: str, form: str, leave_empty: str | None = None) -> Plan:
    plan = Plan(campaign, site(app).campaigns[campaign].forms[form])
    for f in plan.form.fields:
        if f.name == leave_empty:
            continue
        if f.type == c.SINGLE_CHOICE:
            plan.steps.append(("choose", f.name, f.choice_ids[-1]))
            plan.expected[f.name] = f.choice_ids[-1]
            plan.chosen.append(f.choice_ids[-1])
        elif f.type == c.MULTIPLE_CHOICE:
            picks = [f.choice_ids[0], f.choice_ids[-1]]
            plan.steps += [("choose", f.name, choice) for choice in picks]
            plan.expected[f.name] = picks
            plan.chosen += picks
        elif f.type == c.CONSENT:
            plan.steps.append(("tick", f.name, ""))
            plan.expected[f.name] = True
        else:
            value = typed_value(f)
            plan.steps.append(("fill", f.name, value))
            plan.expected[f.name] = value
            plan.typed.append(value)
    return plan


def css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def control(page: Page, kind: str, name: str, value: str):
    if kind == "choose":
        return page.locator(f"form.answers input[name={css_string(name)}][value={css_string(value)}]")
    return page.locator(f"form.answers [name={css_string(name)}]")


def fill(page: Page, plan: Plan) -> None:
    for kind, name, value in plan.steps:
        if kind == "fill":
            control(page, kind, name, value).fill(value)
        else:
            control(page, kind, name, value).check()


def assert_still_filled(page: Page, plan: Plan) -> None:
    for kind, name, value in plan.steps:
        if kind == "fill":
            expect(control(page, kind, name, value)).to_have_value(value)
        else:
            expect(control(page, kind, name, value)).to_be_checked()


def leak_needles(value: str) -> set[bytes]:
    """Every way a value could travel readable: UTF-8, percent-encoded, JSON-escaped, with LF or CRLF."""
    needles: set[bytes] = set()
    for text in {value, value.replace("\n", "\r\n")}:
        needles |= {
            text.encode(),
            quote(text).encode(),
            quote(text, safe="").encode(),
            quote_plus(text).encode(),
            json.dumps(text)[1:-1].encode(),
            json.dumps(text, ensure_ascii=False)[1:-1].encode(),
        }
    for word in value.split():
        if not word.isascii() or len(word) >= 8:  # short ASCII words could turn up in base64 by chance
            needles |= {word.encode(), quote(word).encode(), quote_plus(word).encode()}
    return needles


# --- checks shared by the tests --------------------------------------------------------------------------------


def assert_quick_exit(page: Page, app: Flask) -> None:
    link = page.locator("a.quick-exit[data-quick-exit]")
    expect(link).to_have_count(1)
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", app.config["PAPILLON_QUICK_EXIT_URL"])


def assert_clean(log: PageLog, server: str, *, expected_failures: tuple[str, ...] = ()) -> None:
    """Nothing left the origin, CSP blocked nothing, no script failed, every load worked (unless expected)."""
    assert log.requests, "the page made no request at all"
    assert log.foreign_requests(server) == [], "a request left the site's own origin"
    assert log.csp_violations() == []
    assert log.js_errors() == []
    unexpected = set(log.failed_loads())
    assert unexpected - {f"{server}{path}" for path in expected_failures} == set()


def wait_for_sealing(page: Page) -> None:
    """The script announces itself in #seal-status once it has checked for X25519 and taken over the form."""
    expect(page.locator("#seal-status")).to_be_visible()
    assert page.evaluate("PapillonSeal.supportsX25519()") is True


def submit_and_land(page: Page, plan: Plan, server: str) -> None:
    page.locator("form.answers button[type=submit]").click()
    page.wait_for_url(f"{server}{plan.path}/thanks")
    expect(page.locator("main")).to_contain_text(plan.form.thanks)


def assert_stored(app: Flask, plan: Plan, submission_id: str, sealed_by: str, organizer_key: X25519PrivateKey):
    """Exactly one row, from this page, sealed by the expected side, opening to exactly what was typed."""
    [row] = stored(app)
    assert (row.id, row.campaign, row.form, row.sealed_by) == (submission_id, plan.campaign, plan.form.slug, sealed_by)
    doc = open_row(row, organizer_key)
    locale = site(app).campaigns[plan.campaign].language
    assert doc == {"answers": plan.expected, "form_version": plan.form.version, "locale": locale}
    return row


# --- JavaScript on: sealed in the page -------------------------------------------------------------------------


@pytest.mark.parametrize(("campaign", "form"), FORMS, ids=FORM_IDS)
def test_sealed_in_browser_no_typed_text_leaves_the_page_and_the_record_opens_to_it(
    app, live_server, open_page, organizer_key, campaign, form
):
    plan = plan_for(app, campaign, form)
    page, log = open_page()
    page.goto(plan.path)
    assert_quick_exit(page, app)
    wait_for_sealing(page)
    submission_id = page.locator("input[name=submission_id]").input_value()
    fill(page, plan)
    submit_and_land(page, plan, live_server)
    assert_quick_exit(page, app)

    [post] = log.posts()
    assert post.resource_type == "fetch"
    assert post.body, "the POST body could not be read, so it could not be checked"
    sent = parse_form_body(post.body, post.headers.get("content-type", ""))
    honeypot = app.config["PAPILLON_HONEYPOT_FIELD"]
    assert set(sent) == SEALING_FIELDS | {honeypot}, "the page sent more than the sealed envelope"
    assert sent[honeypot] == [""]

    secrets_sent = plan.typed + [choice for choice in plan.chosen if len(choice) >= 6]
    for request in log.requests:
        carried = request.url.encode() + b"\n" + (request.body or b"")
        for value in secrets_sent:
            leaked = [n for n in leak_needles(value) if n in carried]
            assert not leaked, f"{request.method} {request.url} carried the typed value {value!r} as {leaked}"
    assert_clean(log, live_server)

    row = assert_stored(app, plan, submission_id, "browser", organizer_key)
    assert sent["envelope"] == [row.envelope]
    thanks_loads = [r for r in log.requests if urlsplit(r.url).path == f"{plan.path}/thanks"]
    assert len(thanks_loads) == 1, "the thank-you page should be loaded once, on a slow link every load counts"


def test_staff_open_browser_sealed_and_server_sealed_records_with_the_same_script(
    app, live_server, open_page, organizer_key_file, script, tmp_path
):
    plans = {}
    for javascript in (True, False):
        plan = plan_for(app, "petition", "testimony")
        page, _ = open_page(javascript=javascript)
        page.goto(plan.path)
        if javascript:
            wait_for_sealing(page)
        fill(page, plan)
        submit_and_land(page, plan, live_server)
        plans["browser" if javascript else "server"] = plan

    bundle_path = tmp_path / "export.bundle"
    result = app.test_cli_runner().invoke(args=["export", "--out", str(bundle_path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "opened"
    assert script("decrypt").main(decrypt_args(bundle_path, organizer_key_file, out)) == 0

    with (out / "petition-testimony.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(row["Sealed by"] for row in rows) == ["browser", "server"]
    form = plans["browser"].form
    for row in rows:
        expected = plans[row["Sealed by"]].expected
        for f in form.fields:
            if f.type == c.CONSENT:
                assert row[f.label] == ("yes" if expected[f.name] else "no")
            elif f.choices:
                assert row[f.label] == f.choice_label(expected[f.name]), f.name
            else:
                assert row[f.label] == expected[f.name], f.name
        assert row["Check"] == ""


# --- JavaScript off, or no X25519: sealed by the server on arrival ---------------------------------------------


@pytest.mark.parametrize(("campaign", "form"), FORMS, ids=FORM_IDS)
def test_without_javascript_the_plain_form_is_sealed_by_the_server_and_opens_to_the_typed_answers(
    app, live_server, open_page, organizer_key, campaign, form
):
    plan = plan_for(app, campaign, form)
    page, log = open_page(javascript=False)
    page.goto(plan.path)
    assert_quick_exit(page, app)
    submission_id = page.locator("input[name=submission_id]").input_value()
    fill(page, plan)
    submit_and_land(page, plan, live_server)
    assert_quick_exit(page, app)

    [post] = log.posts()
    assert post.resource_type == "document"
    assert post.url == f"{live_server}{plan.path}"
    assert_clean(log, live_server)
    assert_stored(app, plan, submission_id, "server", organizer_key)


@pytest.mark.parametrize(("campaign", "form"), FORMS, ids=FORM_IDS)
def test_without_webcrypto_x25519_the_page_says_so_and_the_server_seals(
    app, live_server, open_page, organizer_key, campaign, form
):
    plan = plan_for(app, campaign, form)
    page, log = open_page(init_script=WITHOUT_X25519)
    page.goto(plan.path)
    status = page.locator("#seal-status")
    expect(status).to_be_visible()
    expect(status).to_contain_text("server")
    assert page.evaluate("PapillonSeal.supportsX25519()") is False
    submission_id = page.locator("input[name=submission_id]").input_value()
    fill(page, plan)
    submit_and_land(page, plan, live_server)

    [post] = log.posts()
    assert post.resource_type == "document", "without X25519 the page must fall back to the plain form"
    assert_clean(log, live_server)
    assert_stored(app, plan, submission_id, "server", organizer_key)


# --- discreet on a shared phone: a neutral tab title, sealing said once, a choice that can be taken back ---------


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_the_tab_names_no_topic_and_the_page_says_once_beside_the_button_how_answers_are_sealed(
    app, live_server, open_page, javascript
):
    page, log = open_page(javascript=javascript)
    page.goto("/petition/testimony")
    assert page.title() == "Form"
    if javascript:
        wait_for_sealing(page)
        expect(page.locator("#seal-status")).to_contain_text("sealed in this browser")
        said = page.locator("#seal-status")
        assert page.locator("#noscript-note").count() == 0
    else:
        expect(page.locator("#seal-status")).to_be_hidden()
        said = page.locator("#noscript-note")
        expect(said).to_contain_text("the server reads them for a moment to seal them")
    expect(said).to_be_visible()
    shown = [el for el in ("#seal-status", "#noscript-note") if page.locator(el).is_visible()]
    assert len(shown) == 1, "the sealing promise is said once"
    fingerprint = page.locator("#sealing-note .fingerprint")
    expect(fingerprint).to_contain_text(site(app).keys[0].fingerprint)
    last_field = page.locator("form.answers .field").last.bounding_box()
    button = page.locator("form.answers button[type=submit]").bounding_box()
    box = said.bounding_box()
    assert last_field["y"] + last_field["height"] <= box["y"] < button["y"], "between the last question and the button"
    assert page.locator("#private-hint").is_visible()
    assert_clean(log, live_server)


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_an_optional_choice_taken_back_with_no_answer_is_stored_as_unanswered(
    app, live_server, open_page, organizer_key, javascript
):
    plan = plan_for(app, "petition", "testimony")
    page, log = open_page(javascript=javascript)
    page.goto(plan.path)
    if javascript:
        wait_for_sealing(page)
    no_answer = control(page, "choose", "when", "")
    expect(no_answer).to_be_checked()
    submission_id = page.locator("input[name=submission_id]").input_value()
    fill(page, plan)
    expect(no_answer).not_to_be_checked()
    page.get_by_label("No answer").check()
    expect(no_answer).to_be_checked()
    plan.expected["when"] = ""
    submit_and_land(page, plan, live_server)
    assert_clean(log, live_server)
    assert_stored(app, plan, submission_id, "browser" if javascript else "server", organizer_key)
    assert page.title() == "Thank you"


# --- what the person sees when something is wrong --------------------------------------------------------------


@pytest.mark.parametrize(("campaign", "form"), FORMS, ids=FORM_IDS)
def test_browser_validation_keeps_an_incomplete_form_on_the_page_and_sends_nothing(
    app, live_server, open_page, campaign, form
):
    definition = site(app).campaigns[campaign].forms[form]
    # A multiple-choice field has no HTML constraint for "at least one"; the server checks that.
    missing = next((f.name for f in definition.fields if f.required and f.type != c.MULTIPLE_CHOICE), None)
    if missing is None:
        pytest.skip(f"{campaign}/{form} has no field the browser can require")
    plan = plan_for(app, campaign, form, leave_empty=missing)
    page, log = open_page()
    page.goto(plan.path)
    wait_for_sealing(page)
    fill(page, plan)
    page.locator("form.answers button[type=submit]").click()
    page.wait_for_timeout(300)

    assert page.url == f"{live_server}{plan.path}"
    first = page.locator(f"form.answers [name={css_string(missing)}]").first
    assert first.evaluate("el => el.validity.valueMissing") is True
    assert log.posts() == []
    assert stored(app) == []
    assert_still_filled(page, plan)
    assert_clean(log, live_server)


@pytest.mark.parametrize(("campaign", "form"), FORMS, ids=FORM_IDS)
def test_server_refusal_is_shown_and_the_typed_answers_stay_in_the_form(app, live_server, open_page, campaign, form):
    """A page carrying a key the server does not hold (say, loaded before a key rotation) is refused, visibly."""
    plan = plan_for(app, campaign, form)
    [real] = site(app).keys
    stranger = keys.PublicKey("stranger", keys.raw_public_bytes(X25519PrivateKey.generate().public_key()))
    swapped = []

    def swap_key(route: Route) -> None:
        response = route.fetch()
        html = response.text()
        swapped.append(html.count(real.key_id) and html.count(real.to_b64()))
        html = html.replace(real.key_id, stranger.key_id).replace(real.to_b64(), stranger.to_b64())
        route.fulfill(response=response, body=html)

    page, log = open_page()
    page.route(f"{live_server}{plan.path}", swap_key)
    page.goto(plan.path)
    assert swapped, "the page's sealing config did not carry the organizer key"
    assert swapped[0], "the page's sealing config did not carry the organizer key"
    wait_for_sealing(page)
    fill(page, plan)
    page.locator("form.answers button[type=submit]").click()

    status = page.locator("#seal-status")
    expect(status).to_contain_text("Nothing was stored")
    expect(status).to_be_visible()
    assert page.url == f"{live_server}{plan.path}"
    assert [(m, s) for m, url, s in log.responses if m == "POST"] == [("POST", 400)]
    assert_still_filled(page, plan)
    expect(page.locator("form.answers button[type=submit]")).to_be_enabled()
    assert stored(app) == []
    assert_clean(log, live_server, expected_failures=(plan.path,))


def test_the_browsers_own_check_speaks_the_page_language_with_the_servers_words(app, live_server, open_page):
    from app.views import field_messages

    page, _ = open_page()
    page.goto("/ko/petition/sign")
    wait_for_sealing(page)
    page.locator("form.answers button[type=submit]").click()
    shown = page.locator("#name").evaluate("e => e.validationMessage")
    with app.test_request_context("/ko/petition/sign"):
        form = site(app).localized["petition", "ko"].forms["sign"]
        korean = field_messages(form, "ko")["name"]["missing"]
        choose = field_messages(form, "ko")["signing_as"]["missing"]
    with app.test_request_context("/en/petition/sign"):
        english = field_messages(site(app).campaigns["petition"].forms["sign"], "en")["name"]["missing"]
    assert shown == korean != english
    page.locator("#name").fill("Ada")
    assert page.locator("#name").evaluate("e => e.validity.valid") is True
    radios = page.locator("input[name=signing_as]")
    page.locator("form.answers button[type=submit]").click()
    assert radios.first.evaluate("e => e.validationMessage") == choose
    radios.last.check()
    assert radios.evaluate_all("rs => rs.every(r => r.validity.valid)") is True


def test_a_lost_connection_and_a_busy_server_are_retried_with_the_same_envelope_and_stored_once(
    app, live_server, open_page, organizer_key
):
    plan = plan_for(app, "petition", "testimony")
    sent: list[bytes] = []

    def flaky(route: Route) -> None:
        if route.request.method != "POST":
            return route.continue_()
        sent.append(route.request.post_data_buffer or b"")
        if len(sent) == 1:
            return route.abort("connectionreset")
        if len(sent) == 2:
            return route.fulfill(status=503, content_type="application/json", body='{"error": "busy"}')
        return route.continue_()

    page, _ = open_page()
    page.route(f"{live_server}{plan.path}", flaky)
    page.goto(plan.path)
    wait_for_sealing(page)
    submission_id = page.locator("input[name=submission_id]").input_value()
    fill(page, plan)
    submit_and_land(page, plan, live_server)
    assert len(sent) == 3
    assert len(set(sent)) == 1, "every try carried the very same id and envelope"
    assert_stored(app, plan, submission_id, "browser", organizer_key)


def test_when_every_try_fails_the_page_says_so_and_keeps_the_answers(app, live_server, open_page):
    plan = plan_for(app, "petition", "testimony")
    tries = []

    def down(route: Route) -> None:
        if route.request.method != "POST":
            return route.continue_()
        tries.append(route.request.post_data_buffer)
        return route.abort("connectionrefused")

    page, _ = open_page()
    page.route(f"{live_server}{plan.path}", down)
    page.goto(plan.path)
    wait_for_sealing(page)
    fill(page, plan)
    page.locator("form.answers button[type=submit]").click()
    status = page.locator("#seal-status")
    expect(status).to_contain_text("the connection failed", timeout=15_000)
    expect(status).to_contain_text("Nothing you typed was lost")
    assert len(tries) == 4, "the first try and three more, then the page gives up"
    assert_still_filled(page, plan)
    expect(page.locator("form.answers button[type=submit]")).to_be_enabled()
    assert stored(app) == []


def test_sending_the_same_answers_again_reuses_their_envelope_and_changed_answers_are_sealed_anew(
    app, live_server, open_page
):
    plan = plan_for(app, "petition", "testimony")
    bodies: list[bytes] = []

    def refuse_all(route: Route) -> None:
        if route.request.method != "POST":
            return route.continue_()
        bodies.append(route.request.post_data_buffer or b"")
        return route.fulfill(status=400, content_type="application/json", body='{"error": "refused"}')

    page, _ = open_page()
    page.route(f"{live_server}{plan.path}", refuse_all)
    page.goto(plan.path)
    wait_for_sealing(page)
    fill(page, plan)
    button = page.locator("form.answers button[type=submit]")
    for _ in range(2):
        button.click()
        expect(page.locator("#seal-status")).to_contain_text("refused")
        expect(button).to_be_enabled()
    page.locator("textarea").first.fill("Something else entirely")
    button.click()
    expect(page.locator("#seal-status")).to_contain_text("refused")
    assert len(bodies) == 3
    assert bodies[0] == bodies[1]
    assert bodies[2] != bodies[0]


# --- every page: strict CSP, no violation, no error, a quick exit ----------------------------------------------


def test_every_page_has_a_strict_csp_no_violation_no_js_error_and_a_quick_exit_link(app, live_server, open_page):
    paths = ["/"]
    for campaign in site(app).campaigns.values():
        paths.append(f"/{campaign.slug}/")
        for form in campaign.forms.values():
            paths += [f"/{campaign.slug}/{form.slug}", f"/{campaign.slug}/{form.slug}/thanks"]
    missing = "/no-such-campaign/"
    page, log = open_page()
    for path in [*paths, missing]:
        response = page.goto(path)
        assert response.status == (404 if path == missing else 200), path
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp, path
        assert "unsafe-" not in csp, path
        assert_quick_exit(page, app)
        if page.locator("form[data-seal]").count():
            wait_for_sealing(page)
    assert_clean(log, live_server, expected_failures=(missing,))


# --- the measurement the issue asks for (timing is printed, never asserted) ------------------------------------


def test_in_page_sealing_time_is_reported_and_the_script_fits_its_gzip_budget(
    app, live_server, open_page, organizer_key, record_property
):
    """About 1 KB of answers, as a typical signature is (make bench measures the shipped open letter)."""
    campaign, form = "petition", "sign"
    answers = {
        **{k: v for k, v in TYPICAL_ANSWERS.items() if k in {"name", "email", "postal_code"}},
        "signing_as": "organization",
        "organization": TYPICAL_ANSWERS["organization_name"],
        "areas_of_focus": ["rights", "legal"],
        "comment": TYPICAL_ANSWERS["known_harms"] + "\n" + TYPICAL_ANSWERS["comment"],
    }
    page, log = open_page()
    page.goto(f"/{campaign}/{form}")
    wait_for_sealing(page)
    result = page.evaluate(TIME_BUILD_ENVELOPE, [answers, 30, 5])
    sealed = envelope.parse(result["envelope"], [k.key_id for k in site(app).keys])
    doc = envelope.open_envelope(sealed, organizer_key, campaign, form)
    assert doc["answers"] == answers
    assert sealed.padded_length == len(envelope.plaintext(answers, 1, "en")) == 1024

    size = seal_js_gzip_size()
    took = median(result["times"])
    record_property("seal_median_ms", round(took, 3))
    record_property("seal_js_gzip_bytes", size)
    print(f"\nbuildEnvelope median over 30 runs: {took:.3f} ms; seal.js gzip -9: {size} bytes")
    assert size < SEAL_JS_GZIP_BUDGET, f"seal.js is {size} bytes gzipped, over its {SEAL_JS_GZIP_BUDGET}-byte budget"
    assert_clean(log, live_server)
    assert origin(page.url) == live_server


# --- a shared address (an onion service): the page does a small proof of work -----------------------------------


@pytest.fixture
def onion_app(config: dict[str, object]) -> Flask:
    """Every visitor of the live server comes from 127.0.0.1, as every Tor visitor comes from the Tor daemon."""
    app = create_app({**config, "PAPILLON_SHARED_ADDRESSES": "127.0.0.1", "RATELIMIT_ENABLED": True})
    with app.app_context():
        db.create_schema()
    return app


@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_from_a_shared_address_the_page_pays_with_work_and_the_answers_are_stored(
    browser, onion_app, organizer_key, javascript
):
    plan = plan_for(onion_app, "petition", "testimony")
    with serve(onion_app) as server:
        context = browser.new_context(java_script_enabled=javascript, base_url=server)
        context.set_default_timeout(30_000)
        log = PageLog()
        log.attach(context)
        page = context.new_page()
        page.goto(plan.path)
        submission_id = page.locator("input[name=submission_id]").input_value()
        if javascript:
            wait_for_sealing(page)
        fill(page, plan)
        submit_and_land(page, plan, server)
        context.close()

    [post] = log.posts()
    sent = parse_form_body(post.body, post.headers.get("content-type", ""))
    if javascript:
        assert set(sent) == SEALING_FIELDS | {"pow", onion_app.config["PAPILLON_HONEYPOT_FIELD"]}
        with onion_app.test_request_context(f"{plan.path}", method="POST"):
            today = dt.datetime.now(dt.UTC).date()
            challenge = security.pow_challenge(plan.campaign, plan.form.slug, submission_id, today)
        bits, iterations = onion_app.config["PAPILLON_POW_BITS"], onion_app.config["PAPILLON_POW_ITERATIONS"]
        assert pow.verify(challenge, sent["pow"][0], bits, iterations)
    else:
        assert "pow" not in sent
    assert_clean(log, server)
    assert_stored(onion_app, plan, submission_id, "browser" if javascript else "server", organizer_key)
