"""app/__init__.py's create_app: where the secret key and the database come from, what stops the app at start-up
(a keys folder holding anything but public keys, a broken campaign), and the names the site keeps for itself."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from pages import private_key_text
from sqlalchemy.engine import make_url

from app import StartupError, create_app


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app's instance folder at a fresh temporary folder."""
    folder = tmp_path / "instance"
    monkeypatch.setattr("app.Flask", functools.partial(Flask, instance_path=str(folder)))
    return folder


# --- the secret key and the database ------------------------------------------------------------------------------


def test_the_app_refuses_to_start_without_a_secret_key(clean_env, config, instance):
    with pytest.raises(StartupError, match="SECRET_KEY is not set") as err:
        create_app({**config, "SECRET_KEY": None})
    assert str(instance / "secret_key") in str(err.value)


def test_an_empty_instance_secret_key_file_does_not_count(clean_env, config, instance):
    instance.mkdir()
    (instance / "secret_key").write_text("  \n")
    with pytest.raises(StartupError, match="SECRET_KEY is not set"):
        create_app({**config, "SECRET_KEY": None})


def test_the_app_reads_its_secret_key_from_the_instance_folder(clean_env, config, instance):
    instance.mkdir()
    (instance / "secret_key").write_text("0123456789abcdef from the file\n")
    app = create_app({**config, "SECRET_KEY": None})
    assert app.config["SECRET_KEY"] == "0123456789abcdef from the file"


def test_the_app_takes_its_secret_key_from_the_environment(clean_env, config, instance):
    clean_env.setenv("SECRET_KEY", "from the environment")
    config.pop("SECRET_KEY")
    assert create_app(config).config["SECRET_KEY"] == "from the environment"


def test_without_database_url_the_app_uses_sqlite_in_the_instance_folder(clean_env, config, instance):
    config.pop("DATABASE_URL")
    app = create_app(config)
    url = make_url(app.config["DATABASE_URL"])
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(instance / "papillon.sqlite3")


# --- the keys folder: public keys only (tests/test_keys.py has every kind of file papillon.keys refuses) ----------


def _private_key(folder: Path) -> Path:
    path = folder / "organizer.key"
    path.write_text(private_key_text(X25519PrivateKey.generate(), b"a passphrase long enough"))
    return path


def _stray_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("remember the passphrase")
    return path


def _broken_public_key(folder: Path) -> Path:
    path = folder / "broken.pub"
    path.write_text("{not json")
    return path


def _no_public_key(folder: Path) -> Path:
    for path in folder.iterdir():
        path.unlink()
    (folder / "README.md").write_text("Public keys go here.")
    return folder


def _no_folder(folder: Path) -> Path:
    shutil.rmtree(folder)
    return folder


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        (_private_key, "a private key; it must never be on the server"),
        (_stray_file, "not a public key (*.pub)"),
        (_broken_public_key, "not a Papillon key file"),
        (_no_public_key, "no public key"),
        (_no_folder, "the keys folder does not exist"),
    ],
    ids=["private key", "stray file", "broken public key", "no public key", "no folder"],
)
def test_a_keys_folder_holding_anything_but_public_keys_stops_the_app_naming_the_file(
    clean_env, config, keys_dir: Path, mistake: Callable[[Path], Path], words: str
) -> None:
    named = mistake(keys_dir)
    with pytest.raises(StartupError) as err:
        create_app(config)
    assert words in str(err.value)
    assert str(named) in str(err.value)


# --- campaigns: a broken file, and the names the site keeps for itself --------------------------------------------


def campaigns_folder(tmp_path: Path, slug: str = "demo", field: str = "name") -> Path:
    """A folder holding one small campaign, with one form of one text field."""
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / f"{slug}.toml").write_text(
        f'slug = "{slug}"\ntitle = "Demo"\nbody = "Text."\n[[forms]]\nslug = "sign"\ntitle = "Sign"\n'
        f'[[forms.fields]]\nname = "{field}"\ntype = "text"\nlabel = "Your answer"\n'
    )
    return folder


def test_the_small_campaign_below_starts_the_app(clean_env, config, tmp_path):
    """So that each refusal below is the name's doing, not the file's."""
    app = create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(campaigns_folder(tmp_path))})
    assert app.test_client().get("/demo/sign").status_code == 200


def test_the_app_refuses_to_start_with_a_broken_campaign_file(clean_env, config, tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "broken.toml").write_text("slug = ")
    with pytest.raises(StartupError, match=r"broken\.toml"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


@pytest.mark.parametrize("name", ["csrf_token", "submission_id", "envelope", "pow", "reply", "website"])
def test_a_field_named_like_one_the_page_sends_itself_stops_the_app(clean_env, config, tmp_path, name):
    """The hidden values, the envelope, the proof of work, the reply box and the honeypot (``website`` by
    default)."""
    folder = campaigns_folder(tmp_path, field=name)
    with pytest.raises(StartupError, match=f"campaign demo, form sign: field name '{name}' is reserved"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


def test_the_honeypot_keeps_its_name_when_the_setting_renames_it(clean_env, config, tmp_path):
    folder = campaigns_folder(tmp_path, field="homepage")
    with pytest.raises(StartupError, match="'homepage' is reserved"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder), "PAPILLON_HONEYPOT_FIELD": "homepage"})


@pytest.mark.parametrize("slug", ["static", "healthz", "replies", "ko", "zh-hans", "en"])
def test_a_campaign_at_an_address_of_the_site_or_a_language_tag_stops_the_app(clean_env, config, tmp_path, slug):
    folder = campaigns_folder(tmp_path, slug=slug)
    with pytest.raises(StartupError, match=f"campaign {slug}: this address is used by the site itself"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


@pytest.mark.parametrize("days", [0, -5])
def test_a_reply_retention_of_less_than_a_day_is_refused_at_start(config, days):
    with pytest.raises(StartupError, match="PAPILLON_REPLY_RETENTION_DAYS must be 1 or more"):
        create_app({**config, "PAPILLON_REPLY_RETENTION_DAYS": days})
