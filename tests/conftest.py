"""Shared fixtures: an app with its own keys folder and database, a client, a CLI runner."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from app import create_app
from app.storage import db
from papillon import keys

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_id" type="hidden" value="([^"]+)"')


@pytest.fixture(scope="session")
def organizer_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def keys_dir(tmp_path: Path, organizer_key: X25519PrivateKey) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "organizer.pub").write_text(keys.dumps_public("organizer", organizer_key.public_key()))
    return folder


@pytest.fixture
def config(tmp_path: Path, keys_dir: Path) -> dict[str, object]:
    """The test's overrides; a test may change them before asking for ``app``."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test secret key",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'papillon.sqlite3'}",
        "PAPILLON_KEYS_DIR": str(keys_dir),
        "RATELIMIT_ENABLED": False,
    }


@pytest.fixture
def app(config: dict[str, object]) -> Flask:
    app = create_app(config)
    with app.app_context():
        db.create_schema()
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def form_tokens(html: str) -> dict[str, str]:
    """The hidden values a real page carries: the CSRF token and the submission id."""
    return {"csrf_token": TOKEN.search(html).group(1), "submission_id": SUBMISSION.search(html).group(1)}


@pytest.fixture
def submit(client: FlaskClient) -> Callable[..., TestResponse]:
    """Open a form page as a person would, then post answers with that page's hidden values."""

    def post(campaign: str, form: str, answers: dict[str, object], **overrides: str) -> TestResponse:
        page = client.get(f"/{campaign}/{form}")
        assert page.status_code == 200
        data = {**form_tokens(page.get_data(as_text=True)), **answers, **overrides}
        return client.post(f"/{campaign}/{form}", data=data)

    return post
