"""Shared fixtures: an app with its own keys folder and database, a client, a CLI runner, and the services some tests
use (PostgreSQL, Redis, node, Chromium), each of which marks the tests that ask for it."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import nacl.pwhash
import pytest
import services
from browser_support import ChromiumMissing, PageLog, chromium_path, launch_chromium, serve
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from pages import CAMPAIGNS, ROOT, SHIPPED, Laptop, clear_settings, form_data, form_tokens, private_key_text
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.exc import SQLAlchemyError
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


@pytest.fixture
def open_page(browser: Browser, live_server: str) -> Iterator[Callable[..., tuple[Page, PageLog]]]:
    """A fresh browser context (its own cookies) with everything it does recorded."""
    contexts: list[BrowserContext] = []

    def make(*, javascript: bool = True, init_script: str | None = None) -> tuple[Page, PageLog]:
        context = browser.new_context(java_script_enabled=javascript, base_url=live_server)
        context.set_default_timeout(10_000)
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        log = PageLog()
        log.attach(context)
        return context.new_page(), log

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting of the app comes from the process environment for this test."""
    return clear_settings(monkeypatch)


@pytest.fixture(scope="session")
def organizer_key_file(tmp_path_factory: pytest.TempPathFactory, organizer_key: X25519PrivateKey) -> Path:
    """The organizer's private key file as the laptop holds it, with ``passphrase.txt`` beside it.

    Sealed with the cheapest argon2id settings so the tests stay fast.
    """
    folder = tmp_path_factory.mktemp("laptop")
    key_path = folder / "organizer.key"
    key_path.write_text(private_key_text(organizer_key, PASSPHRASE.encode()))
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


# --- services, and the markers of the tests that use them ------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.Postgres]:
    """A fresh database on the test server (PAPILLON_TEST_POSTGRES_URL) for this session, dropped at the end; or why
    there is none, which each test that needs it fails with (``Postgres.require``)."""
    with contextlib.ExitStack() as stack:
        try:
            found = services.Postgres(url=stack.enter_context(services.new_database("papillon_test")), problem=None)
        except SQLAlchemyError as exc:
            found = services.Postgres(url=None, problem=services.unreachable(exc))
        yield found


@pytest.fixture
def redis_db() -> Iterator[services.Scratch]:
    """The test Redis (PAPILLON_TEST_REDIS_URL, the local Redis's db 15 by default); the test's own keys are deleted
    afterwards."""
    scratch = services.Scratch(services.connect_redis(services.REDIS_URL))
    try:
        yield scratch
    finally:
        if mine := scratch.ours():
            scratch.client.delete(*mine)
        scratch.client.close()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The redis-server program, for a test that starts a Redis of its own."""
    return services.program("redis-server", "redis-server")


@pytest.fixture(scope="session")
def node() -> services.Node:
    """Runs a harness script of tests/js under Node.js 20 or later: ``node("envelope.js", payload)``."""
    services.node_binary()
    return services.run_node


# Asking for one of these fixtures, directly or through another fixture, marks a test; so does a fixture
# parametrized over database kinds, in its "postgresql" case.
SERVICE_FIXTURES = {
    "browser": "browser",
    "postgres": "postgres",
    "redis_db": "redis",
    "redis_server": "redis",
    "node": "node",
}
POSTGRESQL_PARAM = "postgresql"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the services it uses, so that a part can be picked (``pytest -m "not browser"``)."""
    for item in items:
        for marker in sorted(service_markers(item)):
            item.add_marker(marker)


def service_markers(item: pytest.Item) -> set[str]:
    if not isinstance(item, pytest.Function):
        return set()
    found = {SERVICE_FIXTURES[name] for name in item.fixturenames if name in SERVICE_FIXTURES}
    if POSTGRESQL_PARAM in fixture_params(item):
        found.add("postgres")
    return found


def fixture_params(item: pytest.Function) -> list[object]:
    """The values this test's fixtures were parametrized with; not the test's own ``parametrize`` arguments."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    own: set[str] = set()
    for mark in item.iter_markers("parametrize"):
        names = mark.kwargs.get("argnames", mark.args[0] if mark.args else ())
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        indirect = mark.kwargs.get("indirect", False)
        own |= {n for n in names if not (indirect is True or (isinstance(indirect, list | tuple) and n in indirect))}
    return [value for name, value in callspec.params.items() if name not in own]
