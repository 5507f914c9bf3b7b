"""Cross-cutting: `make run`'s demo key. Its private half and passphrase sit on the same machine, so create_app
refuses it unless told otherwise, every page then says so, and only `make run` tells it otherwise; the answers sent
meanwhile open with the demo key by the README's own steps. (keygen --demo marking the key: tests/test_keygen.py; a
key file saying it is a demo key: tests/test_keys.py.)"""

from __future__ import annotations

import csv
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pages import ROOT, SIGNATURE, decrypt_args, form_data, page_tokens

from app import StartupError, create_app
from app.storage import db
from papillon import keys

BANNER = "Demo key: answers sent here can be read by anyone with this server."


@pytest.fixture(params=["marked", "named"])
def demo_keys_dir(request, keys_dir):
    """The keys folder with a demo key beside the organizer's: marked by keygen --demo, or only by its old name."""
    public = X25519PrivateKey.generate().public_key()
    text = (
        keys.dumps_public("try-papillon", public, demo=True)
        if request.param == "marked"
        else keys.dumps_public("demo-NOT-FOR-REAL-USE", public)
    )
    (keys_dir / "demo.pub").write_text(text)
    return keys_dir


def test_the_demo_key_stops_the_app_with_a_message_that_says_how_to_replace_it(config, demo_keys_dir):
    with pytest.raises(StartupError) as err:
        create_app(config)
    message = str(err.value)
    assert "demo key" in message
    assert "scripts/keygen.py" in message
    assert str(demo_keys_dir) in message


def test_the_demo_key_is_accepted_only_when_allowed_and_every_page_then_says_so(config, demo_keys_dir):
    client = create_app({**config, "PAPILLON_ALLOW_DEMO_KEY": True}).test_client()
    for path in ["/", "/petition/", "/petition/sign"]:
        assert BANNER in client.get(path).get_data(as_text=True), path


def test_without_a_demo_key_no_page_shows_the_banner(config):
    client = create_app({**config, "PAPILLON_ALLOW_DEMO_KEY": True}).test_client()
    assert BANNER not in client.get("/petition/sign").get_data(as_text=True)


def test_only_make_run_allows_the_demo_key():
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.M | re.S).group()
    assert run.count("PAPILLON_ALLOW_DEMO_KEY=true") == 2  # db upgrade and the server
    assert "--demo" in makefile
    for path in ["wsgi.py", "gunicorn.conf.py", ".ci/run", "app/config.py", "docs/deploy.md"]:
        text = (ROOT / path).read_text()
        assert not re.search(r"PAPILLON_ALLOW_DEMO_KEY\s*=\s*(true|True|1)", text), path


# --- answers collected under the demo key: the README's steps, run as written ---------------------------------------

DEMO_SECTION = "### Answers collected under the demo key"


def documented_demo_commands() -> list[list[str]]:
    """The commands the README gives for the answers sent while the demo key was in use, split as a shell would."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(DEMO_SECTION, 1)[1].split("\n#", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's demo key section shows no commands"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def make_demo_key(machine: Path) -> subprocess.CompletedProcess[str]:
    """`make demo-key`, the step of `make run` that makes the demo key, in a copy of the project's Makefile beside its
    scripts and an empty keys/ folder, with this test's own Python environment (never installed again)."""
    shutil.copy(ROOT / "Makefile", machine)
    for name in ("scripts", "papillon"):
        (machine / name).symlink_to(ROOT / name)
    (machine / "keys").mkdir()
    venv = Path(sys.prefix)
    command = ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.installed", "demo-key"]
    return subprocess.run(command, cwd=machine, capture_output=True, text=True, check=False, timeout=120)


def test_answers_sent_under_the_demo_key_open_with_it_by_the_readme_s_steps_and_are_then_purged(
    config, organizer_key, organizer_key_file, tmp_path, monkeypatch
):
    machine = tmp_path / "machine"
    machine.mkdir()
    made = make_demo_key(machine)
    assert made.returncode == 0, made.stderr
    assert "DEMO KEY" in made.stdout
    settings = {**config, "PAPILLON_KEYS_DIR": str(machine / "keys")}

    # Someone tries Papillon out under `make run`, and sends a signature sealed to the demo key.
    demo = create_app({**settings, "PAPILLON_ALLOW_DEMO_KEY": True})
    with demo.app_context():
        db.create_schema()
    client = demo.test_client()
    answers = {**SIGNATURE, "name": "Zqv tried the demo"}
    posted = client.post("/petition/sign", data={**page_tokens(client), **form_data(answers)})
    assert posted.status_code == 303

    # The key is replaced as the README's step 2 says: the demo key's .pub out of keys/, the real one in.
    (machine / "keys" / "demo-NOT-FOR-REAL-USE.pub").unlink()
    (machine / "keys" / "organizer.pub").write_text(keys.dumps_public("organizer", organizer_key.public_key()))
    runner = create_app(settings).test_cli_runner()

    # Then the README's commands, in the folder `make run` ran in.
    monkeypatch.chdir(machine)
    export, opening, purge = documented_demo_commands()
    assert export[:3] == purge[:3] == [".venv/bin/flask", "--app", "wsgi"]
    exported = runner.invoke(args=export[3:])
    assert exported.exit_code == 0, exported.output
    assert opening[:2] == [".venv/bin/python", "scripts/decrypt.py"]
    opened = subprocess.run([sys.executable, *opening[1:]], capture_output=True, text=True, check=False, timeout=120)
    assert opened.returncode == 0, opened.stderr
    out = machine / opening[opening.index("--out") + 1]
    with (out / "petition-sign.csv").open(encoding="utf-8-sig", newline="") as fh:
        assert [row["Your name"] for row in csv.DictReader(fh)] == ["Zqv tried the demo"]

    # The new key cannot open them: they were sealed to the demo key only.
    bundle_path = machine / export[export.index("--out") + 1]
    with_new_key = subprocess.run(
        [sys.executable, "scripts/decrypt.py", *decrypt_args(bundle_path, organizer_key_file, tmp_path / "new")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert with_new_key.returncode == 2
    assert "opens none of the 1 record(s)" in with_new_key.stderr

    assert purge[3:] == ["purge"]
    assert runner.invoke(args=purge[3:], input="y\n").exit_code == 0
    assert runner.invoke(args=["status"]).output == "No records.\n"
