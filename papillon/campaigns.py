"""Campaign definitions: texts, forms and fields, read from TOML and checked before use.

The same definitions drive the server's forms, the browser's constraints and the
laptop's re-validation of opened records, so every rule about an answer lives here.
A campaign's texts may come in other languages from translation files beside it
(``open-letter.ko.toml``); answers never depend on them: a choice is answered by its id.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal, TypeGuard, TypeVar

from papillon import languages

# A Literal rather than an enum: a field's type is the plain string the campaign file, the
# bundle header and the browser all carry, and compares and serializes as one.
FieldType = Literal["text", "long_text", "email", "phone", "postal_code", "single_choice", "multiple_choice", "consent"]

TEXT: Final[FieldType] = "text"
LONG_TEXT: Final[FieldType] = "long_text"
EMAIL: Final[FieldType] = "email"
PHONE: Final[FieldType] = "phone"
POSTAL_CODE: Final[FieldType] = "postal_code"
SINGLE_CHOICE: Final[FieldType] = "single_choice"
MULTIPLE_CHOICE: Final[FieldType] = "multiple_choice"
CONSENT: Final[FieldType] = "consent"

DEFAULT_MAX_LENGTH: Final[dict[FieldType, int]] = {TEXT: 200, LONG_TEXT: 5000, EMAIL: 254, PHONE: 32, POSTAL_CODE: 12}
CHOICE_TYPES: Final[set[FieldType]] = {SINGLE_CHOICE, MULTIPLE_CHOICE}
FIELD_TYPES: Final[set[FieldType]] = set(DEFAULT_MAX_LENGTH) | CHOICE_TYPES | {CONSENT}

# The same patterns are rendered as HTML ``pattern`` attributes, so they must mean the
# same thing to Python's ``re`` and to a browser's ``v``-flag RegExp.
PATTERNS: Final[dict[FieldType, str]] = {
    EMAIL: r"[^@\s]+@[^@\s]+\.[^@\s]+",
    PHONE: r"[0-9+\(\)\-. ]{5,32}",
    POSTAL_CODE: r"[A-Za-z0-9 \-]{2,12}",
}
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
CHOICE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LINE_BREAK = re.compile(r"[\r\n\t]")

Answer = str | list[str] | bool


def N_(message: str) -> str:
    """Marks a message for the interface catalogs (``pybabel extract``); the web app translates it when shown."""
    return message


# Why an answer is refused, as catalog messages: the laptop shows them in English, a page in its language.
REQUIRED = N_("This field is required.")
MUST_TICK = N_("Please tick this box to go on.")
TICK_OR_EMPTY = N_("This must be ticked or left empty.")
CHOOSE_FROM_LIST = N_("Please choose from the list.")
CHOOSE_ONE = N_("Please choose at least one.")
MUST_BE_TEXT = N_("This answer must be text.")
TOO_LONG = N_("Please keep this under %(max_length)d characters.")
NOT_ALLOWED = N_("This answer holds characters that are not allowed.")
PATTERN_MESSAGES: Final[dict[FieldType, str]] = {
    EMAIL: N_("Please give an email address such as name@example.org."),
    PHONE: N_("Please give a phone number using digits, spaces, +, -, ( and )."),
    POSTAL_CODE: N_("Please give a postal code using letters, digits and spaces."),
}


class CampaignError(ValueError):
    """A campaign file is unreadable or breaks a rule; the message names the file and the field."""


@dataclass(frozen=True)
class Choice:
    id: str
    label: str


@dataclass(frozen=True)
class Problem:
    """Why an answer is refused: a catalog message and its values, so each reader gets it in their language."""

    message: str
    values: Mapping[str, object] = field(default_factory=dict)
    own: bool = False  # the campaign's own words, already in the page's language

    def __str__(self) -> str:
        return self.message % self.values if self.values else self.message


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    label: str
    required: bool = False
    help: str = ""
    max_length: int = 0
    choices: tuple[Choice, ...] = ()
    error: str = ""

    @property
    def pattern(self) -> str | None:
        return PATTERNS.get(self.type)

    @property
    def choice_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.choices)

    def choice_label(self, choice_id: str) -> str:
        """The label of a choice id, or the id itself when the form no longer offers it."""
        return next((c.label for c in self.choices if c.id == choice_id), choice_id)

    def empty(self) -> Answer:
        if self.type == MULTIPLE_CHOICE:
            return []
        if self.type == CONSENT:
            return False
        return ""

    def check(self, value: object) -> str | None:
        """The reason an answer is not acceptable, in English, or None when it is."""
        problem = self.problem(value)
        return None if problem is None else str(problem)

    def problem(self, value: object) -> Problem | None:
        """Why an answer is refused, or None; a left-out answer is refused only when the field is required."""
        if self.type == CONSENT:
            return self._consent_problem(value)
        if self.type == MULTIPLE_CHOICE:
            return self._choices_problem(value)
        if not isinstance(value, str):
            return Problem(MUST_BE_TEXT)
        if not value:
            return self._missing(REQUIRED) if self.required else None
        if self.type == SINGLE_CHOICE:
            return None if value in self.choice_ids else Problem(CHOOSE_FROM_LIST)
        return self._text_problem(value)

    def _consent_problem(self, value: object) -> Problem | None:
        if not isinstance(value, bool):
            return Problem(TICK_OR_EMPTY)
        return self._missing(MUST_TICK) if self.required and not value else None

    def _choices_problem(self, value: object) -> Problem | None:
        """Ids of the choices offered, none twice: a page sends nothing else, so anything else is refused."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return Problem(CHOOSE_FROM_LIST)
        if len(set(value)) != len(value) or not set(value) <= set(self.choice_ids):
            return Problem(CHOOSE_FROM_LIST)
        return self._missing(CHOOSE_ONE) if self.required and not value else None

    def _text_problem(self, value: str) -> Problem | None:
        """A typed answer that is there: its length, its characters, and its pattern for the types that have one."""
        if len(value) > self.max_length:
            return Problem(TOO_LONG, {"max_length": self.max_length})
        if CONTROL.search(value) or (self.type != LONG_TEXT and LINE_BREAK.search(value)):
            return Problem(NOT_ALLOWED)
        pattern = self.pattern
        if pattern and not re.fullmatch(pattern, value):
            return Problem(PATTERN_MESSAGES[self.type])
        return None

    def _missing(self, generic: str) -> Problem:
        """A required answer left out: the campaign's own words for it when it has them (already translated)."""
        return Problem(self.error, own=True) if self.error else Problem(generic)


@dataclass(frozen=True)
class Form:
    slug: str
    title: str
    fields: tuple[Field, ...]
    version: int = 1
    intro: str = ""
    submit: str = "Send"
    thanks: str = "Thank you. Your answers were sealed and received."
    # A sign form may let each signer agree to be listed: the consent field, and the answers then shown.
    publish_consent: str = ""
    publish: tuple[str, ...] = ()
    # The page's tab title and heading name no topic (they land in a shared phone's history); false shows the title.
    discreet: bool = True
    # A testimony form may offer a reply code, so that staff can answer the witness without knowing who they are.
    replies: bool = False

    def published(self, answers: Mapping[str, object]) -> dict[str, str] | None:
        """What a signer agreed to have listed publicly, or None when they did not (or cannot) agree."""
        if not self.publish_consent or answers.get(self.publish_consent) is not True:
            return None
        shown = {name: answers.get(name) for name in self.publish}
        listed = {name: value.strip() for name, value in shown.items() if isinstance(value, str) and value.strip()}
        return listed or None

    def check(self, answers: Mapping[str, object]) -> dict[str, str]:
        """Problems with a whole set of answers, in English, by field name (``_form`` for the set itself)."""
        return {name: str(problem) for name, problem in self.problems(answers).items()}

    def problems(self, answers: Mapping[str, object]) -> dict[str, Problem]:
        problems = {f.name: p for f in self.fields if (p := f.problem(answers.get(f.name, f.empty())))}
        unknown = set(answers) - {f.name for f in self.fields}
        if unknown:
            problems["_form"] = Problem("Unknown fields: %(names)s", {"names": ", ".join(sorted(unknown))})
        return problems


@dataclass(frozen=True)
class Translation:
    """One language's texts for a campaign, by their place in the campaign file (``forms.sign.title``)."""

    language: str
    reviewed: bool
    texts: Mapping[str, str]


@dataclass(frozen=True)
class Campaign:
    slug: str
    title: str
    language: str
    body: str
    forms: dict[str, Form]
    summary: str = ""
    source: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    translations: Mapping[str, Translation] = field(default_factory=dict, compare=False, repr=False)
    body_language: str = ""  # the body's own language when it shows untranslated; the campaign's otherwise
    reviewed: bool = True  # False while these texts are a translation no fluent speaker has checked
    # The texts a translation lacks, by key (``forms.sign.fields.name.label``): they show in the original's words.
    fallbacks: frozenset[str] = frozenset()
    original_language: str = ""

    def paragraphs(self) -> list[str]:
        return [p.strip() for p in re.split(r"\n\s*\n", self.body) if p.strip()]

    @property
    def original(self) -> bool:
        return not self.body_language or self.body_language == self.language

    def text_language(self, key: str) -> str:
        """The language one text shows in, so a page can mark the original's words left untranslated."""
        return self.original_language if key in self.fallbacks else self.language

    def localized(self, language: str) -> Campaign:
        """The campaign as a reader of ``language`` sees it: translated where a translation says so, the
        original's words elsewhere. Choice ids, names and rules are the original's, so answers are too."""
        translation = self.translations.get(language)
        if translation is None:
            return self
        texts = translation.texts

        def text(key: str, original: str) -> str:
            return texts.get(key, original)

        def field_in(form: Form, f: Field) -> Field:
            at = f"forms.{form.slug}.fields.{f.name}"
            return replace(
                f,
                label=text(f"{at}.label", f.label),
                help=text(f"{at}.help", f.help),
                error=text(f"{at}.error", f.error),
                choices=tuple(Choice(c.id, text(f"{at}.choices.{c.id}", c.label)) for c in f.choices),
            )

        forms = {
            slug: replace(
                form,
                title=text(f"forms.{slug}.title", form.title),
                intro=text(f"forms.{slug}.intro", form.intro),
                submit=text(f"forms.{slug}.submit", form.submit),
                thanks=text(f"forms.{slug}.thanks", form.thanks),
                fields=tuple(field_in(form, f) for f in form.fields),
            )
            for slug, form in self.forms.items()
        }
        return replace(
            self,
            title=text("title", self.title),
            summary=text("summary", self.summary),
            body=text("body", self.body),
            forms=forms,
            language=language,
            body_language=language if "body" in texts else self.language,
            reviewed=translation.reviewed,
            fallbacks=frozenset(self.untranslated(language)),
            original_language=self.language,
            translations={},
        )

    def text_keys(self) -> dict[str, str]:
        """Every text a translation can give, by its key, with the original's words."""
        keys = {"title": self.title, "body": self.body}
        if self.summary:
            keys["summary"] = self.summary
        for form in self.forms.values():
            at = f"forms.{form.slug}"
            keys |= {f"{at}.{name}": getattr(form, name) for name in ("title", "intro", "submit", "thanks")}
            for f in form.fields:
                keys[f"{at}.fields.{f.name}.label"] = f.label
                keys |= {f"{at}.fields.{f.name}.{name}": getattr(f, name) for name in ("help", "error")}
                keys |= {f"{at}.fields.{f.name}.choices.{c.id}": c.label for c in f.choices}
        return {key: value for key, value in keys.items() if value}

    def untranslated(self, language: str) -> list[str]:
        """The texts a language's translation still lacks (all of them when it has none)."""
        texts = self.translations[language].texts if language in self.translations else {}
        return [key for key in self.text_keys() if key not in texts]


_T = TypeVar("_T")


def _get(data: Mapping[str, object], key: str, where: str, kind: type[_T], default: _T | None = None) -> _T:
    """A setting of one kind; without a ``default`` it is required, and a required text must not be blank."""
    if key not in data:
        if default is None:
            raise CampaignError(f"{where}.{key}: missing")
        return default
    value = data[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise CampaignError(f"{where}.{key}: must be {kind.__name__}")
    if isinstance(value, str) and not value.strip() and default is None:
        raise CampaignError(f"{where}.{key}: must not be empty")
    return value


def _table(data: object, where: str, allowed: set[str] | None = None) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise CampaignError(f"{where}: must be a table")
    if allowed is not None and (extra := set(data) - allowed):
        raise CampaignError(f"{where}.{sorted(extra)[0]}: unknown setting")
    return data


def _is_field_type(kind: str) -> TypeGuard[FieldType]:
    """A type name read from a file, known to be one of ours from here on."""
    return kind in FIELD_TYPES


def _choices(data: Mapping[str, object], where: str) -> tuple[Choice, ...]:
    """``[forms.fields.choices]`` as ``id = "label"`` lines; a plain list of labels (files from before ids)
    makes each label its own id."""
    raw = data.get("choices", [])
    if isinstance(raw, list):
        if not all(isinstance(c, str) and c.strip() for c in raw):
            raise CampaignError(f"{where}.choices: a choice field needs a list of texts")
        if len(set(raw)) != len(raw):
            raise CampaignError(f"{where}.choices: a choice appears twice")
        return tuple(Choice(c, c) for c in raw)
    if not isinstance(raw, Mapping):
        raise CampaignError(f'{where}.choices: must be a table of id = "label" lines')
    for choice_id, label in raw.items():
        if not CHOICE_ID.fullmatch(choice_id):
            raise CampaignError(f"{where}.choices.{choice_id}: an id must be lower case letters, digits, _ and -")
        if not isinstance(label, str) or not label.strip():
            raise CampaignError(f"{where}.choices.{choice_id}: the label must be a text")
    return tuple(Choice(k, v) for k, v in raw.items())


def _field(data: object, where: str) -> Field:
    data = _table(data, where, {"name", "type", "label", "required", "help", "error", "max_length", "choices"})
    name = _get(data, "name", where, str)
    if not NAME.fullmatch(name):
        raise CampaignError(f"{where}.name: {name!r} must be lower case letters, digits and _")
    kind = _get(data, "type", where, str)
    if not _is_field_type(kind):
        raise CampaignError(f"{where}.type: {kind!r} is not one of {', '.join(sorted(FIELD_TYPES))}")
    choices = _choices(data, where)
    if kind in CHOICE_TYPES and not choices:
        raise CampaignError(f"{where}.choices: a choice field needs its choices")
    if kind not in CHOICE_TYPES and choices:
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
        error=_get(data, "error", where, str, ""),
        max_length=max_length,
        choices=choices,
    )


def _form(data: object, where: str) -> Form:
    data = _table(
        data,
        where,
        {
            "slug",
            "title",
            "version",
            "intro",
            "submit",
            "thanks",
            "fields",
            "publish",
            "publish_consent",
            "discreet",
            "replies",
        },
    )
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
    publish_consent = _get(data, "publish_consent", where, str, "")
    publish = _get(data, "publish", where, list, [])
    field_types = {f.name: f.type for f in fields}
    if publish_consent and field_types.get(publish_consent) != CONSENT:
        raise CampaignError(f"{where}.publish_consent: {publish_consent!r} must name a consent field of this form")
    if bool(publish_consent) != bool(publish):
        raise CampaignError(f"{where}.publish: give both publish and publish_consent, or neither")
    for name in publish:
        if not isinstance(name, str) or field_types.get(name) != TEXT:
            raise CampaignError(f"{where}.publish: {name!r} must name a one-line text field of this form")
    defaults = Form(slug="", title="", fields=())
    return Form(
        publish_consent=publish_consent,
        publish=tuple(publish),
        slug=slug,
        title=_get(data, "title", where, str),
        fields=fields,
        version=version,
        intro=_get(data, "intro", where, str, ""),
        submit=_get(data, "submit", where, str, defaults.submit),
        thanks=_get(data, "thanks", where, str, defaults.thanks),
        discreet=_get(data, "discreet", where, bool, defaults.discreet),
        replies=_get(data, "replies", where, bool, defaults.replies),
    )


def from_dict(data: Mapping[str, object], source: str) -> Campaign:
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


def translation_from_dict(data: Mapping[str, object], campaign: Campaign, language: str, source: str) -> Translation:
    """Check a translation against its campaign: a text for a form, field or choice the campaign does not
    have is a mistake (a typo, or a rename in the original) and is refused by name."""
    _table(data, source, {"language", "reviewed", "title", "summary", "body", "forms"})
    if language not in languages.NAMES:
        raise CampaignError(f"{source}: {language!r} is not one of {', '.join(languages.NAMES)}")
    if language == campaign.language:
        raise CampaignError(f"{source}: the campaign itself is in {language!r}")
    if data.get("language", language) != language:
        raise CampaignError(f"{source}: language: {data['language']!r} does not match the file name")
    reviewed = data.get("reviewed")
    if not isinstance(reviewed, bool):
        raise CampaignError(f"{source}: reviewed: must be true or false (false until a fluent speaker checks it)")
    known = campaign.text_keys()
    texts: dict[str, str] = {}

    def walk(value: object, key: str) -> None:
        if isinstance(value, Mapping):
            for name, inner in value.items():
                walk(inner, f"{key}.{name}" if key else name)
        elif key not in known:
            raise CampaignError(f"{source}: {key}: the campaign has no such text")
        elif not isinstance(value, str) or not value.strip():
            raise CampaignError(f"{source}: {key}: must be a text")
        else:
            texts[key] = value

    walk({k: v for k, v in data.items() if k not in {"language", "reviewed"}}, "")
    return Translation(language=language, reviewed=reviewed, texts=texts)


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CampaignError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise CampaignError(f"{path}: cannot be read: {exc.strerror}") from exc


def load_file(path: str | Path) -> Campaign:
    """A campaign file and the translation files beside it (``SLUG.LANGUAGE.toml``)."""
    path = Path(path)
    campaign = from_dict(_read_toml(path), str(path))
    if campaign.slug != path.stem:
        raise CampaignError(f"{path}: slug: {campaign.slug!r} must match the file name {path.stem!r}")
    translations: dict[str, Translation] = {}
    for other in sorted(path.parent.glob(f"{path.stem}.*.toml")):
        language = other.name[len(path.stem) + 1 : -len(".toml")]
        translations[language] = translation_from_dict(_read_toml(other), campaign, language, str(other))
    return replace(campaign, translations=translations)


def load_dir(directory: str | Path) -> dict[str, Campaign]:
    """Every campaign in a folder (``*.toml`` without a language in its name), in name order."""
    files = [p for p in sorted(Path(directory).glob("*.toml")) if "." not in p.stem]
    campaigns = {c.slug: c for c in map(load_file, files)}
    if not campaigns:
        raise CampaignError(f"{directory}: no campaign file (*.toml) found")
    for path in Path(directory).glob("*.*.toml"):
        if path.name.split(".", 1)[0] not in campaigns:
            raise CampaignError(f"{path}: a translation of no campaign: there is no {path.name.split('.')[0]}.toml")
    return campaigns


def _toml_text(value: str) -> str:
    if "\n" in value and "'''" not in value:
        return "'''\n" + value.strip("\n") + "\n'''"
    return json.dumps(value, ensure_ascii=False)


def translation_template(campaign: Campaign, language: str) -> str:
    """A translation file to fill in: every text of the campaign, in the translation's words where it already
    has them and in the original's elsewhere, marked not reviewed."""
    if language not in languages.NAMES or language == campaign.language:
        raise CampaignError(f"{language!r} is not one of {', '.join(set(languages.NAMES) - {campaign.language})}")
    existing = campaign.translations.get(language)
    texts = existing.texts if existing else {}
    reviewed = bool(existing and existing.reviewed)
    lines = [
        f"# {languages.NAMES[language]} ({language}) translation of {campaign.slug}.toml.",
        *([] if reviewed else ["# DRAFT: not yet checked by a fluent speaker."]),
        "# Write each text in this language in place of the original's words; delete a line to show the original.",
        "# Keep reviewed = false until a fluent speaker has checked every text here, then set it to true.",
        f'language = "{language}"',
        f"reviewed = {'true' if reviewed else 'false'}",
    ]
    table = ""
    for key, original in campaign.text_keys().items():
        where, _, name = key.rpartition(".")
        if where != table:
            lines += ["", f"[{where}]"]
            table = where
        lines.append(f"{name} = {_toml_text(texts.get(key, original))}")
    return "\n".join(lines) + "\n"
