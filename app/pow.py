"""A proof of work for posts from an address many people share (the Tor daemon of an onion service).

Counting such posts by address would let one spammer lock out every Tor witness, so each post pays
instead: the page searches for a nonce such that ``PBKDF2-HMAC-SHA256(challenge, nonce, iterations)``
starts with ``bits`` zero bits. WebCrypto runs PBKDF2 in native code, so a phone is not much slower
per try than a spammer's own program, while the server checks a stamp with a single PBKDF2 call.
The challenge is an HMAC of the submission id under the day's key: the server keeps no state, and a
stamp is good for one submission of one form.
"""

from __future__ import annotations

import hashlib
import hmac

MAX_NONCE_DIGITS = 12


def challenge(day_key: bytes, campaign: str, form: str, submission_id: str) -> bytes:
    return hmac.new(day_key, f"papillon pow|{campaign}|{form}|{submission_id}".encode(), hashlib.sha256).digest()


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def work(challenge_bytes: bytes, nonce: str, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", challenge_bytes, nonce.encode("ascii"), iterations, 32)


def well_formed(nonce: str) -> bool:
    """Decimal digits, as the page sends them, and short: checked before any work is done."""
    return 0 < len(nonce) <= MAX_NONCE_DIGITS and nonce.isascii() and nonce.isdigit()


def verify(challenge_bytes: bytes, nonce: str, bits: int, iterations: int) -> bool:
    """Whether ``nonce`` is a stamp for this challenge."""
    if not well_formed(nonce):
        return False
    return leading_zero_bits(work(challenge_bytes, nonce, iterations)) >= bits


def solve(challenge_bytes: bytes, bits: int, iterations: int) -> str:
    """The first stamp, as the page finds it (for tests and benchmarks; the page does this itself)."""
    nonce = 0
    while not verify(challenge_bytes, str(nonce), bits, iterations):
        nonce += 1
    return str(nonce)
