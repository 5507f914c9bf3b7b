"""The witness's pages for replies: a reply code opens the replies kept for it, and a follow-up written back is
sealed to the organizers like a testimony.

With JavaScript the code never leaves the device: the page posts only the lookup id it derives, and opens the
sealed replies itself. Without it the code is posted, and used in memory for that request alone. Either way the
server answers a wrong code exactly as a right code with no replies yet, and logs nothing about a lookup.
"""

from __future__ import annotations

import functools
import json

from flask import jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response as BaseResponse

from app import i18n, security
from app.forms import SEALED_FIELD, AnswersForm, check_body, check_form_body, form_class, new_submission_id, refuse
from app.security import limiter
from app.storage import db
from app.views import (
    STATUS_MESSAGES,
    csrf_ok,
    honeypot_name,
    posted_submission_id,
    public_keys,
    route,
    seal_settings,
    sent_digest,
    store_envelope,
    store_once,
    thanks_response,
    wants_json,
)
from papillon import campaigns, envelope, replies

# The pages' address, and the campaign a follow-up is stored under, so no campaign of the organizers may take it.
SLUG = replies.CAMPAIGN
FOLLOW_UP_CAMPAIGN = campaigns.from_dict(replies.FOLLOW_UP_SOURCE, "papillon.replies")
FOLLOW_UP_FORM = FOLLOW_UP_CAMPAIGN.forms[replies.FOLLOW_UP]
CSRF_FIELD = "csrf_token"
LOOKUP_FIELD = "lookup"
CODE_FIELD = "code"

BAD_CODE = _l("This is not a whole reply code. Please check it: a reply code has 28 letters and digits.")
# What replies.js says while it looks up and opens replies, in the page's language; given as data, never as script.
LOOKUP_MESSAGES = {
    "reading": _l("Looking for messages…"),
    "bad_code": BAD_CODE,
    "failed": _l("The messages could not be loaded. Please check your connection and try again."),
    "unsupported": _l(
        "This browser cannot open the messages itself, so your code travels to our server protected by HTTPS, "
        "and the server uses it for a moment to open them."
    ),
}
Opened = dict[str, str]


@functools.cache
def _follow_up_class(honeypot: str) -> type[AnswersForm]:
    return form_class(FOLLOW_UP_FORM, honeypot)


def follow_up_form(*, blank: bool) -> AnswersForm:
    """The follow-up form: blank with a new submission id, or reading this request's body."""
    form = _follow_up_class(honeypot_name())
    if not blank:
        return form()
    wtf = form(formdata=None)
    wtf.submission_id.data = new_submission_id()
    return wtf


@route(f"/{SLUG}", methods=["GET"])
def replies_page() -> str:
    return _page(follow_up_form(blank=True))[0]


@route(f"/{SLUG}", methods=["POST"])
@limiter.limit(security.submit_limit, key_func=security.submit_key, methods=["POST"])
def read_replies() -> ResponseReturnValue:
    """A lookup: the script's lookup id, answered with the sealed replies as JSON, or a page's code, answered with
    the page and the replies opened here. The body is exactly the page's token and one of the two."""
    check_body({CSRF_FIELD, LOOKUP_FIELD, CODE_FIELD})
    names = set(request.form)
    if names not in ({CSRF_FIELD, LOOKUP_FIELD}, {CSRF_FIELD, CODE_FIELD}) or (LOOKUP_FIELD in names) != wants_json():
        refuse()
    fresh = csrf_ok(request.form[CSRF_FIELD])
    if LOOKUP_FIELD in names:
        if not fresh:
            refuse(_("This page has expired. Please reload it and type your code again."))
        lookup = request.form[LOOKUP_FIELD]
        if not replies.LOOKUP.fullmatch(lookup):
            refuse()
        return jsonify(replies=db.replies_for(lookup))
    blank = follow_up_form(blank=True)
    if not fresh:
        expired = _("This page had expired, so nothing was looked up. Please type your code again.")
        return _page(blank, lookup_error=expired, status=400)
    try:
        code = replies.normalize(request.form[CODE_FIELD])
    except replies.ReplyError:
        return _page(blank, code_error=str(BAD_CODE), status=400)  # what was typed is not shown again
    return _page(blank, code=code)


def opened(code: str) -> list[Opened]:
    """The replies kept for a code, opened with its key, oldest first; one that does not open is left out."""
    keys = replies.derive(code)
    found = []
    for sealed in db.replies_for(keys.lookup):
        try:
            found.append(replies.open_reply(sealed, keys))
        except replies.ReplyError:
            continue
    return sorted(found, key=lambda reply: reply["written_on"])


@route(f"/{SLUG}/follow-up", methods=["POST"])
@limiter.limit(security.submit_limit, key_func=security.submit_key, methods=["POST"])
def receive_follow_up() -> ResponseReturnValue:
    """A message written back, as a testimony is received: the browser's envelope checked and stored, or the
    message of a page without JavaScript checked and sealed here with the key its code derives."""
    check_form_body(FOLLOW_UP_FORM, honeypot_name(), plain={CODE_FIELD})
    submission_id = posted_submission_id()
    wtf = None if request.form.get(SEALED_FIELD) else follow_up_form(blank=False)
    fresh = csrf_ok(request.form.get(CSRF_FIELD, "")) if wtf is None else bool(wtf.validate())
    if request.form.get(honeypot_name()):
        return _follow_up_thanks()  # a bot is thanked as a person would be, and nothing is stored
    if wtf is None:
        store_envelope(FOLLOW_UP_CAMPAIGN, FOLLOW_UP_FORM, submission_id, fresh=fresh)
        return _follow_up_thanks()
    return _seal_follow_up(wtf, submission_id, fresh=fresh)


def _seal_follow_up(wtf: AnswersForm, submission_id: str, *, fresh: bool) -> ResponseReturnValue:
    """The message of a page without JavaScript, with the code the page holds (a code it never showed is
    refused): checked by the form's rules, sealed here with the code's reply member."""
    try:
        code = replies.normalize(request.form.get(CODE_FIELD, ""))
    except replies.ReplyError:
        refuse()
    answers = wtf.answers()
    valid = wtf.validate_answers(answers)
    if not fresh:
        wtf.form_errors.append(_("This page had expired. Please check your answers and send them again."))
    if not (fresh and valid):
        return _page(wtf, code=code, status=400)
    member = replies.derive(code).member()
    data = envelope.plaintext(answers, FOLLOW_UP_FORM.version, i18n.page_language(), reply=member)
    sealed = envelope.seal(data, public_keys(), FOLLOW_UP_CAMPAIGN.slug, FOLLOW_UP_FORM.slug)
    digest = sent_digest(submission_id, data)
    outcome = store_once(FOLLOW_UP_CAMPAIGN, FOLLOW_UP_FORM, submission_id, sealed, sealed_by="server", digest=digest)
    if outcome == "conflict":
        wtf.submission_id.data = new_submission_id()
        wtf.form_errors.append(STATUS_MESSAGES[409])
        return _page(wtf, code=code, status=409)
    return _follow_up_thanks()


def _follow_up_thanks() -> BaseResponse:
    return thanks_response(url_for(".follow_up_thanks"))


@route(f"/{SLUG}/thanks", methods=["GET"])
def follow_up_thanks() -> str:
    return render_template("replies_thanks.html")


def _page(
    follow_up: AnswersForm,
    *,
    code: str | None = None,
    code_error: str | None = None,
    lookup_error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The replies page; with a code (no JavaScript), its replies opened and the follow-up form holding it."""
    seal = seal_settings(FOLLOW_UP_CAMPAIGN.slug, FOLLOW_UP_FORM, follow_up.honeypot_name)
    lookup = {"messages": {name: str(text) for name, text in LOOKUP_MESSAGES.items()}}
    page = render_template(
        "replies.html",
        token=generate_csrf(),
        follow_up=follow_up,
        keys=public_keys(),
        seal_json=json.dumps(seal, separators=(",", ":")),
        replies_json=json.dumps(lookup, separators=(",", ":")),
        code=code,
        found=None if code is None else opened(code),
        code_error=code_error,
        lookup_error=lookup_error,
    )
    return page, status
