"""app/static/seal.js, the browser's sealing script, run under node and checked against Python (papillon.envelope).

Node 20 has WebCrypto X25519, so it runs the very file the page loads. These tests fail, rather
than skip, when node is missing: browser sealing is the main path and must not go untested.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_support import CSP_UNSAFE
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pages import public
from services import Node

from app.views import SEAL_MESSAGES
from papillon import envelope

HERE = Path(__file__).resolve().parent
SEAL_JS = HERE.parent / "app" / "static" / "seal.js"
HARNESS = HERE / "js"
VECTOR = json.loads((HERE / "vectors" / "rfc9180-a1-1.json").read_text(encoding="utf-8"))

CAMPAIGN, FORM = "letter", "sign"
ANSWERS = {
    "name": "陳小明 สมชาย 김민준",
    "story": 'Line one\nLine two said "enough" — ça suffit 🦋🏳️‍🌈\n\tindented\\slash',
    "signing_as": "individual",
    "topics": ["housing", "labour rights", "移民"],
    "consent": True,
    "empty": "",
    "control": "bell\u0007 and unit\u001f separators",
}


def vector_bytes(name: str) -> bytes:
    return bytes.fromhex(VECTOR[name])


@pytest.fixture(scope="module")
def node_vector(node: Node) -> dict[str, str]:
    return node("vector.js", VECTOR)


@pytest.fixture(scope="module")
def organizers() -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate(), X25519PrivateKey.generate()]


def seal_config(privates: list[X25519PrivateKey], form_version: int = 3, locale: str = "en") -> dict[str, object]:
    """The config the page carries in data-seal, as app.views._render_form builds it."""
    return {
        "info": envelope.info(CAMPAIGN, FORM).decode(),
        "version": envelope.VERSION,
        "form_version": form_version,
        "locale": locale,
        "keys": [{"key_id": public(p).key_id, "public_key": public(p).to_b64()} for p in privates],
        "pad_block": envelope.PAD_BLOCK,
        "messages": {name: str(text) for name, text in SEAL_MESSAGES.items()},
    }


def browser_envelope(node: Node, privates: list[X25519PrivateKey], answers: dict[str, object], **config: Any) -> str:
    payload = {"command": "envelope", "config": seal_config(privates, **config), "answers": answers}
    return node("envelope.js", payload)


# RFC 9180 Appendix A.1.1


def test_script_key_schedule_matches_rfc9180_a1_1(node_vector: dict[str, str]) -> None:
    for name in ("shared_secret", "key_schedule_context", "secret", "key", "base_nonce"):
        assert node_vector[name] == VECTOR[name], name


def test_script_aes_gcm_with_vector_key_and_count0_aad_reproduces_seq0_ct(node_vector: dict[str, str]) -> None:
    assert VECTOR["seq0"]["nonce"] == VECTOR["base_nonce"]
    assert node_vector["seq0_ct"] == VECTOR["seq0"]["ct"]


def test_script_seal_with_vector_ephemeral_key_outputs_vector_enc_and_opens_in_pyca(
    node_vector: dict[str, str],
) -> None:
    sealed = bytes.fromhex(node_vector["sealed"])
    pt = bytes.fromhex(VECTOR["seq0"]["pt"])
    assert node_vector["enc"] == VECTOR["enc"]
    assert sealed[:32] == vector_bytes("enc")
    # Empty aad: the same key and nonce as the vector, so only the tag differs from seq0.ct.
    assert sealed[32:] == AESGCM(vector_bytes("key")).encrypt(vector_bytes("base_nonce"), pt, None)
    private = X25519PrivateKey.from_private_bytes(vector_bytes("skRm"))
    assert envelope.SUITE.decrypt(sealed, private, info=vector_bytes("info")) == pt


def test_script_seal_with_fresh_ephemeral_keys_opens_in_pyca(node: Node) -> None:
    pt = "Beauty is truth, truth beauty — 美即是真".encode()
    payload = {"command": "seal", "public_key": VECTOR["pkRm"], "info": VECTOR["info"], "plaintext": pt.hex()}
    first, second = (bytes.fromhex(node("envelope.js", payload)) for _ in range(2))
    assert first[:32] != second[:32], "each seal must use a new ephemeral key"
    private = X25519PrivateKey.from_private_bytes(vector_bytes("skRm"))
    for sealed in (first, second):
        assert len(sealed) == 32 + len(pt) + 16
        assert envelope.SUITE.decrypt(sealed, private, info=vector_bytes("info")) == pt


def test_script_reports_x25519_support_in_node(node: Node) -> None:
    assert node("envelope.js", {"command": "supports"}) is True


# Envelopes: the browser's and the server's are the same format


def test_browser_envelope_opens_with_each_organizer_key_to_the_same_answers(
    node: Node,
    organizers: list[X25519PrivateKey],
) -> None:
    text = browser_envelope(node, organizers, ANSWERS, form_version=3, locale="en")
    sealed = envelope.parse(text, [public(p).key_id for p in organizers])
    for private in organizers:
        doc = envelope.open_envelope(sealed, private, CAMPAIGN, FORM)
        assert doc == {"answers": ANSWERS, "form_version": 3, "locale": "en"}
        assert list(doc["answers"]) == list(ANSWERS), "answers keep the form's field order"


@pytest.mark.parametrize("locale", ["en", "ko", "th", "zh-Hant"])
def test_browser_plaintext_is_byte_identical_to_server_plaintext(
    node: Node, organizers: list[X25519PrivateKey], locale: str
) -> None:
    text = browser_envelope(node, organizers, ANSWERS, form_version=3, locale=locale)
    sealed = envelope.parse(text)
    place = envelope.info(CAMPAIGN, FORM)
    for private in organizers:
        opened = envelope.SUITE.decrypt(sealed.sealed[public(private).key_id], private, info=place)
        assert opened == envelope.plaintext(ANSWERS, 3, locale)
        assert json.loads(opened)["locale"] == locale


@pytest.mark.parametrize(("campaign", "form"), [("petition", FORM), (CAMPAIGN, "testimony")])
def test_browser_envelope_moved_to_another_campaign_or_form_does_not_open(
    node: Node, organizers: list[X25519PrivateKey], campaign: str, form: str
) -> None:
    sealed = envelope.parse(browser_envelope(node, organizers, ANSWERS))
    for private in organizers:
        with pytest.raises(envelope.EnvelopeError, match="does not open"):
            envelope.open_envelope(sealed, private, campaign, form)


def test_browser_envelope_has_the_server_envelopes_shape(node: Node, organizers: list[X25519PrivateKey]) -> None:
    browser_text = browser_envelope(node, organizers, ANSWERS)
    server = envelope.seal(envelope.plaintext(ANSWERS, 3, "en"), [public(p) for p in organizers], CAMPAIGN, FORM)
    browser_doc, server_doc = json.loads(browser_text), json.loads(server.to_json())
    assert list(browser_doc) == list(server_doc) == ["version", "recipients"]
    assert browser_doc["version"] == server_doc["version"] == envelope.VERSION
    assert [list(r) for r in browser_doc["recipients"]] == [list(r) for r in server_doc["recipients"]]
    browser_ids = [r["key_id"] for r in browser_doc["recipients"]]
    assert browser_ids == [r["key_id"] for r in server_doc["recipients"]] == [public(p).key_id for p in organizers]
    assert envelope.parse(browser_text).padded_length == server.padded_length
    # Standard base64 with padding, as the server writes it.
    for recipient in browser_doc["recipients"]:
        assert base64.b64encode(base64.b64decode(recipient["sealed"], validate=True)).decode() == recipient["sealed"]


@pytest.mark.parametrize("answer", ["x" * 3000, "ข" * 3000, "🦋" * 1000], ids=["ascii", "thai", "emoji"])
def test_long_answer_pads_to_the_next_multiple_of_512(
    node: Node, organizers: list[X25519PrivateKey], answer: str
) -> None:
    answers = {"story": answer}
    sealed = envelope.parse(browser_envelope(node, organizers, answers))
    unpadded = len(json.dumps({"answers": answers, "form_version": 3, "locale": "en"}, ensure_ascii=False).encode())
    expected = -(-unpadded // envelope.PAD_BLOCK) * envelope.PAD_BLOCK
    assert sealed.padded_length == expected == len(envelope.plaintext(answers, 3, "en"))
    assert sealed.padded_length > len(answer.encode())
    doc = envelope.open_envelope(sealed, organizers[0], CAMPAIGN, FORM)
    assert doc["answers"] == answers


def test_pad_matches_the_server_padding(node: Node) -> None:
    lengths = [0, 1, 511, 512, 513, 1500, 2048]
    padded = node("envelope.js", {"command": "pad", "lengths": lengths, "block": envelope.PAD_BLOCK})
    for n, out in zip(lengths, padded, strict=True):
        assert bytes.fromhex(out) == envelope.pad(b"A" * n), n


# The page: progressive enhancement in a stand-in DOM (tests/js/page.js)

FIELDS = [
    {"name": "signing_as", "type": "single_choice"},
    {"name": "action", "type": "text"},
    {"name": "name", "type": "text"},
    {"name": "email", "type": "email"},
    {"name": "story", "type": "long_text"},
    {"name": "topics", "type": "multiple_choice"},
    {"name": "updates", "type": "single_choice"},
    {"name": "consent", "type": "consent"},
]
CONTROLS = [
    {"name": "csrf_token", "type": "hidden", "value": "csrf-123"},
    {"name": "submission_id", "type": "hidden", "value": "0123456789abcdef0123456789abcdef"},
    {"name": "signing_as", "type": "radio", "value": "individual", "checked": False},
    {"name": "signing_as", "type": "radio", "value": "organization", "checked": True},
    {"name": "action", "type": "text", "value": "  Repeal the by-law  "},
    {"name": "name", "type": "text", "value": " 김민준 "},
    {"name": "email", "type": "email", "value": "minjun@example.org"},
    {"name": "story", "type": "textarea", "value": "\r\n  First line\r\nsecond\rthird 🦋\n  "},
    {"name": "topics", "type": "checkbox", "value": "housing", "checked": True},
    {"name": "topics", "type": "checkbox", "value": "policing", "checked": False},
    {"name": "topics", "type": "checkbox", "value": "labour rights", "checked": True},
    {"name": "updates", "type": "radio", "value": "yes", "checked": False},
    {"name": "updates", "type": "radio", "value": "no", "checked": False},
    {"name": "updates", "type": "radio", "value": "", "checked": True},  # "No answer", ticked: an empty answer
    {"name": "consent", "type": "checkbox", "value": "y", "checked": True},
    {"name": "website", "type": "text", "value": ""},
]
PAGE_ANSWERS = {
    "signing_as": "organization",
    "action": "Repeal the by-law",
    "name": "김민준",
    "email": "minjun@example.org",
    "story": "First line\nsecond\nthird 🦋",
    "topics": ["housing", "labour rights"],
    "updates": "",
    "consent": True,
}
ACTION = f"/{CAMPAIGN}/{FORM}"
THANKS = f"https://example.org/{CAMPAIGN}/{FORM}/thanks"
SEALED_HERE = "sealed in this browser"


def run_page(node: Node, organizers: list[X25519PrivateKey], **scenario: Any) -> dict[str, Any]:
    config = {**seal_config(organizers, form_version=2), "fields": FIELDS, "honeypot": "website"}
    payload = {"config": config, "controls": CONTROLS, "action": ACTION, **scenario}
    report = node("page.js", payload)
    assert report["controls"] == CONTROLS, "the script must never change what the person typed"
    return report


@pytest.mark.parametrize("crypto", ["x25519", "no-x25519"])
def test_a_submit_before_the_x25519_check_answers_is_held_back_not_sent_plain(
    node: Node, organizers: list[X25519PrivateKey], crypto: str
) -> None:
    report = run_page(node, organizers, crypto=crypto, early=True, valid=False, response={"status": 500})
    assert report["early_prevented"] is True
    assert report["fetches"] == []


def test_page_posts_only_the_envelope_and_hidden_values_then_shows_thanks(
    node: Node,
    organizers: list[X25519PrivateKey],
) -> None:
    report = run_page(node, organizers, response={"status": 200, "json": {"thanks": THANKS}})
    assert report["listeners"] == ["invalid", "input", "submit"]  # the hold-back listener is gone
    assert report["prevented"]
    [sent] = report["fetches"]
    assert sent["url"] == ACTION
    assert sent["options"] == {
        "method": "POST",
        "headers": {"Accept": "application/json"},
        "credentials": "same-origin",
    }
    assert sent["body_type"] == "URLSearchParams"
    assert set(sent["body"]) == {"csrf_token", "submission_id", "envelope", "website"}
    assert sent["body"]["csrf_token"] == "csrf-123"
    assert sent["body"]["submission_id"] == "0123456789abcdef0123456789abcdef"
    assert sent["body"]["website"] == ""
    assert sent["button_disabled"]
    assert "Repeal" not in json.dumps(sent, ensure_ascii=False)
    sealed = envelope.parse(sent["body"]["envelope"], [public(p).key_id for p in organizers])
    for private in organizers:
        doc = envelope.open_envelope(sealed, private, CAMPAIGN, FORM)
        assert doc == {"answers": PAGE_ANSWERS, "form_version": 2, "locale": "en"}
        assert list(doc["answers"]) == [f["name"] for f in FIELDS]
    assert report["assigned"] == [THANKS]


@pytest.mark.parametrize("crypto", ["no-x25519", "none"])
def test_page_without_webcrypto_x25519_is_left_to_the_plain_post(
    node: Node, organizers: list[X25519PrivateKey], crypto: str
) -> None:
    report = run_page(node, organizers, crypto=crypto, response={"status": 200, "json": {"thanks": THANKS}})
    assert report["listeners"] == [], "the form must post as it is, for the server to seal"
    assert not report["status"]["hidden"]
    assert "the server reads them for a moment to seal them" in report["status"]["text"]
    assert "error" not in report["status"]["classes"]


def test_page_says_answers_are_sealed_in_the_browser(node: Node, organizers: list[X25519PrivateKey]) -> None:
    report = run_page(node, organizers, valid=False, response={"status": 200, "json": {"thanks": THANKS}})
    assert SEALED_HERE in report["status"]["text"]
    assert not report["status"]["hidden"]
    assert report["status"]["classes"] == [], "the promise is a plain line beside the button, not a notice"


def test_no_answer_ticked_seals_the_same_plaintext_as_nothing_ticked(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    untouched = [{**c, "checked": False} if c["name"] == "updates" else c for c in CONTROLS]
    sealed = []
    for controls in (CONTROLS, untouched):
        config = {**seal_config(organizers, form_version=2), "fields": FIELDS, "honeypot": "website"}
        payload = {"config": config, "controls": controls, "action": ACTION}
        report = node("page.js", {**payload, "response": {"status": 200, "json": {"thanks": THANKS}}})
        [sent] = report["fetches"]
        to_first = envelope.parse(sent["body"]["envelope"]).sealed[public(organizers[0]).key_id]
        sealed.append(envelope.SUITE.decrypt(to_first, organizers[0], info=envelope.info(CAMPAIGN, FORM)))
    assert sealed[0] == sealed[1] == envelope.plaintext(PAGE_ANSWERS, 2, "en")


def test_page_with_invalid_answers_reports_them_and_sends_nothing(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    report = run_page(node, organizers, valid=False, response={"status": 200, "json": {"thanks": THANKS}})
    assert report["prevented"]
    assert report["reported"] == 1
    assert report["fetches"] == []
    assert not report["button_disabled"]


def test_page_shows_the_servers_error_and_keeps_the_answers(node: Node, organizers: list[X25519PrivateKey]) -> None:
    message = "This page has expired. Please reload it and send your answers again."
    report = run_page(node, organizers, response={"status": 400, "json": {"error": message}})
    assert len(report["fetches"]) == 1
    assert report["status"] == {"text": message, "hidden": False, "classes": ["notice", "error"]}
    assert not report["button_disabled"]
    assert report["assigned"] == []


def test_page_shows_a_fallback_error_when_the_server_sends_no_json(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    report = run_page(node, organizers, response={"status": 502})
    assert "not stored" in report["status"]["text"]
    assert "error" in report["status"]["classes"]
    assert not report["button_disabled"]
    assert report["assigned"] == []


def test_page_network_failure_says_nothing_was_lost_and_a_retry_is_safe(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    report = run_page(node, organizers, response={"kind": "network"})
    text = report["status"]["text"]
    assert "could not be sent" in text
    assert "Nothing you typed was lost" in text
    assert "stored only once" in text
    assert "error" in report["status"]["classes"]
    assert not report["button_disabled"]
    assert report["assigned"] == []


def test_page_fails_closed_when_sealing_fails(node: Node, organizers: list[X25519PrivateKey]) -> None:
    # An all-zero public key is a low-order point: X25519 with it must not yield a usable secret.
    bad = {"key_id": "0000000000000000", "public_key": base64.b64encode(bytes(32)).decode()}
    config = {**seal_config(organizers), "fields": FIELDS, "honeypot": "website"}
    config["keys"] = [*config["keys"], bad]
    payload = {
        "config": config,
        "controls": CONTROLS,
        "action": ACTION,
        "response": {"status": 200, "json": {"thanks": THANKS}},
    }
    report = node("page.js", payload)
    assert report["fetches"] == [], "nothing may be sent once sealing failed"
    assert "could not be sealed" in report["status"]["text"]
    assert "nothing was sent" in report["status"]["text"]
    assert "error" in report["status"]["classes"]
    assert report["controls"] == CONTROLS


# The script itself


def test_script_works_under_the_sites_content_security_policy() -> None:
    source = SEAL_JS.read_text(encoding="utf-8")
    assert '"use strict";' in source
    for forbidden in CSP_UNSAFE:
        assert forbidden not in source, forbidden
    assert not re.search(r"https?://", source), "the script loads nothing from anywhere"
