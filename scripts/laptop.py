"""What every laptop script needs: one-line refusals, the passphrase, files only their owner can read.

Shared by keygen.py and decrypt.py, and copied with them into the offline kit, so it needs nothing beyond
the standard library and Papillon's keys module (itself cryptography and PyNaCl only). The script importing it
has already put the folder holding ``papillon/`` on ``sys.path``.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from papillon import keys


class Refusal(Exception):
    """A problem to report in one line, with no traceback."""


def read_passphrase(path: Path | None, prompt: str, *, again: str | None = None) -> bytes:
    """The passphrase from the first line of ``path``, else typed at ``prompt`` (and typed twice when ``again``
    asks for it a second time, so a new key is not sealed under a typing slip)."""
    if path is not None:
        try:
            return keys.read_passphrase_file(path)
        except keys.KeyFileError as exc:
            raise Refusal(str(exc)) from exc
    passphrase = getpass.getpass(prompt).encode("utf-8")
    if again is not None and getpass.getpass(again).encode("utf-8") != passphrase:
        raise Refusal("the two passphrases differ; nothing was written")
    return passphrase


def owner_only(path: str, flags: int) -> int:
    """Open for ``open(opener=...)`` so that a new file is readable by its owner alone: keys and plaintext."""
    return os.open(path, flags, 0o600)


def write_private(path: Path, text: str) -> None:
    """A new UTF-8 file only its owner can read; an existing file is never replaced."""
    with open(path, "x", encoding="utf-8", opener=owner_only) as fh:
        fh.write(text)
