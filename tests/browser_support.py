"""Helpers for driving the real app in headless Chromium: a live server, the browser, and what a page did.

Also used by ``python -m benchmarks.seal`` (run from the project root), so it imports nothing from conftest.
"""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Playwright
from playwright.sync_api import Request as PlaywrightRequest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

# Debian's package, which `make chromium` installs. PAPILLON_CHROMIUM, the Makefile's variable of the same name and
# default (which it passes on to the tests), chooses another.
CHROMIUM_SETTING = "PAPILLON_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SEAL_JS = Path(__file__).resolve().parent.parent / "app" / "static" / "seal.js"
SEAL_JS_GZIP_BUDGET = 4608
REPLIES_JS_GZIP_BUDGET = 3584
FAILED_LOAD = "Failed to load resource"
# What a script of ours must not do under the site's Content Security Policy (no inline style or markup built from
# strings, no code from strings, no script loaded on the fly).
CSP_UNSAFE = (
    "innerHTML",
    "outerHTML",
    "insertAdjacentHTML",
    "document.write",
    ".style",
    "eval(",
    "new Function",
    "import(",
    "setAttribute(",
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    """The Chromium to drive: ``PAPILLON_CHROMIUM`` if set, else Debian's package."""
    path = os.environ.get(CHROMIUM_SETTING) or DEFAULT_CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ChromiumMissing(
            f"Chromium was not found at {path}. Install Debian's chromium package (`make chromium`) "
            "or set PAPILLON_CHROMIUM to a Chromium executable; the browser tests cannot run without it."
        )
    return path


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Chromium from the system (Playwright's own download is not used)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


class _QuietHandler(WSGIRequestHandler):
    """No access log lines: the suite's output stays readable, and the app keeps none either."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free local port in a background thread; yields its origin."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="papillon-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def seal_js_gzip_size() -> int:
    return len(gzip.compress(SEAL_JS.read_bytes(), compresslevel=9))


def parse_form_body(body: bytes, content_type: str) -> dict[str, list[str]]:
    """The fields of a POST body as the server would read them (url-encoded or multipart)."""
    builder = EnvironBuilder(
        method="POST", input_stream=BytesIO(body), content_type=content_type, content_length=len(body)
    )
    form = Request(builder.get_environ()).form
    return {name: form.getlist(name) for name in form}


@dataclass
class SentRequest:
    method: str
    url: str
    resource_type: str
    headers: dict[str, str]
    body: bytes | None


@dataclass
class PageLog:
    """Everything a browser context asked for and complained about."""

    requests: list[SentRequest] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)  # method, url, status
    console: list[tuple[str, str, str]] = field(default_factory=list)  # type, text, url of the source
    page_errors: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._on_request)
        context.on("response", lambda r: self.responses.append((r.request.method, r.url, r.status)))
        context.on("console", lambda m: self.console.append((m.type, m.text, m.location.get("url", ""))))
        context.on("weberror", lambda e: self.page_errors.append(str(e.error)))

    def _on_request(self, request: PlaywrightRequest) -> None:
        try:
            body = request.post_data_buffer
        except Exception:  # a body Playwright cannot read is recorded as unreadable
            body = b"<unreadable>"
        self.requests.append(SentRequest(request.method, request.url, request.resource_type, request.headers, body))

    def posts(self) -> list[SentRequest]:
        return [r for r in self.requests if r.method == "POST"]

    def csp_violations(self) -> list[str]:
        return [text for _, text, _ in self.console if "Content Security Policy" in text]

    def js_errors(self) -> list[str]:
        """Uncaught exceptions and console errors, leaving out failed loads (see ``failed_loads``)."""
        errors = list(self.page_errors)
        errors += [text for kind, text, _ in self.console if kind == "error" and not text.startswith(FAILED_LOAD)]
        return errors

    def failed_loads(self) -> set[str]:
        """URLs answered with an error status, from the responses and from the console (which also sees favicons)."""
        failed = {url for _, url, status in self.responses if status >= 400}
        failed |= {url for kind, text, url in self.console if kind == "error" and text.startswith(FAILED_LOAD)}
        return failed

    def foreign_requests(self, server_origin: str) -> list[str]:
        return [r.url for r in self.requests if origin(r.url) != server_origin]


# Removes X25519 from WebCrypto, as in browsers that lack it: every X25519 use rejects like an unknown algorithm.
WITHOUT_X25519 = """
(() => {
  const proto = globalThis.SubtleCrypto && SubtleCrypto.prototype;
  if (!proto) return;
  const isX25519 = (alg) => String((alg && alg.name) || alg || "").toUpperCase() === "X25519";
  for (const [method, at] of [["generateKey", 0], ["importKey", 2], ["deriveBits", 0]]) {
    const original = proto[method];
    proto[method] = function (...args) {
      if (isX25519(args[at])) {
        return Promise.reject(new DOMException("Unrecognized algorithm name", "NotSupportedError"));
      }
      return original.apply(this, args);
    };
  }
})();
"""

# Times PapillonSeal.buildEnvelope on the page's own sealing config; returns every run and the last envelope.
TIME_BUILD_ENVELOPE = """
async ([answers, runs, warmup]) => {
  const config = JSON.parse(document.querySelector("form[data-seal]").getAttribute("data-seal"));
  for (let i = 0; i < warmup; i++) await PapillonSeal.buildEnvelope(config, answers);
  const times = [];
  let last = null;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    last = await PapillonSeal.buildEnvelope(config, answers);
    times.push(performance.now() - start);
  }
  return {
    times,
    envelope: typeof last === "string" ? last : JSON.stringify(last),
    isolated: globalThis.crossOriginIsolated === true,
  };
}
"""

# A typical signature on the open letter: about 1 KB of answers as JSON (padded to 1024 bytes).
TYPICAL_FORM = ("open-letter", "sign")
TYPICAL_ANSWERS = {
    "signing_as": "organization",
    "organization_name": "Butterfly 蝴蝶 Asian and Migrant Sex Workers Support Network",
    "name": "Lin Mei 林美",
    "email": "lin.mei@example.org",
    "postal_code": "M5T 1R9",
    "organization_type": "sex_worker_led",
    "actions": "share",
    "known_harms": (
        "Two people from an anti-trafficking group came to the parlour with police officers and asked every "
        "worker for identification. They said they were there to help, but they photographed our papers and "
        "the next week immigration officers came back. One co-worker was detained for three days and is now "
        "afraid to work anywhere.\n她们说是来帮助我们的，但后来移民局来了。"  # noqa: RUF001 - Chinese punctuation
    ),
    "comment": (
        "Thank you for writing this letter. Please share it with city council and the police services board. "
        "ขอบคุณที่เขียนจดหมายนี้ 감사합니다."
    ),
}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
