"""What every laptop script needs: one-line refusals, the passphrase and the private key, files only their owner
can read, and a progress bar.

Shared by keygen.py, decrypt.py and reply.py, and copied with them into the offline kit, so it needs nothing beyond
the standard library and Papillon's keys module (itself cryptography and PyNaCl only). The script importing it
has already put the folder holding ``papillon/`` on ``sys.path``.
"""

from __future__ import annotations

import getpass
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

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


def load_private(path: Path, passphrase_file: Path | None) -> keys.PrivateKey:
    """The private key of a key file, unlocked: the key file is read before the passphrase is asked for, so a
    wrong path costs no typing."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refusal(f"cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    passphrase = read_passphrase(passphrase_file, "Passphrase for the private key: ")
    print("Unlocking the private key (this takes a moment)...", file=sys.stderr)
    try:
        return keys.loads_private(text, passphrase, str(path))
    except keys.KeyFileError as exc:
        raise Refusal(str(exc)) from exc


class ProgressBar:
    """A progress bar on a terminal: the records read of ``total``, and what ``counted`` makes of the tally so far;
    nothing when the output goes to a file."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        stream = stream or sys.stderr
        self.total, self.stream, self.read = total, stream, 0
        self.shown = stream.isatty() and total > 0
        self.step = max(1, total // 200)

    def counted(self, tally: Mapping[str, int]) -> str:
        """What the records read so far came to, in the words of the script showing the bar."""
        return "records read"

    def advance(self, read: int, tally: Mapping[str, int]) -> None:
        """``read`` more records were read; ``tally`` counts what became of them so far."""
        before = self.read
        self.read += read
        if self.shown and (self.read // self.step != before // self.step or self.read >= self.total):
            filled = 30 * min(self.read, self.total) // self.total
            bar = "#" * filled + "." * (30 - filled)
            print(f"\r[{bar}] {self.read} of {self.total} {self.counted(tally)}", end="", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(file=self.stream)


NOTHING_KEPT = 2


def exit_code(script: str, work: Callable[[], int], *, writing: str, kept: str) -> int:
    """Run a script's work and return its exit code. A refusal, a failed write (a full disk) or an unexpected error
    is said in one line on standard error, after the traceback for the last, and the script keeps nothing (2):
    ``writing`` names what it could not write, ``kept`` what is left of it."""
    try:
        return work()
    except Refusal as exc:
        print(f"{script}: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"{script}: cannot write {writing}: {exc}. {kept}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
        print(f"{script}: stopped by an unexpected error (please report it). {kept}", file=sys.stderr)
    return NOTHING_KEPT
