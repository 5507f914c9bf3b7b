"""What the tests need of a page and of the staff scripts, shared so that each is written once."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The campaigns made for the tests; only tests/test_campaigns.py and the page checks read the shipped ones.
CAMPAIGNS = ROOT / "tests" / "campaigns"
SHIPPED = ROOT / "app" / "campaigns"
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_id" type="hidden" value="([^"]+)"')
SHEET_LINE = re.compile(r"^\d{2}  .*  ..$")  # a numbered line of a paper recovery sheet, as printed


def form_tokens(html: str) -> dict[str, str]:
    """The hidden values a real page carries: the CSRF token and the submission id."""
    token, submission = TOKEN.search(html), SUBMISSION.search(html)
    assert token is not None, "the page carries no CSRF token"
    assert submission is not None, "the page carries no submission id"
    return {"csrf_token": token.group(1), "submission_id": submission.group(1)}


def form_data(answers: Mapping[str, object]) -> dict[str, object]:
    """Answers as a browser posts them: a ticked box as "y", an unticked one left out, a list as repeated values."""
    data: dict[str, object] = {}
    for name, value in answers.items():
        if value is True:
            data[name] = "y"
        elif value is not False:
            data[name] = value
    return data


def typed_sheet(sheet: str) -> str:
    """A recovery sheet's lines as a person types them back: lower case, O for zero, spaces as they come."""
    lines = [line for line in sheet.splitlines() if SHEET_LINE.match(line) or line.startswith("CHECK")]
    return "\n".join(" ".join(line.lower().replace("0", "o").split()) for line in lines) + "\n"


def decrypt_args(bundle: Path, key_file: Path, out: Path) -> list[str]:
    """Arguments for scripts/decrypt.py, with the passphrase file the ``organizer_key_file`` fixture writes."""
    passphrase = key_file.parent / "passphrase.txt"
    return [str(bundle), "--key", str(key_file), "--out", str(out), "--passphrase-file", str(passphrase)]


@dataclass(frozen=True)
class Laptop:
    """The offline kit installed in a fresh environment of its own, as on the staff laptop."""

    kit: Path
    python: Path
    offline: tuple[str, ...]  # the command prefix under which no network connection can be made

    def run(self, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
        """The kit environment's python with ``args``, with no network and none of this machine's Python settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
        env |= {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        command = [*self.offline, str(self.python), *map(str, args)]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)

    def script(self, name: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
        """One of the kit's staff scripts (``keygen``, ``decrypt``), run from the kit's own folder."""
        return self.run(self.kit / "scripts" / f"{name}.py", *args, cwd=cwd)
