"""Make an organizer key pair on the offline laptop, and keep it on paper.

    python scripts/keygen.py --out DIR --name NAME [--passphrase-file FILE] [--paper SHEET] [--demo]
    python scripts/keygen.py --paper SHEET --from KEYFILE
    python scripts/keygen.py --restore SHEET --out DIR --name NAME

Writes DIR/NAME.pub (copy it to the server's keys/ folder) and DIR/NAME.key (the
private key sealed under your passphrase; it never leaves the laptop). --paper also
writes a recovery sheet to print: the key still sealed, in short groups with a check
on every line; --restore rebuilds the key file from such a sheet typed back in.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# Papillon's formats (papillon/, beside this folder) and laptop.py (in it), found the same way whether the script
# runs from the project, from the offline kit, or is loaded by path as the tests do.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from laptop import Refusal, read_passphrase, write_private

from papillon import keys, paper

MIN_PASSPHRASE = 12
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Options:
    """The command line, read: which key to make, restore or put on paper, and where."""

    out: Path | None
    name: str | None
    passphrase_file: Path | None
    demo: bool
    paper: Path | None
    from_key: Path | None
    restore: Path | None


def new_passphrase(path: Path | None) -> bytes:
    """The passphrase a new key is sealed under: typed twice unless read from a file, and never a short one."""
    passphrase = read_passphrase(path, "Passphrase for the new private key: ", again="The same passphrase again: ")
    if len(passphrase.decode("utf-8")) < MIN_PASSPHRASE:
        raise Refusal(f"the passphrase must be at least {MIN_PASSPHRASE} characters; nothing was written")
    return passphrase


def write_sheet(path: Path, name: str, sealed: keys.SealedKey) -> None:
    if path.exists():
        raise Refusal(f"{path} already exists; choose another file name so no sheet is overwritten")
    write_private(path, paper.Sheet(name, sealed).text())


def targets(out: Path, name: str) -> tuple[Path, Path]:
    if not NAME.fullmatch(name):
        raise Refusal("the name may hold letters, digits, - and _ only")
    pub_path, key_path = out / f"{name}.pub", out / f"{name}.key"
    for path in (pub_path, key_path):
        if path.exists():
            raise Refusal(f"{path} already exists; choose another name so no key is overwritten")
    return pub_path, key_path


def generate(out: Path, name: str, *, passphrase_file: Path | None, demo: bool, sheet: Path | None) -> keys.SealedKey:
    """A new key pair in ``out``; every refusal comes before the passphrase is asked for or a file is written."""
    pub_path, key_path = targets(out, name)
    if sheet is not None and sheet.exists():
        raise Refusal(f"{sheet} already exists; choose another file name so no sheet is overwritten")
    passphrase = new_passphrase(passphrase_file)
    private = X25519PrivateKey.generate()
    out.mkdir(parents=True, exist_ok=True)
    print("Sealing the private key under your passphrase (this takes a moment)...", file=sys.stderr)
    sealed_text = keys.dumps_private(name, private, passphrase)
    write_private(key_path, sealed_text)
    pub_path.write_text(keys.dumps_public(name, private.public_key(), demo=demo), encoding="utf-8")
    print(f"Public key:  {pub_path}   (copy this to the server's keys/ folder)")
    print(f"Private key: {key_path}   (keep this on the laptop, with a backup; never on the server)")
    return keys.sealed_contents(sealed_text, str(key_path))


def restore(sheet: Path, out: Path, name: str) -> keys.SealedKey:
    """The key file and its public key rebuilt from a typed recovery sheet; the passphrase stays the same."""
    try:
        text = sheet.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise Refusal(f"cannot read the sheet {sheet}: {exc.strerror}") from exc
    try:
        sealed = paper.restore(text)
    except paper.SheetError as exc:
        raise Refusal(f"{sheet}: {exc}; nothing was written") from exc
    pub_path, key_path = targets(out, name)
    out.mkdir(parents=True, exist_ok=True)
    write_private(key_path, sealed.dumps(name))
    public = X25519PublicKey.from_public_bytes(sealed.public)
    pub_path.write_text(keys.dumps_public(name, public), encoding="utf-8")
    print(f"Private key: {key_path}   (rebuilt from the sheet; it opens with the same passphrase as before)")
    print(f"Public key:  {pub_path}")
    return sealed


def existing(path: Path) -> keys.SealedKey:
    """The sealed key in an existing key file, to put on paper; the passphrase is not needed."""
    try:
        return keys.sealed_contents(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise Refusal(f"cannot read the key file {path}: {exc}") from exc
    except keys.KeyFileError as exc:
        raise Refusal(str(exc)) from exc


def the_key(options: Options) -> tuple[keys.SealedKey, str]:
    """The key this run is about, and its name: read from a key file, restored from a sheet, or made."""
    if options.from_key is not None:
        return existing(options.from_key), options.from_key.stem
    # read_options asks for both whenever there is no --from.
    assert options.out is not None
    assert options.name is not None
    out, name = options.out, options.name
    if options.restore is not None:
        return restore(options.restore, out, name), name
    made = generate(out, name, passphrase_file=options.passphrase_file, demo=options.demo, sheet=options.paper)
    return made, name


def read_options(argv: list[str] | None) -> Options:
    """The command line, with the combinations that make no sense refused as usage errors."""
    parser = argparse.ArgumentParser(description="Make a Papillon key pair (run this on the offline laptop).")
    parser.add_argument("--out", type=Path, help="folder to write NAME.pub and NAME.key into")
    parser.add_argument("--name", help="a short name for the key, e.g. butterfly-2026")
    parser.add_argument("--passphrase-file", type=Path, help="read the passphrase from the first line of this file")
    parser.add_argument(
        "--demo", action="store_true", help="mark the key as a demo key, which the server refuses outside 'make run'"
    )
    parser.add_argument("--paper", type=Path, metavar="SHEET", help="also write a recovery sheet to print")
    parser.add_argument("--from", dest="from_key", type=Path, metavar="KEYFILE", help="with --paper: an existing key")
    parser.add_argument("--restore", type=Path, metavar="SHEET", help="rebuild the key file from a typed sheet")
    options = Options(**vars(parser.parse_args(argv)))
    if options.from_key is not None and (
        options.paper is None or options.restore or options.out or options.name is not None
    ):
        parser.error("--from KEYFILE goes with --paper SHEET alone")
    if options.from_key is None and (options.out is None or options.name is None):
        parser.error("--out and --name are needed (or --paper SHEET --from KEYFILE)")
    if options.restore is not None and options.paper is not None:
        parser.error("--restore and --paper are separate steps")
    return options


def main(argv: list[str] | None = None) -> int:
    options = read_options(argv)
    try:
        sealed, name = the_key(options)
        if options.paper is not None:
            write_sheet(options.paper, name, sealed)
            print(f"Recovery sheet: {options.paper}   (print it, keep it apart from the laptop, then delete the file)")
    except Refusal as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"keygen: cannot write the key files: {exc}", file=sys.stderr)
        return 2
    print(f"Fingerprint: {keys.fingerprint(sealed.public)}")
    print("The form pages show this fingerprint: check that they match.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
