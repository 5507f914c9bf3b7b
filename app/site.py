"""What the app holds once it has started, in one typed place.

Views, commands and tests ask ``site()`` for the campaigns, the keys and the rest, instead of reaching into
``app.extensions`` by string keys that no checker can follow.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from app.forms import AnswersForm
    from app.storage import SchemaProblem
    from papillon.campaigns import Campaign
    from papillon.keys import PublicKey

EXTENSION = "papillon"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A cached blank form page, split around its CSRF token and then around its submission id.
BlankPage = list[list[str]]


@dataclass(frozen=True)
class SharedAddresses:
    """Addresses many people share (a Tor exit, an onion service's proxy): literals such as ``unix:``, and networks."""

    literals: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()


@dataclass
class Site:
    """Built once by ``create_app``; each part is filled in by the module that owns it."""

    campaigns: dict[str, Campaign]
    keys: list[PublicKey]
    # Each campaign as each language's readers see it, keyed by (campaign slug, language tag).
    localized: dict[tuple[str, str], Campaign] = field(default_factory=dict)
    # The WTForms class of each (campaign slug, form slug, language tag).
    answer_forms: dict[tuple[str, str, str], type[AnswersForm]] = field(default_factory=dict)
    # Blank form pages, rendered once, keyed by (campaign slug, form slug, language tag, script root).
    blank_pages: dict[tuple[str, str, str, str], BlankPage] = field(default_factory=dict)
    shared: SharedAddresses = field(default_factory=SharedAddresses)
    reviewed_catalogs: set[str] = field(default_factory=set)
    sessions: sessionmaker[Session] | None = None
    schema_problem: SchemaProblem | None = None

    def init_app(self, app: Flask) -> None:
        """Make this the state ``site(app)`` returns, before the other parts of the app are set up."""
        app.extensions[EXTENSION] = self


def site(app: Flask | None = None) -> Site:
    """The state of ``app``, or of the app handling the request or command at hand."""
    return cast("Site", (app or current_app).extensions[EXTENSION])
