"""Replies are padded to whole blocks: a network observer who sees only sizes cannot tell the forms apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pages import form_tokens

from app import create_app

FORMS = [("petition", "sign"), ("letter", "sign"), ("petition", "testimony")]


def test_every_form_page_has_the_same_size(client: FlaskClient, app: Flask) -> None:
    sizes = {len(client.get(f"/{c}/{f}").data) for c, f in FORMS}
    assert len(sizes) == 1
    assert sizes.pop() % app.config["PAPILLON_PAD_BYTES"] == 0


@pytest.mark.parametrize("path", ["/", "/petition/", "/letter/", "/petition/sign/thanks", "/nowhere/x"])
def test_every_page_is_a_whole_number_of_blocks(client: FlaskClient, app: Flask, path: str) -> None:
    response = client.get(path)
    assert len(response.data) % app.config["PAPILLON_PAD_BYTES"] == 0
    assert int(response.headers["Content-Length"]) == len(response.data)


def _sealed_reply(client: FlaskClient, campaign: str, form: str, accept: str) -> bytes:
    """The reply to a post the sealing script would make, as an observer sees its size."""
    tokens = form_tokens(client.get(f"/{campaign}/{form}").get_data(as_text=True))
    return client.post(f"/{campaign}/{form}", data={**tokens, "envelope": "{}"}, headers={"Accept": accept}).data


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_replies_to_posts_have_the_same_size_whatever_the_form(client: FlaskClient, accept: str) -> None:
    assert len({len(_sealed_reply(client, c, f, accept)) for c, f in FORMS}) == 1


def test_thank_you_replies_have_the_same_size_whatever_the_form(client: FlaskClient) -> None:
    sizes = set()
    for campaign, form in FORMS:
        tokens = form_tokens(client.get(f"/{campaign}/{form}").get_data(as_text=True))
        reply = client.post(f"/{campaign}/{form}", data={**tokens, "website": "bot"}, headers={"Accept": "*/*"})
        assert reply.status_code == 303
        sizes.add(len(reply.data))
    assert len(sizes) == 1


def test_a_padded_json_reply_still_parses(client: FlaskClient) -> None:
    tokens = form_tokens(client.get("/petition/testimony").get_data(as_text=True))
    reply = client.post(
        "/petition/testimony", data={**tokens, "website": "bot"}, headers={"Accept": "application/json"}
    )
    assert reply.get_json() == {"thanks": "/petition/testimony/thanks"}
    assert reply.data.endswith(b" ")


def test_static_files_are_served_as_they_are(client: FlaskClient, app: Flask) -> None:
    with client.get("/static/papillon.css") as response:  # a file's response holds it open until closed
        assert response.data == (Path(app.root_path) / "static" / "papillon.css").read_bytes()


def test_padding_can_be_turned_off(config: dict[str, object]) -> None:
    app = create_app({**config, "PAPILLON_PAD_BYTES": 0})
    assert not app.test_client().get("/").data.endswith(b" ")
