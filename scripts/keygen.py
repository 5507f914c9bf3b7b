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
import getpass
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from papillon import keys, paper

MIN_PASSPHRASE = 12
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class Refusal(Exception):
    """A problem to report in one line, with no traceback."""


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def read_passphrase(path: Path | None) -> bytes:
    if path is not None:
        try:
            passphrase = keys.read_passphrase_file(path)
        except keys.KeyFileError as exc:
            raise Refusal(str(exc)) from exc
    else:
        passphrase = getpass.getpass("Passphrase for the new private key: ").encode("utf-8")
        if getpass.getpass("The same passphrase again: ").encode("utf-8") != passphrase:
            raise Refusal("the two passphrases differ; nothing was written")
    if len(passphrase.decode("utf-8")) < MIN_PASSPHRASE:
        raise Refusal(f"the passphrase must be at least {MIN_PASSPHRASE} characters; nothing was written")
    return passphrase


def write_private(path: Path, text: str) -> None:
    with open(path, "x", encoding="utf-8", opener=_private_opener) as fh:
        fh.write(text)


def write_sheet(path: Path, name: str, sealed: keys.SealedKey) -> None:
    if path.exists():
        raise Refusal(f"{path} already exists; choose another file name so no sheet is overwritten")
    with open(path, "x", encoding="utf-8", opener=_private_opener) as fh:
        fh.write(paper.Sheet(name, sealed).text())


def targets(out: Path, name: str) -> tuple[Path, Path]:
    if not NAME.fullmatch(name):
        raise Refusal("the name may hold letters, digits, - and _ only")
    pub_path, key_path = out / f"{name}.pub", out / f"{name}.key"
    for path in (pub_path, key_path):
        if path.exists():
            raise Refusal(f"{path} already exists; choose another name so no key is overwritten")
    return pub_path, key_path


def generate(args: argparse.Namespace) -> keys.SealedKey:
    pub_path, key_path = targets(args.out, args.name)
    if args.paper is not None and args.paper.exists():
        raise Refusal(f"{args.paper} already exists; choose another file name so no sheet is overwritten")
    passphrase = read_passphrase(args.passphrase_file)
    private = X25519PrivateKey.generate()
    args.out.mkdir(parents=True, exist_ok=True)
    print("Sealing the private key under your passphrase (this takes a moment)...", file=sys.stderr)
    sealed_text = keys.dumps_private(args.name, private, passphrase)
    write_private(key_path, sealed_text)
    pub_path.write_text(keys.dumps_public(args.name, private.public_key(), demo=args.demo), encoding="utf-8")
    print(f"Public key:  {pub_path}   (copy this to the server's keys/ folder)")
    print(f"Private key: {key_path}   (keep this on the laptop, with a backup; never on the server)")
    return keys.sealed_contents(sealed_text, str(key_path))


def restore(args: argparse.Namespace) -> keys.SealedKey:
    try:
        text = args.restore.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise Refusal(f"cannot read the sheet {args.restore}: {exc.strerror}") from exc
    try:
        sealed = paper.restore(text)
    except paper.SheetError as exc:
        raise Refusal(f"{args.restore}: {exc}; nothing was written") from exc
    pub_path, key_path = targets(args.out, args.name)
    args.out.mkdir(parents=True, exist_ok=True)
    write_private(key_path, sealed.dumps(args.name))
    public = X25519PublicKey.from_public_bytes(sealed.public)
    pub_path.write_text(keys.dumps_public(args.name, public), encoding="utf-8")
    print(f"Private key: {key_path}   (rebuilt from the sheet; it opens with the same passphrase as before)")
    print(f"Public key:  {pub_path}")
    return sealed


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    if args.from_key is not None and (args.paper is None or args.restore or args.out or args.name is not None):
        parser.error("--from KEYFILE goes with --paper SHEET alone")
    if args.from_key is None and (args.out is None or args.name is None):
        parser.error("--out and --name are needed (or --paper SHEET --from KEYFILE)")
    if args.restore is not None and args.paper is not None:
        parser.error("--restore and --paper are separate steps")
    try:
        if args.from_key is not None:
            try:
                sealed = keys.sealed_contents(args.from_key.read_text(encoding="utf-8"), str(args.from_key))
            except (OSError, UnicodeDecodeError) as exc:
                raise Refusal(f"cannot read the key file {args.from_key}: {exc}") from exc
            except keys.KeyFileError as exc:
                raise Refusal(str(exc)) from exc
            name = args.from_key.stem
        elif args.restore is not None:
            sealed, name = restore(args), args.name
        else:
            sealed, name = generate(args), args.name
        if args.paper is not None:
            write_sheet(args.paper, name, sealed)
            print(f"Recovery sheet: {args.paper}   (print it, keep it apart from the laptop, then delete the file)")
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
