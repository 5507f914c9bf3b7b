"""Cross-cutting: `make run`'s demo key. Its private half and passphrase sit on the same machine, so create_app
refuses it unless told otherwise, every page then says so, and only `make run` tells it otherwise. (keygen --demo
marking the key: tests/test_keygen.py; a key file saying it is a demo key: tests/test_keys.py.)"""

from __future__ import annotations

import re

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


def test_only_make_run_allows_the_demo_key():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.M | re.S).group()
    assert run.count("PAPILLON_ALLOW_DEMO_KEY=true") == 2  # db upgrade and the server
    assert "--demo" in makefile
    for path in ["wsgi.py", "gunicorn.conf.py", ".ci/run", "app/config.py", "docs/deploy.md"]:
        text = (ROOT / path).read_text()
        assert not re.search(r"PAPILLON_ALLOW_DEMO_KEY\s*=\s*(true|True|1)", text), path
