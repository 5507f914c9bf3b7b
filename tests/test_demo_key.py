"""`make run`'s demo key: its private half and passphrase sit on the same machine, so only `make run` may use it."""

from __future__ import annotations

import re

import nacl.pwhash
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import ROOT

from app import StartupError, create_app
from papillon import keys

BANNER = "Demo key: answers sent here can be read by anyone with this server."


@pytest.fixture(params=["marked", "named"])
def demo_keys_dir(request, keys_dir):
    """The keys folder with a demo key beside the organizer's: marked by keygen --demo, or only by its old name."""
    public = X25519PrivateKey.generate().public_key()
    text = (
        keys.dumps_public("try-papillon", public, demo=True)
        if request.param == "marked"
        else keys.dumps_public("demo-NOT-FOR-REAL-USE", public)
    )
    (keys_dir / "demo.pub").write_text(text)
    return keys_dir


def test_the_demo_key_stops_the_app_with_a_message_that_says_how_to_replace_it(config, demo_keys_dir):
    with pytest.raises(StartupError) as err:
        create_app(config)
    message = str(err.value)
    assert "demo key" in message
    assert "scripts/keygen.py" in message
    assert str(demo_keys_dir) in message


def test_the_demo_key_is_accepted_only_when_allowed_and_every_page_then_says_so(config, demo_keys_dir):
    client = create_app({**config, "PAPILLON_ALLOW_DEMO_KEY": True}).test_client()
    for path in ["/", "/petition/", "/petition/sign"]:
        assert BANNER in client.get(path).get_data(as_text=True), path


def test_without_a_demo_key_no_page_shows_the_banner(config):
    client = create_app({**config, "PAPILLON_ALLOW_DEMO_KEY": True}).test_client()
    assert BANNER not in client.get("/petition/sign").get_data(as_text=True)


def test_keygen_demo_marks_the_public_key(script, tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(keys, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)
    (tmp_path / "pass.txt").write_text("a passphrase long enough\n")
    args = ["--out", str(tmp_path), "--passphrase-file", str(tmp_path / "pass.txt")]
    assert script("keygen").main([*args, "--name", "try", "--demo"]) == 0
    assert script("keygen").main([*args, "--name", "real"]) == 0
    assert keys.loads_public((tmp_path / "try.pub").read_text()).demo is True
    assert keys.loads_public((tmp_path / "real.pub").read_text()).demo is False


def test_only_make_run_allows_the_demo_key():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.M | re.S).group()
    assert run.count("PAPILLON_ALLOW_DEMO_KEY=true") == 2  # db upgrade and the server
    assert "--demo" in makefile
    for path in ["wsgi.py", "gunicorn.conf.py", ".ci/run", "app/config.py", "docs/deploy.md"]:
        text = (ROOT / path).read_text()
        assert not re.search(r"PAPILLON_ALLOW_DEMO_KEY\s*=\s*(true|True|1)", text), path
