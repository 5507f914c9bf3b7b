"""scripts/laptop.py, shared by keygen.py, decrypt.py and reply.py: the passphrase (from a file, or typed), one-line
refusals and exit codes, and new files only their owner can read that never replace an existing one."""

from __future__ import annotations

import getpass
import os
import stat
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest


@pytest.fixture
def laptop(script: Callable[[str], ModuleType]) -> ModuleType:
    return script("laptop")


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """Have getpass return these answers in turn; the prompts it was given are returned."""

    def answers(*texts: str) -> list[str]:
        prompts: list[str] = []
        replies: Iterator[str] = iter(texts)

        def fake_getpass(prompt: str = "") -> str:
            prompts.append(prompt)
            return next(replies)

        monkeypatch.setattr(getpass, "getpass", fake_getpass)
        return prompts

    return answers


def test_a_passphrase_file_gives_its_first_line_and_nothing_is_typed(laptop, typed, tmp_path):
    prompts = typed()
    path = tmp_path / "passphrase.txt"
    path.write_text("  spaces kept, ünïcode too  \nthe second line is not read\n", encoding="utf-8")
    assert laptop.read_passphrase(path, "Passphrase: ", again="Again: ") == "  spaces kept, ünïcode too  ".encode()
    assert prompts == []


def test_a_passphrase_file_that_is_not_text_is_a_refusal_naming_it(laptop, tmp_path):
    """A missing one is refused the same way: tests/test_keygen.py shows it in one line, with no traceback."""
    path = tmp_path / "passphrase.txt"
    path.write_bytes(b"\xff\xfe not UTF-8\n")
    with pytest.raises(laptop.Refusal, match="cannot read the passphrase file") as err:
        laptop.read_passphrase(path, "Passphrase: ")
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_without_a_file_the_passphrase_is_typed_once_when_not_asked_again(laptop, typed):
    """As decrypt.py asks for it; keygen.py asks twice (tests/test_keygen.py)."""
    prompts = typed("typed once, ünïcode")
    assert laptop.read_passphrase(None, "Passphrase: ") == "typed once, ünïcode".encode()
    assert prompts == ["Passphrase: "]


def test_a_private_file_is_readable_by_its_owner_only_whatever_the_umask(laptop, tmp_path):
    old = os.umask(0)
    try:
        laptop.write_private(tmp_path / "answers.csv", "王小明,ok\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "answers.csv").stat().st_mode) == 0o600
    assert (tmp_path / "answers.csv").read_text(encoding="utf-8") == "王小明,ok\n"


def test_a_private_file_never_replaces_an_existing_one(laptop, tmp_path):
    path = tmp_path / "organizer.key"
    path.write_text("the only copy of a key")
    with pytest.raises(FileExistsError):
        laptop.write_private(path, "something else")
    assert path.read_text() == "the only copy of a key"


def test_a_scripts_work_returns_its_own_exit_code_when_it_ends_well(laptop):
    assert laptop.exit_code("decrypt", lambda: 1, writing="the output", kept="Nothing was kept.") == 1


def test_a_refusal_a_failed_write_and_an_unexpected_error_each_say_one_line_and_exit_2(laptop, capsys):
    def refused() -> int:
        raise laptop.Refusal("the bundle is damaged")

    def full_disk() -> int:
        raise OSError(28, "No space left on device")

    def broken() -> int:
        raise ZeroDivisionError

    said = []
    for work in (refused, full_disk, broken):
        assert laptop.exit_code("reply", work, writing="the replies bundle", kept="Nothing was written.") == 2
        said.append(capsys.readouterr().err.splitlines()[-1])
    assert said == [
        "reply: the bundle is damaged",
        "reply: cannot write the replies bundle: [Errno 28] No space left on device. Nothing was written.",
        "reply: stopped by an unexpected error (please report it). Nothing was written.",
    ]
