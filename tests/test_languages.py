"""papillon/languages.py: the tags of the languages Papillon speaks, which of them a browser's tag asks for, and the
catalog each is translated in. (Pages in each language: tests/test_i18n.py.)"""

from __future__ import annotations

import pytest
from babel import Locale
from pages import ROOT

from papillon import languages

TRANSLATIONS = ROOT / "app" / "translations"


@pytest.mark.parametrize("tag", list(languages.NAMES))
def test_each_of_our_tags_asks_for_its_own_language_however_it_is_written(tag: str) -> None:
    for written in (tag, tag.lower(), tag.upper(), tag.replace("-", "_"), f" {tag} "):
        assert languages.from_tag(written) == tag, written


@pytest.mark.parametrize(
    ("tag", "ours"),
    [
        ("ko-KR", "ko"),
        ("th-TH", "th"),
        ("es-419", "es"),
        ("fr-CA", "fr"),
        ("zh", "zh-Hans"),
        ("zh-CN", "zh-Hans"),
        ("zh-SG", "zh-Hans"),
        ("zh-TW", "zh-Hant"),
        ("zh-HK", "zh-Hant"),
        ("zh-MO", "zh-Hant"),
        ("zh-Hant-HK", "zh-Hant"),
        ("zh_tw", "zh-Hant"),
        ("fil", "tl"),
        ("fil-PH", "tl"),
        ("de-DE", None),
        ("pt", None),
        ("", None),
        ("*", None),
    ],
)
def test_a_browsers_tag_asks_for_the_language_of_ours_it_names(tag: str, ours: str | None) -> None:
    assert languages.from_tag(tag) == ours


@pytest.mark.parametrize(
    ("tags", "chosen"),
    [
        (["de", "ko", "fr"], "ko"),
        (["zh-TW", "en"], "zh-Hant"),
        (["en-GB", "fr"], "en"),
        (["de", "pt-BR"], "en"),
        ([], "en"),
    ],
)
def test_negotiate_takes_the_first_language_we_speak_and_english_when_none(tags: list[str], chosen: str) -> None:
    assert languages.negotiate(tags) == chosen


def test_english_is_the_default_and_one_of_the_nine() -> None:
    assert languages.DEFAULT == "en"
    assert len(languages.NAMES) == 9
    assert languages.DEFAULT in languages.NAMES


@pytest.mark.parametrize("tag", list(languages.NAMES))
def test_each_language_has_a_catalog_babel_knows_and_we_ship(tag: str) -> None:
    """Babel knows Tagalog by its standard form, Filipino; every language but English has a catalog of its own."""
    catalog = languages.CATALOGS[tag]
    assert Locale.parse(catalog).language == ("fil" if tag == "tl" else tag.split("-")[0])
    if tag != languages.DEFAULT:
        assert (TRANSLATIONS / catalog / "LC_MESSAGES" / "messages.po").is_file()


def test_the_catalogs_are_for_exactly_our_languages() -> None:
    assert set(languages.CATALOGS) == set(languages.NAMES)
    assert len(set(languages.CATALOGS.values())) == len(languages.NAMES)
