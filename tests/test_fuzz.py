"""Malformed posts, listed and random, at the one POST route (app/views.py and app/forms.py together): always a
clear 4xx, never a 5xx, and nothing stored unless the answers are valid."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pages import FORMS, definition, form_data, open_row, page_tokens, script_envelope, stored, valid_answers

from app.config import Defaults
from app.site import site
from app.storage import Submission
from papillon.campaigns import CONSENT, MULTIPLE_CHOICE, Form

FORM_TYPE = "application/x-www-form-urlencoded"
HONEYPOT = Defaults.PAPILLON_HONEYPOT_FIELD
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def posted(form: Form) -> dict[str, object]:
    """A complete, valid set of answers to ``form`` as a browser without JavaScript sends them."""
    return form_data(valid_answers(form))


def pairs(data: dict[str, object]) -> list[tuple[str, str]]:
    return [(k, str(x)) for k, v in data.items() for x in (v if isinstance(v, list) else [v])]


def body(items: list[tuple[str, str]]) -> bytes:
    return urlencode(items).encode()


def csrf(client: FlaskClient, campaign: str, form: str) -> str:
    return page_tokens(client, f"/{campaign}/{form}")["csrf_token"]


def assert_opens_to_valid_answers(row: Submission, key: X25519PrivateKey) -> object:
    """A stored row opens with the organizer's key, and holds answers that pass the campaign's rules."""
    answers = open_row(row, key)["answers"]
    assert isinstance(answers, dict)
    assert definition(row.campaign, row.form).check(answers) == {}
    return answers


def sealed_envelope(app: Flask, campaign: str, form: str) -> str:
    """What the page's script sends: valid answers sealed to the organizers' keys."""
    answers = valid_answers(definition(campaign, form))
    return script_envelope(site(app).keys, campaign, form, answers, definition(campaign, form).version)


def tamper(text: str, change: Callable[[dict], None]) -> str:
    doc = json.loads(text)
    change(doc)
    return json.dumps(doc)


def test_every_post_route_is_fuzzed(app: Flask) -> None:
    """If another POST route appears, fuzzing must be taught to reach it: the form's posts are fuzzed below, the
    reply pages' in tests/test_reply_views.py (``test_random_posts_at_the_reply_pages...``)."""
    posts = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    assert posts == {"public.receive_form", "public.read_replies", "public.receive_follow_up"}


# A table of malformed posts. Each builder gets (app, csrf token, a fresh submission id) and returns
# (body, content type). The valid baselines come first, to prove the table starts from posts that work.
Builder = Callable[[Flask, str, str], tuple[bytes, str | None]]


def plain(change: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> Builder:
    def build(app: Flask, token: str, sid: str) -> tuple[bytes, str]:
        items = [
            ("csrf_token", token),
            ("submission_id", sid),
            *pairs(posted(definition("petition", "sign"))),
        ]
        return body(change(items)), FORM_TYPE

    return build


def sealed(change: Callable[[str], str]) -> Builder:
    def build(app: Flask, token: str, sid: str) -> tuple[bytes, str]:
        env = sealed_envelope(app, "petition", "sign")
        return body([("csrf_token", token), ("submission_id", sid), ("envelope", change(env))]), FORM_TYPE

    return build


def replace(name: str, value: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    return lambda items: [(k, value if k == name else v) for k, v in items]


def drop(name: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    return lambda items: [(k, v) for k, v in items if k != name]


def add(name: str, value: str) -> Callable[[list[tuple[str, str]]], list[tuple[str, str]]]:
    return lambda items: [*items, (name, value)]


def raw(make: Callable[[str, str], bytes], content_type: str | None = FORM_TYPE) -> Builder:
    return lambda app, token, sid: (make(token, sid), content_type)


def _other_key(doc: dict) -> None:
    doc["recipients"][0]["key_id"] = "00" * 8


def _extra_key(doc: dict) -> None:
    doc["recipients"].append({"key_id": "11" * 8, "sealed": doc["recipients"][0]["sealed"]})


def _short(doc: dict) -> None:
    ct = base64.b64decode(doc["recipients"][0]["sealed"])
    doc["recipients"][0]["sealed"] = base64.b64encode(ct[:-1]).decode()


def _version(doc: dict) -> None:
    doc["version"] = 3


def _old_version(doc: dict) -> None:
    doc["version"] = 1


def _list_version(doc: dict) -> None:
    doc["version"] = [1]


def _number_key_id(doc: dict) -> None:
    doc["recipients"][0]["key_id"] = 7


def _no_recipients(doc: dict) -> None:
    doc["recipients"] = []


def _extra_member(doc: dict) -> None:
    doc["sender"] = "someone"


def _text_recipients(doc: dict) -> None:
    doc["recipients"] = "everyone"


VALID: dict[str, Builder] = {
    "plain answers": plain(lambda items: items),
    "sealed envelope": sealed(lambda env: env),
}
MALFORMED: dict[str, Builder] = {
    # CSRF
    "no csrf token": plain(drop("csrf_token")),
    "forged csrf token": plain(replace("csrf_token", "IjAwMDAi.ZZZZ.forged")),
    "empty csrf token": plain(replace("csrf_token", "")),
    "empty csrf token, sealed": lambda app, token, sid: sealed(lambda e: e)(app, "", sid),
    # submission id
    "no submission id": plain(drop("submission_id")),
    "short submission id": plain(replace("submission_id", "abc")),
    "upper-case submission id": plain(replace("submission_id", "A" * 32)),
    "submission id with a NUL": plain(replace("submission_id", "0" * 31 + "\x00")),
    # envelopes
    "envelope not JSON": sealed(lambda env: env[:-1]),
    "envelope is a list": sealed(lambda env: "[1, 2]"),
    "envelope is a string": sealed(lambda env: json.dumps(env)),
    "envelope nested deeply": sealed(lambda env: "[" * 100_000),
    "envelope for another key": sealed(lambda env: tamper(env, _other_key)),
    "envelope with an unknown key too": sealed(lambda env: tamper(env, _extra_key)),
    "envelope cut short": sealed(lambda env: tamper(env, _short)),
    "envelope of another version": sealed(lambda env: tamper(env, _version)),
    "envelope of version 1, from a page before an upgrade": sealed(lambda env: tamper(env, _old_version)),
    "envelope version as a list": sealed(lambda env: tamper(env, _list_version)),
    "envelope key id as a number": sealed(lambda env: tamper(env, _number_key_id)),
    "envelope without recipients": sealed(lambda env: tamper(env, _no_recipients)),
    "envelope with an extra member": sealed(lambda env: tamper(env, _extra_member)),
    "envelope recipients as text": sealed(lambda env: tamper(env, _text_recipients)),
    "envelope not base64": sealed(lambda env: env.replace('"sealed":"', '"sealed":"*', 1)),
    "envelope sent twice": lambda app, token, sid: (
        sealed(lambda env: env)(app, token, sid)[0] + b"&" + body([("envelope", "{}")]),
        FORM_TYPE,
    ),
    # answers
    "required answer missing": plain(drop("name")),
    "required choice missing": plain(drop("signing_as")),
    "name too long": plain(replace("name", "n" * 121)),
    "phone too long": plain(replace("phone", "5" * 33)),
    "choice not offered": plain(replace("signing_as", "A robot")),
    "checkbox not offered": plain(add("areas_of_focus", "Not an option")),
    "same checkbox twice": plain(lambda items: [*items, next(i for i in items if i[0] == "areas_of_focus")]),
    "line break in a one-line answer": plain(replace("name", "Ada\nLovelace")),
    "control character": plain(replace("name", "Ada\x07")),
    "NUL character": plain(replace("name", "Ada\x00")),
    "text sent as a list": plain(add("name", "Second Name")),
    "choice sent as a list": plain(add("signing_as", "organization")),
    "csrf token sent twice": lambda app, token, sid: plain(add("csrf_token", token))(app, token, sid),
    "submission id sent twice": lambda app, token, sid: plain(add("submission_id", sid))(app, token, sid),
    # bytes and types
    "bad UTF-8 in a value": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]) + b"&name=Ada%ff%fe"),
    "raw bad UTF-8 in a value": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]) + b"&name=Ada\xc3"),
    "bad UTF-8 in a name": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]) + b"&n%e9=1"),
    "overlong UTF-8": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]) + b"&name=%c0%af"),
    "JSON body": raw(
        lambda t, s: json.dumps({"csrf_token": t, "submission_id": s, "name": "Ada"}).encode(), "application/json"
    ),
    "multipart body": raw(
        lambda t, s: (
            f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{t}\r\n'
            f'--b\r\nContent-Disposition: form-data; name="submission_id"\r\n\r\n{s}\r\n'
            '--b\r\nContent-Disposition: form-data; name="name"; filename="a.txt"\r\n\r\nAda\r\n--b--\r\n'
        ).encode(),
        "multipart/form-data; boundary=b",
    ),
    "text/plain body": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]), "text/plain"),
    "no content type": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s)]), None),
    "empty body": raw(lambda t, s: b""),
    "binary noise": raw(lambda t, s: bytes(range(256)) * 4),
    "oversized body": raw(lambda t, s: body([("csrf_token", t), ("submission_id", s), ("name", "x" * 300_000)])),
}


def post(client: FlaskClient, build: Builder, app: Flask, campaign: str = "petition", form: str = "sign"):
    token = csrf(client, campaign, form)
    data, content_type = build(app, token, secrets.token_hex(16))
    headers = {} if content_type is None else {"Content-Type": content_type}
    return client.post(f"/{campaign}/{form}", data=data, headers=headers)


@pytest.mark.parametrize("case", list(VALID))
def test_the_valid_baselines_are_stored(app: Flask, client: FlaskClient, case: str) -> None:
    response = post(client, VALID[case], app)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert len(stored(app)) == 1


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_posts_get_a_4xx_and_store_nothing(app: Flask, client: FlaskClient, case: str) -> None:
    response = post(client, MALFORMED[case], app)
    assert 400 <= response.status_code < 500, (case, response.status_code)
    html = response.get_data(as_text=True)
    assert "Traceback" not in html
    assert stored(app) == []


@pytest.mark.parametrize("case", ["empty csrf token, sealed", "text sent as a list", "envelope for another key"])
def test_the_script_gets_its_refusals_as_json(app: Flask, client: FlaskClient, case: str) -> None:
    token = csrf(client, "petition", "sign")
    data, content_type = MALFORMED[case](app, token, secrets.token_hex(16))
    response = client.post(
        "/petition/sign", data=data, headers={"Content-Type": content_type, "Accept": "application/json"}
    )
    assert response.status_code == 400
    assert isinstance(response.get_json()["error"], str)
    assert stored(app) == []


# Property-based: random posts at every form. A stored row must always be one that valid input made.
FIELD_NAMES = sorted({f.name for where in FORMS for f in definition(*where).fields})
KNOWN_NAMES = ["csrf_token", "submission_id", "envelope", HONEYPOT, *FIELD_NAMES]
CONTENT_TYPES = [
    FORM_TYPE,
    FORM_TYPE + "; charset=utf-8",
    "multipart/form-data; boundary=x",
    "application/json",
    "text/plain",
    "application/octet-stream",
    "",
]


@FUZZ
@given(
    where=st.sampled_from(FORMS),
    data=st.binary(max_size=2048),
    content_type=st.one_of(st.sampled_from(CONTENT_TYPES), st.text(max_size=60)),
)
def test_random_bytes_never_cause_a_5xx_or_a_row(
    app: Flask, client: FlaskClient, where: tuple[str, str], data: bytes, content_type: str
) -> None:
    headers = {}
    if content_type.isascii() and "\n" not in content_type and "\r" not in content_type:
        headers["Content-Type"] = content_type
    response = client.post(f"/{where[0]}/{where[1]}", data=data, headers=headers)
    assert 400 <= response.status_code < 500
    assert stored(app) == []


@FUZZ
@given(
    where=st.sampled_from(FORMS),
    items=st.lists(
        st.tuples(st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=20)), st.text(max_size=200)), max_size=12
    ),
    with_token=st.booleans(),
    with_id=st.booleans(),
)
def test_random_fields_never_cause_a_5xx_or_an_invalid_row(
    app: Flask,
    client: FlaskClient,
    organizer_key: X25519PrivateKey,
    where: tuple[str, str],
    items: list[tuple[str, str]],
    with_token: bool,
    with_id: bool,
) -> None:
    before = {r.id for r in stored(app)}
    token = csrf(client, *where)
    head = ([("csrf_token", token)] if with_token else []) + (
        [("submission_id", secrets.token_hex(16))] if with_id else []
    )
    response = client.post(f"/{where[0]}/{where[1]}", data=body(head + items), content_type=FORM_TYPE)
    assert response.status_code in {303, 400}
    new = [r for r in stored(app) if r.id not in before]
    assert len(new) <= 1
    for row in new:  # random text can make a valid set (a testimony needs one text): it must be one
        assert response.status_code == 303
        assert_opens_to_valid_answers(row, organizer_key)


# Answers that start valid and are then changed at random: the server must store exactly when the
# campaign's own rules accept what it received, and what it stores must open to exactly that.
JUNK = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="ab \n\t", min_size=100, max_size=5200),
    st.sampled_from(["", " ", "\r\n", "\x00", "false", "y", "Ada\nLovelace", "a@b", "+1 555 0100"]),
)


@st.composite
def mutated_post(draw: st.DrawFn) -> tuple[tuple[str, str], list[tuple[str, str]], str]:
    where = draw(st.sampled_from(FORMS))
    form = definition(*where)
    items: list[tuple[str, str]] = []
    changes = draw(st.sampled_from([0, 0, 1, 1, 2, 4, 8]))  # how many fields, on average, to change
    for name, values in posted(form).items():
        values = values if isinstance(values, list) else [values]
        changed = draw(st.integers(0, len(form.fields) - 1)) < changes
        action = draw(st.sampled_from(["drop", "junk", "twice", "choice"])) if changed else "keep"
        if action == "keep":
            items += [(name, v) for v in values]
        elif action == "junk":
            items += [(name, draw(JUNK))]
        elif action == "twice":
            items += [(name, v) for v in values] + [(name, draw(JUNK))]
        elif action == "choice":
            field = next(f for f in form.fields if f.name == name)
            options = list(field.choice_ids) or [values[0]]
            items += [(name, v) for v in draw(st.lists(st.sampled_from(options), max_size=3))]
    if draw(st.integers(0, 9)) == 0:
        items.append((HONEYPOT, draw(st.sampled_from(["x", "http://spam.example", " "]))))
    if draw(st.booleans()):
        unknown = st.text(min_size=1, max_size=10).filter(lambda n: n not in KNOWN_NAMES)
        items.append((draw(unknown), draw(st.text(max_size=20))))
    token_kind = draw(st.sampled_from(["good"] * 6 + ["missing", "forged"]))
    return where, draw(st.permutations(items)), token_kind


def as_received(form: Form, items: list[tuple[str, str]]) -> dict[str, object] | None:
    """The answers the server should read from these pairs, or None when the body must be refused whole."""
    values: dict[str, list[str]] = {}
    for name, value in items:
        values.setdefault(name, []).append(value)
    repeatable = {f.name for f in form.fields if f.type == MULTIPLE_CHOICE}
    if any(len(v) > 1 and k not in repeatable for k, v in values.items()):
        return None
    allowed = {"csrf_token", "submission_id", "pow", HONEYPOT}
    allowed |= {"envelope"} if "envelope" in values else {f.name for f in form.fields}
    if not set(values) <= allowed:
        return None
    answers: dict[str, object] = {}
    for field in form.fields:
        got = values.get(field.name, [])
        if field.type == CONSENT:
            answers[field.name] = bool(got) and got[0] not in ("", "false")
        elif field.type == MULTIPLE_CHOICE:
            answers[field.name] = got
        else:
            text = got[0] if got else ""
            answers[field.name] = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return answers


@FUZZ
@given(case=mutated_post())
def test_a_row_is_stored_exactly_when_the_answers_are_valid(
    app: Flask, client: FlaskClient, organizer_key: X25519PrivateKey, case
) -> None:
    (campaign, form_slug), items, token_kind = case
    form = definition(campaign, form_slug)
    token = {"good": csrf(client, campaign, form_slug), "missing": None, "forged": "forged.token"}[token_kind]
    sid = secrets.token_hex(16)
    head = [("submission_id", sid)] + ([("csrf_token", token)] if token is not None else [])
    before = {r.id for r in stored(app)}
    response = client.post(f"/{campaign}/{form_slug}", data=body(head + items), content_type=FORM_TYPE)
    new = [r for r in stored(app) if r.id not in before]

    answers = as_received(form, head + items)
    honeypot = dict(items).get(HONEYPOT, "") if answers is not None else ""
    if answers is None:
        expected = 400  # a text field sent twice, or a field the page does not have
    elif honeypot:
        expected = 303  # the same thanks, nothing stored
    elif token_kind == "good" and not form.check(answers):
        expected = 303
    else:
        expected = 400
    assert response.status_code == expected, (answers, form.check(answers or {}))
    should_store = expected == 303 and not honeypot
    event("stored" if should_store else "honeypot" if honeypot else "refused")
    assert len(new) == (1 if should_store else 0)
    if should_store:
        row = new[0]
        assert (row.id, row.campaign, row.form, row.sealed_by) == (sid, campaign, form_slug, "server")
        assert assert_opens_to_valid_answers(row, organizer_key) == answers
