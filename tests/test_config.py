"""app/config.py's settings: defaults, then environment variables of the same name, then the caller's overrides.

What create_app refuses to start with (no secret key, a keys folder holding a private key, ...) is in tests/test_app.py.
"""

from __future__ import annotations

import pytest
from pages import ROOT

from app import create_app
from app.config import ConfigError, Defaults, load_config

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


def test_defaults_list_the_settings_the_app_relies_on():
    for name in ["SECRET_KEY", "DATABASE_URL", "PAPILLON_KEYS_DIR", "MAX_CONTENT_LENGTH", "RATELIMIT_ENABLED"]:
        assert name in SETTINGS
    assert load_config({}) == {name: getattr(Defaults, name) for name in SETTINGS}


def test_by_default_limits_count_in_memory_no_proxy_is_trusted_and_bodies_are_capped() -> None:
    settings = load_config({})
    assert settings["RATELIMIT_STORAGE_URI"] == "memory://"
    assert settings["PAPILLON_TRUSTED_PROXIES"] == 0
    assert settings["RATELIMIT_ENABLED"] is True
    assert settings["MAX_CONTENT_LENGTH"] > 0


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


# --- the settings reach the app ---------------------------------------------------------------


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


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    undocumented = [name for name in SETTINGS if f"| `{name}` |" not in readme]
    assert undocumented == []
