"""app/forms.py's first look at a posted body: what no page of ours sends is refused whole, and nothing stored."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from pages import form_tokens
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from app.site import site
from app.storage import Submission, db
from papillon import envelope

SIGNATURE = {"signing_as": "individual", "name": "Zebulon Quartermaine"}


def tokens(client: FlaskClient, path: str = "/petition/sign") -> dict[str, str]:
    return form_tokens(client.get(path).get_data(as_text=True))


def rows(app: Flask) -> list[Submission]:
    with app.app_context(), db.session() as session:
        return list(session.scalars(select(Submission)))


def test_a_field_the_form_does_not_have_is_refused_and_nothing_stored(client: FlaskClient, app: Flask) -> None:
    data = {**tokens(client), **SIGNATURE, "favourite_colour": "green"}
    assert client.post("/petition/sign", data=data).status_code == 400
    assert rows(app) == []


def test_twenty_thousand_unknown_fields_are_refused_and_nothing_stored(client: FlaskClient, app: Flask) -> None:
    data = {**tokens(client), **SIGNATURE, **{f"f{i}": "x" for i in range(20_000)}}
    assert client.post("/petition/sign", data=data).status_code == 400
    assert rows(app) == []


def test_a_post_with_both_an_envelope_and_plain_answers_is_refused_and_nothing_stored(
    client: FlaskClient, app: Flask
) -> None:
    data = envelope.plaintext({"what_happened": "sealed"}, 1, "en")
    sealed = envelope.seal(data, site(app).keys, "petition", "testimony").to_json()
    body = {**tokens(client, "/petition/testimony"), "envelope": sealed, "what_happened": "plain"}
    assert client.post("/petition/testimony", data=body).status_code == 400
    assert rows(app) == []


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
    assert rows(app) == []


def test_a_chunked_body_under_the_cap_is_stored(client: FlaskClient, app: Flask) -> None:
    assert chunked_post(app, client, "/petition/testimony", {"what_happened": "It happened."}) == 303
    assert len(rows(app)) == 1
