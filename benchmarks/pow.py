"""What the proof of work asked of a shared address's visitors costs: the page, a spammer, and the server.

Run from the project root: ``python -m benchmarks.pow [--runs N]``. For the same random challenges, in one
run, it times the page's own search (``PapillonSeal.solvePow`` in Chromium, WebCrypto's PBKDF2), the same
search in Python (``hashlib``'s native PBKDF2, standing for a spammer's own program), and the server's check
of one stamp. The search takes a random number of tries, so medians over many challenges are what compare.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Browser, Playwright, sync_playwright

from app import pow
from app.config import Defaults
from benchmarks.seal import bench_app
from tests.browser_support import TYPICAL_FORM, launch_chromium, median, percentile, serve

SOLVE_IN_PAGE = """async ([challenges, bits, iterations]) => {
  const times = [], nonces = [];
  for (const challenge of challenges) {
    const start = performance.now();
    nonces.push(await PapillonSeal.solvePow({ challenge, bits, iterations }));
    times.push(performance.now() - start);
  }
  return { times, nonces };
}"""
# tests/browser_support.py leaves launch_chromium unannotated; this is the signature this benchmark relies on.
launch: Callable[[Playwright], Browser] = launch_chromium


@dataclass(frozen=True)
class PageRun:
    """What the page's own search did: how long each challenge took, the stamp it found, and the browser."""

    times: list[float]  # milliseconds, one per challenge
    nonces: list[str]
    version: str


def solve_in_page(challenges: list[bytes], bits: int, iterations: int) -> PageRun:
    """The page's own search for each challenge, in headless Chromium on the form page as served."""
    encoded = [base64.b64encode(c).decode() for c in challenges]
    with (
        tempfile.TemporaryDirectory(prefix="papillon-bench-") as tmp,
        serve(bench_app(Path(tmp), X25519PrivateKey.generate())) as server,
        sync_playwright() as playwright,
    ):
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.goto(f"{server}/{TYPICAL_FORM[0]}/{TYPICAL_FORM[1]}")
            page.wait_for_function("globalThis.PapillonSeal !== undefined")
            result = page.evaluate(SOLVE_IN_PAGE, [encoded, bits, iterations])
            return PageRun(times=list(result["times"]), nonces=list(result["nonces"]), version=browser.version)
        finally:
            browser.close()


def solve_in_python(
    challenges: list[bytes], page: PageRun, bits: int, iterations: int
) -> tuple[list[float], list[float]]:
    """Milliseconds for Python's search, which must find the page's stamp, and for the server's check of it."""
    native, checks = [], []
    for challenge, nonce in zip(challenges, page.nonces, strict=True):
        start = time.perf_counter()
        if pow.solve(challenge, bits, iterations) != nonce:
            raise SystemExit("the page and Python found different stamps for the same challenge")
        native.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        pow.verify(challenge, nonce, bits, iterations)
        checks.append((time.perf_counter() - start) * 1000)
    return native, checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--bits", type=int, default=Defaults.PAPILLON_POW_BITS)
    parser.add_argument("--iterations", type=int, default=Defaults.PAPILLON_POW_ITERATIONS)
    args = parser.parse_args(argv)
    challenges = [os.urandom(32) for _ in range(args.runs)]
    page = solve_in_page(challenges, args.bits, args.iterations)
    native, checks = solve_in_python(challenges, page, args.bits, args.iterations)

    page_ms, native_ms = median(page.times), median(native)
    print(f"Chromium {page.version}; {args.runs} challenges; {args.bits} bits, {args.iterations} PBKDF2 rounds per try")
    print(f"page (WebCrypto): median {page_ms:.0f} ms, p90 {percentile(page.times, 0.9):.0f} ms")
    print(f"Python (hashlib, as a spammer's program): median {native_ms:.0f} ms")
    print(f"ratio page / Python (medians): {page_ms / native_ms:.2f}x")
    print(f"server check of one stamp: median {median(checks):.2f} ms")


if __name__ == "__main__":
    main()
