"""Flask-WTF form classes built from a campaign's form definition, and the first look at a posted body.

WTForms renders and parses the fields; the rules themselves are the definition's
(``papillon.campaigns.Field.check``), shared with the browser and the laptop.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from collections.abc import Set as AbstractSet
from typing import Any, NoReturn, cast

from flask import current_app, request
from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from werkzeug.exceptions import HTTPException
from wtforms import BooleanField, Field, HiddenField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # new in 3.3; types-WTForms is 3.2
from wtforms.widgets import CheckboxInput, ListWidget

from papillon import campaigns as c

SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")
HTML_TYPES = {c.EMAIL: "email", c.PHONE: "tel"}
# The last option of an optional single choice, ticked until another is: a person can take an answer back without
# JavaScript. Its value is the empty answer, so it is sealed exactly as a question left unanswered.
NO_ANSWER = SelectChoice("", lazy_gettext("No answer"))
AUTOCOMPLETE = {c.EMAIL: "email", c.PHONE: "tel", c.POSTAL_CODE: "postal-code"}

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# What the page posts besides the answers; the sealing script posts these alone, the answers travelling sealed.
PAGE_FIELDS = {"csrf_token", "submission_id", "pow"}
SEALED_FIELD = "envelope"
# A form offering replies has a box asking for a reply code; only a page without JavaScript posts it (the script
# seals the code's key with the answers instead), and only ticked.
REPLY_FIELD = "reply"
REPLY_ASKED = "yes"


class Refused(HTTPException):
    """A post that is not stored. Its message, when it has one, is written by us and never echoes the input, so
    it is safe to show; without one the person gets the kind words for its status."""

    def __init__(self, message: str | None = None, status: int = 400) -> None:
        super().__init__(description=message)
        self.code = status


def refuse(message: str | None = None, status: int = 400) -> NoReturn:
    """Stop handling a post here; the site's one error handler answers it."""
    raise Refused(message, status)


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def new_submission_id() -> str:
    return secrets.token_hex(16)


def _render_kw(field: c.Field) -> dict[str, object]:
    """The HTML attributes that let the browser check a field as the server will."""
    kw: dict[str, object] = {}
    if field.required and field.type != c.MULTIPLE_CHOICE:
        kw["required"] = True
    if field.type in c.DEFAULT_MAX_LENGTH:
        kw["maxlength"] = field.max_length
        if field.type in HTML_TYPES:
            kw["type"] = HTML_TYPES[field.type]
        if field.pattern and field.type != c.EMAIL:
            kw["pattern"] = field.pattern
        kw["autocomplete"] = AUTOCOMPLETE.get(field.type, "off")
    return kw


def _wtf_field(field: c.Field) -> Field:
    # Any: WTForms' stubs type each keyword apart, and these are the same three for every kind of field.
    shown: dict[str, Any] = {"label": field.label, "description": field.help, "render_kw": _render_kw(field)}
    choices = [SelectChoice(choice.id, choice.label) for choice in field.choices]
    if field.type == c.LONG_TEXT:
        return TextAreaField(**shown)
    if field.type == c.SINGLE_CHOICE and not field.required:
        return RadioField(choices=[*choices, NO_ANSWER], default="", validate_choice=False, **shown)
    if field.type == c.SINGLE_CHOICE:
        return RadioField(choices=choices, validate_choice=False, **shown)
    if field.type == c.MULTIPLE_CHOICE:
        return CheckboxesField(choices=choices, validate_choice=False, **shown)
    if field.type == c.CONSENT:
        return BooleanField(**shown)
    return StringField(**shown)


class AnswersForm(FlaskForm):
    """Base of every generated form: the submission id and the definition's own checks."""

    definition: c.Form
    honeypot_name: str
    submission_id = HiddenField()
    envelope = HiddenField()

    def answers(self) -> dict[str, c.Answer]:
        """The answers as the envelope holds them: text trimmed, line breaks as LF."""
        out: dict[str, c.Answer] = {}
        for field in self.definition.fields:
            data = self[field.name].data
            if field.type == c.CONSENT:
                out[field.name] = bool(data)
            elif field.type == c.MULTIPLE_CHOICE:
                out[field.name] = list(data or [])
            else:
                text = (data or "").replace("\r\n", "\n").replace("\r", "\n")
                out[field.name] = text.strip()
        return out

    def validate_answers(self, answers: dict[str, c.Answer]) -> bool:
        """Check answers (from ``answers()``) by the definition's rules; messages go beside the fields."""
        problems = self.definition.problems(answers)
        for name, problem in problems.items():
            if name in self:
                message = str(problem) if problem.own else gettext(problem.message, **problem.values)
                self[name].errors = [*self[name].errors, message]
        return not problems

    def aria(self, field: Field) -> dict[str, str]:
        """Attributes that tie a field to its help text and its error message for screen readers."""
        ids = [f"{field.id}-help"] if field.description else []
        attrs = {}
        if field.errors:
            ids.append(f"{field.id}-error")
            attrs["aria-invalid"] = "true"
        if ids:
            attrs["aria-describedby"] = " ".join(ids)
        return attrs

    def answer_fields(self) -> list[Field]:
        return [self[f.name] for f in self.definition.fields]


def form_class(definition: c.Form, honeypot_name: str) -> type[AnswersForm]:
    """A FlaskForm subclass for one form definition (built once per definition at start-up)."""
    attrs: dict[str, object] = {f.name: _wtf_field(f) for f in definition.fields}
    attrs[honeypot_name] = StringField(
        lazy_gettext("Leave this empty"), render_kw={"autocomplete": "off", "tabindex": "-1"}
    )
    attrs["definition"] = definition
    attrs["honeypot_name"] = honeypot_name
    return cast("type[AnswersForm]", type(f"{definition.slug.title()}Form", (AnswersForm,), attrs))


def check_form_body(definition: c.Form, honeypot: str, plain: AbstractSet[str] = frozenset()) -> None:
    """Refuse, before anything reads the answers, a body that neither the page nor its script could send.

    Both send ``application/x-www-form-urlencoded`` in UTF-8, name only the fields the page has, and repeat a
    name only for the checkboxes of a multiple-choice field; the script sends the sealed envelope instead of
    the answers, never both. Anything else (another content type, bytes that are not UTF-8, an unknown or
    repeated field, a chunked body past the size cap) is refused as a whole instead of being silently
    repaired, cut or half-read. The refusal names no reason: a page of ours never meets one.

    ``plain``: the page's own fields that only a post without the envelope carries, besides the reply box of a
    form offering replies.
    """
    _check_encoding()
    sealed = SEALED_FIELD in request.form
    answers = {f.name for f in definition.fields} | set(plain) | ({REPLY_FIELD} if definition.replies else set())
    repeatable = {f.name for f in definition.fields if f.type == c.MULTIPLE_CHOICE}
    _check_names(PAGE_FIELDS | {honeypot} | ({SEALED_FIELD} if sealed else answers), repeatable)
    if request.form.get(REPLY_FIELD, REPLY_ASKED) != REPLY_ASKED:
        refuse()


def check_body(allowed: AbstractSet[str]) -> None:
    """Refuse a body that is not URL-encoded UTF-8 naming only ``allowed`` fields, each once: for the posts of
    the site's own pages, which have no answers."""
    _check_encoding()
    _check_names(allowed, frozenset())


def _check_encoding() -> None:
    if request.mimetype != FORM_CONTENT_TYPE:
        refuse(status=415)
    if not _utf8_form(_whole_body()):
        refuse()


def _check_names(allowed: AbstractSet[str], repeatable: AbstractSet[str]) -> None:
    if not set(request.form) <= allowed:
        refuse()
    if any(len(values) > 1 and name not in repeatable for name, values in request.form.lists()):
        refuse()


def _whole_body() -> bytes:
    """The body, or a 413 when it is larger than the cap. A body without a length (chunked) is cut at the cap
    by Werkzeug without a word; one more byte waiting behind the cut means it was too large."""
    body = request.get_data(cache=True)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    chunked = request.content_length is None and limit is not None
    if chunked and len(body) >= limit and request.environ["wsgi.input"].read(1):
        refuse(status=413)
    return body


def _utf8_form(body: bytes) -> bool:
    """Whether every name and value of a URL-encoded body is UTF-8 once its escapes are undone
    (Werkzeug would quietly turn bad bytes into U+FFFD and go on)."""
    try:
        for part in body.split(b"&"):
            urllib.parse.unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
