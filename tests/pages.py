"""What the tests need of a page and of the staff scripts, shared so that each is written once."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nacl.pwhash
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.config import Defaults
from app.storage import Submission, db
from papillon import campaigns, envelope, keys

ROOT = Path(__file__).resolve().parent.parent
# The campaigns made for the tests; only tests/test_campaigns.py and the page checks read the shipped ones.
CAMPAIGNS = ROOT / "tests" / "campaigns"
SHIPPED = ROOT / "app" / "campaigns"
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_id" type="hidden" value="([^"]+)"')
SHEET_LINE = re.compile(r"^\d{2}  .*  ..$")  # a numbered line of a paper recovery sheet, as printed
# The fewest answers a signature of the test petition needs (petition/sign).
SIGNATURE = {"signing_as": "individual", "name": "Zebulon Quartermaine"}
# The cheapest argon2id settings: a private key sealed with them opens in milliseconds, which is all a test needs.
FAST_KDF = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN}


def form_tokens(html: str) -> dict[str, str]:
    """The hidden values a real page carries: the CSRF token and the submission id."""
    token, submission = TOKEN.search(html), SUBMISSION.search(html)
    assert token is not None, "the page carries no CSRF token"
    assert submission is not None, "the page carries no submission id"
    return {"csrf_token": token.group(1), "submission_id": submission.group(1)}


def page_tokens(client: FlaskClient, path: str = "/petition/sign", **request: Any) -> dict[str, str]:
    """Open a form page as a person would (``request``: what the test client sends, such as a client address), and
    keep the hidden values it carries."""
    page = client.get(path, **request)
    assert page.status_code == 200, path
    return form_tokens(page.get_data(as_text=True))


class Controls(HTMLParser):
    """Every input, textarea and form tag of a page, with its attributes (values unescaped)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"input", "textarea", "form"}:
            self.tags.append((tag, dict(attrs)))

    def named(self, name: str) -> list[tuple[str, dict[str, str | None]]]:
        return [(tag, attrs) for tag, attrs in self.tags if attrs.get("name") == name]

    def form_tag(self) -> dict[str, str | None]:
        return next(attrs for tag, attrs in self.tags if tag == "form")


@functools.cache
def _made_for_tests() -> dict[str, campaigns.Campaign]:
    return campaigns.load_dir(CAMPAIGNS)


def definition(campaign: str, form: str) -> campaigns.Form:
    """A form of the campaigns made for the tests, which the ``app`` fixture serves."""
    return _made_for_tests()[campaign].forms[form]


# Every (campaign, form) of the campaigns made for the tests.
FORMS = [(slug, form) for slug, campaign in _made_for_tests().items() for form in campaign.forms]


def sample(field: campaigns.Field) -> campaigns.Answer:
    """A valid answer that is easy to recognise and appears nowhere on the site."""
    ids = field.choice_ids
    samples: dict[campaigns.FieldType, campaigns.Answer] = {
        campaigns.TEXT: f"Zqv {field.name} \u00e9t\u00e9",
        campaigns.LONG_TEXT: f"Zqv first line of {field.name}\nsecond line \u00e0 la ligne",
        campaigns.EMAIL: "zqv.signer@example.org",
        campaigns.PHONE: "+1 (514) 555-0199",
        campaigns.POSTAL_CODE: "H2X 1Y4",
        campaigns.SINGLE_CHOICE: ids[-1] if ids else "",
        campaigns.MULTIPLE_CHOICE: list(dict.fromkeys(ids[:1] + ids[-1:])),
        campaigns.CONSENT: True,
    }
    return samples[field.type]


def valid_answers(form: campaigns.Form) -> dict[str, campaigns.Answer]:
    """A complete, valid set of answers to ``form``, as the envelope holds them (post them through form_data)."""
    return {f.name: sample(f) for f in form.fields}


def stored(app: Flask) -> list[Submission]:
    """Every row of the submissions table, exported or not."""
    with app.app_context(), db.session() as session:
        query = select(Submission).order_by(Submission.campaign, Submission.form, Submission.id)
        return list(session.scalars(query))


def row_count(app: Flask) -> int:
    """How many rows the submissions table holds, exported or not."""
    with app.app_context(), db.session() as session:
        return session.scalar(select(func.count()).select_from(Submission)) or 0


def open_row(row: Submission, private: X25519PrivateKey) -> dict[str, object]:
    """A stored row opened with an organizer's private key, as the laptop opens it."""
    return envelope.open_envelope(envelope.parse(row.envelope), private, row.campaign, row.form)


def public(private: X25519PrivateKey, name: str = "organizer") -> keys.PublicKey:
    """The public half of a key, as the server's keys folder holds it."""
    return keys.PublicKey(name=name, raw=keys.raw_public_bytes(private.public_key()))


def script_envelope(
    recipients: list[keys.PublicKey],
    campaign: str,
    form: str,
    answers: Mapping[str, object],
    form_version: int = 1,
    locale: str = "en",
) -> str:
    """What a page's sealing script posts: the answers sealed to ``recipients`` (sealed here, as seal.js would)."""
    data = envelope.plaintext(answers, form_version, locale)
    return envelope.seal(data, recipients, campaign, form).to_json()


def private_key_text(private: X25519PrivateKey, passphrase: bytes, name: str = "organizer") -> str:
    """A private key file as keygen writes it, sealed with the cheapest argon2id settings."""
    return keys.dumps_private(name, private, passphrase, **FAST_KDF)


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every setting the app reads from the process environment, for as long as the test runs."""
    for name in vars(Defaults):
        if name.isupper():
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


def form_data(answers: Mapping[str, object]) -> dict[str, object]:
    """Answers as a browser posts them: a ticked box as "y", an unticked one left out, a list as repeated values."""
    data: dict[str, object] = {}
    for name, value in answers.items():
        if value is True:
            data[name] = "y"
        elif value is not False:
            data[name] = value
    return data


def typed_sheet(sheet: str) -> str:
    """A recovery sheet's lines as a person types them back: lower case, O for zero, spaces as they come."""
    lines = [line for line in sheet.splitlines() if SHEET_LINE.match(line) or line.startswith("CHECK")]
    return "\n".join(" ".join(line.lower().replace("0", "o").split()) for line in lines) + "\n"


def decrypt_args(bundle: Path, key_file: Path, out: Path) -> list[str]:
    """Arguments for scripts/decrypt.py, with the passphrase file the ``organizer_key_file`` fixture writes."""
    passphrase = key_file.parent / "passphrase.txt"
    return [str(bundle), "--key", str(key_file), "--out", str(out), "--passphrase-file", str(passphrase)]


@dataclass(frozen=True)
class Laptop:
    """The offline kit installed in a fresh environment of its own, as on the staff laptop."""

    kit: Path
    python: Path
    offline: tuple[str, ...]  # the command prefix under which no network connection can be made

    def run(self, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
        """The kit environment's python with ``args``, with no network and none of this machine's Python settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
        env |= {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        command = [*self.offline, str(self.python), *map(str, args)]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)

    def script(self, name: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
        """One of the kit's staff scripts (``keygen``, ``decrypt``), run from the kit's own folder."""
        return self.run(self.kit / "scripts" / f"{name}.py", *args, cwd=cwd)
