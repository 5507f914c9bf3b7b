"""Make an organizer key pair on the offline laptop.

    python scripts/keygen.py --out DIR --name NAME [--passphrase-file FILE] [--demo]

Writes DIR/NAME.pub (copy it to the server's keys/ folder) and DIR/NAME.key (the
private key sealed under your passphrase; it never leaves the laptop).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from papillon import keys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make a Papillon key pair (run this on the offline laptop).")
    parser.add_argument("--out", required=True, type=Path, help="folder to write NAME.pub and NAME.key into")
    parser.add_argument("--name", required=True, help="a short name for the key, e.g. butterfly-2026")
    parser.add_argument("--passphrase-file", type=Path, help="read the passphrase from the first line of this file")
    parser.add_argument(
        "--demo", action="store_true", help="mark the key as a demo key, which the server refuses outside 'make run'"
    )
    args = parser.parse_args(argv)
    try:
        if not NAME.fullmatch(args.name):
            raise Refusal("the name may hold letters, digits, - and _ only")
        pub_path, key_path = args.out / f"{args.name}.pub", args.out / f"{args.name}.key"
        for path in (pub_path, key_path):
            if path.exists():
                raise Refusal(f"{path} already exists; choose another name so no key is overwritten")
        passphrase = read_passphrase(args.passphrase_file)
        private = X25519PrivateKey.generate()
        args.out.mkdir(parents=True, exist_ok=True)
        print("Sealing the private key under your passphrase (this takes a moment)...", file=sys.stderr)
        sealed = keys.dumps_private(args.name, private, passphrase)
        with open(key_path, "x", encoding="utf-8", opener=_private_opener) as fh:
            fh.write(sealed)
        pub_path.write_text(keys.dumps_public(args.name, private.public_key(), demo=args.demo), encoding="utf-8")
    except Refusal as exc:
        print(f"keygen: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"keygen: cannot write the key files: {exc}", file=sys.stderr)
        return 2
    fingerprint = keys.fingerprint(keys.raw_public_bytes(private.public_key()))
    print(f"Public key:  {pub_path}   (copy this to the server's keys/ folder)")
    print(f"Private key: {key_path}   (keep this on the laptop, with a backup; never on the server)")
    print(f"Fingerprint: {fingerprint}")
    print("The form pages show this fingerprint: check that they match.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
