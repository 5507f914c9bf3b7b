"""app/site.py: what an app holds once create_app has built it, found by ``site()``, each app's its own."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from pages import FORMS, public

from app import create_app
from app.site import site
from papillon import keys, languages


def test_the_site_holds_the_campaigns_and_keys_it_started_with(app: Flask, organizer_key: X25519PrivateKey) -> None:
    state = site(app)
    assert {(slug, form) for slug, campaign in state.campaigns.items() for form in campaign.forms} == set(FORMS)
    assert [(k.name, k.raw) for k in state.keys] == [("organizer", public(organizer_key).raw)]


def test_every_campaign_and_form_is_built_once_for_every_language(app: Flask) -> None:
    state = site(app)
    assert set(state.localized) == {(slug, tag) for slug in state.campaigns for tag in languages.NAMES}
    assert set(state.answer_forms) == {(slug, form, tag) for slug, form in FORMS for tag in languages.NAMES}
    for (slug, form, tag), answers_form in state.answer_forms.items():
        assert answers_form.definition == state.localized[slug, tag].forms[form]


def test_site_finds_the_app_at_hand_and_each_app_keeps_its_own(
    app: Flask, config: dict[str, object], tmp_path: Path
) -> None:
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir()
    (other_keys / "other.pub").write_text(keys.dumps_public("other", X25519PrivateKey.generate().public_key()))
    other = create_app({**config, "PAPILLON_KEYS_DIR": str(other_keys)})
    assert [k.name for k in site(app).keys] == ["organizer"]
    assert [k.name for k in site(other).keys] == ["other"]
    with other.app_context():
        assert site() is site(other)
    with app.test_request_context("/"):
        assert site() is site(app)
