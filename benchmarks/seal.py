"""How long sealing a typical submission takes in Chromium, and how large the sealing script is.

Run from the project root: ``python -m benchmarks.seal [--runs N]``. It serves the app on a free local
port with a throw-away key and database, times ``PapillonSeal.buildEnvelope`` inside a real form page,
and, in the same run, times the server's own seal of the same answers for a side-by-side ratio.
Targets from the issue: a median under 5 ms, and seal.js under 4 KB gzipped.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from playwright.sync_api import sync_playwright

from app import create_app
from app.site import site
from app.storage import db
from papillon import envelope, keys
from tests.browser_support import (
    SEAL_JS,
    SEAL_JS_GZIP_BUDGET,
    TIME_BUILD_ENVELOPE,
    TYPICAL_ANSWERS,
    TYPICAL_FORM,
    launch_chromium,
    median,
    percentile,
    seal_js_gzip_size,
    serve,
)

TARGET_MS = 5.0


def bench_app(folder: Path, private: X25519PrivateKey) -> Flask:
    """The app with a throw-away key and database in ``folder``."""
    (folder / "keys").mkdir()
    (folder / "keys" / "bench.pub").write_text(keys.dumps_public("bench", private.public_key()))
    app = create_app(
        {
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
            "PAPILLON_KEYS_DIR": str(folder / "keys"),
            "RATELIMIT_ENABLED": False,
        }
    )
    with app.app_context():
        db.create_schema()
    return app


def server_seal_times(app: Flask, answers: Mapping[str, object], runs: int, warmup: int) -> list[float]:
    """The no-JavaScript path: the server pads and seals the same answers to the same keys."""
    campaign, form = TYPICAL_FORM
    definition = site(app).campaigns[campaign].forms[form]
    public_keys = site(app).keys
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        envelope.seal(envelope.plaintext(answers, definition.version, "en"), public_keys, campaign, form)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="papillon-bench-") as tmp:
        private = X25519PrivateKey.generate()
        app = bench_app(Path(tmp), private)

        campaign, form = TYPICAL_FORM
        with serve(app) as server, sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page()
                page.goto(f"{server}/{campaign}/{form}")
                page.wait_for_function("globalThis.PapillonSeal !== undefined")
                result = page.evaluate(TIME_BUILD_ENVELOPE, [TYPICAL_ANSWERS, args.runs, args.warmup])
                version = browser.version
            finally:
                browser.close()

        # The last envelope must open: a fast seal that does not open measures nothing.
        sealed = envelope.parse(result["envelope"], [k.key_id for k in site(app).keys])
        doc = envelope.open_envelope(sealed, private, campaign, form)
        if doc["answers"] != TYPICAL_ANSWERS:
            raise SystemExit("the browser's envelope did not open to the answers it was given")
        python_times = server_seal_times(app, TYPICAL_ANSWERS, args.runs, args.warmup)

    browser_times = result["times"]
    answers_bytes = len(json.dumps(TYPICAL_ANSWERS, ensure_ascii=False, separators=(",", ":")).encode())
    gz = seal_js_gzip_size()
    b_median, p_median = median(browser_times), median(python_times)
    print(f"Chromium {version}; {args.runs} runs after {args.warmup} warm-up; one organizer key")
    print(f"answers: {answers_bytes} bytes of JSON ({campaign}/{form}), sealed padded to {sealed.padded_length} bytes")
    print(
        f"browser PapillonSeal.buildEnvelope: median {b_median:.3f} ms, p90 {percentile(browser_times, 0.9):.3f} ms"
        f" (target < {TARGET_MS:g} ms: {'met' if b_median < TARGET_MS else 'MISSED'};"
        f" timer {'cross-origin isolated' if result['isolated'] else 'coarse'})"
    )
    print(f"server envelope.seal(plaintext(...)): median {p_median:.3f} ms, p90 {percentile(python_times, 0.9):.3f} ms")
    print(f"ratio browser / server (medians): {b_median / p_median:.1f}x")
    print(
        f"seal.js: {SEAL_JS.stat().st_size} bytes, {gz} bytes gzip -9"
        f" (budget < {SEAL_JS_GZIP_BUDGET} bytes: {'met' if gz < SEAL_JS_GZIP_BUDGET else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
