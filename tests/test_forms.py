"""app/forms.py: the form built from a campaign's definition (each field rendered with the constraints the server
will check, the honeypot out of the way, the answers read trimmed, a message beside each wrong one), and the first
look at a posted body: what no page of ours sends is refused whole, and nothing stored."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import gettext
from pages import (
    FORMS,
    SIGNATURE,
    Controls,
    definition,
    form_tokens,
    open_row,
    page_tokens,
    script_envelope,
    stored,
)
from werkzeug.test import EnvironBuilder

from app.site import site
from papillon import campaigns as c

TEXT_TYPES = {c.TEXT, c.EMAIL, c.PHONE, c.POSTAL_CODE}


# --- every field renders the constraints the server checks ------------------------------------------------


@pytest.mark.parametrize(("campaign", "form"), FORMS)
def test_form_page_renders_every_field_with_its_html_constraints(client, app, campaign, form):
    response = client.get(f"/{campaign}/{form}")
    assert response.status_code == 200
    controls = Controls(response.get_data(as_text=True))
    for field in definition(campaign, form).fields:
        found = controls.named(field.name)
        assert found, field.name
        if field.type in TEXT_TYPES:
            ((tag, attrs),) = found
            assert tag == "input"
            assert attrs["maxlength"] == str(field.max_length)
            assert ("required" in attrs) == field.required
            assert attrs["type"] == {c.EMAIL: "email", c.PHONE: "tel"}.get(field.type, "text")
            if field.type in {c.PHONE, c.POSTAL_CODE}:
                assert attrs["pattern"] == c.PATTERNS[field.type]
            else:
                assert "pattern" not in attrs
        elif field.type == c.LONG_TEXT:
            ((tag, attrs),) = found
            assert tag == "textarea"
            assert attrs["maxlength"] == str(field.max_length)
            assert ("required" in attrs) == field.required
        elif field.type in c.CHOICE_TYPES:
            kind = "radio" if field.type == c.SINGLE_CHOICE else "checkbox"
            offered = [*field.choice_ids, *([""] if field.type == c.SINGLE_CHOICE and not field.required else [])]
            assert [attrs["type"] for _, attrs in found] == [kind] * len(offered)
            assert [attrs["value"] for _, attrs in found] == offered
            if field.type == c.SINGLE_CHOICE:
                assert all(("required" in attrs) == field.required for _, attrs in found)
        else:
            ((tag, attrs),) = found
            assert (tag, attrs["type"]) == ("input", "checkbox")


def test_the_honeypot_field_is_rendered_out_of_the_tab_order(client, app):
    controls = Controls(client.get("/petition/sign").get_data(as_text=True))
    ((_, attrs),) = controls.named(app.config["PAPILLON_HONEYPOT_FIELD"])
    assert attrs["tabindex"] == "-1"
    assert attrs["autocomplete"] == "off"


def kind_field(kind: str, required: bool) -> str:
    choices = 'choices = { one = "One", two = "Two" }' if kind in c.CHOICE_TYPES else ""
    return "\n".join(
        [
            "[[forms.fields]]",
            f'name = "{kind}_{"required" if required else "optional"}"',
            f'type = "{kind}"',
            f'label = "A {kind.replace("_", " ")} question{" that must be answered" if required else ""}"',
            f"required = {str(required).lower()}",
            choices,
            "",
        ]
    )


# Every kind of field, required and not, in a campaign of its own.
EVERY_KIND = "\n".join(
    [
        'slug = "kinds"',
        'title = "Every kind of field"',
        'body = "A campaign with one field of each kind, required and not."',
        "[[forms]]",
        'slug = "all"',
        'title = "All the kinds"',
        *(kind_field(kind, required) for kind in sorted(c.FIELD_TYPES) for required in (True, False)),
    ]
)


@pytest.fixture
def every_kind(config: dict[str, object], tmp_path) -> Flask:
    from app import create_app
    from app.storage import db

    folder = tmp_path / "every-kind"
    folder.mkdir()
    (folder / "kinds.toml").write_text(EVERY_KIND, encoding="utf-8")
    app = create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})
    with app.app_context():
        db.create_schema()
    return app


def label_of(page: str, field: c.Field) -> str:
    """What names a field: the legend of a choice's fieldset, the label of any other field."""
    if field.choices:
        found = re.search(rf'<fieldset[^>]* id="{field.name}"[^>]*>\s*<legend>(.*?)</legend>', page, re.S)
    else:
        found = re.search(rf'<label for="{field.name}">(.*?)</label>', page, re.S)
    assert found, field.name
    return found[1]


def test_every_kind_of_field_says_required_the_same_way_inside_its_label(every_kind: Flask) -> None:
    page = every_kind.test_client().get("/kinds/all").get_data(as_text=True)
    fields = site(every_kind).campaigns["kinds"].forms["all"].fields
    assert {f.type for f in fields} == c.FIELD_TYPES
    for field in fields:
        required = ' <span class="req">(required)</span>' if field.required else ""
        assert label_of(page, field) == f"<span>{field.label}</span>{required}", field.name
    assert page.count('class="req"') == len(c.FIELD_TYPES)


def test_required_is_said_in_the_page_language_even_beside_an_untranslated_label(every_kind: Flask) -> None:
    page = every_kind.test_client().get("/th/kinds/all").get_data(as_text=True)
    with every_kind.test_request_context("/th/"):
        said = gettext("(required)")
    assert said != "(required)"
    for field in site(every_kind).campaigns["kinds"].forms["all"].fields:
        required = f' <span class="req">{said}</span>' if field.required else ""
        assert label_of(page, field) == f'<span lang="en">{field.label}</span>{required}', field.name


# --- an optional single choice can be taken back, without JavaScript -----------------------------------------


def radios(page: str, name: str) -> list[tuple[str | None, bool]]:
    return [(attrs["value"], "checked" in attrs) for _, attrs in Controls(page).named(name)]


def test_an_optional_single_choice_offers_no_answer_last_and_ticked_until_another_is(client, app):
    page = client.get("/petition/testimony").get_data(as_text=True)
    when = next(f for f in definition("petition", "testimony").fields if f.name == "when")
    assert radios(page, "when") == [*[(choice, False) for choice in when.choice_ids], ("", True)]
    assert '<input checked id="when-4" name="when" type="radio" value=""> <label for="when-4">No answer</label>' in page


def test_a_required_single_choice_has_no_no_answer_option_and_nothing_ticked(client, app):
    page = client.get("/petition/sign").get_data(as_text=True)
    assert radios(page, "signing_as") == [("individual", False), ("organization", False)]
    assert "No answer" not in page.split('id="province"', 1)[0]


@pytest.mark.parametrize("tag", ["ko", "th", "zh-Hant"])
def test_no_answer_is_in_the_page_language(client, app, tag):
    page = client.get(f"/{tag}/petition/testimony").get_data(as_text=True)
    with app.test_request_context(f"/{tag}/"):
        said = gettext("No answer")
    assert said != "No answer"
    assert f'<label for="when-4">{said}</label>' in page


def test_no_answer_is_sealed_exactly_as_a_question_left_unanswered(client, app, submit, organizer_key):
    for when in ("", None):
        answers = {"what_happened": "It happened.", **({} if when is None else {"when": when})}
        assert submit("petition", "testimony", answers).status_code == 303
    taken_back, left_out = (open_row(row, organizer_key) for row in stored(app))
    assert taken_back["answers"]["when"] == left_out["answers"]["when"] == ""
    assert taken_back == left_out


@pytest.mark.parametrize(("when", "ticked"), [("", ""), ("earlier", "earlier")])
def test_a_page_sent_back_keeps_the_choice_or_no_answer_ticked(client, app, submit, when, ticked):
    response = submit("petition", "testimony", {"what_happened": " ", "when": when})
    assert response.status_code == 400
    assert [value for value, checked in radios(response.get_data(as_text=True), "when") if checked] == [ticked]


def test_a_required_single_choice_sent_empty_is_refused(client, app, submit):
    response = submit("petition", "sign", {"signing_as": "", "name": "Ada"})
    assert response.status_code == 400
    assert '<p class="error" id="signing_as-error">This field is required.</p>' in response.get_data(as_text=True)
    assert stored(app) == []


# --- the answers as read, and a message beside each wrong one ------------------------------------------------


def test_optional_fields_may_be_left_empty(client, app, submit, organizer_key):
    response = submit("petition", "testimony", {"what_happened": "It happened."})
    assert response.status_code == 303
    (row,) = stored(app)
    answers = open_row(row, organizer_key)["answers"]
    assert answers["what_happened"] == "It happened."
    assert answers["may_share"] is False
    assert answers["where"] == ""
    assert answers["when"] == ""


def test_answers_are_trimmed_and_line_breaks_normalised(client, app, submit, organizer_key):
    response = submit("petition", "testimony", {"what_happened": "  one\r\ntwo\rthree  "})
    assert response.status_code == 303
    (row,) = stored(app)
    assert open_row(row, organizer_key)["answers"]["what_happened"] == "one\ntwo\nthree"


@pytest.mark.parametrize(
    ("campaign", "form", "answers", "field", "message"),
    [
        ("petition", "sign", {"signing_as": "individual"}, "name", "This field is required."),
        ("petition", "sign", {"name": "Ada"}, "signing_as", "This field is required."),
        ("petition", "testimony", {"what_happened": "  "}, "what_happened", "Please tell us what happened."),
        (
            "petition",
            "sign",
            {"signing_as": "individual", "name": "x" * 121},
            "name",
            "Please keep this under 120 characters.",
        ),
        (
            "letter",
            "sign",
            {"name": "Ada", "email": "not-an-email"},
            "email",
            "Please give an email address such as name@example.org.",
        ),
        (
            "petition",
            "sign",
            {"signing_as": "A robot", "name": "Ada"},
            "signing_as",
            "Please choose from the list.",
        ),
        (
            "petition",
            "sign",
            {"signing_as": "individual", "name": "Ada", "areas_of_focus": ["rights", "Astrology"]},
            "areas_of_focus",
            "Please choose from the list.",
        ),
        (
            "petition",
            "sign",
            {"signing_as": "individual", "name": "Ada", "phone": "call me maybe"},
            "phone",
            "Please give a phone number using digits, spaces, +, -, ( and ).",
        ),
        (
            "petition",
            "sign",
            {"signing_as": "individual", "name": "Ada", "postal_code": "H2X/1Y4"},
            "postal_code",
            "Please give a postal code using letters, digits and spaces.",
        ),
        (
            "petition",
            "sign",
            {"signing_as": "individual", "name": "Ada\x00"},
            "name",
            "This answer holds characters that are not allowed.",
        ),
    ],
)
def test_an_invalid_answer_is_refused_with_a_message_beside_the_field(
    client, app, submit, campaign, form, answers, field, message
):
    response = submit(campaign, form, answers)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    controls = Controls(body)
    assert controls.named(field)
    error = f'<p class="error" id="{field}-error">'
    assert error in body
    assert html.unescape(body.split(error, 1)[1].split("</p>", 1)[0]) == message
    assert "Nothing was stored yet." in body
    assert stored(app) == []


def test_an_invalid_post_keeps_the_other_answers_in_the_re_rendered_form(client, app, submit):
    response = submit("petition", "sign", {"signing_as": "individual", "name": "", "position": "Zqv Poet"})
    assert response.status_code == 400
    (_, attrs), *_ = Controls(response.get_data(as_text=True)).named("position")
    assert attrs["value"] == "Zqv Poet"


# --- the first look at a posted body ---------------------------------------------------------------------------


def test_a_field_the_form_does_not_have_is_refused_and_nothing_stored(client: FlaskClient, app: Flask) -> None:
    data = {**page_tokens(client), **SIGNATURE, "favourite_colour": "green"}
    assert client.post("/petition/sign", data=data).status_code == 400
    assert stored(app) == []


def test_twenty_thousand_unknown_fields_are_refused_and_nothing_stored(client: FlaskClient, app: Flask) -> None:
    data = {**page_tokens(client), **SIGNATURE, **{f"f{i}": "x" for i in range(20_000)}}
    assert client.post("/petition/sign", data=data).status_code == 400
    assert stored(app) == []


def test_a_post_with_both_an_envelope_and_plain_answers_is_refused_and_nothing_stored(
    client: FlaskClient, app: Flask
) -> None:
    sealed = script_envelope(site(app).keys, "petition", "testimony", {"what_happened": "sealed"})
    body = {**page_tokens(client, "/petition/testimony"), "envelope": sealed, "what_happened": "plain"}
    assert client.post("/petition/testimony", data=body).status_code == 400
    assert stored(app) == []


def test_a_reply_box_sent_to_a_form_that_offers_no_replies_is_refused_and_nothing_stored(
    client: FlaskClient, app: Flask
) -> None:
    assert not definition("petition", "testimony").replies
    body = {**page_tokens(client, "/petition/testimony"), "what_happened": "It happened.", "reply": "yes"}
    assert client.post("/petition/testimony", data=body).status_code == 400
    assert stored(app) == []


class Trickle:
    """A request body without a length, read the way gunicorn hands a chunked body to the app."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def read(self, size: int = -1) -> bytes:
        size = len(self.body) if size is None or size < 0 else size
        chunk, self.body = self.body[:size], self.body[size:]
        return chunk

    def readinto(self, buffer: bytearray) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def chunked_post(app: Flask, client: FlaskClient, path: str, fields: dict[str, str], tail: bytes = b"") -> int:
    """POST with no Content-Length and ``wsgi.input_terminated``, as a chunked request reaches the app."""
    page = client.get(path)
    body = urlencode({**form_tokens(page.get_data(as_text=True)), **fields}).encode() + tail
    environ = EnvironBuilder(path=path, method="POST", content_type="application/x-www-form-urlencoded").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = Trickle(body)
    environ["wsgi.input_terminated"] = True
    environ["HTTP_COOKIE"] = f"papillon={client.get_cookie('papillon').value}"
    statuses: list[int] = []
    b"".join(app.wsgi_app(environ, lambda status, headers: statuses.append(int(status.split()[0]))))
    return statuses[0]


def test_a_chunked_body_over_the_cap_is_refused_with_413_not_cut_and_stored(client: FlaskClient, app: Flask) -> None:
    """Valid answers, then more bytes than the cap allows: cut at the cap, the answers would look complete."""
    tail = b"&" + b"z" * app.config["MAX_CONTENT_LENGTH"]
    assert chunked_post(app, client, "/petition/testimony", {"what_happened": "It happened."}, tail) == 413
    assert stored(app) == []


def test_a_chunked_body_under_the_cap_is_stored(client: FlaskClient, app: Flask) -> None:
    assert chunked_post(app, client, "/petition/testimony", {"what_happened": "It happened."}) == 303
    assert len(stored(app)) == 1
