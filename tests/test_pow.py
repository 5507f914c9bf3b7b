"""The proof of work asked of visitors from a shared address (an onion service), and the buckets it opens."""

from __future__ import annotations

import base64
import json
import os
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pages import form_tokens, row_count
from services import Node

from app import create_app, pow
from app.config import ConfigError
from app.storage import db

SIGNATURE = {"signing_as": "individual", "name": "Ada Lovelace"}
ONION = "unix:"  # what nginx reports of clients that came through tor's Unix socket
CHEAP = {"PAPILLON_POW_BITS": 4, "PAPILLON_POW_ITERATIONS": 10}
SEAL_DATA = re.compile(r'data-seal="([^"]+)"')


# --- the stamp itself -------------------------------------------------------------------


def test_a_solved_stamp_verifies_and_starts_with_the_zero_bits() -> None:
    challenge = os.urandom(32)
    nonce = pow.solve(challenge, 6, 50)
    assert pow.verify(challenge, nonce, 6, 50)
    assert pow.leading_zero_bits(pow.work(challenge, nonce, 50)) >= 6


def test_a_stamp_is_good_for_its_own_challenge_only() -> None:
    """Fixed keys and ids, so the outcome is the same on every run."""
    key = bytes(range(32))
    mine = pow.challenge(key, "petition", "sign", "a" * 32)
    nonce = pow.solve(mine, 12, 5)
    others = [
        pow.challenge(key, "petition", "sign", "b" * 32),
        pow.challenge(key, "open-letter", "sign", "a" * 32),
        pow.challenge(bytes(32), "petition", "sign", "a" * 32),
    ]
    assert not any(pow.verify(other, nonce, 12, 5) for other in others)
    assert not pow.verify(mine, nonce, 12, 6)


@pytest.mark.parametrize("nonce", ["", "-1", "1e3", "0x10", "\uff11\uff12", "1" * 13, " 7"])
def test_a_nonce_that_is_not_a_short_decimal_is_refused_before_any_work(nonce: str) -> None:
    assert not pow.well_formed(nonce)
    assert not pow.verify(b"challenge", nonce, 0, 1)


@pytest.mark.parametrize(("digest", "bits"), [("00" * 32, 256), ("80" + "00" * 31, 0), ("0001" + "ff" * 30, 15)])
def test_zero_bits_are_counted_alike_in_python_and_in_the_page(node: Node, digest: str, bits: int) -> None:
    assert pow.leading_zero_bits(bytes.fromhex(digest)) == bits
    assert node("envelope.js", {"command": "zero_bits", "digests": [digest]}) == [bits]


def test_the_page_finds_a_stamp_that_the_server_accepts(node: Node) -> None:
    challenge = os.urandom(32)
    config = {"challenge": base64.b64encode(challenge).decode(), "bits": 8, "iterations": 100}
    result = node("envelope.js", {"command": "pow", "pow": config})
    assert pow.verify(challenge, result["nonce"], 8, 100)
    assert result["nonce"] == pow.solve(challenge, 8, 100)  # the first nonce that works, as Python finds it


# --- shared addresses in the app ----------------------------------------------------------


def make_app(config: dict[str, object], **overrides: object) -> Flask:
    app = create_app({**config, "RATELIMIT_ENABLED": True, **overrides})
    with app.app_context():
        db.create_schema()
    return app


def visitor(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def seal_config(html: str) -> dict:
    """What the form page hands its sealing script."""
    return json.loads(SEAL_DATA.search(html).group(1).replace("&#34;", '"').replace("&quot;", '"'))


def page(client: FlaskClient, path: str = "/petition/sign") -> tuple[dict[str, str], dict]:
    html = client.get(path).get_data(as_text=True)
    return form_tokens(html), seal_config(html)


def stamped(app: Flask, client: FlaskClient) -> dict[str, str]:
    tokens, seal = page(client)
    p = seal["pow"]
    return {**tokens, "pow": pow.solve(base64.b64decode(p["challenge"]), p["bits"], p["iterations"])}


def test_a_bad_shared_address_setting_stops_the_app(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="PAPILLON_SHARED_ADDRESSES"):
        create_app({**config, "PAPILLON_SHARED_ADDRESSES": "127.0.0.1, tor-daemon"})


def test_only_visitors_from_a_shared_address_are_asked_for_work(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_SHARED_ADDRESSES=f"{ONION}, 10.8.0.0/16", **CHEAP)
    assert "pow" in page(visitor(app, ONION))[1]
    assert "pow" in page(visitor(app, "10.8.3.4"))[1]
    assert "pow" not in page(visitor(app, "203.0.113.9"))[1]
    assert "pow" not in page(visitor(app, "10.9.0.1"))[1]


def test_a_stamped_post_from_a_shared_address_is_stored(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_SHARED_ADDRESSES=ONION, **CHEAP)
    client = visitor(app, ONION)
    assert client.post("/petition/sign", data={**stamped(app, client), **SIGNATURE}).status_code == 303
    assert row_count(app) == 1


@pytest.mark.parametrize("bad", ["wrong", "other submission", "other form"])
def test_a_stamp_that_does_not_verify_is_refused_and_nothing_stored(config: dict[str, object], bad: str) -> None:
    app = make_app(config, PAPILLON_SHARED_ADDRESSES=ONION, PAPILLON_POW_BITS=12, PAPILLON_POW_ITERATIONS=10)
    client = visitor(app, ONION)
    data = {**stamped(app, client), **SIGNATURE}
    if bad == "wrong":
        data["pow"] = str(int(data["pow"]) + 1)
    elif bad == "other submission":
        data["submission_id"] = page(client)[0]["submission_id"]
    else:
        other_tokens, other = page(client, "/letter/sign")
        p = other["pow"]
        data["pow"] = pow.solve(base64.b64decode(p["challenge"]), p["bits"], p["iterations"])
        data["submission_id"] = other_tokens["submission_id"]
    response = client.post("/petition/sign", data=data)
    assert response.status_code == 400
    assert "anti-spam check" in response.get_data(as_text=True)
    assert row_count(app) == 0


def test_a_flood_without_work_does_not_lock_out_witnesses_who_do_the_work(config: dict[str, object]) -> None:
    app = make_app(
        config,
        PAPILLON_SHARED_ADDRESSES=ONION,
        RATELIMIT_SHARED_SUBMIT="3 per minute",
        RATELIMIT_SHARED_POW_SUBMIT="100 per minute",
        **CHEAP,
    )
    spammer, witness = visitor(app, ONION), visitor(app, ONION)
    plain = [spammer.post("/petition/sign", data={**page(spammer)[0], **SIGNATURE}).status_code for _ in range(6)]
    assert plain == [303, 303, 303, 429, 429, 429]
    refused = spammer.post("/petition/sign", data={**page(spammer)[0], **SIGNATURE}).get_data(as_text=True)
    assert "try again in a minute, or turn JavaScript on" in refused
    assert witness.post("/petition/sign", data={**stamped(app, witness), **SIGNATURE}).status_code == 303


def test_a_flood_with_work_does_not_lock_out_witnesses_without_javascript(config: dict[str, object]) -> None:
    app = make_app(
        config,
        PAPILLON_SHARED_ADDRESSES=ONION,
        RATELIMIT_SHARED_SUBMIT="3 per minute",
        RATELIMIT_SHARED_POW_SUBMIT="2 per minute",
        **CHEAP,
    )
    spammer, witness = visitor(app, ONION), visitor(app, ONION)
    worked = [spammer.post("/petition/sign", data={**stamped(app, spammer), **SIGNATURE}).status_code for _ in "abc"]
    assert worked == [303, 303, 429]
    assert witness.post("/petition/sign", data={**page(witness)[0], **SIGNATURE}).status_code == 303


def test_shared_visitors_are_not_counted_as_one_client_for_pages(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_SHARED_ADDRESSES=ONION, RATELIMIT_DEFAULT="3 per hour", **CHEAP)
    shared, alone = visitor(app, ONION), visitor(app, "203.0.113.9")
    assert {shared.get("/petition/").status_code for _ in range(10)} == {200}
    assert [alone.get("/petition/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_an_ordinary_address_keeps_its_own_limit_whatever_it_sends(config: dict[str, object]) -> None:
    app = make_app(config, PAPILLON_SHARED_ADDRESSES=ONION, RATELIMIT_SUBMIT="2 per minute", **CHEAP)
    client = visitor(app, "203.0.113.9")
    statuses = [
        client.post("/petition/sign", data={**page(client)[0], **SIGNATURE, "pow": "12345"}).status_code
        for _ in range(3)
    ]
    assert statuses == [303, 303, 429]
    onion = visitor(app, ONION)
    assert onion.post("/petition/sign", data={**page(onion)[0], **SIGNATURE}).status_code == 303


def test_an_onion_visitor_that_nginx_reports_as_unix_is_a_shared_visitor(config: dict[str, object]) -> None:
    """docs/deploy.md's onion service: tor reaches nginx on a Unix socket, nginx passes on `unix:`."""
    app = make_app(config, PAPILLON_SHARED_ADDRESSES="unix:", PAPILLON_TRUSTED_PROXIES=1, **CHEAP)
    client = app.test_client()
    for forwarded, asked in [("unix:", True), ("203.0.113.9", False)]:
        html = client.get("/petition/sign", headers={"X-Forwarded-For": forwarded}).get_data(as_text=True)
        assert ("pow" in seal_config(html)) is asked
