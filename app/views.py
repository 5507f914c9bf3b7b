"""The public site: campaigns, their forms, thank-you pages and a health check."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import generate_csrf, validate_csrf
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError

from app import i18n, security
from app.forms import (
    REPLY_ASKED,
    REPLY_FIELD,
    SEALED_FIELD,
    SUBMISSION_ID,
    AnswersForm,
    Refused,
    check_form_body,
    new_submission_id,
    refuse,
)
from app.security import limiter
from app.site import site
from app.storage import SubmissionConflict, db
from papillon import envelope, replies
from papillon.campaigns import PATTERN_MESSAGES, Campaign, Form, Problem
from papillon.keys import PublicKey

bp = Blueprint("public", __name__)

STATUS_MESSAGES = {
    400: _l("Something in this request was not right, so nothing was stored."),
    404: _l("There is no page at this address."),
    405: _l("This page cannot be used that way."),
    409: _l(
        "Answers from this page were already received, and these are different, so they were not stored. "
        "To send them as well, copy them, reload the page and send them again."
    ),
    413: _l("What you sent is larger than this site accepts, so nothing was stored. Please shorten your answers."),
    429: _l("Too many tries from your connection just now. Please wait a few minutes, then try again."),
    500: _l("Something went wrong on our side. Nothing you typed was kept. Please try again later."),
    503: _l("This site is busy or down for a moment, so nothing was stored. Please try again in a few minutes."),
}


SHARED_429 = _l(
    "Many people reach this site through the same address (as with Tor), and too many answers came that way "
    "just now. Please try again in a minute, or turn JavaScript on (in Tor Browser: the Standard security level) "
    "so that this page can send your answers after a short check instead."
)

# What seal.js says while it works, in the page's language; it receives them as data, never as script.
SEAL_MESSAGES = {
    "ready": _l("Your answers are sealed in this browser before they leave it; only the organizers can open them."),
    "sealing": _l("Sealing and sending your answers…"),
    "cannot_seal": _l(
        "Your answers could not be sealed in this browser, so nothing was sent. Please reload the page and try again."
    ),
    "checking": _l("Finishing a short check that protects this form from spam…"),
    "check_failed": _l(
        "This browser could not finish the anti-spam check, so nothing was sent. Please reload the page and try again."
    ),
    "network": _l(
        "Your answers could not be sent: the connection failed. Nothing you typed was lost on this page. "
        "Please try again; they will be stored only once."
    ),
    "retrying": _l("The connection failed or the site was busy; trying again in a moment…"),
    "not_stored": _l("Your answers were not stored. Nothing you typed was lost on this page. Please try again."),
    "unsupported": _l(
        "This browser cannot seal your answers itself: they travel to our server protected by HTTPS, and the server "
        "reads them for a moment to seal them before anything is stored."
    ),
}


View = TypeVar("View", bound=Callable[..., ResponseReturnValue])
Stored = Literal["new", "repeat", "conflict"]
# Added to what a page without JavaScript sent when it asked for a reply code, before the digest is taken.
REPLY_MARK = b"\0reply"


def route(rule: str, **options: Any) -> Callable[[View], View]:
    """A page at ``rule`` in the reader's language, and at ``/<lang>`` + ``rule`` in a named one."""

    def register(view: View) -> View:
        bp.add_url_rule(f"/<lang:lang>{rule}", view_func=view, **options)
        bp.add_url_rule(rule, view_func=view, **options)
        return view

    return register


@bp.url_value_preprocessor
def take_language(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values:
        values.pop("lang", None)


@bp.url_defaults
def keep_language(endpoint: str, values: dict[str, Any]) -> None:
    """Links from a page whose address names its language keep naming it."""
    if "lang" not in values and (tag := i18n.language_in_path()) and i18n.takes_language(endpoint):
        values["lang"] = tag


def campaigns() -> dict[str, Campaign]:
    return site().campaigns


def localized(campaign: Campaign) -> Campaign:
    """The campaign in the page's language, as built at start-up."""
    return site().localized[campaign.slug, i18n.page_language()]


def public_keys() -> list[PublicKey]:
    return site().keys


def find_campaign(campaign_slug: str) -> Campaign:
    """The campaign at this address, in the page's language; a 404 when there is none."""
    campaign = campaigns().get(campaign_slug)
    if campaign is None:
        abort(404)
    return localized(campaign)


def find_form(campaign_slug: str, form_slug: str) -> tuple[Campaign, Form]:
    """The campaign and its form's definition at this address; a 404 when either is missing."""
    campaign = find_campaign(campaign_slug)
    definition = campaign.forms.get(form_slug)
    if definition is None:
        abort(404)
    return campaign, definition


def wants_json() -> bool:
    """The sealing script asks for JSON; a browser (or ``*/*``) gets HTML, which wins ties."""
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def error_response(status: int, message: str | None = None) -> tuple[Response | str, int]:
    """A kind page (or JSON for the sealing script) that repeats nothing the person sent."""
    message = str(message or STATUS_MESSAGES.get(status, STATUS_MESSAGES[400]))
    if wants_json():
        return jsonify(error=message), status
    return render_template("error.html", status=status, message=message), status


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[Response | str, int]:
    """Every refusal, ours (``refuse``) and Werkzeug's (404, 405, 413, 429), answered the same way."""
    if isinstance(exc, SecurityError):
        # A Host outside TRUSTED_HOSTS: no address can be built for it, so no page either.
        return Response(f"{STATUS_MESSAGES[400]}\n", mimetype="text/plain"), 400
    if exc.code == 429 and security.is_shared():
        return error_response(429, SHARED_429)
    return error_response(exc.code or 500, exc.description if isinstance(exc, Refused) else None)


@bp.app_errorhandler(SQLAlchemyError)
def database_error(exc: SQLAlchemyError) -> tuple[Response | str, int]:
    """The database is down or failing: the person is told nothing was stored and to try again (503), not that
    the site broke. A retry is safe, as a submission id is stored once. Only the kind of error is logged: a
    driver's message can quote what a statement held."""
    driver = getattr(exc, "orig", None)
    kind = type(exc).__name__ + (f" ({type(driver).__module__}.{type(driver).__name__})" if driver else "")
    current_app.logger.error("The database failed: %s; answered 503, nothing stored.", kind)
    return error_response(503)


@bp.before_app_request
def relative_redirect() -> BaseResponse | None:
    """Werkzeug answers ``/campaign`` with an absolute redirect built from the Host header the client sent;
    answer with the path alone, so no client-chosen host is ever echoed."""
    exc = request.routing_exception
    if isinstance(exc, RequestRedirect):
        parts = urlsplit(exc.new_url)
        return redirect(urlunsplit(("", "", parts.path, parts.query, "")), exc.code)
    return None


@route("/", methods=["GET"])
def index() -> str:
    return render_template("index.html", campaigns=[localized(c) for c in campaigns().values()])


@bp.get("/healthz")
@limiter.exempt
def healthz() -> Response:
    """Readiness for a load balancer: 503 while the database cannot answer, so no one is sent here to be
    refused. Nothing is logged: a balancer asks every few seconds."""
    try:
        db.ping()
    except SQLAlchemyError:
        return Response("database unavailable\n", status=503, mimetype="text/plain")
    return Response("ok\n", mimetype="text/plain")


@bp.get("/favicon.ico")
@limiter.exempt
def favicon() -> Response:
    """Browsers ask for an icon on their own; answer without one rather than with a 404."""
    return Response(status=204)


@route("/<campaign_slug>/", methods=["GET"])
def campaign(campaign_slug: str) -> str:
    campaign = find_campaign(campaign_slug)
    try:
        public_list = db.public_list(campaign.slug)
    except SQLAlchemyError:
        public_list = None  # the text needs no database: a reader still gets the page, without the list
    return render_template("campaign.html", campaign=campaign, public_list=public_list)


# --- the form page ------------------------------------------------------------------------


@route("/<campaign_slug>/<form_slug>", methods=["GET"])
def form_page(campaign_slug: str, form_slug: str) -> str:
    return blank_form(*find_form(campaign_slug, form_slug))


def blank_form(campaign: Campaign, definition: Form) -> str:
    """A fresh form page. Only its CSRF token and submission id change from one visitor to the next, so the page
    is rendered once per form and language and then given new values: rendering the fields through WTForms is
    most of a page's cost. A visitor from a shared address gets a proof-of-work challenge of its own, so a page
    rendered afresh."""
    submission_id = new_submission_id()
    if security.is_shared():
        return _render_form(campaign, definition, answers_form(campaign, definition, submission_id))
    token: str = generate_csrf()
    pages = site().blank_pages
    key = (campaign.slug, definition.slug, i18n.page_language(), request.script_root)
    parts = pages.get(key)
    if parts is None:
        page = _render_form(campaign, definition, answers_form(campaign, definition, submission_id))
        parts = [piece.split(submission_id) for piece in page.split(token)]
        if sum(len(p) - 1 for p in parts) != 1 or len(parts) != 2:
            return page  # the token or the id is not where a cached page expects them once: never serve it
        pages[key] = parts
    return token.join(submission_id.join(piece) for piece in parts)


def answers_form(campaign: Campaign, definition: Form, submission_id: str | None = None) -> AnswersForm:
    """The form's WTForms form in the page's language, built at start-up; an instance reads this request's body."""
    wtf = site().answer_forms[campaign.slug, definition.slug, i18n.page_language()]()
    if submission_id is not None:
        wtf.submission_id.data = submission_id
    return wtf


def _render_form(campaign: Campaign, definition: Form, wtf: AnswersForm) -> str:
    """The form page, with what seal.js needs to seal the answers in the browser (``data-seal``)."""
    seal = seal_settings(campaign.slug, definition, wtf.honeypot_name)
    if security.is_shared():
        seal["pow"] = _pow_settings(campaign, definition, str(wtf.submission_id.data))
    return render_template(
        "form.html",
        campaign=campaign,
        form=definition,
        wtf=wtf,
        keys=public_keys(),
        seal_json=json.dumps(seal, separators=(",", ":")),
        reply_asked=definition.replies and _reply_asked(),
    )


def seal_settings(campaign_slug: str, definition: Form, honeypot: str) -> dict[str, object]:
    """What seal.js needs to seal a form's answers in the browser, in the page's language."""
    return {
        "info": envelope.info(campaign_slug, definition.slug).decode(),
        "version": envelope.VERSION,
        "form_version": definition.version,
        "locale": i18n.page_language(),
        "messages": {name: str(text) for name, text in SEAL_MESSAGES.items()},
        "keys": [{"key_id": k.key_id, "public_key": k.to_b64()} for k in public_keys()],
        "pad_block": envelope.PAD_BLOCK,
        "fields": [{"name": f.name, "type": f.type} for f in definition.fields],
        "checks": field_messages(definition, i18n.page_language()),
        "honeypot": honeypot,
    }


def _reply_asked() -> bool:
    """Whether a page without JavaScript ticked the box asking for a reply code (``check_form_body`` lets it
    through only to a form offering replies)."""
    return request.form.get(REPLY_FIELD) == REPLY_ASKED


def _form_again(campaign: Campaign, definition: Form, wtf: AnswersForm, status: int) -> tuple[str, int]:
    """The page without JavaScript, back with the person's answers in it and what kept them from being stored:
    a refusal that loses nothing they typed."""
    return _render_form(campaign, definition, wtf), status


def _pow_settings(campaign: Campaign, definition: Form, submission_id: str) -> dict[str, object]:
    """Today's proof-of-work challenge for this page's submission id, and how hard it is."""
    today = dt.datetime.now(dt.UTC).date()
    challenge = security.pow_challenge(campaign.slug, definition.slug, submission_id, today)
    return {
        "challenge": base64.b64encode(challenge).decode("ascii"),
        "bits": current_app.config["PAPILLON_POW_BITS"],
        "iterations": current_app.config["PAPILLON_POW_ITERATIONS"],
    }


@functools.cache
def field_messages(definition: Form, language: str) -> dict[str, dict[str, str]]:
    """What the page says when the browser's own check stops a field, in the page's language rather than the
    browser's, with the same words the server uses; worked out once per form and language."""

    def said(problem: Problem | None) -> str | None:
        if problem is None:
            return None
        return str(problem) if problem.own else str(_(problem.message, **problem.values))

    checks: dict[str, dict[str, str]] = {}
    for f in definition.fields:
        found = {
            "missing": said(f.problem(f.empty())) if f.required else None,
            "long": said(f.problem("x" * (f.max_length + 1))) if f.max_length else None,
            "pattern": said(Problem(PATTERN_MESSAGES[f.type])) if f.pattern else None,
        }
        checks[f.name] = {kind: text for kind, text in found.items() if text}
    return checks


# --- receiving an answer ----------------------------------------------------------------------


@route("/<campaign_slug>/<form_slug>", methods=["POST"])
@limiter.limit(security.submit_limit, key_func=security.submit_key, methods=["POST"])
def receive_form(campaign_slug: str, form_slug: str) -> ResponseReturnValue:
    """An answer, as the data flows: the body's shape, the submission id and proof of work, the page's CSRF
    token, the honeypot, then either the browser's envelope (checked, never opened) or the answers (read,
    checked, sealed here), then store. Each refusal is raised through ``refuse``; only a page without JavaScript
    comes back instead, with its answers in it.

    An envelope needs no WTForms form: its page's token is read straight from the body, which is most of what
    makes the sealed path cheap. Without JavaScript the answers form checks its own token, and holds a new one
    for the page should it come back."""
    campaign, definition = find_form(campaign_slug, form_slug)
    check_form_body(definition, honeypot_name())
    submission_id = posted_submission_id()
    _check_proof_of_work()
    wtf = None if request.form.get(SEALED_FIELD) else answers_form(campaign, definition)
    fresh = csrf_ok(request.form.get("csrf_token", "")) if wtf is None else bool(wtf.validate())
    if request.form.get(honeypot_name()):
        # A bot is thanked as a person would be, and nothing is stored.
        if _reply_asked():
            return _reply_thanks(campaign, definition, replies.new_code())
        return _thanks(campaign, definition)
    if wtf is None:
        return _store_sealed(campaign, definition, submission_id, fresh=fresh)
    return _seal_and_store(campaign, definition, wtf, submission_id, fresh=fresh)


def honeypot_name() -> str:
    return str(current_app.config["PAPILLON_HONEYPOT_FIELD"])


def posted_submission_id() -> str:
    """The number the page gave this answer, which makes a post sent again count once."""
    submission_id = request.form.get("submission_id", "")
    if not SUBMISSION_ID.fullmatch(submission_id):
        refuse(_("This form is missing its submission number. Please reload the page and send it again."))
    return submission_id


def _check_proof_of_work() -> None:
    """From a shared address, a stamp that does not verify is refused; a missing one counts in a stricter bucket."""
    if security.is_shared() and security.stamp_state() == "invalid":
        refuse(_("The anti-spam check of this page did not pass. Please reload the page and send your answers again."))


def csrf_ok(token: str) -> bool:
    """The page's CSRF token, checked as the form's own field would check it."""
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True


def _store_sealed(campaign: Campaign, definition: Form, submission_id: str, *, fresh: bool) -> BaseResponse:
    store_envelope(campaign, definition, submission_id, fresh=fresh)
    return _thanks(campaign, definition)


def store_envelope(campaign: Campaign, definition: Form, submission_id: str, *, fresh: bool) -> None:
    """The browser's envelope: its shape checked against the organizers' current keys, never opened, then stored
    once; every problem is refused."""
    if not fresh:
        refuse(_("This page has expired. Please reload it and send your answers again."))
    key_ids = [k.key_id for k in public_keys()]
    try:
        sealed = envelope.parse(request.form[SEALED_FIELD], key_ids, versions=[envelope.VERSION])
    except envelope.EnvelopeError as exc:
        refuse(_("The sealed answers were refused: %(reason)s. Nothing was stored.", reason=str(exc)))
    if store_once(campaign, definition, submission_id, sealed, sealed_by="browser") == "conflict":
        refuse(status=409)


def _seal_and_store(
    campaign: Campaign, definition: Form, wtf: AnswersForm, submission_id: str, *, fresh: bool
) -> ResponseReturnValue:
    """The answers of a page without JavaScript: read, checked by the definition's rules, sealed here."""
    answers = wtf.answers()
    valid = wtf.validate_answers(answers)
    if not fresh:
        wtf.form_errors.append(_("This page had expired. Please check your answers and send them again."))
    if not (fresh and valid):
        return _form_again(campaign, definition, wtf, 400)
    sent = envelope.plaintext(answers, definition.version, i18n.page_language())
    code = replies.new_code() if _reply_asked() else None
    if code is None:
        data, digest = sent, sent_digest(submission_id, sent)
    else:
        # A fresh code seals differently each time: the digest takes the answers and that a code was asked for,
        # so that the same answers sent again are still known for a repeat.
        member = replies.derive(code).member()
        data = envelope.plaintext(answers, definition.version, i18n.page_language(), reply=member)
        digest = sent_digest(submission_id, sent + REPLY_MARK)
    sealed = envelope.seal(data, public_keys(), campaign.slug, definition.slug)
    outcome = store_once(campaign, definition, submission_id, sealed, sealed_by="server", digest=digest)
    if outcome == "conflict":
        # The page comes back with these answers in it and a new number, so nothing is lost.
        wtf.submission_id.data = new_submission_id()
        wtf.form_errors.append(STATUS_MESSAGES[409])
        return _form_again(campaign, definition, wtf, 409)
    if code is not None:
        return _reply_thanks(campaign, definition, code if outcome == "new" else None)
    return _thanks(campaign, definition)


def _reply_thanks(campaign: Campaign, definition: Form, code: str | None) -> str:
    """The thank-you page itself, never a redirect: it shows the reply code once, and the code must not travel in
    an address or a cookie. Without a code, the answers had already arrived and their code was shown then."""
    shown = replies.shown(code) if code is not None else None
    return render_template("thanks.html", campaign=campaign, form=definition, code=shown, already=code is None)


def store_once(  # noqa: PLR0913 - keyword-only past the record's place: how it was sealed, and its digest
    campaign: Campaign,
    definition: Form,
    submission_id: str,
    sealed: envelope.Envelope,
    *,
    sealed_by: str,
    digest: str | None = None,
) -> Stored:
    """Store the sealed answers once: ``"new"`` when stored now, ``"repeat"`` when an earlier post of the same
    answers stored them, ``"conflict"`` when this submission id already holds other answers, which are kept and
    these are not."""
    try:
        new = db.store(
            id=submission_id,
            campaign=campaign.slug,
            form=definition.slug,
            sealed_by=sealed_by,
            envelope=sealed.to_json(),
            digest=digest,
        )
    except SubmissionConflict:
        return "conflict"
    return "new" if new else "repeat"


def sent_digest(submission_id: str, plaintext: bytes) -> str:
    """What a page without JavaScript sent, as an HMAC keyed by its session's CSRF secret: a repeated post gives
    the same digest, a changed one another, and the key lives in the sender's cookie only, never on the server,
    so a stored digest cannot be used to guess answers."""
    secret: str = session[current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")]
    return hmac.new(secret.encode(), submission_id.encode() + b"\0" + plaintext, hashlib.sha256).hexdigest()


def _thanks(campaign: Campaign, definition: Form) -> BaseResponse:
    return thanks_response(url_for(".thanks", campaign_slug=campaign.slug, form_slug=definition.slug))


def thanks_response(thanks_url: str) -> BaseResponse:
    """On to a thank-you page; the sealing script asks for JSON so that it can go there without loading it
    twice."""
    return jsonify(thanks=thanks_url) if wants_json() else redirect(thanks_url, 303)


@route("/<campaign_slug>/<form_slug>/thanks", methods=["GET"])
def thanks(campaign_slug: str, form_slug: str) -> str:
    campaign, definition = find_form(campaign_slug, form_slug)
    return render_template("thanks.html", campaign=campaign, form=definition)


@bp.app_url_defaults
def static_version(endpoint: str, values: dict[str, Any]) -> None:
    """A static file's address names its content, so a page never runs with an older cached ``seal.js``."""
    folder = current_app.static_folder
    if endpoint == "static" and "filename" in values and folder is not None:
        values.setdefault("v", _static_digest(folder, values["filename"]))


@functools.cache
def _static_digest(folder: str, filename: str) -> str:
    path = Path(folder) / filename
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "0"
