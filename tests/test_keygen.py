"""scripts/keygen.py: make a key pair on the laptop, and refuse every way of losing or weakening one."""

from __future__ import annotations

import getpass
import stat

import nacl.pwhash
import pytest

from papillon import keys

PASSPHRASE = "a passphrase long enough"


@pytest.fixture
def passphrase_file(tmp_path):
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\nignored second line\n")
    return path


def test_keygen_writes_a_public_and_a_private_key_file(keygen, tmp_path, passphrase_file, capsys):
    out = tmp_path / "laptop"
    assert keygen.main(["--out", str(out), "--name", "butterfly-2026", "--passphrase-file", str(passphrase_file)]) == 0
    public = keys.loads_public((out / "butterfly-2026.pub").read_text(), "butterfly-2026.pub")
    private = keys.loads_private((out / "butterfly-2026.key").read_text(), PASSPHRASE.encode(), "butterfly-2026.key")
    assert public.name == private.name == "butterfly-2026"
    assert public.key_id == private.key_id
    assert sorted(p.name for p in out.iterdir()) == ["butterfly-2026.key", "butterfly-2026.pub"]


def test_keygen_private_key_file_is_readable_by_its_owner_only(keygen, tmp_path, passphrase_file):
    assert keygen.main(["--out", str(tmp_path), "--name", "k", "--passphrase-file", str(passphrase_file)]) == 0
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


def test_keygen_uses_the_configured_argon2_costs(keygen, tmp_path, passphrase_file):
    assert keygen.main(["--out", str(tmp_path), "--name", "k", "--passphrase-file", str(passphrase_file)]) == 0
    assert f'"opslimit": {nacl.pwhash.argon2id.OPSLIMIT_MIN}' in (tmp_path / "k.key").read_text()


def test_keygen_public_key_is_accepted_by_the_server_keys_folder(keygen, tmp_path, passphrase_file):
    out = tmp_path / "laptop"
    assert keygen.main(["--out", str(out), "--name", "k", "--passphrase-file", str(passphrase_file)]) == 0
    server_keys = tmp_path / "server-keys"
    server_keys.mkdir()
    (server_keys / "k.pub").write_bytes((out / "k.pub").read_bytes())
    assert [k.name for k in keys.load_public_dir(server_keys)] == ["k"]
    (server_keys / "k.key").write_bytes((out / "k.key").read_bytes())
    with pytest.raises(keys.KeyFileError, match="private key"):
        keys.load_public_dir(server_keys)


def test_keygen_demo_marks_the_public_key_as_the_demo_key(keygen, tmp_path, passphrase_file):
    args = ["--out", str(tmp_path), "--passphrase-file", str(passphrase_file)]
    assert keygen.main([*args, "--name", "try", "--demo"]) == 0
    assert keygen.main([*args, "--name", "real"]) == 0
    assert keys.loads_public((tmp_path / "try.pub").read_text()).demo is True
    assert keys.loads_public((tmp_path / "real.pub").read_text()).demo is False


def test_keygen_prints_the_fingerprint(keygen, tmp_path, passphrase_file, capsys):
    assert keygen.main(["--out", str(tmp_path), "--name", "k", "--passphrase-file", str(passphrase_file)]) == 0
    public = keys.loads_public((tmp_path / "k.pub").read_text())
    out = capsys.readouterr().out
    assert f"Fingerprint: {public.fingerprint}" in out
    assert PASSPHRASE not in out


def test_keygen_refuses_a_short_passphrase(keygen, tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("elevenchars\n")
    out = tmp_path / "laptop"
    assert keygen.main(["--out", str(out), "--name", "k", "--passphrase-file", str(short)]) == 2
    err = capsys.readouterr().err
    assert "at least 12 characters" in err
    assert "Traceback" not in err
    assert not (out / "k.key").exists()
    assert not (out / "k.pub").exists()


@pytest.mark.parametrize("existing", ["k.pub", "k.key"])
def test_keygen_refuses_to_overwrite_a_key(keygen, tmp_path, passphrase_file, capsys, existing):
    (tmp_path / existing).write_text("an earlier key")
    assert keygen.main(["--out", str(tmp_path), "--name", "k", "--passphrase-file", str(passphrase_file)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / existing).read_text() == "an earlier key"
    other = "k.key" if existing == "k.pub" else "k.pub"
    assert not (tmp_path / other).exists()


def test_keygen_refuses_when_the_two_typed_passphrases_differ(keygen, tmp_path, monkeypatch, capsys):
    typed = iter(["the first passphrase typed", "the second passphrase typed"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(typed))
    assert keygen.main(["--out", str(tmp_path), "--name", "k"]) == 2
    assert "the two passphrases differ" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keygen_accepts_the_same_passphrase_typed_twice(keygen, tmp_path, monkeypatch):
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return PASSPHRASE

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert keygen.main(["--out", str(tmp_path), "--name", "k"]) == 0
    assert len(prompts) == 2
    keys.loads_private((tmp_path / "k.key").read_text(), PASSPHRASE.encode())


@pytest.mark.parametrize("name", ["../escape", "with space", "", "-leading"])
def test_keygen_refuses_a_name_that_is_not_a_plain_word(keygen, tmp_path, passphrase_file, capsys, name):
    assert keygen.main(["--out", str(tmp_path), f"--name={name}", "--passphrase-file", str(passphrase_file)]) == 2
    assert "the name may hold" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [passphrase_file]


def test_keygen_reports_a_missing_passphrase_file_in_one_line(keygen, tmp_path, capsys):
    assert keygen.main(["--out", str(tmp_path), "--name", "k", "--passphrase-file", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keygen: cannot read the passphrase file")
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
