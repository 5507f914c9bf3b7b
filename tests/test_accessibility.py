"""Cross-cutting: every page of the shipped campaigns, in every language, as a phone and a screen reader meet it:
axe-core finds no WCAG 2.2 A/AA violation, nothing scrolls sideways at 360 px, buttons and choices are at least
44 px tall, and the page with everything it loads stays under 20 KB gzipped (seal.js alone has its own, smaller
budget: tests/test_browser.py)."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from flask import Flask
from pages import ROOT
from playwright.sync_api import Browser, BrowserContext, Page

from app.views import SEAL_MESSAGES
from papillon import languages, signers

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_22_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
PHONE = {"width": 360, "height": 740}
MIN_TARGET = 44
MAX_GZIPPED = 20 * 1024

# Every page a person can reach: the list, both campaigns, every form, a thank-you page and a missing page.
PAGES = [
    "/",
    "/declaration/",
    "/open-letter/",
    "/declaration/sign",
    "/open-letter/sign",
    "/open-letter/testimony",
    "/open-letter/testimony/thanks",
    "/replies",
    "/replies/thanks",
    "/nowhere/",
]
# Every language: CJK, Hangul, Thai and Latin scripts each lay out (and fail) differently.
AXE_LANGUAGES = list(languages.NAMES)
TARGETS = (
    "button, a.button, a.quick-exit, nav.languages a, .choices label, .field.consent label, "
    "input[type=text], input[type=email], input[type=tel], textarea"
)


@pytest.fixture
def phone(shipped_campaigns: None, browser: Browser, live_server: str) -> Iterator[Callable[[], Page]]:
    """A 360 px wide page. CSP is bypassed only so that axe-core can be added to the page under test."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        if not AXE.is_file():
            pytest.fail("axe-core is not installed: run `make test` (it runs npm ci)", pytrace=False)
        context = browser.new_context(base_url=live_server, viewport=PHONE, bypass_csp=True)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def axe_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => (await axe.run(document, { runOnly: { type: 'tag', values: tags } })).violations",
        WCAG_22_A_AA,
    )
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in result]


def sideways_scroll(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def small_targets(page: Page) -> list[str]:
    return page.evaluate(
        """([selector, least]) => Array.from(document.querySelectorAll(selector))
            .filter((el) => el.offsetParent !== null && el.getBoundingClientRect().height < least)
            .map((el) => `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}"`
                + ` ${el.getBoundingClientRect().height.toFixed(1)}px`)""",
        [TARGETS, MIN_TARGET],
    )


def open_with_weight(page: Page, path: str) -> tuple[int, set[str]]:
    """Load a page and return the gzipped size of everything it loaded, and the paths it loaded.

    Give it a page of a fresh context: one that loaded the stylesheet and scripts before would take them from
    its cache, and the page would seem to weigh only its HTML."""
    loaded: dict[str, bytes] = {}
    page.on("response", lambda response: loaded.setdefault(response.url, response.body()))
    page.goto(path)
    page.wait_for_load_state("networkidle")
    weight = sum(len(gzip.compress(body, 9)) for body in loaded.values())
    return weight, {urlsplit(url).path for url in loaded}


def expected_files(path: str) -> set[str]:
    """What every page loads besides itself, the sealing script on a form page, and the replies script on the
    testimony form and the replies page."""
    scripts = {"/static/seal.js"} if path.endswith(("sign", "testimony", "/replies")) else set()
    scripts |= {"/static/replies.js"} if path.endswith(("testimony", "/replies")) else set()
    return {"/static/papillon.css", "/static/exit.js"} | scripts


def invalid_testimony(page: Page, tag: str) -> None:
    """The no-JavaScript refusal page: only spaces in the one required answer, which only the server refuses."""
    page.goto(f"/{tag}/open-letter/testimony")
    page.fill("textarea[name=what_happened]", "   ")
    page.evaluate("document.querySelector('form.answers').submit()")
    page.wait_for_selector("#error-summary")


def looked_up(page: Page, tag: str) -> None:
    """The replies page once a code was looked up: the (empty) result and the form to write back."""
    page.goto(f"/{tag}/replies")
    page.fill("#code", "7K2M-9QXR-4HBD-0A1C-5E6F-8G9J-TVWZ")
    page.click("#lookup-form button[type=submit]")
    page.wait_for_selector("#follow-up-form:not([hidden])")


@pytest.mark.parametrize("tag", AXE_LANGUAGES)
def test_axe_finds_no_wcag_violation_on_any_page(phone: Callable[[], Page], tag: str) -> None:
    page = phone()
    found = {}
    for path in PAGES:
        page.goto(f"/{tag}{path}")
        if path.endswith(("sign", "testimony")):
            page.wait_for_selector("#seal-status:not([hidden])")
        if violations := axe_violations(page):
            found[path] = violations
    invalid_testimony(page, tag)
    if violations := axe_violations(page):
        found["the refused testimony"] = violations
    looked_up(page, tag)
    if violations := axe_violations(page):
        found["the replies page after a lookup"] = violations
    assert found == {}


@pytest.mark.parametrize("tag", list(languages.NAMES))
def test_every_page_fits_a_360_px_phone_with_large_targets_and_a_small_weight(
    phone: Callable[[], Page], tag: str
) -> None:
    problems = {}
    for path in PAGES:
        page = phone()
        weight, loaded = open_with_weight(page, f"/{tag}{path}")
        if missing := expected_files(path) - loaded:
            problems[path, "weighed without"] = sorted(missing)
        if weight > MAX_GZIPPED:
            problems[path, "gzipped bytes"] = weight
        if scroll := sideways_scroll(page):
            problems[path, "sideways scroll px"] = scroll
        if small := small_targets(page):
            problems[path, "targets under 44 px"] = small
    invalid_testimony(page, tag)
    if small := small_targets(page):
        problems["the refused testimony", "targets under 44 px"] = small
    assert problems == {}


def test_the_error_summary_takes_the_focus_and_links_to_each_field(phone: Callable[[], Page]) -> None:
    page = phone()
    invalid_testimony(page, "ko")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    link = page.locator("#error-summary a")
    assert link.count() == 1
    assert link.get_attribute("href") == "#what_happened"
    assert page.locator("#what_happened").get_attribute("aria-invalid") == "true"


def test_the_sealing_status_is_announced_to_screen_readers_in_the_page_language(
    phone: Callable[[], Page], app: Flask
) -> None:
    page = phone()
    page.goto("/th/open-letter/testimony")
    status = page.locator("#seal-status")
    page.wait_for_selector("#seal-status:not([hidden])")
    assert status.get_attribute("role") == "status"
    assert status.get_attribute("aria-live") == "polite"
    with app.test_request_context("/th/"):
        expected = str(SEAL_MESSAGES["ready"])
    assert status.inner_text() == expected
    assert "Your answers" not in expected


def test_a_campaign_page_with_its_public_list_of_signers_stays_clean(
    phone: Callable[[], Page], app: Flask, tmp_path
) -> None:
    listing = signers.Listing(
        count=3, signers=[{"name": "王小明", "organization": "蝴蝶"}, {"name": "สมชาย ใจดี"}, {"name": "Ana Álvarez"}]
    )
    path = tmp_path / "signers.json"
    path.write_text(signers.dumps({"declaration": listing}), encoding="utf-8")
    assert app.test_cli_runner().invoke(args=["publish", str(path)]).exit_code == 0
    page = phone()
    for tag in ("ko", "th"):
        page.goto(f"/{tag}/declaration/")
        assert page.locator(".signers li").count() == 3
        assert axe_violations(page) == []
        assert sideways_scroll(page) == 0
