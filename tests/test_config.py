"""Settings: defaults, then environment variables of the same name, then the caller's overrides; start-up checks."""

from __future__ import annotations

import functools

import nacl.pwhash
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from pages import CAMPAIGNS, ROOT
from sqlalchemy.engine import make_url

from app import StartupError, create_app
from app.config import ConfigError, Defaults, load_config
from papillon import keys

SETTINGS = sorted(name for name in vars(Defaults) if name.isupper())


def from_env(name: str) -> tuple[str, object]:
    """A value for a setting as the environment would spell it, and what it must become."""
    default = getattr(Defaults, name)
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int) or name == "WTF_CSRF_TIME_LIMIT":
        return "4242", 4242
    if name == "TRUSTED_HOSTS":
        return "papillon.example, abcdef.onion", ["papillon.example", "abcdef.onion"]
    return f"set for {name}", f"set for {name}"


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """Point the app's instance folder at a fresh temporary folder."""
    folder = tmp_path / "instance"
    monkeypatch.setattr("app.Flask", functools.partial(Flask, instance_path=str(folder)))
    return folder


@pytest.fixture
def clean_env(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_list_the_settings_the_app_relies_on():
    for name in ["SECRET_KEY", "DATABASE_URL", "PAPILLON_KEYS_DIR", "MAX_CONTENT_LENGTH", "RATELIMIT_ENABLED"]:
        assert name in SETTINGS
    assert load_config({}) == {name: getattr(Defaults, name) for name in SETTINGS}


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_can_be_set_by_an_environment_variable_of_the_same_name(name):
    text, expected = from_env(name)
    settings = load_config({name: text})
    assert settings[name] == expected
    assert type(settings[name]) is type(expected)
    assert {k: v for k, v in settings.items() if k != name} == {k: v for k, v in load_config({}).items() if k != name}


def test_an_empty_list_setting_means_none():
    assert load_config({"TRUSTED_HOSTS": " , "})["TRUSTED_HOSTS"] is None


def test_load_config_reads_the_process_environment(clean_env):
    clean_env.setenv("PAPILLON_TRUSTED_PROXIES", "2")
    clean_env.setenv("RATELIMIT_ENABLED", "off")
    settings = load_config()
    assert settings["PAPILLON_TRUSTED_PROXIES"] == 2
    assert settings["RATELIMIT_ENABLED"] is False


@pytest.mark.parametrize("text", ["1", "true", "True", "YES", "on", " on "])
def test_boolean_settings_accept_the_usual_words_for_true(text):
    assert load_config({"SESSION_COOKIE_SECURE": text})["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "no", "Off"])
def test_boolean_settings_accept_the_usual_words_for_false(text):
    assert load_config({"RATELIMIT_ENABLED": text})["RATELIMIT_ENABLED"] is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "enabled"])
def test_a_bad_boolean_raises_config_error_naming_the_setting(text):
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED") as err:
        load_config({"RATELIMIT_ENABLED": text})
    assert "true or false" in str(err.value)


@pytest.mark.parametrize("text", ["", "ten", "1.5", "0x10"])
def test_a_bad_whole_number_raises_config_error_naming_the_setting(text):
    with pytest.raises(ConfigError, match="MAX_CONTENT_LENGTH") as err:
        load_config({"MAX_CONTENT_LENGTH": text})
    assert "whole number" in str(err.value)


@pytest.mark.parametrize("text", ["none", "None", ""])
def test_csrf_time_limit_can_be_turned_off(text):
    assert load_config({"WTF_CSRF_TIME_LIMIT": text})["WTF_CSRF_TIME_LIMIT"] is None


def test_environment_variables_that_name_no_setting_are_ignored():
    settings = load_config({"PAPILLON_UNKNOWN": "x", "secret_key": "lower case", "HOME": "/home/staff"})
    assert "PAPILLON_UNKNOWN" not in settings
    assert "HOME" not in settings
    assert settings["SECRET_KEY"] is None


# --- the app factory ----------------------------------------------------------------------


def test_the_environment_reaches_the_app(clean_env, config):
    clean_env.setenv("PAPILLON_QUICK_EXIT_URL", "https://example.org/weather")
    clean_env.setenv("MAX_CONTENT_LENGTH", "12345")
    app = create_app(config)
    assert app.config["PAPILLON_QUICK_EXIT_URL"] == "https://example.org/weather"
    assert app.config["MAX_CONTENT_LENGTH"] == 12345


def test_test_overrides_win_over_the_environment(clean_env, config):
    clean_env.setenv("PAPILLON_HONEYPOT_FIELD", "from_the_environment")
    clean_env.setenv("SECRET_KEY", "from the environment")
    app = create_app({**config, "PAPILLON_HONEYPOT_FIELD": "from_the_test"})
    assert app.config["PAPILLON_HONEYPOT_FIELD"] == "from_the_test"
    assert app.config["SECRET_KEY"] == "test secret key"


def test_a_bad_environment_value_stops_the_app(clean_env, config):
    clean_env.setenv("RATELIMIT_ENABLED", "sometimes")
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED"):
        create_app(config)


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


def test_the_app_refuses_to_start_with_no_public_key(clean_env, config, keys_dir):
    for path in keys_dir.iterdir():
        path.unlink()
    (keys_dir / "README.md").write_text("Public keys go here.")
    with pytest.raises(StartupError, match="no public key") as err:
        create_app(config)
    assert str(keys_dir) in str(err.value)


def test_the_app_refuses_to_start_with_a_missing_keys_folder(clean_env, config, tmp_path):
    with pytest.raises(StartupError, match="does not exist"):
        create_app({**config, "PAPILLON_KEYS_DIR": str(tmp_path / "no-keys-here")})


def test_the_app_refuses_to_start_with_a_private_key_in_its_keys_folder(clean_env, config, keys_dir):
    private = keys_dir / "organizer.key"
    private.write_text(
        keys.dumps_private(
            "organizer",
            X25519PrivateKey.generate(),
            b"a passphrase long enough",
            opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
            memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
        )
    )
    with pytest.raises(StartupError, match="private key") as err:
        create_app(config)
    assert str(private) in str(err.value)


def test_the_app_refuses_to_start_with_a_broken_campaign_file(clean_env, config, tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "broken.toml").write_text("slug = ")
    with pytest.raises(StartupError, match=r"broken\.toml"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


def test_the_app_refuses_a_field_named_like_its_own_hidden_fields(clean_env, config, tmp_path):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "demo.toml").write_text(
        'slug = "demo"\ntitle = "Demo"\nbody = "Text."\n[[forms]]\nslug = "sign"\ntitle = "Sign"\n'
        '[[forms.fields]]\nname = "website"\ntype = "text"\nlabel = "Your website"\n'
    )
    with pytest.raises(StartupError, match="'website' is reserved"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


@pytest.mark.parametrize("slug", ["static", "healthz"])
def test_a_campaign_named_like_a_page_of_the_site_stops_the_app(clean_env, config, tmp_path, slug):
    folder = tmp_path / "campaigns"
    folder.mkdir()
    source = (CAMPAIGNS / "letter.toml").read_text()
    (folder / f"{slug}.toml").write_text(source.replace('slug = "letter"', f'slug = "{slug}"'))
    with pytest.raises(StartupError, match=f"campaign {slug}: this address is used by the site itself"):
        create_app({**config, "PAPILLON_CAMPAIGNS_DIR": str(folder)})


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    undocumented = [name for name in SETTINGS if f"| `{name}` |" not in readme]
    assert undocumented == []
