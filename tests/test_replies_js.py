"""app/static/replies.js, the browser's half of anonymous replies, run under node and checked against Python
(papillon.replies, papillon.envelope): the code, what it derives, opening replies, and the two pages it drives."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import html
import json
import re
from pathlib import Path
from typing import Any

import nacl.bindings
import pytest
from browser_support import CSP_UNSAFE, REPLIES_JS_GZIP_BUDGET
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import public
from services import Node

from app.views import SEAL_MESSAGES
from papillon import envelope, replies

HERE = Path(__file__).resolve().parent
REPLIES_JS = HERE.parent / "app" / "static" / "replies.js"
VECTORS = json.loads((HERE / "vectors" / "reply-code-v1.json").read_text(encoding="utf-8"))
CASES = VECTORS["vectors"]

CODE = "7K2M9QXR4HBD0A1C5E6F8G9JTVWZ"
OTHER_CODE = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
ANSWERS = {"name": "陳小明", "story": 'Line one\nLine two "quoted" — ça suffit 🦋', "consent": True}


@pytest.fixture(scope="module")
def organizers() -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate(), X25519PrivateKey.generate()]


def seal_config(
    privates: list[X25519PrivateKey], campaign: str, form: str, form_version: int = 3, locale: str = "en"
) -> dict[str, object]:
    """The config a page carries in data-seal, as app.views builds it."""
    return {
        "info": envelope.info(campaign, form).decode(),
        "version": envelope.VERSION,
        "form_version": form_version,
        "locale": locale,
        "keys": [{"key_id": public(p).key_id, "public_key": public(p).to_b64()} for p in privates],
        "pad_block": envelope.PAD_BLOCK,
        "messages": {name: str(text) for name, text in SEAL_MESSAGES.items()},
    }


def hkdf_by_hand(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 over hashlib's HMAC, written out here so the vector file is checked by something of its own."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def node_derive(node: Node, codes: list[str]) -> Any:
    return node("replies.js", {"command": "derive", "codes": codes})


def node_normalize(node: Node, inputs: list[str]) -> Any:
    return node("replies.js", {"command": "normalize", "inputs": inputs})


def python_normalize(text: str) -> str | None:
    try:
        return replies.normalize(text)
    except replies.ReplyError:
        return None


def member_of(code: str) -> replies.Member:
    return replies.read_member(replies.derive(code).member())


# What a code derives


def test_vector_file_matches_an_independent_hkdf_and_libsodium_x25519() -> None:
    assert VECTORS["salt"] == replies.SALT.decode()
    assert VECTORS["lookup_info"] == replies.LOOKUP_INFO.decode()
    assert VECTORS["key_info"] == replies.KEY_INFO.decode()
    for case in CASES:
        ikm, salt = case["code"].encode("ascii"), VECTORS["salt"].encode()
        assert hkdf_by_hand(ikm, salt, VECTORS["lookup_info"].encode(), 16).hex() == case["lookup"]
        private = hkdf_by_hand(ikm, salt, VECTORS["key_info"].encode(), 32)
        assert private.hex() == case["private_key"]
        assert nacl.bindings.crypto_scalarmult_base(private).hex() == case["public_key"]


def test_python_derives_every_vector_typed_or_canonical() -> None:
    for case in CASES:
        for code in (case["typed"], case["code"]):
            keys = replies.derive(code)
            assert keys.lookup == case["lookup"], code
            assert keys.public.hex() == case["public_key"], code
            assert replies.handle(keys.lookup) == case["handle"]


def test_script_derives_every_vector_typed_or_canonical(node: Node) -> None:
    codes = [code for case in CASES for code in (case["typed"], case["code"])]
    derived = node_derive(node, codes)
    for code, case, got in zip(codes, [c for c in CASES for _ in range(2)], derived, strict=True):
        assert got["lookup"] == case["lookup"], code
        assert got["public_key"] == case["public_key"], code
        public_key = base64.b64encode(bytes.fromhex(case["public_key"])).decode()
        assert got["member"] == {"lookup": case["lookup"], "public_key": public_key}
        assert list(got["member"]) == ["lookup", "public_key"], "the member's order is part of the sealed bytes"
        assert replies.read_member(got["member"]) == member_of(code)


def test_script_keeps_the_reply_private_key_inside_webcrypto(node: Node) -> None:
    key = node("replies.js", {"command": "extractable", "code": CODE})
    assert key == {"extractable": False, "usages": ["deriveBits"]}


# The code as typed

TYPED = [
    CODE,
    CODE.lower(),
    "7k2m-9qxr-4hbd-0a1c-5e6f-8g9j-tvwz",
    " 7K2M 9QXR 4HBD 0A1C\t5E6F 8G9J TVWZ\n",
    "7K2M_9QXR.4HBD--0A1C 5E6F-8G9J-TVWZ",
    "oooo iiii llll OOOO IIII LLLL oIlO",
    "7K2M-9QXR-4HBD-OA1C-5E6F-8G9J-TVWZ",
    "7K2M\u00a09QXR\u20034HBD\u30000A1C\u20285E6F\u001f8G9J\u0085TVWZ",
    "\u017f" * 28,  # the long s upper-cases to S in both languages
    "ß" * 14,  # and the sharp s to SS
]
REFUSED = [
    "",
    CODE[:-1],
    CODE + "0",
    CODE[:-1] + "U",
    CODE[:-1] + "u",
    CODE[:-1] + "!",
    CODE[:-1] + "/",
    CODE[:-1] + "+",
    "7K2M,9QXR,4HBD,0A1C,5E6F,8G9J,TVWZ",
    "7K2M\ufeff9QXR4HBD0A1C5E6F8G9JTVWZ",  # a byte order mark is no white space to Python
    CODE[:-1] + "\u0660",  # an Arabic-Indic zero is not a digit of the code
    CODE[:-1] + "Ｚ",  # noqa: RUF001 - a full-width Z is not one either
    CODE[:-1] + "🦋",
]


def test_script_normalizes_typed_codes_as_python_does(node: Node) -> None:
    got = node_normalize(node, TYPED)
    for typed, normalized in zip(TYPED, got, strict=True):
        assert normalized is not None, typed
        assert normalized == replies.normalize(typed), typed
        assert len(normalized) == replies.CODE_LENGTH


def test_script_and_python_refuse_the_same_malformed_codes(node: Node) -> None:
    assert node_normalize(node, REFUSED) == [None] * len(REFUSED)
    for text in REFUSED:
        with pytest.raises(replies.ReplyError):
            replies.normalize(text)


def test_script_and_python_agree_on_every_character_of_the_basic_plane(node: Node) -> None:
    """Each character as a would-be separator and as a would-be symbol: the same code, or the same refusal."""
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    inputs = [f"{CODE[:14]}{c}{CODE[14:]}" for c in chars] + [f"{CODE[:26]}{c}" for c in chars]
    got = node_normalize(node, inputs)
    disagree = [repr(text) for text, js in zip(inputs, got, strict=True) if js != python_normalize(text)]
    assert disagree == []
    separators = {c for c, js in zip(chars, got, strict=False) if js is not None}
    assert separators >= {" ", "-", "_", ".", "\t", "\n", "\u00a0", "\u3000"}


def test_script_shows_the_code_in_groups_of_four(node: Node) -> None:
    typed = [case["typed"] for case in CASES]
    assert node("replies.js", {"command": "shown", "codes": typed}) == [replies.shown(t) for t in typed]
    assert replies.shown(CODE) == "7K2M-9QXR-4HBD-0A1C-5E6F-8G9J-TVWZ"


def test_new_codes_are_28_alphabet_symbols_each_different_with_every_symbol_in_use(node: Node) -> None:
    assert node("replies.js", {"command": "alphabet"}) == replies.ALPHABET
    codes = node("replies.js", {"command": "new_codes", "count": 400})
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert re.fullmatch(f"[{replies.ALPHABET}]{{{replies.CODE_LENGTH}}}", code), code
        assert replies.normalize(code) == code
    # 11,200 symbols: each of the 32 is expected 350 times, so one missing or rare would mean a stuck symbol.
    counts = {symbol: sum(code.count(symbol) for code in codes) for symbol in replies.ALPHABET}
    assert min(counts.values()) > 200, counts


# Opening replies sealed on the laptop


def node_open(node: Node, code: str, sealed: list[str]) -> Any:
    return node("replies.js", {"command": "open", "code": code, "sealed": sealed})


@pytest.mark.parametrize(
    "message",
    [
        "Thank you. We read your testimony and we will call council on Monday.",
        "多谢你的证词。ขอบคุณ 감사합니다 — merci 🦋🏳️‍🌈\nA second line,\n\tand a third.",
        "A long answer, past a block. " * 130,
        "ข" * replies.MESSAGE_MAX,
    ],
    ids=["ascii", "non-ascii", "several-blocks", "longest-thai"],
)
def test_a_reply_sealed_by_python_opens_in_the_script(node: Node, message: str) -> None:
    sealed = replies.seal(message, "2026-05-04", member_of(CODE))
    padded = len(replies.check_sealed(sealed)) - envelope.ENC_BYTES - envelope.TAG_BYTES
    [opened] = node_open(node, "7k2m 9qxr 4hbd oa1c 5e6f 8g9j tvwz", [sealed])
    assert opened == {"ok": {"message": message, "written_on": "2026-05-04"}}
    if len(message.encode()) > envelope.PAD_BLOCK:
        assert padded > envelope.PAD_BLOCK


def test_a_reply_for_another_code_or_moved_to_another_lookup_or_altered_does_not_open(node: Node) -> None:
    mine = member_of(CODE)
    other = member_of(OTHER_CODE)
    sealed = replies.seal("Only for you.", "2026-05-04", mine)
    raw = bytearray(base64.b64decode(sealed))
    moved = replies.seal("Right key, wrong place.", "2026-05-04", replies.Member(other.lookup, mine.public_key))
    altered = []
    for at in (0, 31, 32, len(raw) // 2, len(raw) - 1):
        changed = bytearray(raw)
        changed[at] ^= 0x01
        altered.append(base64.b64encode(bytes(changed)).decode())
    results = node_open(node, CODE, [replies.seal("Not yours.", "2026-05-04", other), moved, *altered])
    assert all("error" in r and "ok" not in r for r in results), results
    assert node_open(node, CODE, [sealed]) == [{"ok": {"message": "Only for you.", "written_on": "2026-05-04"}}]


# Testimonies sealed in the browser with a reply member


def node_envelope(node: Node, config: dict[str, object], answers: dict[str, object], code: str | None) -> Any:
    return node("replies.js", {"command": "envelope", "config": config, "answers": answers, "code": code})


@pytest.mark.parametrize("locale", ["en", "th", "zh-Hant"])
def test_a_browser_testimony_with_a_reply_member_opens_in_python_with_the_derived_keys(
    node: Node, organizers: list[X25519PrivateKey], locale: str
) -> None:
    config = seal_config(organizers, "letter", "testimony", form_version=4, locale=locale)
    built = node_envelope(node, config, ANSWERS, CODE)
    sealed = envelope.parse(built["envelope"], [public(p).key_id for p in organizers])
    for private in organizers:
        doc = envelope.open_envelope(sealed, private, "letter", "testimony")
        assert list(doc) == ["answers", "form_version", "locale", "reply"]
        assert doc["answers"] == ANSWERS
        got = replies.read_member(doc["reply"])
        assert got == member_of(CODE)
        assert got.lookup == CASES[0]["lookup"]
        assert got.public_key.hex() == CASES[0]["public_key"]
    python = envelope.plaintext(ANSWERS, 4, locale, reply=built["member"])
    assert bytes.fromhex(built["plaintext"]) == python


def test_a_browser_testimony_without_a_reply_member_has_the_plaintext_it_had_before(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    config = seal_config(organizers, "letter", "testimony")
    built = node_envelope(node, config, ANSWERS, None)
    assert bytes.fromhex(built["plaintext"]) == envelope.plaintext(ANSWERS, 3, "en")
    doc = envelope.open_envelope(envelope.parse(built["envelope"]), organizers[0], "letter", "testimony")
    assert "reply" not in doc


# The pages: a stand-in DOM (tests/js/replies_page.js) with seal.js and replies.js loaded as the pages load them

THANKS = "https://example.org/letter/testimony/thanks"
FOLLOW_UP_THANKS = "https://example.org/replies/thanks"
TESTIMONY_ACTION = "/letter/testimony"
LOOKUP_ACTION = "/replies"
FOLLOW_UP_ACTION = "/replies/follow-up"
REPLY_MESSAGES = {
    "reading": "Looking for replies…",
    "bad_code": "This is not a reply code: a reply code has 28 letters and digits.",
    "failed": "The replies could not be read. Please try again.",
    "unsupported": "This browser cannot open replies itself: the server will, for this request only.",
}
TESTIMONY_FIELDS = [{"name": "story", "type": "long_text"}]
SUBMISSION_ID = "0123456789abcdef0123456789abcdef"


def witness_controls() -> list[dict[str, object]]:
    return [
        {"name": "csrf_token", "type": "hidden", "value": "csrf-123"},
        {"name": "submission_id", "type": "hidden", "value": SUBMISSION_ID},
        {"name": "story", "type": "textarea", "value": "What happened to me."},
        {"name": "website", "type": "text", "value": ""},
    ]


def run_testimony_page(
    node: Node, organizers: list[X25519PrivateKey], steps: list[dict[str, Any]], **scenario: Any
) -> dict[str, Any]:
    config = {**seal_config(organizers, "letter", "testimony"), "fields": TESTIMONY_FIELDS, "honeypot": "website"}
    seal = {"config": config, "controls": witness_controls(), "action": TESTIMONY_ACTION}
    payload = {"page": "testimony", "seal": seal, "choice": False, "steps": steps, **scenario}
    report: dict[str, Any] = node("replies_page.js", payload)
    assert report["touched"] == [], "nothing may be kept in storage, cookies, the address or the history"
    return report


def opened_testimony(sent: dict[str, Any], private: X25519PrivateKey) -> dict[str, Any]:
    return envelope.open_envelope(envelope.parse(sent["body"]["envelope"]), private, "letter", "testimony")


def test_a_ticked_reply_choice_seals_a_new_code_and_shows_it_instead_of_leaving(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}], choice=True, responses=[ok])
    [sent] = report["fetches"]
    assert set(sent["body"]) == {"csrf_token", "submission_id", "envelope", "website"}
    shown = report["reply_code"]
    assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{4}-){6}[0-9A-HJKMNP-TV-Z]{4}", shown), shown
    assert replies.normalize(shown).replace("-", "") not in json.dumps(sent)
    for private in organizers:
        doc = opened_testimony(sent, private)
        assert doc["answers"] == {"story": "What happened to me."}
        assert replies.read_member(doc["reply"]) == member_of(shown)
    assert report["assigned"] == [], "the code is shown on this page, never on another"
    assert report["main"] == [
        {"id": "title", "tag": "h1", "hidden": True},
        {"id": "testimony-form", "tag": "form", "hidden": True},
        {"id": "reply-thanks", "tag": "section", "hidden": False},
    ]
    assert report["title"] == "Thank you"
    assert report["steps"][-1]["focused"][-1] == "reply-thanks"


def test_each_page_load_makes_a_different_code(node: Node, organizers: list[X25519PrivateKey]) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    shown = {run_testimony_page(node, organizers, [{"form": "seal"}], choice=True, responses=[ok])["reply_code"]}
    shown.add(run_testimony_page(node, organizers, [{"form": "seal"}], choice=True, responses=[ok])["reply_code"])
    assert len(shown) == 2


def test_an_unticked_reply_choice_seals_no_reply_and_goes_to_the_thank_you_page(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}], choice=False, responses=[ok])
    [sent] = report["fetches"]
    opened = envelope.SUITE.decrypt(
        envelope.parse(sent["body"]["envelope"]).sealed[public(organizers[0]).key_id],
        organizers[0],
        info=envelope.info("letter", "testimony"),
    )
    assert opened == envelope.plaintext({"story": "What happened to me."}, 3, "en")
    assert report["assigned"] == [THANKS]
    assert report["reply_code"] == ""
    assert [c["hidden"] for c in report["main"]] == [False, False, True]


def test_a_form_without_replies_seals_no_reply_and_goes_to_the_thank_you_page(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}], choice=None, thanks_section=False, responses=[ok])
    assert "reply" not in opened_testimony(report["fetches"][0], organizers[0])
    assert report["assigned"] == [THANKS]


def test_a_ticked_box_on_a_page_that_could_not_show_the_code_seals_none(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}], choice=True, thanks_section=False, responses=[ok])
    assert "reply" not in opened_testimony(report["fetches"][0], organizers[0])
    assert report["assigned"] == [THANKS]


def test_a_retry_after_a_refusal_seals_the_same_code_in_the_same_envelope(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    refused = {"status": 400, "json": {"error": "This page has expired."}}
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}] * 2, choice=True, responses=[refused, ok])
    first, second = report["fetches"]
    assert first["body"] == second["body"], "a retry must be told apart from a change"
    assert report["steps"][0]["seal_status"]["text"] == "This page has expired."
    assert report["steps"][0]["focused"] == ["seal-status"]
    member = replies.read_member(opened_testimony(second, organizers[0])["reply"])
    assert member == member_of(report["reply_code"])


def test_unticking_before_a_retry_seals_anew_without_the_reply(node: Node, organizers: list[X25519PrivateKey]) -> None:
    refused = {"status": 400, "json": {"error": "This page has expired."}}
    ok = {"status": 200, "json": {"thanks": THANKS}}
    steps: list[dict[str, Any]] = [{"form": "seal"}, {"form": "seal", "choice": False}]
    report = run_testimony_page(node, organizers, steps, choice=True, responses=[refused, ok])
    first, second = report["fetches"]
    assert "reply" in opened_testimony(first, organizers[0])
    assert "reply" not in opened_testimony(second, organizers[0])
    assert report["assigned"] == [THANKS]
    assert report["reply_code"] == ""


def test_a_reply_member_that_cannot_be_made_fails_closed(node: Node, organizers: list[X25519PrivateKey]) -> None:
    ok = {"status": 200, "json": {"thanks": THANKS}}
    report = run_testimony_page(node, organizers, [{"form": "seal"}], choice=True, broken_member=True, responses=[ok])
    assert report["fetches"] == []
    status = report["steps"][0]["seal_status"]
    assert status["text"] == str(SEAL_MESSAGES["cannot_seal"])
    assert "error" in status["classes"]
    assert report["assigned"] == []


# The /replies page


def replies_page(
    node: Node, organizers: list[X25519PrivateKey], steps: list[dict[str, Any]], **scenario: Any
) -> dict[str, Any]:
    config = {
        **seal_config(organizers, replies.CAMPAIGN, replies.FOLLOW_UP, form_version=1),
        "fields": [{"name": "message", "type": "long_text"}],
        "honeypot": "website",
    }
    seal = {
        "config": config,
        "action": FOLLOW_UP_ACTION,
        "controls": [
            {"name": "csrf_token", "type": "hidden", "value": "csrf-456"},
            {"name": "submission_id", "type": "hidden", "value": SUBMISSION_ID},
            {"name": "message", "type": "textarea", "value": ""},
            {"name": "website", "type": "text", "value": ""},
            *scenario.pop("follow_up_controls", []),
        ],
    }
    lookup = {
        "config": {"messages": REPLY_MESSAGES},
        "action": LOOKUP_ACTION,
        "controls": [
            {"name": "csrf_token", "type": "hidden", "value": "csrf-456"},
            {"name": "code", "type": "text", "value": ""},
        ],
    }
    payload = {"page": "replies", "seal": seal, "lookup": lookup, "steps": steps, **scenario}
    report: dict[str, Any] = node("replies_page.js", payload)
    assert report["touched"] == [], "nothing may be kept in storage, cookies, the address or the history"
    return report


def markup(message: str, written_on: str) -> str:
    """A reply as the page shows it, the same whether the server or the script renders it."""
    return (
        f'<li><p class="written-on"><time datetime="{written_on}">{written_on}</time></p>'
        f'<p class="message">{html.escape(message, quote=False)}</p></li>'
    )


WRITTEN = [
    ("We called council.\nThey will answer by June.", "2026-05-20"),
    ("Thank you <b>for</b> writing & trusting us — 多谢", "2026-04-02"),
    ("A second message, the same day as the first.", "2026-04-02"),
]


def sealed_for(code: str) -> list[str]:
    return [replies.seal(message, on, member_of(code)) for message, on in WRITTEN]


def found(json_replies: list[str]) -> dict[str, Any]:
    return {"status": 200, "json": {"replies": json_replies}}


def test_a_lookup_posts_only_the_lookup_id_and_shows_the_replies_in_date_order(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    typed = "7k2m 9qxr 4hbd oa1c 5e6f 8g9j tvwz"
    step = {"form": "lookup", "code": typed}
    report = replies_page(node, organizers, [step], responses=[found(sealed_for(CODE))])
    assert report["listeners"]["lookup-form"] == ["submit"], "the hold-back listener is gone"
    [shown] = report["steps"]
    assert shown["prevented"]
    [sent] = shown["fetches"]
    assert sent["url"] == LOOKUP_ACTION
    assert sent["options"] == {
        "method": "POST",
        "headers": {"Accept": "application/json"},
        "credentials": "same-origin",
    }
    assert sent["body_type"] == "URLSearchParams"
    assert sent["body"] == {"csrf_token": "csrf-456", "lookup": replies.derive(CODE).lookup}
    assert CODE not in json.dumps(sent)
    assert typed not in json.dumps(sent)
    # Sorted by date; the two of one day keep the order the server gave them.
    assert shown["list"] == [markup(*WRITTEN[1]), markup(*WRITTEN[2]), markup(*WRITTEN[0])]
    assert shown["no_replies"] is True
    assert shown["found"] is False
    assert shown["follow_up_hidden"] is False
    assert shown["lookup_status"]["hidden"] is True
    assert shown["lookup_buttons"] == [False]


def test_a_code_without_replies_looks_like_a_code_with_them_but_for_the_list(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    answered, unanswered = (
        replies_page(node, organizers, [{"form": "lookup", "code": code}], responses=[found(sealed)])["steps"][0]
        for code, sealed in ((CODE, sealed_for(CODE)), (OTHER_CODE, []))
    )
    assert unanswered["list"] == []
    assert unanswered["no_replies"] is False
    for name in ("list", "no_replies", "fetches"):
        del answered[name], unanswered[name]
    assert answered == unanswered


@pytest.mark.parametrize("typed", ["7K2M-9QXR-4HBD", CODE[:-1] + "U", CODE[:-1] + "!", ""])
def test_a_malformed_code_is_refused_before_any_request(
    node: Node, organizers: list[X25519PrivateKey], typed: str
) -> None:
    [step] = replies_page(node, organizers, [{"form": "lookup", "code": typed}], responses=[found([])])["steps"]
    assert step["fetches"] == []
    assert step["lookup_status"]["text"] == REPLY_MESSAGES["bad_code"]
    assert step["lookup_status"]["hidden"] is False
    assert sorted(step["lookup_status"]["classes"]) == ["error", "notice"]
    assert step["focused"] == ["lookup-status"]
    assert step["found"] is True
    assert step["follow_up_hidden"] is True


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            {"status": 429, "json": {"error": "Too many tries: please wait a little."}},
            "Too many tries: please wait a little.",
        ),
        ({"status": 400, "json": {"error": ""}}, REPLY_MESSAGES["failed"]),
        ({"status": 502}, REPLY_MESSAGES["failed"]),
        ({"status": 200, "json": {"thanks": "not replies"}}, REPLY_MESSAGES["failed"]),
        ({"kind": "network"}, REPLY_MESSAGES["failed"]),
    ],
    ids=["server-error", "empty-error", "no-json", "no-replies-member", "network"],
)
def test_a_failed_lookup_says_so_and_shows_no_result(
    node: Node, organizers: list[X25519PrivateKey], response: dict[str, Any], message: str
) -> None:
    [step] = replies_page(node, organizers, [{"form": "lookup", "code": CODE}], responses=[response])["steps"]
    assert len(step["fetches"]) == 1
    assert step["lookup_status"]["text"] == message
    assert "error" in step["lookup_status"]["classes"]
    assert step["focused"] == ["lookup-status"]
    assert step["found"] is True
    assert step["follow_up_hidden"] is True
    assert step["lookup_buttons"] == [False]


def test_a_reply_that_does_not_open_is_left_out_and_said(node: Node, organizers: list[X25519PrivateKey]) -> None:
    good = replies.seal("This one opens.", "2026-05-01", member_of(CODE))
    bad = replies.seal("Sealed to someone else.", "2026-05-02", member_of(OTHER_CODE))
    [step] = replies_page(node, organizers, [{"form": "lookup", "code": CODE}], responses=[found([bad, good])])["steps"]
    assert step["list"] == [markup("This one opens.", "2026-05-01")]
    assert step["lookup_status"]["text"] == REPLY_MESSAGES["failed"]
    assert step["found"] is False


def test_a_new_lookup_hides_the_last_result_until_it_answers(node: Node, organizers: list[X25519PrivateKey]) -> None:
    steps = [{"form": "lookup", "code": CODE}, {"form": "lookup", "code": "not a code"}]
    first, second = replies_page(node, organizers, steps, responses=[found(sealed_for(CODE))])["steps"]
    assert first["found"] is False
    assert second["found"] is True
    assert second["follow_up_hidden"] is True


@pytest.mark.parametrize("crypto", ["no-x25519", "none"])
def test_without_x25519_the_lookup_form_posts_the_code_itself(
    node: Node, organizers: list[X25519PrivateKey], crypto: str
) -> None:
    report = replies_page(node, organizers, [], crypto=crypto, early=True)
    assert report["early_prevented"] is True, "a submit before the check answers is held back"
    assert report["listeners"] == {"follow-up-form": [], "lookup-form": []}
    assert report["lookup_status"]["text"] == REPLY_MESSAGES["unsupported"]
    assert report["lookup_status"]["hidden"] is False
    assert report["lookup_status"]["classes"] == []
    assert report["fetches"] == []


def follow_up(sent: dict[str, Any], private: X25519PrivateKey) -> dict[str, Any]:
    sealed = envelope.parse(sent["body"]["envelope"])
    return envelope.open_envelope(sealed, private, replies.CAMPAIGN, replies.FOLLOW_UP)


def test_a_follow_up_carries_the_reply_member_of_the_code_looked_up_last(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    steps = [
        {"form": "lookup", "code": OTHER_CODE},
        {"form": "lookup", "code": CODE.lower()},
        {"form": "seal", "message": "  Thank you.\r\nI can meet on Friday.  "},
    ]
    thanks = {"status": 200, "json": {"thanks": FOLLOW_UP_THANKS}}
    report = replies_page(node, organizers, steps, responses=[found([]), found(sealed_for(CODE)), thanks])
    [sent] = report["steps"][2]["fetches"]
    assert sent["url"] == FOLLOW_UP_ACTION
    assert set(sent["body"]) == {"csrf_token", "submission_id", "envelope", "website"}
    assert CODE not in json.dumps(sent)
    for private in organizers:
        doc = follow_up(sent, private)
        assert doc == {
            "answers": {"message": "Thank you.\nI can meet on Friday."},
            "form_version": 1,
            "locale": "en",
            "reply": replies.derive(CODE).member(),
        }
    assert report["assigned"] == [FOLLOW_UP_THANKS]


def test_a_follow_up_after_a_failed_lookup_carries_no_earlier_codes_member(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    steps = [
        {"form": "lookup", "code": CODE},
        {"form": "lookup", "code": OTHER_CODE},
        {"form": "seal", "message": "Hi"},
    ]
    thanks = {"status": 200, "json": {"thanks": FOLLOW_UP_THANKS}}
    report = replies_page(node, organizers, steps, responses=[found([]), {"status": 500}, thanks])
    assert report["steps"][2]["fetches"] == []
    assert report["steps"][2]["seal_status"]["text"] == str(SEAL_MESSAGES["cannot_seal"])
    assert report["assigned"] == []


def test_a_follow_up_rendered_by_the_server_with_the_code_seals_its_member(
    node: Node, organizers: list[X25519PrivateKey]
) -> None:
    code = [{"name": "code", "type": "hidden", "value": replies.shown(CODE)}]
    thanks = {"status": 200, "json": {"thanks": FOLLOW_UP_THANKS}}
    steps = [{"form": "seal", "message": "Written back."}]
    report = replies_page(node, organizers, steps, follow_up_controls=code, responses=[thanks])
    [sent] = report["fetches"]
    assert "code" not in sent["body"]
    assert replies.read_member(follow_up(sent, organizers[0])["reply"]) == member_of(CODE)


def test_a_follow_up_with_no_code_at_all_fails_closed(node: Node, organizers: list[X25519PrivateKey]) -> None:
    thanks = {"status": 200, "json": {"thanks": FOLLOW_UP_THANKS}}
    report = replies_page(node, organizers, [{"form": "seal", "message": "Hello"}], responses=[thanks])
    assert report["fetches"] == []
    assert report["steps"][0]["seal_status"]["text"] == str(SEAL_MESSAGES["cannot_seal"])


# The script itself


def test_script_works_under_the_sites_content_security_policy_and_keeps_nothing() -> None:
    source = REPLIES_JS.read_text(encoding="utf-8")
    assert '"use strict";' in source
    for forbidden in (
        *CSP_UNSAFE,
        "require(",
        "localStorage",
        "sessionStorage",
        "cookie",
        "history",
        "location",
        "console",
    ):
        assert forbidden not in source, forbidden
    assert not re.search(r"https?://", source), "the script loads nothing from anywhere"


def test_script_stays_within_its_size_budget(record_property: Any) -> None:
    size = len(gzip.compress(REPLIES_JS.read_bytes(), compresslevel=9))
    record_property("replies_js_gzip_bytes", size)
    assert size < REPLIES_JS_GZIP_BUDGET, f"replies.js is {size} bytes gzipped, over its {REPLIES_JS_GZIP_BUDGET}"
