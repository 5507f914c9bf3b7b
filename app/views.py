"""The public site: campaigns, their forms, thank-you pages and a health check."""

from __future__ import annotations

import base64
import datetime as dt
import json
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest, HTTPException, SecurityError
from werkzeug.routing import RequestRedirect

from app import security
from app.forms import AnswersForm, new_submission_id
from app.security import check_form_body, limiter
from app.storage import db
from papillon import envelope
from papillon.campaigns import Campaign, Form
from papillon.keys import PublicKey

bp = Blueprint("public", __name__)

STATUS_MESSAGES = {
    400: "Something in this request was not right, so nothing was stored.",
    404: "There is no page at this address.",
    405: "This page cannot be used that way.",
    413: "What you sent is larger than this site accepts, so nothing was stored. Please shorten your answers.",
    429: "Too many tries from your connection just now. Please wait a few minutes, then try again.",
    500: "Something went wrong on our side. Nothing you typed was kept. Please try again later.",
}


SHARED_429 = (
    "Many people reach this site through the same address (as with Tor), and too many answers came that way "
    "just now. Please try again in a minute, or turn JavaScript on (in Tor Browser: the Standard security level) "
    "so that this page can send your answers after a short check instead."
)


def campaigns() -> dict[str, Campaign]:
    return current_app.extensions["papillon.campaigns"]


def public_keys() -> list[PublicKey]:
    return current_app.extensions["papillon.keys"]


def _lookup(campaign_slug: str, form_slug: str | None = None) -> tuple[Campaign, Form | None]:
    campaign = campaigns().get(campaign_slug)
    if campaign is None:
        abort(404)
    if form_slug is None:
        return campaign, None
    form = campaign.forms.get(form_slug)
    if form is None:
        abort(404)
    return campaign, form


def wants_json() -> bool:
    """The sealing script asks for JSON; a browser (or ``*/*``) gets HTML, which wins ties."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def error_response(status: int, message: str | None = None) -> tuple[Response | str, int]:
    """A kind page (or JSON for the sealing script) that repeats nothing the person sent."""
    message = message or STATUS_MESSAGES.get(status, STATUS_MESSAGES[400])
    if wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, message=message), status


class Refused(BadRequest):
    """A 400 whose description is written by us, never an echo of the input, so it is safe to show."""


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[Response | str, int]:
    if isinstance(exc, SecurityError):
        # A Host outside TRUSTED_HOSTS: no address can be built for it, so no page either.
        return Response(STATUS_MESSAGES[400] + "\n", mimetype="text/plain"), 400
    if exc.code == 429 and security.is_shared():
        return error_response(429, SHARED_429)
    return error_response(exc.code or 500, exc.description if isinstance(exc, Refused) else None)


def refuse(message: str) -> None:
    raise Refused(message)


@bp.before_app_request
def relative_redirect() -> Response | None:
    """Werkzeug answers ``/campaign`` with an absolute redirect built from the Host header the client sent;
    answer with the path alone, so no client-chosen host is ever echoed."""
    exc = request.routing_exception
    if isinstance(exc, RequestRedirect):
        parts = urlsplit(exc.new_url)
        return redirect(urlunsplit(("", "", parts.path, parts.query, "")), exc.code)
    return None


@bp.get("/")
def index() -> str:
    return render_template("index.html", campaigns=campaigns().values())


@bp.get("/healthz")
@limiter.exempt
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/favicon.ico")
@limiter.exempt
def favicon() -> Response:
    """Browsers ask for an icon on their own; answer without one rather than with a 404."""
    return Response(status=204)


@bp.get("/<campaign_slug>/")
def campaign(campaign_slug: str) -> str:
    campaign, _ = _lookup(campaign_slug)
    return render_template("campaign.html", campaign=campaign)


def _render_form(campaign: Campaign, form: Form, wtf: AnswersForm, status: int = 200) -> tuple[str, int]:
    keys = public_keys()
    seal = {
        "info": envelope.info(campaign.slug, form.slug).decode(),
        "form_version": form.version,
        "locale": campaign.language,
        "keys": [{"key_id": k.key_id, "public_key": k.to_b64()} for k in keys],
        "pad_block": envelope.PAD_BLOCK,
        "fields": [{"name": f.name, "type": f.type} for f in form.fields],
        "honeypot": wtf.honeypot_name,
    }
    if security.is_shared():
        today = dt.datetime.now(dt.UTC).date()
        challenge = security.pow_challenge(campaign.slug, form.slug, wtf.submission_id.data, today)
        seal["pow"] = {
            "challenge": base64.b64encode(challenge).decode("ascii"),
            "bits": current_app.config["PAPILLON_POW_BITS"],
            "iterations": current_app.config["PAPILLON_POW_ITERATIONS"],
        }
    return (
        render_template(
            "form.html",
            campaign=campaign,
            form=form,
            wtf=wtf,
            keys=keys,
            seal_json=json.dumps(seal, separators=(",", ":")),
        ),
        status,
    )


@bp.route("/<campaign_slug>/<form_slug>", methods=["GET", "POST"])
@limiter.limit(security.submit_limit, key_func=security.submit_key, methods=["POST"])
def form(campaign_slug: str, form_slug: str):
    campaign, form = _lookup(campaign_slug, form_slug)
    if request.method == "POST":
        check_form_body(form, current_app.config["PAPILLON_HONEYPOT_FIELD"])
    wtf: AnswersForm = current_app.extensions["papillon.forms"][campaign.slug, form.slug]()
    if request.method != "POST":
        wtf.submission_id.data = new_submission_id()
        return _render_form(campaign, form, wtf)

    if not wtf.submission_id_ok():
        refuse("This form is missing its submission number. Please reload the page and send it again.")
    if security.is_shared() and security.stamp_state() == "invalid":
        refuse("The anti-spam check of this page did not pass. Please reload the page and send your answers again.")
    fresh = wtf.validate()
    thanks_url = url_for(".thanks", campaign_slug=campaign.slug, form_slug=form.slug)
    # The sealing script asks for JSON so that it can go to the thank-you page without loading it twice.
    thanks = jsonify(thanks=thanks_url) if wants_json() else redirect(thanks_url, 303)
    if wtf.bot_filled_honeypot():
        return thanks

    if wtf.envelope.data:
        if not fresh:
            refuse("This page has expired. Please reload it and send your answers again.")
        try:
            sealed = envelope.parse(wtf.envelope.data, [k.key_id for k in public_keys()])
        except envelope.EnvelopeError as exc:
            refuse(f"The sealed answers were refused: {exc}. Nothing was stored.")
        sealed_by = "browser"
    else:
        answers = wtf.answers()
        valid = wtf.validate_answers(answers)
        if not fresh:
            wtf.form_errors.append("This page had expired. Please check your answers and send them again.")
        if not (fresh and valid):
            return _render_form(campaign, form, wtf, 400)
        data = envelope.plaintext(answers, form.version, campaign.language)
        sealed = envelope.seal(data, public_keys(), envelope.info(campaign.slug, form.slug))
        sealed_by = "server"

    db.store(
        id=wtf.submission_id.data,
        campaign=campaign.slug,
        form=form.slug,
        sealed_by=sealed_by,
        envelope=sealed.to_json(),
    )
    return thanks


@bp.get("/<campaign_slug>/<form_slug>/thanks")
def thanks(campaign_slug: str, form_slug: str) -> str:
    campaign, form = _lookup(campaign_slug, form_slug)
    return render_template("thanks.html", campaign=campaign, form=form)
