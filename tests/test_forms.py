"""app/forms.py: the form built from a campaign's definition (each field rendered with the constraints the server
will check, the honeypot out of the way, the answers read trimmed, a message beside each wrong one), and the first
look at a posted body: what no page of ours sends is refused whole, and nothing stored."""

from __future__ import annotations

import html
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
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
            assert [attrs["type"] for _, attrs in found] == [kind] * len(field.choices)
            assert [attrs["value"] for _, attrs in found] == list(field.choice_ids)
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
