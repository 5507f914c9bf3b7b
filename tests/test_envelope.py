"""papillon/envelope.py: sealing to every organizer key, opening with any one, and refusing bad shapes."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import public

from papillon import envelope
from papillon.envelope import EnvelopeError

ANSWERS = {"name": "\u738b\u5c0f\u660e", "story": "first line\nsecond line", "many": ["A", "B"], "ok": True}
PLACE = ("petition", "testimony")


@pytest.fixture(scope="module")
def privates() -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate() for _ in range(3)]


def sealed_doc(private: X25519PrivateKey, size: int = 100) -> dict:
    """A well-formed envelope as a JSON document, for tests that break one part of it."""
    env = envelope.seal(envelope.pad(b"x" * size), [public(private)], *PLACE)
    return json.loads(env.to_json())


def test_seal_and_open_with_one_key(privates):
    data = envelope.plaintext(ANSWERS, 3, "en")
    env = envelope.seal(data, [public(privates[0])], *PLACE)
    doc = envelope.open_envelope(env, privates[0], *PLACE)
    assert doc == {"answers": ANSWERS, "form_version": 3, "locale": "en"}


def test_sealed_to_several_keys_any_one_private_key_opens(privates):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "fr"), [public(p) for p in privates], *PLACE)
    assert set(env.sealed) == {public(p).key_id for p in privates}
    for private in privates:
        assert envelope.open_envelope(env, private, *PLACE)["answers"] == ANSWERS


def test_each_recipient_copy_is_distinct_ciphertext(privates):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "en"), [public(p) for p in privates], *PLACE)
    copies = list(env.sealed.values())
    assert len(set(copies)) == len(copies)
    assert all(ANSWERS["name"].encode() not in ct for ct in copies)


def test_envelope_survives_its_json_form(privates):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "en"), [public(p) for p in privates], *PLACE)
    parsed = envelope.parse(env.to_json(), [public(p).key_id for p in privates])
    assert parsed.sealed == env.sealed
    assert envelope.open_envelope(parsed, privates[1], *PLACE)["answers"] == ANSWERS


def test_a_key_not_among_the_recipients_cannot_open(privates):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "en"), [public(privates[0])], *PLACE)
    with pytest.raises(EnvelopeError, match="not sealed to key"):
        envelope.open_envelope(env, privates[1], *PLACE)


@pytest.mark.parametrize(
    "moved_to",
    [("letter", "sign"), ("letter", "testimony"), ("petition", "sign")],
)
def test_a_record_moved_to_another_campaign_or_form_fails_to_open(privates, moved_to):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "en"), [public(privates[0])], *PLACE)
    with pytest.raises(EnvelopeError, match="moved from another campaign or form"):
        envelope.open_envelope(env, privates[0], *moved_to)


def test_an_altered_ciphertext_fails_to_open(privates):
    env = envelope.seal(envelope.plaintext(ANSWERS, 1, "en"), [public(privates[0])], *PLACE)
    kid, ct = next(iter(env.sealed.items()))
    flipped = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(EnvelopeError):
        envelope.open_envelope(envelope.Envelope({kid: flipped}), privates[0], *PLACE)


def test_info_names_the_campaign_and_form():
    assert envelope.info("petition", "sign") == b"papillon/v2/petition/sign"
    assert envelope.info("petition", "sign", version=1) == b"papillon/v1/petition/sign"


@pytest.mark.parametrize(("size", "padded"), [(0, 512), (1, 512), (511, 512), (512, 512), (513, 1024), (1024, 1024)])
def test_padding_rounds_up_to_whole_512_byte_blocks(size, padded):
    data = b"{" * size
    out = envelope.pad(data)
    assert len(out) == padded
    assert out.startswith(data)
    assert out[size:] == b" " * (padded - size)


def test_plaintext_is_padded_utf8_json():
    data = envelope.plaintext(ANSWERS, 2, "th")
    assert len(data) % 512 == 0
    assert json.loads(data.decode("utf-8")) == {"answers": ANSWERS, "form_version": 2, "locale": "th"}
    assert "\u738b\u5c0f\u660e".encode() in data


def test_padded_length_hides_the_exact_answer_length(privates):
    short = envelope.seal(envelope.plaintext({"a": "x"}, 1, "en"), [public(privates[0])], *PLACE)
    longer = envelope.seal(envelope.plaintext({"a": "x" * 300}, 1, "en"), [public(privates[0])], *PLACE)
    assert short.padded_length == longer.padded_length == 512


# --- parse refuses what is not a well-formed envelope -------------------------------------


def test_parse_refuses_bad_json():
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        envelope.parse("{not json")
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        envelope.parse(b"\xff\xfe")


@pytest.mark.parametrize("version", [3, 0, "2", True, None])
def test_parse_refuses_a_wrong_version(privates, version):
    doc = sealed_doc(privates[0])
    doc["version"] = version
    with pytest.raises(EnvelopeError, match="version"):
        envelope.parse(json.dumps(doc))


def test_parse_reads_version_1_for_old_bundles_unless_told_to_take_only_the_current_one(privates):
    doc = sealed_doc(privates[0])
    doc["version"] = 1
    assert envelope.parse(json.dumps(doc)).version == 1
    with pytest.raises(EnvelopeError, match="version"):
        envelope.parse(json.dumps(doc), versions=[envelope.VERSION])


def test_a_version_1_record_opens_with_the_version_1_info_and_a_relabelled_one_does_not(privates):
    """The version is bound into HPKE's info: flipping it outside the ciphertext makes the record not open."""
    data = envelope.plaintext({"signing_as": "An individual"}, 1, "en")
    old = envelope.Envelope(
        {
            public(privates[0]).key_id: envelope.SUITE.encrypt(
                data, privates[0].public_key(), info=envelope.info(*PLACE, version=1)
            )
        },
        version=1,
    )
    reread = envelope.parse(old.to_json())
    assert envelope.open_envelope(reread, privates[0], *PLACE)["answers"] == {"signing_as": "An individual"}
    relabelled = envelope.Envelope(reread.sealed, version=2)
    with pytest.raises(EnvelopeError, match="does not open"):
        envelope.open_envelope(relabelled, privates[0], *PLACE)


def test_parse_refuses_extra_keys(privates):
    doc = sealed_doc(privates[0])
    with pytest.raises(EnvelopeError, match="exactly 'version' and 'recipients'"):
        envelope.parse(json.dumps({**doc, "answers": {"name": "plain"}}))
    doc["recipients"][0]["note"] = "x"
    with pytest.raises(EnvelopeError, match="exactly 'key_id' and 'sealed'"):
        envelope.parse(json.dumps(doc))


def test_parse_refuses_missing_or_empty_recipients(privates):
    with pytest.raises(EnvelopeError):
        envelope.parse(json.dumps({"version": 1}))
    with pytest.raises(EnvelopeError, match="no recipients"):
        envelope.parse(json.dumps({"version": 1, "recipients": []}))
    with pytest.raises(EnvelopeError, match="no recipients"):
        envelope.parse(json.dumps({"version": 1, "recipients": {"a": "b"}}))
    with pytest.raises(EnvelopeError):
        envelope.parse(json.dumps([1, 2]))


def test_parse_refuses_key_ids_that_are_not_exactly_the_current_set(privates):
    kids = [public(p).key_id for p in privates]
    env = envelope.seal(envelope.pad(b"{}"), [public(p) for p in privates[:2]], *PLACE).to_json()
    assert set(envelope.parse(env, kids[:2]).sealed) == set(kids[:2])
    for expected in (kids[:1], kids, [kids[0], kids[2]], []):
        with pytest.raises(EnvelopeError, match="not sealed to exactly the current organizer keys"):
            envelope.parse(env, expected)


def test_parse_refuses_the_same_key_twice(privates):
    doc = sealed_doc(privates[0])
    doc["recipients"].append(dict(doc["recipients"][0]))
    with pytest.raises(EnvelopeError, match="appears twice"):
        envelope.parse(json.dumps(doc))


def test_parse_refuses_bad_base64(privates):
    doc = sealed_doc(privates[0])
    doc["recipients"][0]["sealed"] = "not*base64!"
    with pytest.raises(EnvelopeError, match="base64"):
        envelope.parse(json.dumps(doc))


def test_parse_refuses_non_string_members(privates):
    doc = sealed_doc(privates[0])
    doc["recipients"][0]["key_id"] = 7
    with pytest.raises(EnvelopeError, match="must be strings"):
        envelope.parse(json.dumps(doc))


@pytest.mark.parametrize("padded", [0, 100, 511, 513])
def test_parse_refuses_a_length_that_does_not_match_the_padding(padded):
    ct = bytes(envelope.ENC_BYTES + envelope.TAG_BYTES + padded)
    doc = {"version": 1, "recipients": [{"key_id": "a" * 16, "sealed": base64.b64encode(ct).decode()}]}
    with pytest.raises(EnvelopeError, match="does not match the padding"):
        envelope.parse(json.dumps(doc))


def test_parse_accepts_a_length_that_matches_the_padding():
    ct = bytes(envelope.ENC_BYTES + envelope.TAG_BYTES + 1024)
    doc = {"version": 1, "recipients": [{"key_id": "a" * 16, "sealed": base64.b64encode(ct).decode()}]}
    assert envelope.parse(json.dumps(doc)).padded_length == 1024


def test_parse_refuses_copies_of_different_lengths(privates):
    one = envelope.seal(envelope.pad(b"x"), [public(privates[0])], *PLACE)
    two = envelope.seal(envelope.pad(b"x" * 600), [public(privates[1])], *PLACE)
    mixed = envelope.Envelope({**one.sealed, **two.sealed}).to_json()
    with pytest.raises(EnvelopeError, match="differ in length"):
        envelope.parse(mixed)


def test_parse_refuses_oversize_sealed_answers(privates):
    env = envelope.seal(envelope.pad(b"x" * 1000), [public(privates[0])], *PLACE).to_json()
    assert envelope.parse(env, max_padded=1024).padded_length == 1024
    with pytest.raises(EnvelopeError, match="too large"):
        envelope.parse(env, max_padded=512)


def test_parse_refuses_an_oversize_envelope_before_reading_it():
    limit = 2 * (envelope.MAX_PADDED_BYTES + 256) * envelope.MAX_RECIPIENTS
    with pytest.raises(EnvelopeError, match="too large"):
        envelope.parse(" " * (limit + 1))


def test_parse_refuses_too_many_recipients():
    ct = base64.b64encode(bytes(envelope.ENC_BYTES + envelope.TAG_BYTES + 512)).decode()
    recipients = [{"key_id": f"{i:016x}", "sealed": ct} for i in range(envelope.MAX_RECIPIENTS + 1)]
    with pytest.raises(EnvelopeError, match="too many recipients"):
        envelope.parse(json.dumps({"version": 1, "recipients": recipients}))


def test_opened_record_must_hold_answers(privates):
    env = envelope.seal(envelope.pad(b'{"form_version":1}'), [public(privates[0])], *PLACE)
    with pytest.raises(EnvelopeError, match="no answers"):
        envelope.open_envelope(env, privates[0], *PLACE)


def test_opened_record_must_be_padded(privates):
    env = envelope.seal(b'{"answers":{}}', [public(privates[0])], *PLACE)
    with pytest.raises(EnvelopeError, match="not padded"):
        envelope.open_envelope(env, privates[0], *PLACE)
