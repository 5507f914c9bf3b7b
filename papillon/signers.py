"""The public list of signers: what decrypt --publish writes on the laptop and `flask publish` loads on the server.

Only signers who ticked their form's consent field are listed, with only the answers the form names to publish;
everyone else is only counted. The file is plain JSON so staff can read it, and strike a name, before it goes up:

    {"format": "papillon-signers", "version": 1, "campaigns": {
        "open-letter": {"count": 212, "signers": [{"name": "…", "organization_name": "…"}, …]}}}

Names are sorted, so the list says nothing of the order in which people signed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from papillon.campaigns import NAME, SLUG

FORMAT = "papillon-signers"
VERSION = 1
MAX_TEXT = 200


class SignersError(ValueError):
    """A signers file is not what decrypt --publish writes; the message names the place."""


@dataclass
class Listing:
    """One campaign's public list: how many signed, and who agreed to be named."""

    count: int = 0
    signers: list[dict[str, str]] = field(default_factory=list)

    def sorted(self) -> list[dict[str, str]]:
        unique = {tuple(sorted(s.items())): s for s in self.signers}
        return sorted(unique.values(), key=lambda s: [v.casefold() for v in s.values()])


def dumps(listings: Mapping[str, Listing]) -> str:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "campaigns": {
            slug: {"count": listing.count, "signers": listing.sorted()} for slug, listing in sorted(listings.items())
        },
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def loads(text: str) -> dict[str, Listing]:
    """Read and check a signers file: every member of the shape decrypt writes, or a refusal naming it."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SignersError("not valid JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise SignersError("not a Papillon signers file (decrypt --publish writes one)")
    campaigns = doc.get("campaigns")
    if not isinstance(campaigns, dict):
        raise SignersError("campaigns: must map each campaign to its list")
    out = {}
    for slug, entry in campaigns.items():
        where = f"campaigns.{slug}"
        if not isinstance(slug, str) or not SLUG.fullmatch(slug):
            raise SignersError(f"{where}: not a campaign slug")
        if not isinstance(entry, dict) or set(entry) != {"count", "signers"}:
            raise SignersError(f"{where}: must hold exactly count and signers")
        count, signers = entry["count"], entry["signers"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise SignersError(f"{where}.count: must be a whole number")
        if not isinstance(signers, list) or len(signers) > count:
            raise SignersError(f"{where}.signers: must be a list no longer than the count")
        for i, signer in enumerate(signers):
            if not (
                isinstance(signer, dict) and signer and all(isinstance(k, str) and NAME.fullmatch(k) for k in signer)
            ):
                raise SignersError(f"{where}.signers[{i}]: must map answer names to texts")
            if not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT and v.strip() == v for v in signer.values()):
                raise SignersError(f"{where}.signers[{i}]: each text must be 1 to {MAX_TEXT} characters, trimmed")
        out[slug] = Listing(count=count, signers=list(signers))
    return out
