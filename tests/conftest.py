"""Shared fixtures: an app with its own keys folder and database, a client, a CLI runner."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import nacl.pwhash
import pytest
from browser_support import ChromiumMissing, chromium_path, launch_chromium, serve
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from pages import CAMPAIGNS, ROOT, SHIPPED, Laptop, form_data, form_tokens
from playwright.sync_api import Browser, sync_playwright
from werkzeug.test import TestResponse

from app import create_app
from app.storage import db
from papillon import keys

PASSPHRASE = "a test passphrase, long enough"
# Where no network namespace can be made, the kit's environment loads this at start-up instead.
NO_NETWORK_HOOK = """
import sys


def _refuse(event, args):
    if event in {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"}:
        raise OSError(f"no network on the staff laptop ({event})")


sys.addaudithook(_refuse)
"""


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
        "PAPILLON_CAMPAIGNS_DIR": str(CAMPAIGNS),
        "RATELIMIT_ENABLED": False,
    }


@pytest.fixture
def shipped_campaigns(config: dict[str, object]) -> None:
    """Serve the campaigns the app ships instead of the tests' own; ask for it before ``app``."""
    config["PAPILLON_CAMPAIGNS_DIR"] = str(SHIPPED)


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


@pytest.fixture
def submit(client: FlaskClient) -> Callable[..., TestResponse]:
    """Open a form page as a person would, then post answers with that page's hidden values."""

    def post(campaign: str, form: str, answers: dict[str, object], **overrides: str) -> TestResponse:
        page = client.get(f"/{campaign}/{form}")
        assert page.status_code == 200
        data = {**form_tokens(page.get_data(as_text=True)), **form_data(answers), **overrides}
        return client.post(f"/{campaign}/{form}", data=data)

    return post


@pytest.fixture
def keygen(script: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/keygen.py with the cheapest passphrase settings, so the tests stay fast."""
    monkeypatch.setattr(keys, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(keys, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)
    return script("keygen")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from the system, shared by the tests that drive a real page."""
    problem = None
    try:
        chromium_path()
    except ChromiumMissing as exc:
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(scope="session")
def organizer_key_file(tmp_path_factory: pytest.TempPathFactory, organizer_key: X25519PrivateKey) -> Path:
    """The organizer's private key file as the laptop holds it, with ``passphrase.txt`` beside it.

    Sealed with the cheapest argon2id settings so the tests stay fast.
    """
    folder = tmp_path_factory.mktemp("laptop")
    key_path = folder / "organizer.key"
    key_path.write_text(
        keys.dumps_private(
            "organizer",
            organizer_key,
            PASSPHRASE.encode(),
            opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
            memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
        )
    )
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    return key_path


@pytest.fixture
def script() -> Callable[[str], ModuleType]:
    """Load a staff script from ``scripts/`` as a module, so a test can call its ``main`` in-process."""

    def load(name: str) -> ModuleType:
        module_name = f"papillon_script_{name}"
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
        return module

    return load


def network_namespace() -> tuple[str, ...]:
    """unshare's prefix for a new network namespace with no interface up, or () where this system forbids one."""
    try:
        made = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    except FileNotFoundError:
        return ()
    return ("unshare", "-rn") if made.returncode == 0 else ()


@pytest.fixture(scope="session")
def offline_kit(tmp_path_factory: pytest.TempPathFactory) -> Laptop:
    """``make offline-kit``, installed as its INSTALL.txt says into a fresh environment, with the network cut.

    The network is cut by a network namespace of its own where the system allows one, else by an audit hook in
    the kit's environment that refuses every connection.
    """
    root = tmp_path_factory.mktemp("offline-kit")
    kit = root / "kit"
    made = subprocess.run(["make", f"KIT={kit}", "offline-kit"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    subprocess.run([sys.executable, "-m", "venv", root / "papillon-env"], check=True)
    laptop = Laptop(kit=kit, python=root / "papillon-env" / "bin" / "python", offline=network_namespace())
    if not laptop.offline:
        site = Path(laptop.run("-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).stdout.strip())
        (site / "papillon_no_network.py").write_text(NO_NETWORK_HOOK)
        (site / "papillon_no_network.pth").write_text("import papillon_no_network\n")
    wheels, requirements = kit / "wheels", kit / "requirements.txt"
    install = laptop.run(
        *("-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheels, "--require-hashes", "-r"),
        requirements,
        cwd=kit,
    )
    assert install.returncode == 0, install.stderr
    return laptop
