"""Requests per second and latency of a real gunicorn, on SQLite and on PostgreSQL, as ratios of /healthz.

Run from the project root: ``python -m benchmarks.load [--db sqlite postgres] [--seconds N]``. For each
database it starts gunicorn with the shipped gunicorn.conf.py (``PAPILLON_WORKERS=2``, rate limits off,
a throw-away key) on 127.0.0.1, and drives it with wrk, also on 127.0.0.1, with:

- ``GET /healthz``, the floor: no template, no database;
- ``GET`` a form page, as a first visit (a new CSRF cookie and submission id each time);
- ``POST`` a pre-sealed envelope, as the page's script sends it (JavaScript on);
- ``POST`` the plain form, which the server seals on arrival (JavaScript off).

The four take turns, ``--rounds`` times, so that anything else the machine does in the meantime falls on all
of them alike; rates and latency percentiles are over every reply of every round. Each wrk run is bounded in
time (``--seconds``) and count (``--max-requests`` per connection). The POSTs carry CSRF tokens and cookies
fetched from real form pages beforehand, and a submission id never used before, so every accepted POST is a
real insert (a repeated id would be stored once). wrk gets one connection per thread, and each thread stops
itself after its deadline once its reply is in, so nothing is in flight when a run ends: the rows a run
stored must then equal the 2xx/3xx replies it counted, which is checked after every run and printed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from sqlalchemy import bindparam, create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from app import create_app
from app.site import site
from app.storage import Submission, db
from papillon import envelope, keys
from tests.browser_support import TYPICAL_ANSWERS, TYPICAL_FORM
from tests.pages import form_data, form_tokens

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RESULT = "PAPILLON-LOAD "  # the line the wrk script's done() prints, then JSON
STOPPED = "PAPILLON-STOPPED"  # the line each wrk thread prints once it has stopped itself
GRACE = 10  # seconds wrk may run past the deadline, for the last replies of a slow run
COOKIE = re.compile(r"^([^=;\s]+=[^;]*)")

# Generated once per run into a temporary folder; @NAME@ markers are filled in by lua_script().
LUA = r"""
-- One connection per thread: each reply answers the one request this thread has in flight.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } papillon_timespec;
int clock_gettime(int clock, papillon_timespec *now);
]]
local clock = ffi.new("papillon_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local method, path, headers_of = "@METHOD@", "@PATH@", @HEADERS@
local pool = @POOL@
local prefixes = @PREFIXES@
local seconds, max_requests = @SECONDS@, @MAX_REQUESTS@

local threads, made = {}, 0
function setup(thread)
  made = made + 1
  thread:set("prefix", prefixes[made])
  thread:set("index", made)
  table.insert(threads, thread)
end

sent, ok, refused, statuses, unanswered, outstanding, latencies = 0, 0, 0, {}, {}, nil, {}
function init(args)
  -- wrk builds one request on its first thread before the run, only to check that it parses: never sent.
  checked = index ~= 1
end

local function build(id)
  local entry = pool[(sent + index) % #pool + 1]
  local headers = {}
  for name, value in pairs(headers_of) do headers[name] = value end
  if entry.cookie ~= "" then headers["Cookie"] = entry.cookie end
  if method == "POST" then return wrk.format(method, path, headers, entry.body .. id) end
  return wrk.format(method, path, headers)
end

function request()
  if not checked then
    checked = true
    return build(string.rep("0", 32))
  end
  if started == nil then
    started = now()
    deadline = started + seconds
  end
  -- A request left unanswered (its connection broke) is remembered, so its row can be looked for.
  if outstanding then table.insert(unanswered, outstanding) end
  sent = sent + 1
  outstanding = method == "POST" and prefix .. string.format("%024x", sent) or "get"
  sent_at = now()
  return build(outstanding)
end

function response(status, headers, body)
  local t = now()
  latencies[#latencies + 1] = string.format("%.3f", (t - sent_at) * 1000)
  outstanding = nil
  if status >= 200 and status < 400 then ok = ok + 1 else refused = refused + 1 end
  statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  if t >= deadline or sent >= max_requests then
    stopped = t
    wrk.thread:stop()
    io.write("@STOPPED@\n")  -- once every thread has said so, the benchmark ends wrk's wait early
    io.flush()
  end
end

function done(summary, latency, requests)
  local out = {ok = 0, refused = 0, sent = 0, statuses = {}, unanswered = {}, latencies = {}}
  for _, thread in ipairs(threads) do
    out.ok = out.ok + thread:get("ok")
    out.refused = out.refused + thread:get("refused")
    out.sent = out.sent + thread:get("sent")
    for status, n in pairs(thread:get("statuses")) do out.statuses[status] = (out.statuses[status] or 0) + n end
    for _, id in ipairs(thread:get("unanswered")) do table.insert(out.unanswered, id) end
    table.insert(out.latencies, '"' .. table.concat(thread:get("latencies"), ",") .. '"')
    local left = thread:get("outstanding")
    if left then table.insert(out.unanswered, left) end
    local first, last = thread:get("started"), thread:get("stopped")
    if first and (out.first == nil or first < out.first) then out.first = first end
    if last == nil then out.unstopped = true elseif out.last == nil or last > out.last then out.last = last end
  end
  local statuses = {}
  for status, n in pairs(out.statuses) do table.insert(statuses, string.format('"%s":%d', status, n)) end
  local ids = {}
  for _, id in ipairs(out.unanswered) do table.insert(ids, '"' .. id .. '"') end
  io.write(string.format(
    '@RESULT@{"replies":%d,"ok":%d,"refused":%d,"sent":%d,"seconds":%.6f,"latencies_ms":[%s],'
      .. '"statuses":{%s},"unanswered":[%s],"stopped_itself":%s}\n',
    summary.requests, out.ok, out.refused, out.sent, (out.last or 0) - (out.first or 0),
    table.concat(out.latencies, ","), table.concat(statuses, ","), table.concat(ids, ","),
    tostring(not out.unstopped)))
end
"""


@dataclass(frozen=True)
class Load:
    """One kind of request the benchmark sends."""

    name: str
    method: str
    sealed_by: str | None = None  # what the stored rows say, for the POSTs


LOADS = [
    Load("GET /healthz", "GET"),
    Load("GET form page", "GET"),
    Load("POST sealed envelope (JS)", "POST", "browser"),
    Load("POST plain form (no JS)", "POST", "server"),
]


@dataclass(frozen=True)
class Pace:
    """How one wrk run goes: its connections (one per thread), and the seconds and requests each may take."""

    connections: int
    seconds: int
    max_requests: int


class WrkOutput(TypedDict):
    """What the wrk script's done() prints after ``RESULT``, summed over its threads."""

    replies: int
    ok: int
    refused: int
    sent: int
    seconds: float
    latencies_ms: list[str]  # one string of comma-separated milliseconds per thread
    statuses: dict[str, int]
    unanswered: list[str]
    stopped_itself: bool


@dataclass
class Result:
    """One load's replies over every round, on one server."""

    load: Load
    replies: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    stored: int = 0
    broken: int = 0  # requests whose connection broke before their reply, and of those
    broken_stored: int = 0  # the ones whose row was stored all the same

    @property
    def per_second(self) -> float:
        return self.replies / self.seconds

    def percentile(self, fraction: float) -> float:
        """The latency below which ``fraction`` of the replies came (nearest rank)."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    def add_run(self, out: WrkOutput) -> None:
        """Count in one measured run's replies, time and latencies."""
        self.replies += out["ok"]
        self.seconds += out["seconds"]
        self.latencies += [float(ms) for ms in ",".join(out["latencies_ms"]).split(",") if ms]

    def add_rows(self, stored: int, broken: int, broken_stored: int) -> None:
        """Count in the rows one run stored, as ``check_rows`` found them."""
        self.stored += stored
        self.broken += broken
        self.broken_stored += broken_stored


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """(process group, user + system CPU time in clock ticks) of every process running now, by pid."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            ticks[int(entry.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]))
    return ticks


@dataclass
class Bystanders:
    """The CPU time the rest of the machine took while the benchmark measured: a busy neighbour on the same two
    cores would skew every number, so it is measured and printed with them."""

    groups: set[int]  # the process groups of the benchmark (wrk included) and of gunicorn
    engine: Engine  # names the PostgreSQL server processes that serve this run, if it is on PostgreSQL
    ticks: int = 0
    seconds: float = 0.0

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        before, start = cpu_ticks(), time.monotonic()
        yield
        after, self.seconds = cpu_ticks(), self.seconds + time.monotonic() - start
        ours = self.postgres_servers()
        for pid, (group, ticks) in after.items():
            if group not in self.groups and pid not in ours:
                self.ticks += ticks - before.get(pid, (group, 0))[1]

    def postgres_servers(self) -> set[int]:
        if self.engine.dialect.name != "postgresql":
            return set()
        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR backend_type <> 'client backend'"
        )
        with self.engine.connect() as conn:
            return set(conn.execute(text(query)).scalars())

    @property
    def cores(self) -> float:
        return self.ticks / os.sysconf("SC_CLK_TCK") / self.seconds


def loopback(url: str) -> bool:
    """Whether a database URL points at this machine (a loopback address, or a local socket)."""
    host = make_url(url).host
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A database made for this run, dropped at the end whatever happens."""
    name = f"papillon_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10})
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def server_env(database_url: str, keys_dir: Path, port: int, workers: int, threads: int) -> dict[str, str]:
    """gunicorn's environment: this machine's, less any Papillon setting, plus the benchmark's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAPILLON_", "RATELIMIT_", "GUNICORN_"))}
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "DATABASE_URL", "SECRET_KEY", "TRUSTED_HOSTS"):
        env.pop(name, None)
    env.update(
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=database_url,
        PAPILLON_KEYS_DIR=str(keys_dir),
        RATELIMIT_ENABLED="false",
        PAPILLON_BIND=f"127.0.0.1:{port}",
        PAPILLON_WORKERS=str(workers),
        PAPILLON_THREADS=str(threads),
    )
    return env


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The shipped gunicorn.conf.py serving wsgi:app until the block ends; stopped, and waited for, always."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while get(port, "/healthz")[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def get(port: int, path: str) -> tuple[int, str, str]:
    """Status, the cookie the reply sets (``name=value``) and the body; status 0 while nothing listens."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        cookie = COOKIE.match(reply.getheader("Set-Cookie") or "")
        return reply.status, cookie.group(1) if cookie else "", reply.read().decode()
    except OSError:
        return 0, "", ""
    finally:
        conn.close()


def lua_string(value: str) -> str:
    if "]==]" in value:
        raise ValueError("cannot quote this value as a Lua long string")
    return f"[==[{value}]==]"


def lua_script(load: Load, path: str, pool: list[tuple[str, str]], pace: Pace) -> tuple[str, list[str]]:
    """The wrk script for one run, and the id prefix of each of its threads (a fresh one per run, so a run's rows
    can be counted apart). ``pool`` holds (cookie, body up to the submission id) pairs to cycle through."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if load.method == "POST" else {}
    if load.sealed_by == "browser":
        headers["Accept"] = "application/json"  # as seal.js asks
    prefixes = [secrets.token_hex(4) for _ in range(pace.connections)]
    replace = {
        "@METHOD@": load.method,
        "@PATH@": path,
        "@HEADERS@": "{" + ", ".join(f'["{k}"] = {lua_string(v)}' for k, v in headers.items()) + "}",
        "@POOL@": "{\n" + "".join(f"  {{cookie = {lua_string(c)}, body = {lua_string(b)}}},\n" for c, b in pool) + "}",
        "@PREFIXES@": "{" + ", ".join(f'"{p}"' for p in prefixes) + "}",
        "@SECONDS@": str(pace.seconds),
        "@MAX_REQUESTS@": str(pace.max_requests),
        "@RESULT@": RESULT,
        "@STOPPED@": STOPPED,
    }
    return re.sub("|".join(map(re.escape, replace)), lambda m: replace[m.group()], LUA), prefixes


def run_wrk(script: Path, port: int, path: str, pace: Pace) -> WrkOutput:
    """One wrk run. Its threads stop themselves after ``pace.seconds``, each once its last reply is in; wrk would
    then sleep out its own limit (``GRACE`` later), so it is interrupted as soon as all of them have stopped."""
    threads = str(pace.connections)
    command = ["wrk", "-t", threads, "-c", threads, "-d", f"{pace.seconds + GRACE}s"]
    command += ["--timeout", f"{GRACE}s", "-s", str(script), f"http://127.0.0.1:{port}{path}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as wrk:
        assert wrk.stdout is not None
        assert wrk.stderr is not None
        lines, stopped = [], 0
        for line in wrk.stdout:
            lines.append(line)
            stopped += line.strip() == STOPPED
            if stopped == pace.connections:
                wrk.send_signal(signal.SIGINT)  # wrk's own way to end a run early: it still prints its results
        errors = wrk.stderr.read()
        wrk.wait(timeout=GRACE)
    result = next((line for line in lines if line.startswith(RESULT)), None)
    if wrk.returncode != 0 or result is None:
        raise SystemExit(f"wrk failed ({wrk.returncode}):\n{''.join(lines)}\n{errors}")
    return cast("WrkOutput", json.loads(result[len(RESULT) :]))


def rows_of(engine: Engine, prefixes: list[str], ids: list[str]) -> tuple[int, int]:
    """Rows stored under this run's id prefixes, and how many of ``ids`` are among them; once the count is still."""
    prefix = func.substr(Submission.id, 1, 8)
    count = select(func.count()).select_from(Submission).where(prefix.in_(bindparam("p", expanding=True)))
    among = select(func.count()).select_from(Submission).where(Submission.id.in_(bindparam("i", expanding=True)))
    last, deadline = -1, time.monotonic() + 15
    with engine.connect() as conn:
        while True:
            stored = conn.execute(count, {"p": prefixes}).scalar_one()
            conn.rollback()
            if stored == last or time.monotonic() > deadline:
                found = conn.execute(among, {"i": ids}).scalar_one() if ids else 0
                return stored, found
            last = stored
            time.sleep(0.5)


def token_pool(port: int, path: str, size: int) -> list[tuple[str, dict[str, str]]]:
    """(cookie, hidden values) of ``size`` form pages, each fetched as a first visit."""
    pool = []
    for _ in range(size):
        status, cookie, page = get(port, path)
        if status != 200 or not cookie:
            raise SystemExit(f"the form page answered {status} without its cookie")
        pool.append((cookie, form_tokens(page)))
    return pool


def one_row_opens(engine: Engine, private: X25519PrivateKey, sealed_by: str, prefixes: list[str]) -> None:
    """A stored row of this run opens to the answers sent: the inserts measured are real records."""
    prefix = func.substr(Submission.id, 1, 8)
    query = select(Submission).where(prefix.in_(prefixes), Submission.sealed_by == sealed_by).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise SystemExit(f"no {sealed_by}-sealed row was stored")
    answers = envelope.open_envelope(envelope.parse(row.envelope), private, row.campaign, row.form)["answers"]
    if not isinstance(answers, dict):
        raise SystemExit(f"a {sealed_by}-sealed row opened to no answers")
    # The server's seal also names the fields left empty (an unticked box is False); the page's names those sent.
    sent = {name: answer for name, answer in answers.items() if name in TYPICAL_ANSWERS or answer}
    if sent != TYPICAL_ANSWERS:
        raise SystemExit(f"a {sealed_by}-sealed row did not open to the answers sent")


def post_bodies(
    tokens: list[tuple[str, dict[str, str]]], sealed: list[str], honeypot: str
) -> dict[str | None, list[tuple[str, str]]]:
    """(cookie, body) pairs for each POST load, by its ``sealed_by``, each body ending where its fresh submission
    id goes.

    The fields are the ones each path really sends: seal.js sends the token, the honeypot, the envelope and
    the id; a browser without JavaScript sends the token, the honeypot, the answers and the id."""
    answers: dict[str, object] = dict(TYPICAL_ANSWERS)
    plain = urlencode(form_data(answers), doseq=True)
    browser, server = [], []
    for (cookie, hidden), env in zip(tokens, sealed, strict=True):
        page = urlencode({"csrf_token": hidden["csrf_token"], honeypot: ""})
        browser.append((cookie, f"{page}&{urlencode({'envelope': env})}&submission_id="))
        server.append((cookie, f"{page}&{plain}&submission_id="))
    return {"browser": browser, "server": server}


def request_bodies(app: Flask, port: int, form_path: str, connections: int) -> dict[str | None, list[tuple[str, str]]]:
    """(cookie, body) pairs for each load, by what its rows are sealed by: one empty pair for the GETs; for the
    POSTs, the cookies and CSRF tokens of real form pages, with answers sealed to the app's keys or left plain."""
    campaign, form = TYPICAL_FORM
    tokens = token_pool(port, form_path, 2 * connections)
    data = envelope.plaintext(TYPICAL_ANSWERS, site(app).campaigns[campaign].forms[form].version, "en")
    sealed = [envelope.seal(data, site(app).keys, campaign, form).to_json() for _ in tokens]
    return {None: [("", "")], **post_bodies(tokens, sealed, app.config["PAPILLON_HONEYPOT_FIELD"])}


def schema_ready_app(secret_key: str, database_url: str, keys_dir: Path) -> Flask:
    """The app on ``database_url``, with its tables made: gunicorn's workers find them, the benchmark reads its
    campaigns and keys."""
    # A fresh database has no tables until create_schema() makes them: the app warns so, which is no news here.
    logging.getLogger("app").setLevel(logging.ERROR)
    app = create_app({"SECRET_KEY": secret_key, "DATABASE_URL": database_url, "PAPILLON_KEYS_DIR": str(keys_dir)})
    logging.getLogger("app").setLevel(logging.NOTSET)
    with app.app_context():
        db.create_schema()
        db.engine.dispose()
    return app


def key_folder(folder: Path, private: X25519PrivateKey) -> Path:
    """A keys folder holding only the public half of ``private``, a key made for this run."""
    folder.mkdir()
    (folder / "bench.pub").write_text(keys.dumps_public("bench", private.public_key()))
    return folder


def measure(kind: str, database_url: str, args: argparse.Namespace, tmp: Path) -> tuple[list[Result], list[str]]:
    """Every load against one gunicorn on ``database_url``: the results, and what the row counts showed."""
    private = X25519PrivateKey.generate()
    keys_dir = key_folder(tmp / "keys", private)
    port = free_port()
    env = server_env(database_url, keys_dir, port, args.workers, args.threads)
    setup = schema_ready_app(env["SECRET_KEY"], database_url, keys_dir)
    campaign, form = TYPICAL_FORM
    form_path = f"/{campaign}/{form}"
    engine = create_engine(database_url)
    try:
        with gunicorn(env, port, tmp / "gunicorn.log") as server:
            others = Bystanders({os.getpgid(0), server.pid}, engine)
            bodies = request_bodies(setup, port, form_path, args.connections)
            results = [Result(load) for load in LOADS]
            for round_ in range(args.rounds + 1):  # round 0 warms up: its numbers and rows are left aside
                for result in results:
                    load = result.load
                    path = "/healthz" if load.name == "GET /healthz" else form_path
                    pace = Pace(args.connections, args.seconds if round_ else args.warmup, args.max_requests)
                    source, prefixes = lua_script(load, path, bodies[load.sealed_by], pace)
                    script = tmp / f"round-{round_}-{LOADS.index(load)}.lua"
                    script.write_text(source)
                    with others.watching():
                        out = run_wrk(script, port, path, pace)
                    if not round_:
                        continue
                    if out["refused"] or not out["stopped_itself"]:
                        raise SystemExit(
                            f"{kind}, {load.name}: some requests were refused, or not answered within {GRACE} s "
                            f"of the end (is the machine busy?): {out}"
                        )
                    result.add_run(out)
                    if load.sealed_by:
                        result.add_rows(*check_rows(kind, load, out, prefixes, engine))
                        one_row_opens(engine, private, load.sealed_by, prefixes)
            checks = row_checks(kind, results, others)
    finally:
        engine.dispose()
    return results, checks


def row_checks(kind: str, results: list[Result], others: Bystanders) -> list[str]:
    """What the row counts showed for each POST load, and how busy the rest of the machine was meanwhile."""
    checks = [
        f"{kind}, {r.load.name}: {r.stored} rows stored = {r.replies} 2xx/3xx replies counted by wrk"
        + (f" + {r.broken_stored} of {r.broken} requests whose connection broke" if r.broken else "")
        for r in results
        if r.load.sealed_by
    ]
    checks.append(
        f"{kind}: the rest of the machine used {others.cores:.0%} of one core while wrk ran"
        + (" (more than 10%: run again when the machine is quiet)" if others.cores > 0.1 else "")
    )
    return checks


def check_rows(kind: str, load: Load, out: WrkOutput, prefixes: list[str], engine: Engine) -> tuple[int, int, int]:
    """The rows one run stored, which must be the replies wrk counted, plus any request whose connection broke
    after its answer was stored and before wrk read it (anything else stops the benchmark); how many broke, and
    how many of those were stored."""
    unanswered = [i for i in out["unanswered"] if i != "get"]
    stored, late = rows_of(engine, prefixes, unanswered)
    if stored != out["ok"] + late:
        raise SystemExit(
            f"{kind}, {load.name}: {stored} rows stored, but wrk counted {out['ok']} 2xx/3xx replies "
            f"(and {late} of {len(unanswered)} requests whose connection broke were stored)"
        )
    return stored, len(unanswered), late


def versions(database_urls: dict[str, str]) -> str:
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split()[:2]
    parts = [" ".join(wrk), f"SQLite {sqlite3.sqlite_version}"]
    if "postgres" in database_urls:
        engine = create_engine(database_urls["postgres"])
        with engine.connect() as conn:
            parts.append("PostgreSQL " + conn.execute(text("SHOW server_version")).scalar_one().split()[0])
        engine.dispose()
    return ", ".join(parts)


def table(results: dict[str, list[Result]]) -> str:
    lines = [
        "| database | request | requests/s | ratio to /healthz | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, rows in results.items():
        floor = rows[0].per_second
        for r in rows:
            lines.append(
                f"| {kind} | {r.load.name} | {r.per_second:,.0f} | {r.per_second / floor:.2f} "
                f"| {r.percentile(0.5):.1f} | {r.percentile(0.99):.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--seconds", type=int, default=3, choices=range(1, 21), metavar="1..20", help="per run")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--warmup", type=int, default=1, choices=range(1, 6), metavar="1..5")
    parser.add_argument("--connections", type=int, default=16, choices=range(1, 65), metavar="1..64")
    parser.add_argument("--max-requests", type=int, default=100_000, help="per connection and run")
    parser.add_argument("--workers", type=int, default=2, help="PAPILLON_WORKERS")
    parser.add_argument("--threads", type=int, default=32, help="PAPILLON_THREADS")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN, help="a server where a database may be made")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it (apt-get install wrk; `make bench-load` does)")
    if "postgres" in args.db and not loopback(args.postgres_url):
        raise SystemExit("--postgres-url must name this machine (a loopback address or a local socket)")

    results: dict[str, list[Result]] = {}
    checks: list[str] = []
    with contextlib.ExitStack() as stack:
        urls = {}
        for kind in args.db:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"papillon-load-{kind}-")))
            if kind == "sqlite":
                urls[kind] = f"sqlite:///{tmp / 'papillon.sqlite3'}"
            else:
                urls[kind] = stack.enter_context(fresh_postgres(args.postgres_url))
            results[kind], more = measure(kind, urls[kind], args, tmp)
            checks += more
        about = versions(urls)

    print(
        f"gunicorn.conf.py with PAPILLON_WORKERS={args.workers}, PAPILLON_THREADS={args.threads}, "
        f"RATELIMIT_ENABLED=false; {os.cpu_count()} cores"
    )
    print(
        f"wrk on 127.0.0.1: {args.connections} threads of one connection each; {args.rounds} rounds of "
        f"{args.seconds} s per request after {args.warmup} s of warm-up; {about}"
    )
    print(table(results))
    for line in checks:
        print(line)


if __name__ == "__main__":
    main()
