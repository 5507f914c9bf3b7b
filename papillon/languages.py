"""The languages Papillon speaks, by the tag that appears in addresses and in ``<html lang>``.

Shared by the server (pages, catalogs) and the laptop (the locale column of a spreadsheet).
"""

from __future__ import annotations

from collections.abc import Iterable

# In the order the switcher shows them, each named in itself.
NAMES = {
    "zh-Hans": "中文（简体）",
    "zh-Hant": "中文（繁體）",
    "ko": "한국어",
    "th": "ภาษาไทย",
    "vi": "Tiếng Việt",
    "es": "Español",
    "tl": "Tagalog",
    "fr": "Français",
    "en": "English",
}
DEFAULT = "en"

# gettext catalog folders under app/translations/. Babel knows Tagalog by its standard form, Filipino.
CATALOGS = {tag: tag.replace("-", "_") for tag in NAMES} | {"tl": "fil"}

TRADITIONAL_REGIONS = {"tw", "hk", "mo"}


def from_tag(tag: str) -> str | None:
    """The language of ours that a BCP 47 tag from a browser asks for, if any (``zh-TW`` is ``zh-Hant``)."""
    parts = tag.strip().lower().replace("_", "-").split("-")
    primary = parts[0]
    if primary == "zh":
        return "zh-Hant" if "hant" in parts or TRADITIONAL_REGIONS & set(parts[1:]) else "zh-Hans"
    if primary == "fil":
        return "tl"
    return primary if primary in NAMES else None


def negotiate(tags: Iterable[str]) -> str:
    """The first of a browser's languages, best first, that we speak; English when none is."""
    for tag in tags:
        if (ours := from_tag(tag)) is not None:
            return ours
    return DEFAULT
