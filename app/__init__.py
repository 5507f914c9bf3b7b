"""Papillon's web app: serves campaigns and stores only sealed answers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup
from werkzeug.middleware.proxy_fix import ProxyFix

from app import cli, i18n, padding, security, views
from app import replies as reply_pages
from app.config import load_config
from app.forms import PAGE_FIELDS, REPLY_FIELD, SEALED_FIELD, AnswersForm, form_class
from app.site import Site, site
from app.storage import db
from papillon import campaigns, keys, languages

# What a page posts besides the answers: no field of a campaign may take one of these names.
RESERVED_FIELD_NAMES = PAGE_FIELDS | {SEALED_FIELD, REPLY_FIELD}
# The site's own addresses (the reply pages' among them, registered on views.bp) and the language tags.
RESERVED_CAMPAIGN_SLUGS = {"static", "healthz", "favicon.ico", reply_pages.SLUG} | {
    tag.lower() for tag in languages.NAMES
}


class StartupError(RuntimeError):
    """The app cannot start safely; the message says which file or setting to fix."""


def create_app(config: Mapping[str, object] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(load_config())
    app.config.update(config or {})
    instance = Path(app.instance_path)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.chmod(0o700)
    _secret_key(app)
    if app.config["PAPILLON_REPLY_RETENTION_DAYS"] < 1:
        raise StartupError("PAPILLON_REPLY_RETENTION_DAYS must be 1 or more: the days a reply to a witness is kept")
    if not app.config.get("DATABASE_URL"):
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'papillon.sqlite3'}"

    try:
        state = Site(
            campaigns=campaigns.load_dir(app.config["PAPILLON_CAMPAIGNS_DIR"]),
            keys=keys.load_public_dir(app.config["PAPILLON_KEYS_DIR"]),
        )
    except (keys.KeyFileError, campaigns.CampaignError) as exc:
        raise StartupError(str(exc)) from exc
    state.init_app(app)
    # Each campaign as each language's readers see it, built once: pages only look them up.
    state.localized = {
        (campaign.slug, language): campaign.localized(language)
        for campaign in state.campaigns.values()
        for language in languages.NAMES
    }
    state.answer_forms = _form_classes(app)
    _refuse_demo_keys(app)

    if app.config["PAPILLON_TRUSTED_PROXIES"]:
        hops = app.config["PAPILLON_TRUSTED_PROXIES"]
        # Flask's documented way to wrap its WSGI app; mypy sees only the method it replaces.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    _check_schema(app)
    security.init_app(app)
    padding.init_app(app)
    try:
        i18n.init_app(app)
    except i18n.CatalogError as exc:
        raise StartupError(str(exc)) from exc
    app.register_blueprint(views.bp)
    cli.init_app(app)
    return app


def _secret_key(app: Flask) -> None:
    """SECRET_KEY from the environment, else from instance/secret_key (which `make run` writes)."""
    if app.config.get("SECRET_KEY"):
        return
    path = Path(app.instance_path) / "secret_key"
    if path.is_file() and (secret := path.read_text().strip()):
        app.config["SECRET_KEY"] = secret
        return
    raise StartupError(f"SECRET_KEY is not set: set the environment variable, or put a random value in {path}")


def _check_schema(app: Flask) -> None:
    """A server refuses to start on tables older or newer than its code, rather than fail on them page by page, and
    says so when there are none yet. The flask command still loads, so that `db upgrade` can put the tables right:
    its commands that touch records refuse instead (app.cli)."""
    with app.app_context():
        problem = db.check_schema()
    if problem is None or _finding_flask_commands():
        return
    if problem.empty:
        app.logger.warning("%s; until then no answer can be stored.", problem.message)
        return
    raise StartupError(problem.message)


def _finding_flask_commands() -> bool:
    """Whether the flask command is loading the app to find the command it was given (``flask --app wsgi db
    upgrade``), rather than to serve it (``flask run``, or any WSGI server)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and isinstance(ctx.command, FlaskGroup)


def _refuse_demo_keys(app: Flask) -> None:
    """The demo key's private half and passphrase sit on the machine that made it: answers sealed to it are
    readable by anyone with that machine. Only `make run` may use it."""
    app.jinja_env.globals["demo_key"] = any(key.demo for key in site(app).keys)
    if app.config["PAPILLON_ALLOW_DEMO_KEY"]:
        return
    for key in site(app).keys:
        if key.demo:
            raise StartupError(
                f"the keys folder holds the demo key {key.name!r}, whose private half and passphrase are on this "
                "machine. Make your own key with scripts/keygen.py on the offline laptop, put its .pub file in "
                f"{app.config['PAPILLON_KEYS_DIR']} and remove the demo key's .pub file (README: staff walkthrough)."
            )


def _form_classes(app: Flask) -> dict[tuple[str, str, str], type[AnswersForm]]:
    """One form class per campaign, form and language: the labels differ, the names and rules do not."""
    honeypot = app.config["PAPILLON_HONEYPOT_FIELD"]
    classes = {}
    for campaign in site(app).campaigns.values():
        if campaign.slug in RESERVED_CAMPAIGN_SLUGS:
            raise StartupError(f"campaign {campaign.slug}: this address is used by the site itself; rename the file")
        for form in campaign.forms.values():
            clash = {f.name for f in form.fields} & (RESERVED_FIELD_NAMES | {honeypot})
            if clash:
                raise StartupError(
                    f"campaign {campaign.slug}, form {form.slug}: field name {clash.pop()!r} is reserved"
                )
            for language in languages.NAMES:
                shown = site(app).localized[campaign.slug, language].forms[form.slug]
                classes[campaign.slug, form.slug, language] = form_class(shown, honeypot)
    return classes
