"""How fast the laptop opens a bundle, against a bare loop of HPKE decryption over the same ciphertexts.

Run from the project root: ``python -m benchmarks.decrypt [--sizes 10000 100000]``. For each size it seals
that many typical open-letter signatures into a bundle, then, in one run, times:

- the bare loop: ``Suite.decrypt`` over the very same sealed copies, already in memory, one core;
- the floor: the least any opener must do with each line, in this process on one core: parse the line and
  its envelope, decrypt, parse the answers and write them as a line, with no checks at all;
- ``scripts/decrypt.py --jobs 1`` and ``--jobs 2``, as staff run it (a fresh process reading the bundle file,
  writing the spreadsheets; the key is sealed with cheap passphrase settings so unlocking it costs nothing);

and prints records per second and each as a ratio of the bare loop, and the script's peak memory (its own
process; with ``--jobs 2`` the workers hold no records beyond their batch).
"""

from __future__ import annotations

import argparse
import binascii
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nacl.pwhash
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from papillon import bundle, campaigns, envelope, keys
from tests.browser_support import TYPICAL_ANSWERS, TYPICAL_FORM

ROOT = Path(__file__).resolve().parent.parent
FLOOR_MAX = 20_000  # the floor loop holds its bundle's lines in memory: measured on the smaller sizes only
PASSPHRASE = "benchmark passphrase, not secret"  # noqa: S105 - seals a throwaway key
# Runs decrypt in a fresh interpreter and reports its time and its own peak resident memory (VmHWM: unlike
# ru_maxrss, it does not carry over the high-water mark of the process that started it).
MEASURE = """
import re, runpy, sys, time
sys.argv = ["decrypt.py", *sys.argv[1:]]
start = time.perf_counter()
try:
    runpy.run_path("scripts/decrypt.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
took = time.perf_counter() - start
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
print("MEASURED", took, peak_kb, code, file=sys.stderr)
"""


def make_bundle(folder: Path, private: X25519PrivateKey, size: int) -> tuple[Path, list[bytes]]:
    campaign_slug, form_slug = TYPICAL_FORM
    campaign = campaigns.load_file(ROOT / "app" / "campaigns" / f"{campaign_slug}.toml")
    form = campaign.forms[form_slug]
    public = keys.PublicKey(name="bench", raw=keys.raw_public_bytes(private.public_key()))
    data = envelope.plaintext(TYPICAL_ANSWERS, form.version, "en")
    sealed_copies: list[bytes] = []

    def records() -> Iterator[bundle.Record]:
        for n in range(size):
            sealed = envelope.seal(data, [public], campaign_slug, form_slug)
            sealed_copies.append(sealed.sealed[public.key_id])
            yield bundle.Record(
                id=f"{n:032x}",
                campaign=campaign_slug,
                form=form_slug,
                received_on="2026-11-25",
                sealed_by="browser",
                envelope=sealed.to_json(),
            )

    path = folder / f"bench-{size}.bundle"
    bundle.write(
        path,
        records(),
        created_on="2026-11-25",
        key_ids=[public.key_id],
        campaigns={campaign_slug: campaign.source},
    )
    return path, sealed_copies


def bare_loop(private: X25519PrivateKey, sealed_copies: list[bytes]) -> float:
    place = envelope.info(*TYPICAL_FORM)
    start = time.perf_counter()
    for ct in sealed_copies:
        envelope.SUITE.decrypt(ct, private, info=place)
    return time.perf_counter() - start


def floor_loop(private: X25519PrivateKey, bundle_path: Path) -> float:
    place = envelope.info(*TYPICAL_FORM)
    out = io.StringIO()
    with bundle_path.open("rb") as fh:
        lines = fh.readlines()[1:-1]
    start = time.perf_counter()
    for line in lines:
        sealed = json.loads(json.loads(line)["envelope"])["recipients"][0]["sealed"]
        doc = json.loads(envelope.SUITE.decrypt(binascii.a2b_base64(sealed), private, info=place))
        out.write(",".join(str(v) for v in doc["answers"].values()) + "\r\n")
    return time.perf_counter() - start


def run_decrypt(bundle_path: Path, key_file: Path, out: Path, jobs: int) -> tuple[float, int]:
    args = [str(bundle_path), "--key", str(key_file), "--out", str(out), "--jobs", str(jobs)]
    args += ["--passphrase-file", str(key_file.parent / "passphrase.txt")]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    line = next((x for x in result.stderr.splitlines() if x.startswith("MEASURED")), None)
    if line is None or line.split()[3] != "0":
        raise SystemExit(f"decrypt failed:\n{result.stderr}")
    _, took, peak_kb, _ = line.split()
    return float(took), int(peak_kb)


def write_key(folder: Path, private: X25519PrivateKey) -> Path:
    """The key file decrypt opens, sealed with the cheapest settings so that unlocking it is not what is timed."""
    key_file = folder / "bench.key"
    key_file.write_text(
        keys.dumps_private(
            "bench",
            private,
            PASSPHRASE.encode(),
            opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
            memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN,
        )
    )
    (folder / "passphrase.txt").write_text(PASSPHRASE + "\n")
    return key_file


def measure(key_file: Path, private: X25519PrivateKey, size: int, jobs: list[int]) -> dict[str, object]:
    """One size's row of the table: the bare loop, the floor, and decrypt with each number of jobs."""
    folder = key_file.parent
    print(f"sealing {size} records...", file=sys.stderr)
    bundle_path, sealed_copies = make_bundle(folder, private, size)
    bare = bare_loop(private, sealed_copies)
    del sealed_copies
    floor = floor_loop(private, bundle_path) if size <= FLOOR_MAX else None
    row: dict[str, object] = {"records": size, "bare loop /s": round(size / bare)}
    row["floor ratio"] = round(bare / floor, 2) if floor else "-"
    for n in jobs:
        took, peak_kb = run_decrypt(bundle_path, key_file, folder / f"out-{size}-{n}", n)
        row[f"jobs {n} /s"] = round(size / took)
        row[f"jobs {n} ratio"] = round(bare / took, 2)
        row[f"jobs {n} peak MB"] = round(peak_kb / 1024, 1)
    bundle_path.unlink()
    return row


def print_table(rows: list[dict[str, object]]) -> None:
    """The rows as a Markdown table on stdout, and as JSON on stderr for a program to read."""
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")
    print(json.dumps(rows), file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    private = X25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="papillon-bench-") as tmp:
        key_file = write_key(Path(tmp), private)
        rows = [measure(key_file, private, size, args.jobs) for size in args.sizes]
    print_table(rows)


if __name__ == "__main__":
    main()
