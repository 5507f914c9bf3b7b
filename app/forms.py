"""Flask-WTF form classes built from a campaign's form definition.

WTForms renders and parses the fields; the rules themselves are the definition's
(``papillon.campaigns.Field.check``), shared with the browser and the laptop.
"""

from __future__ import annotations

import re
import secrets

from flask_babel import gettext, lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, HiddenField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from papillon import campaigns as c

SUBMISSION_ID = re.compile(r"[0-9a-f]{32}")
HTML_TYPES = {c.EMAIL: "email", c.PHONE: "tel"}
AUTOCOMPLETE = {c.EMAIL: "email", c.PHONE: "tel", c.POSTAL_CODE: "postal-code"}


class CheckboxesField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def new_submission_id() -> str:
    return secrets.token_hex(16)


def _wtf_field(field: c.Field) -> Field:
    kw: dict[str, object] = {}
    if field.required:
        kw["required"] = True
    if field.type in c.DEFAULT_MAX_LENGTH:
        kw["maxlength"] = field.max_length
        if field.type in HTML_TYPES:
            kw["type"] = HTML_TYPES[field.type]
        if field.pattern and field.type != c.EMAIL:
            kw["pattern"] = field.pattern
        kw["autocomplete"] = AUTOCOMPLETE.get(field.type, "off")
    args = {"label": field.label, "description": field.help, "render_kw": kw}
    choices = [SelectChoice(c.id, c.label) for c in field.choices]
    if field.type == c.LONG_TEXT:
        return TextAreaField(**args)
    if field.type == c.SINGLE_CHOICE:
        return RadioField(choices=choices, validate_choice=False, **args)
    if field.type == c.MULTIPLE_CHOICE:
        kw.pop("required", None)
        return CheckboxesField(choices=choices, validate_choice=False, **args)
    if field.type == c.CONSENT:
        return BooleanField(**args)
    return StringField(**args)


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

    def bot_filled_honeypot(self) -> bool:
        return bool(self[self.honeypot_name].data)

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
    return type(f"{definition.slug.title()}Form", (AnswersForm,), attrs)
