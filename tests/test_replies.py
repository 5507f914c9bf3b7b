"""The reply format (papillon/replies.py): reply codes, what they derive, sealed replies and the replies bundle."""

from __future__ import annotations

import base64
import hashlib
import json
import string

import pytest

from papillon import campaigns, envelope, replies

CODE = "7K2M9QXR4HBD0A1C5E6F8G9JTVWZ"
OTHER = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"


def member(code: str = CODE) -> replies.Member:
    return replies.read_member(replies.derive(code).member())


@pytest.mark.parametrize(
    "typed",
    [
        CODE,
        CODE.lower(),
        "7K2M-9QXR-4HBD-0A1C-5E6F-8G9J-TVWZ",
        " 7k2m 9qxr 4hbd 0a1c\n5e6f 8g9j tvwz ",
        "7K2M9QXR4HBDOA1C5E6F8G9JTVWZ",
    ],
)
def test_a_code_reads_the_same_whatever_its_case_spacing_or_an_o_for_a_zero(typed):
    assert replies.normalize(typed) == CODE
    assert replies.derive(typed).lookup == replies.derive(CODE).lookup


def test_i_and_l_read_as_one():
    assert replies.normalize("IL" + "1" * 26) == "1" * 28


@pytest.mark.parametrize("typed", ["", CODE[:-1], CODE + "7", "U" + CODE[1:], "!" + CODE[1:], "é" + CODE[1:]])
def test_a_code_of_the_wrong_length_or_with_other_characters_is_refused(typed):
    with pytest.raises(replies.ReplyError, match="28 letters and digits"):
        replies.normalize(typed)


def test_a_code_is_shown_in_seven_groups_of_four():
    assert replies.shown(CODE.lower()) == "7K2M-9QXR-4HBD-0A1C-5E6F-8G9J-TVWZ"


def test_new_codes_hold_140_bits_of_the_unambiguous_alphabet_and_differ():
    codes = {replies.new_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 28 and set(c) <= set(replies.ALPHABET) for c in codes)
    assert set("".join(codes)) == set(replies.ALPHABET)
    assert not set(replies.ALPHABET) & set("ILOU")
    assert len(replies.ALPHABET) ** replies.CODE_LENGTH >= 2**128


def test_two_codes_derive_different_lookup_ids_and_keys():
    one, two = replies.derive(CODE), replies.derive(OTHER)
    assert one.lookup != two.lookup
    assert one.public != two.public


def test_the_reply_member_holds_the_lookup_id_and_public_key_and_reads_back():
    keys = replies.derive(CODE)
    read = replies.read_member(keys.member())
    assert read.lookup == keys.lookup
    assert read.public_key == keys.public
    assert read.handle == "r-" + keys.lookup[:12]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "abc",
        {"lookup": "0" * 32},
        {"lookup": "0" * 32, "public_key": base64.b64encode(b"x" * 32).decode(), "extra": 1},
        {"lookup": "0" * 31, "public_key": base64.b64encode(b"x" * 32).decode()},
        {"lookup": "A" * 32, "public_key": base64.b64encode(b"x" * 32).decode()},
        {"lookup": "0" * 32, "public_key": base64.b64encode(b"x" * 31).decode()},
        {"lookup": "0" * 32, "public_key": "not base64!"},
        {"lookup": "0" * 32, "public_key": 7},
    ],
)
def test_a_malformed_reply_member_is_refused(value):
    with pytest.raises(replies.ReplyError):
        replies.read_member(value)


def test_a_reply_opens_with_its_code_and_not_with_another():
    sealed = replies.seal("Nous pouvons vous aider. 我们可以帮忙。", "2026-12-01", member())
    assert replies.open_reply(sealed, replies.derive(CODE)) == {
        "message": "Nous pouvons vous aider. 我们可以帮忙。",
        "written_on": "2026-12-01",
    }
    with pytest.raises(replies.ReplyError, match="does not open"):
        replies.open_reply(sealed, replies.derive(OTHER))


def test_a_reply_moved_to_another_lookup_id_does_not_open():
    """The info binds a reply to its lookup id: one sealed to the right key under another id is refused."""
    right = member()
    moved = replies.Member("0" * 32, right.public_key)
    sealed = replies.seal("hello", "2026-12-01", moved)
    with pytest.raises(replies.ReplyError):
        replies.open_reply(sealed, replies.derive(CODE))


@pytest.mark.parametrize(("length", "blocks"), [(1, 1), (400, 1), (900, 2)])
def test_a_sealed_reply_is_padded_to_whole_blocks_so_its_length_says_little(length, blocks):
    raw = base64.b64decode(replies.seal("x" * length, "2026-12-01", member()))
    assert len(raw) == envelope.ENC_BYTES + blocks * envelope.PAD_BLOCK + envelope.TAG_BYTES


def test_a_reply_longer_than_the_limit_is_refused_and_one_at_the_limit_is_sealed():
    replies.seal("字" * replies.MESSAGE_MAX, "2026-12-01", member())
    with pytest.raises(replies.ReplyError, match="at most"):
        replies.seal("字" * (replies.MESSAGE_MAX * 2), "2026-12-01", member())


@pytest.mark.parametrize("sealed", [None, "", "not base64", base64.b64encode(b"x" * 100).decode()])
def test_a_sealed_reply_of_the_wrong_shape_is_refused_unopened(sealed):
    with pytest.raises(replies.ReplyError):
        replies.check_sealed(sealed)


def sealed_replies(*codes: str) -> list[replies.SealedReply]:
    return [replies.SealedReply(member(c).lookup, replies.seal(f"to {c}", "2026-12-01", member(c))) for c in codes]


def test_a_replies_bundle_reads_back_in_lookup_order_whatever_order_it_was_written_in(tmp_path):
    path = tmp_path / "replies.bundle"
    written = sealed_replies(OTHER, CODE, "A" * 28)
    assert replies.write_bundle(path, written, created_on="2026-12-01") == 3
    read = replies.read_bundle(path.read_bytes())
    assert read == sorted(written, key=lambda r: r.lookup)
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert header == {"count": 3, "created_on": "2026-12-01", "format": "papillon-replies", "version": 1}


def test_a_replies_bundle_holds_no_message_in_the_clear(tmp_path):
    path = tmp_path / "replies.bundle"
    replies.write_bundle(path, sealed_replies(CODE), created_on="2026-12-01")
    assert b"to " + CODE.encode() not in path.read_bytes()
    assert set(path.read_text()) <= set(string.printable)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[: b.rindex(b"\n", 0, -1) + 1], "checksum line"),
        (lambda b: b.replace(b"2026-12-01", b"2026-12-02", 1), "checksum mismatch"),
        (lambda b: b"", "truncated"),
    ],
)
def test_a_damaged_replies_bundle_is_refused_whole(tmp_path, damage, reason):
    path = tmp_path / "replies.bundle"
    replies.write_bundle(path, sealed_replies(CODE, OTHER), created_on="2026-12-01")
    with pytest.raises(replies.ReplyError, match=reason):
        replies.read_bundle(damage(path.read_bytes()))


def test_an_export_bundle_is_not_taken_for_a_replies_bundle():
    body = json.dumps({"count": 0, "format": "papillon-bundle", "version": 1}).encode() + b"\n"
    data = body + json.dumps({"sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n"
    with pytest.raises(replies.ReplyError, match="not a replies bundle"):
        replies.read_bundle(data)


def test_the_follow_up_form_is_a_campaign_definition_with_one_required_message():
    campaign = campaigns.from_dict(replies.FOLLOW_UP_SOURCE, "papillon.replies")
    form = campaign.forms[replies.FOLLOW_UP]
    assert campaign.slug == replies.CAMPAIGN
    assert [(f.name, f.type, f.required, f.max_length) for f in form.fields] == [
        ("message", "long_text", True, replies.MESSAGE_MAX)
    ]


def test_a_reply_member_makes_a_records_plaintext_114_bytes_longer_before_padding_as_security_md_says():
    answers = {"what_happened": "x" * 100}
    plain = envelope.plaintext(answers, 1, "en").rstrip(b" ")
    with_reply = envelope.plaintext(answers, 1, "en", replies.derive(CODE).member()).rstrip(b" ")
    assert len(with_reply) - len(plain) == 114
    assert json.loads(with_reply)["reply"] == replies.derive(CODE).member()


def test_a_replies_bundle_is_ascii_json_lines_with_sorted_members_and_no_white_space_as_security_md_says(tmp_path):
    path = tmp_path / "replies.bundle"
    replies.write_bundle(path, sealed_replies(CODE, OTHER), created_on="2026-12-01")
    data = path.read_bytes()
    data.decode("ascii")
    lines = data.split(b"\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(b"".join(line + b"\n" for line in lines[:-2])).hexdigest() == json.loads(lines[-2])["sha256"]
