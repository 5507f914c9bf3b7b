"""Campaign definitions: texts, forms and fields, read from TOML and checked before use.

The same definitions drive the server's forms, the browser's constraints and the
laptop's re-validation of opened records, so every rule about an answer lives here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TEXT = "text"
LONG_TEXT = "long_text"
EMAIL = "email"
PHONE = "phone"
POSTAL_CODE = "postal_code"
SINGLE_CHOICE = "single_choice"
MULTIPLE_CHOICE = "multiple_choice"
CONSENT = "consent"

DEFAULT_MAX_LENGTH = {TEXT: 200, LONG_TEXT: 5000, EMAIL: 254, PHONE: 32, POSTAL_CODE: 12}
CHOICE_TYPES = {SINGLE_CHOICE, MULTIPLE_CHOICE}
FIELD_TYPES = set(DEFAULT_MAX_LENGTH) | CHOICE_TYPES | {CONSENT}

# The same patterns are rendered as HTML ``pattern`` attributes, so they must mean the
# same thing to Python's ``re`` and to a browser's ``v``-flag RegExp.
PATTERNS = {
    EMAIL: r"[^@\s]+@[^@\s]+\.[^@\s]+",
    PHONE: r"[0-9+\(\)\-. ]{5,32}",
    POSTAL_CODE: r"[A-Za-z0-9 \-]{2,12}",
}
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LINE_BREAK = re.compile(r"[\r\n\t]")

Answer = str | list[str] | bool


class CampaignError(ValueError):
    """A campaign file is unreadable or breaks a rule; the message names the file and the field."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    required: bool = False
    help: str = ""
    max_length: int = 0
    choices: tuple[str, ...] = ()

    @property
    def pattern(self) -> str | None:
        return PATTERNS.get(self.type)

    def empty(self) -> Answer:
        if self.type == MULTIPLE_CHOICE:
            return []
        if self.type == CONSENT:
            return False
        return ""

    def check(self, value: object) -> str | None:
        """The reason an answer is not acceptable, or None when it is."""
        if self.type == CONSENT:
            if not isinstance(value, bool):
                return "This must be ticked or left empty."
            return "Please tick this box to go on." if self.required and not value else None
        if self.type == MULTIPLE_CHOICE:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return "Please choose from the list."
            if len(set(value)) != len(value) or not set(value) <= set(self.choices):
                return "Please choose from the list."
            return "Please choose at least one." if self.required and not value else None
        if not isinstance(value, str):
            return "This answer must be text."
        if not value:
            return "This field is required." if self.required else None
        if self.type == SINGLE_CHOICE:
            return None if value in self.choices else "Please choose from the list."
        if len(value) > self.max_length:
            return f"Please keep this under {self.max_length} characters."
        if CONTROL.search(value) or (self.type != LONG_TEXT and LINE_BREAK.search(value)):
            return "This answer holds characters that are not allowed."
        pattern = self.pattern
        if pattern and not re.fullmatch(pattern, value):
            return {
                EMAIL: "Please give an email address such as name@example.org.",
                PHONE: "Please give a phone number using digits, spaces, +, -, ( and ).",
                POSTAL_CODE: "Please give a postal code using letters, digits and spaces.",
            }[self.type]
        return None


@dataclass(frozen=True)
class Form:
    slug: str
    title: str
    fields: tuple[Field, ...]
    version: int = 1
    intro: str = ""
    submit: str = "Send"
    thanks: str = "Thank you. Your answers were sealed and received."

    def check(self, answers: Mapping[str, object]) -> dict[str, str]:
        """Problems with a whole set of answers, by field name (``_form`` for the set itself)."""
        problems = {f.name: msg for f in self.fields if (msg := f.check(answers.get(f.name, f.empty())))}
        unknown = set(answers) - {f.name for f in self.fields}
        if unknown:
            problems["_form"] = "Unknown fields: " + ", ".join(sorted(unknown))
        return problems


@dataclass(frozen=True)
class Campaign:
    slug: str
    title: str
    language: str
    body: str
    forms: dict[str, Form]
    summary: str = ""
    source: dict = field(default_factory=dict, compare=False, repr=False)

    def paragraphs(self) -> list[str]:
        return [p.strip() for p in re.split(r"\n\s*\n", self.body) if p.strip()]


def _get(data: Mapping, key: str, where: str, kind: type, default: object = None) -> object:
    if key not in data:
        if default is None:
            raise CampaignError(f"{where}.{key}: missing")
        return default
    value = data[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise CampaignError(f"{where}.{key}: must be {kind.__name__}")
    if kind is str and not value.strip() and default is None:
        raise CampaignError(f"{where}.{key}: must not be empty")
    return value


def _table(data: object, where: str, allowed: set[str]) -> Mapping:
    if not isinstance(data, Mapping):
        raise CampaignError(f"{where}: must be a table")
    if extra := set(data) - allowed:
        raise CampaignError(f"{where}.{sorted(extra)[0]}: unknown setting")
    return data


def _field(data: object, where: str) -> Field:
    data = _table(data, where, {"name", "type", "label", "required", "help", "max_length", "choices"})
    name = _get(data, "name", where, str)
    if not NAME.fullmatch(name):
        raise CampaignError(f"{where}.name: {name!r} must be lower case letters, digits and _")
    kind = _get(data, "type", where, str)
    if kind not in FIELD_TYPES:
        raise CampaignError(f"{where}.type: {kind!r} is not one of {', '.join(sorted(FIELD_TYPES))}")
    choices = _get(data, "choices", where, list, [])
    if kind in CHOICE_TYPES:
        if not choices or not all(isinstance(c, str) and c.strip() for c in choices):
            raise CampaignError(f"{where}.choices: a choice field needs a list of texts")
        if len(set(choices)) != len(choices):
            raise CampaignError(f"{where}.choices: a choice appears twice")
    elif choices:
        raise CampaignError(f"{where}.choices: only choice fields have choices")
    max_length = _get(data, "max_length", where, int, DEFAULT_MAX_LENGTH.get(kind, 0))
    if kind in DEFAULT_MAX_LENGTH and not 1 <= max_length <= 20000:
        raise CampaignError(f"{where}.max_length: must be between 1 and 20000")
    if kind not in DEFAULT_MAX_LENGTH and "max_length" in data:
        raise CampaignError(f"{where}.max_length: only text fields have a length")
    return Field(
        name=name,
        type=kind,
        label=_get(data, "label", where, str),
        required=_get(data, "required", where, bool, False),
        help=_get(data, "help", where, str, ""),
        max_length=max_length,
        choices=tuple(choices),
    )


def _form(data: object, where: str) -> Form:
    data = _table(data, where, {"slug", "title", "version", "intro", "submit", "thanks", "fields"})
    slug = _get(data, "slug", where, str)
    if not SLUG.fullmatch(slug):
        raise CampaignError(f"{where}.slug: {slug!r} must be lower case letters, digits and -")
    raw_fields = _get(data, "fields", where, list)
    if not raw_fields:
        raise CampaignError(f"{where}.fields: a form needs at least one field")
    fields = tuple(_field(f, f"{where}.fields[{i}]") for i, f in enumerate(raw_fields))
    names = [f.name for f in fields]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise CampaignError(f"{where}.fields: the name {dup!r} is used twice")
    version = _get(data, "version", where, int, 1)
    if version < 1:
        raise CampaignError(f"{where}.version: must be 1 or more")
    defaults = Form(slug="", title="", fields=())
    return Form(
        slug=slug,
        title=_get(data, "title", where, str),
        fields=fields,
        version=version,
        intro=_get(data, "intro", where, str, ""),
        submit=_get(data, "submit", where, str, defaults.submit),
        thanks=_get(data, "thanks", where, str, defaults.thanks),
    )


def from_dict(data: Mapping, source: str) -> Campaign:
    """Build and check a campaign; ``source`` names the file in every error."""
    allowed = {"slug", "title", "language", "summary", "body", "forms"}
    if extra := set(data) - allowed:
        raise CampaignError(f"{source}: {sorted(extra)[0]}: unknown setting")
    slug = _get(data, "slug", source, str)
    if not SLUG.fullmatch(slug):
        raise CampaignError(f"{source}: slug: {slug!r} must be lower case letters, digits and -")
    raw_forms = _get(data, "forms", source, list)
    if not raw_forms:
        raise CampaignError(f"{source}: forms: a campaign needs at least one form")
    forms: dict[str, Form] = {}
    for i, raw in enumerate(raw_forms):
        form = _form(raw, f"{source}: forms[{i}]")
        if form.slug in forms:
            raise CampaignError(f"{source}: forms[{i}].slug: {form.slug!r} is used twice")
        forms[form.slug] = form
    return Campaign(
        slug=slug,
        title=_get(data, "title", source, str),
        language=_get(data, "language", source, str, "en"),
        summary=_get(data, "summary", source, str, ""),
        body=_get(data, "body", source, str),
        forms=forms,
        source=dict(data),
    )


def load_file(path: str | Path) -> Campaign:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CampaignError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise CampaignError(f"{path}: cannot be read: {exc.strerror}") from exc
    campaign = from_dict(data, str(path))
    if campaign.slug != path.stem:
        raise CampaignError(f"{path}: slug: {campaign.slug!r} must match the file name {path.stem!r}")
    return campaign


def load_dir(directory: str | Path) -> dict[str, Campaign]:
    """Every ``*.toml`` in a folder, in name order."""
    campaigns = {c.slug: c for c in map(load_file, sorted(Path(directory).glob("*.toml")))}
    if not campaigns:
        raise CampaignError(f"{directory}: no campaign file (*.toml) found")
    return campaigns
