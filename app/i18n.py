"""The page's language: named by its address (``/ko/…``), else picked from the browser's Accept-Language.

No cookie remembers it: a link carries its language, so a link passed on opens in the language it was
sent in, and nothing on the device records which language someone read.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po
from flask import Flask, Response, current_app, g, request, url_for
from flask_babel import Babel
from werkzeug.routing import BaseConverter

from app.site import site
from papillon import languages
from papillon.campaigns import Campaign

babel = Babel()
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


class CatalogError(RuntimeError):
    """An interface catalog is missing or was not compiled since it last changed."""


class LanguageConverter(BaseConverter):
    """``<lang:lang>`` matches only our language tags, tried before a campaign slug in the same place."""

    regex = "|".join(re.escape(tag) for tag in sorted(languages.NAMES, key=len, reverse=True))
    weight = 50


def init_app(app: Flask) -> None:
    app.url_map.converters["lang"] = LanguageConverter
    babel.init_app(app, locale_selector=lambda: languages.CATALOGS[page_language()])
    site(app).reviewed_catalogs = check_catalogs(TRANSLATIONS)
    app.jinja_env.globals.update(
        languages=languages.NAMES,
        page_language=page_language,
        language_url=language_url,
        interface_reviewed=interface_reviewed,
    )
    app.jinja_env.filters.update(text_lang=text_lang)
    app.after_request(mark_language)


def check_catalogs(folder: Path) -> set[str]:
    """The languages whose interface catalog a fluent speaker has reviewed (its header is not ``fuzzy``).

    Refuses to start on a catalog that is missing or older than its ``.po``: the page would quietly be
    English, or yesterday's wording."""
    reviewed = {languages.DEFAULT}
    for tag, catalog in languages.CATALOGS.items():
        if tag == languages.DEFAULT:
            continue
        po = folder / catalog / "LC_MESSAGES" / "messages.po"
        mo = po.with_suffix(".mo")
        if not po.is_file():
            raise CatalogError(f"{po}: the {languages.NAMES[tag]} catalog is missing")
        if not mo.is_file() or mo.stat().st_mtime < po.stat().st_mtime:
            raise CatalogError(f"{mo}: not compiled since {po.name} changed; run `make translations`")
        with po.open("rb") as fh:
            if not read_po(fh).fuzzy:
                reviewed.add(tag)
    return reviewed


def page_language() -> str:
    """The language of the page being answered: the address's, else the browser's first we speak."""
    if "page_language" not in g:
        g.page_language = language_in_path() or languages.negotiate(
            value for value, quality in request.accept_languages if quality > 0
        )
    language: str = g.page_language
    return language


def language_in_path() -> str | None:
    first = request.path.split("/", 2)[1]
    return first if first in languages.NAMES else None


def interface_reviewed() -> bool:
    return page_language() in site().reviewed_catalogs


def language_url(tag: str) -> str:
    """The page at hand in another language; the list of campaigns when the page has no address of its own."""
    endpoint = request.endpoint
    args = dict(request.view_args or {})
    if endpoint is None or not takes_language(endpoint):
        endpoint, args = "public.index", {}
    return url_for(endpoint, **{**args, "lang": tag})


def takes_language(endpoint: str) -> bool:
    """Whether a page has an address with a language in it (the health check, for one, has not)."""
    return any("lang" in rule.arguments for rule in current_app.url_map.iter_rules(endpoint))


def text_lang(campaign: Campaign, key: str) -> dict[str, str]:
    """``lang`` for one of a campaign's texts when it is not in the page's language (not translated yet), so a
    screen reader says it in its own; used as ``campaign|text_lang("forms.sign.title")|xmlattr``."""
    language = campaign.text_language(key)
    return {} if language == page_language() else {"lang": language}


def mark_language(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers["Content-Language"] = page_language()
    if language_in_path() is None:
        response.vary.add("Accept-Language")
    return response
