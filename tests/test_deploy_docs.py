"""docs/deploy.md, checked by the programs that will read it: nginx, Caddy, tor, systemd, PostgreSQL and Redis.

Each file the guide shows is taken from it as written; only paths this machine lacks (certificates, sockets,
logs) are pointed into a temporary folder. Every setting name it mentions must be one Papillon reads, and
gunicorn must serve pages and posts under the seccomp rules of the unit's MemoryDenyWriteExecute. The programs
come from Debian's packages (``make test`` installs them); a missing one fails its test, never skips it.
PostgreSQL and Redis are those the other tests use (``PAPILLON_TEST_POSTGRES_URL``, and ``redis-server``).

Also the staff commands every guide gives (the README, the staff guide, this guide, SECURITY.md, the offline kit's
INSTALL.txt): the project's own ``.venv/bin/flask --app wsgi``, never a bare ``flask``; and the one Chromium setting
the Makefile and the browser tests share.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import browser_support
import pytest
from browser_support import TYPICAL_ANSWERS
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID
from pages import ROOT, form_data, form_tokens
from services import (
    Postgres,
    admin_engine,
    free_port,
    program,
    schema_ready,
    server_environment,
    stop,
    wait_until_healthy,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import create_app
from app.config import Defaults
from app.site import site
from app.storage import db
from papillon import envelope

DOC = ROOT / "docs" / "deploy.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
FILE = re.compile(r"`(/[^`\s]+)`")
SETTING = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
# Upper-case names in the guide that are not settings: systemd's names for socket families.
NOT_SETTINGS = {"AF_UNIX", "AF_INET", "AF_INET6"}
# What the unit must keep: the hardening the guide promises.
HARDENING = {
    "NoNewPrivileges": "true",
    "ProtectSystem": "strict",
    "ProtectHome": "true",
    "PrivateTmp": "true",
    "PrivateDevices": "true",
    "ProtectKernelTunables": "true",
    "ProtectKernelModules": "true",
    "ProtectKernelLogs": "true",
    "ProtectControlGroups": "true",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "true",
    "LockPersonality": "true",
    "MemoryDenyWriteExecute": "true",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "ReadWritePaths": "/srv/papillon/instance",
    "UMask": "0077",
    "LimitCORE": "0",
}


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    path: str | None  # the file it is, when the paragraph before it ends by naming one


def blocks() -> list[Block]:
    doc = DOC.read_text()
    found = []
    for fence in FENCE.finditer(doc):
        paragraph = doc[: fence.start()].rstrip().split("\n\n")[-1]
        paths = FILE.findall(paragraph) if paragraph.endswith(":") else []
        found.append(Block(fence.group(1), fence.group(2), paths[-1] if paths else None))
    return found


def guide_file(path: str) -> str:
    texts = [b.text for b in blocks() if b.path == path]
    assert len(texts) == 1, f"docs/deploy.md should show {path} once, not {len(texts)} times"
    return texts[0]


def run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


# --- what the guide names -------------------------------------------------------------------------


def settings_read() -> set[str]:
    """Every setting Papillon reads: the app's (app/config.py) and gunicorn.conf.py's own."""
    names = {name for name in vars(Defaults) if name.isupper()}
    conf = (ROOT / "gunicorn.conf.py").read_text()
    return names | set(re.findall(r"""(?:_env|environ\.get)\(\s*["']([A-Z0-9_]+)["']""", conf))


def test_every_setting_the_guide_names_is_one_papillon_reads_and_the_readme_lists() -> None:
    named = set(SETTING.findall(DOC.read_text())) - NOT_SETTINGS
    assert named, "the guide names no setting at all?"
    assert named - settings_read() == set()
    readme = (ROOT / "README.md").read_text()
    assert {name for name in named if f"`{name}`" not in readme} == set()


def test_the_guide_never_turns_the_demo_key_on_and_the_old_address_points_to_it() -> None:
    assert not re.search(r"PAPILLON_ALLOW_DEMO_KEY\s*=\s*(true|True|1)", DOC.read_text())
    assert "deploy.md" in (ROOT / "docs" / "deployment.md").read_text()


def test_every_file_the_guide_promises_is_there() -> None:
    expected = {
        "/etc/systemd/system/papillon@.service",
        "/etc/nginx/sites-available/papillon",
        "/etc/nginx/sites-available/papillon-onion",
        "/etc/nginx/papillon-proxy.conf",
        "/etc/caddy/Caddyfile",
        "/etc/tor/torrc",
        "/etc/postgresql/15/main/conf.d/papillon.conf",
        "/etc/redis/redis.conf",
    }
    assert expected <= {b.path for b in blocks()}


# --- nginx ----------------------------------------------------------------------------------------


def self_signed(folder: Path, host: str) -> None:
    folder.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def nginx_files(tmp_path: Path, several: bool = False) -> Path:
    """The guide's nginx files in a folder of their own, under a main file shaped like Debian's (which logs every
    request of every site unless the site says otherwise); the path of that main file."""
    self_signed(tmp_path / "certs", "petition.example.org")
    for folder in ("sites", "run", "log"):
        (tmp_path / folder).mkdir()
    moved = {
        "/etc/letsencrypt/live/petition.example.org/": f"{tmp_path}/certs/",
        "/etc/nginx/papillon-proxy.conf": f"{tmp_path}/papillon-proxy.conf",
        "/run/tor-papillon/": f"{tmp_path}/run/",
        "/var/log/nginx/": f"{tmp_path}/log/",
    }

    def placed(text: str) -> str:
        for old, new in moved.items():
            text = text.replace(old, new)
        # nginx -t opens every listening socket: free loopback ports instead of 80 and 443, which may be taken.
        ports = {port: free_port() for port in set(re.findall(r"listen (?:\[::\]:)?(\d+)", text))}
        text = re.sub(r"listen \[::\]:(\d+)", lambda m: f"listen [::1]:{ports[m.group(1)]}", text)
        return re.sub(r"listen (\d+)", lambda m: f"listen 127.0.0.1:{ports[m.group(1)]}", text)

    site = guide_file("/etc/nginx/sites-available/papillon")
    if several:
        upstreams = [b.text for b in blocks() if b.lang == "nginx" and b.path is None and "upstream" in b.text]
        assert len(upstreams) == 1, "the section on several instances shows one upstream block"
        site = re.sub(r"upstream papillon \{.*?\n\}\n", upstreams[0], site, count=1, flags=re.S)
        assert site.count("server unix:") >= 2
    (tmp_path / "sites" / "papillon").write_text(placed(site))
    (tmp_path / "sites" / "papillon-onion").write_text(placed(guide_file("/etc/nginx/sites-available/papillon-onion")))
    (tmp_path / "papillon-proxy.conf").write_text(placed(guide_file("/etc/nginx/papillon-proxy.conf")))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/log/main.log;\nevents {{}}\n"
        f"http {{\n    access_log {tmp_path}/log/access.log;\n    include {tmp_path}/sites/*;\n}}\n"
    )
    return main


@pytest.mark.parametrize("several", [False, True], ids=["one instance", "several instances"])
def test_nginx_accepts_the_guide_s_sites(tmp_path: Path, several: bool) -> None:
    nginx = program("nginx", "nginx-light")
    checked = run(nginx, "-t", "-c", str(nginx_files(tmp_path, several)))
    assert checked.returncode == 0, checked.stderr
    assert "[warn]" not in checked.stderr, checked.stderr
    assert "[emerg]" not in checked.stderr, checked.stderr


def test_the_nginx_sites_keep_no_access_log_compress_nothing_and_name_the_onion() -> None:
    site = guide_file("/etc/nginx/sites-available/papillon")
    onion = guide_file("/etc/nginx/sites-available/papillon-onion")
    proxy = guide_file("/etc/nginx/papillon-proxy.conf")
    for server in re.findall(r"^server \{.*?^\}", site + onion, re.M | re.S):
        assert "access_log off;" in server
    assert "gzip off;" in proxy
    assert f"client_max_body_size  {Defaults.MAX_CONTENT_LENGTH // 1024}k;" in proxy
    assert re.search(r"add_header Onion-Location http://\S+\.onion\$request_uri", site)
    assert "Onion-Location" not in onion


# --- Caddy ----------------------------------------------------------------------------------------


def caddy_json(tmp_path: Path, caddyfile: str) -> dict:
    caddy = program("caddy", "caddy")
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile)
    adapted = run(caddy, "adapt", "--config", str(path), "--adapter", "caddyfile")
    assert adapted.returncode == 0, adapted.stderr
    warnings = [line for line in adapted.stderr.splitlines() if '"level":"warn"' in line]
    assert warnings == [], "caddy adapt warns (run `caddy fmt` on the guide's Caddyfile?)"
    return json.loads(adapted.stdout)


def handlers(node: object) -> Iterator[dict]:
    """Every handler in an adapted Caddy config, however deep its routes go."""
    if isinstance(node, dict):
        if "handler" in node:
            yield node
        for value in node.values():
            yield from handlers(value)
    elif isinstance(node, list):
        for value in node:
            yield from handlers(value)


def test_caddy_accepts_the_guide_s_caddyfile_which_logs_no_request_and_compresses_nothing(tmp_path: Path) -> None:
    config = caddy_json(tmp_path, guide_file("/etc/caddy/Caddyfile"))
    servers = config["apps"]["http"]["servers"]
    assert all("logs" not in server for server in servers.values()), "a site has an access log"
    found = list(handlers(servers))
    assert "encode" not in {h["handler"] for h in found}
    proxies = [h for h in found if h["handler"] == "reverse_proxy"]
    assert len(proxies) == 2
    assert all(p.get("buffer_requests") is True for p in proxies)
    assert all("X-Forwarded-Host" in p["headers"]["request"]["delete"] for p in proxies)
    assert sum(p["headers"]["request"].get("set", {}).get("X-Forwarded-For") == ["unix:"] for p in proxies) == 1
    limits = [h["max_size"] for h in found if h["handler"] == "request_body"]
    assert limits == [Defaults.MAX_CONTENT_LENGTH] * 2
    onion = [h for h in found if h["handler"] == "headers" and "Onion-Location" in json.dumps(h)]
    assert len(onion) == 1
    listens = sorted(address for server in servers.values() for address in server["listen"])
    assert "127.0.0.1:8081" in listens
    fields = config["logging"]["logs"]["default"]["encoder"]["fields"]
    assert {"request>remote_ip", "request>remote_port", "request>client_ip", "request>headers"} <= set(fields)

    validated = run(program("caddy", "caddy"), "validate", "--config", str(tmp_path / "Caddyfile"))
    assert validated.returncode == 0, validated.stderr


def test_caddy_accepts_the_reverse_proxy_lines_for_several_instances(tmp_path: Path) -> None:
    fragments = [b.text for b in blocks() if b.lang == "caddyfile" and b.path is None]
    assert len(fragments) == 1
    site = "".join(f"\t{line}\n" for line in fragments[0].splitlines())
    config = caddy_json(tmp_path, f"http://petition.example.test {{\n{site}}}\n")
    upstreams = next(h for h in handlers(config) if h["handler"] == "reverse_proxy")["upstreams"]
    assert len(upstreams) >= 2


# --- tor and systemd ------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_tor_accepts_the_guide_s_torrc(tmp_path: Path, proxy: str) -> None:
    tor = program("tor", "tor")
    torrc = guide_file("/etc/tor/torrc").replace("/var/lib/tor/papillon/", f"{tmp_path}/papillon/")
    if proxy == "caddy":
        caddy_line = re.search(r"`(HiddenServicePort 80 127\.0\.0\.1:\d+)`", DOC.read_text()).group(1)
        torrc = re.sub(r"^HiddenServicePort .*$", caddy_line, torrc, flags=re.M)
    (tmp_path / "torrc").write_text(torrc)
    checked = run(tor, "--verify-config", "-f", str(tmp_path / "torrc"), "--DataDirectory", str(tmp_path / "data"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration was valid" in checked.stdout


def unit_settings(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines() if re.match(r"^[A-Z]\w*=", line))


def test_systemd_accepts_the_unit_with_all_its_hardening(tmp_path: Path) -> None:
    analyze = program("systemd-analyze", "systemd")
    unit = guide_file("/etc/systemd/system/papillon@.service")
    settings = unit_settings(unit)
    assert {name: settings.get(name) for name in HARDENING} == HARDENING
    # systemd checks that the command exists: the only line pointed at this machine.
    command = settings["ExecStart"].split()[0]
    stand_in = tmp_path / "gunicorn"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (tmp_path / "papillon@.service").write_text(unit.replace(command, str(stand_in)))
    checked = run(analyze, "verify", str(tmp_path / "papillon@1.service"))
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


# --- PostgreSQL and Redis, as section 6 sets them up ----------------------------------------------


def env_value(name: str) -> str:
    """The value the guide gives a setting in /etc/papillon/env."""
    texts = [b.text for b in blocks() if b.path == "/etc/papillon/env" and b.text.startswith(f"{name}=")]
    assert len(texts) == 1
    return texts[0].strip().split("=", 1)[1]


@dataclass(frozen=True)
class GuidePostgres:
    url: str  # the role the guide makes, on the database the guide makes (both with fresh names)
    role: str


@pytest.fixture(scope="module")
def guide_postgres(postgres: Postgres) -> Iterator[GuidePostgres]:
    """Section 6's SQL, run as written but for fresh names on the test server; dropped at the end."""
    postgres.require()  # or the test fails, saying the server cannot be reached
    admin = admin_engine()
    name = f"papillon_deploy_{uuid.uuid4().hex[:12]}"
    sql = [b.text for b in blocks() if b.lang == "sql"]
    assert len(sql) == 1
    statements = [s.strip() for s in re.sub(r"\bpapillon\b", name, sql[0]).split(";") if s.strip()]
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    except SQLAlchemyError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL refused the guide's SQL or cannot be reached ({exc})", pytrace=False)
    try:
        url = admin.url.set(username=name, password=None, database=name).render_as_string(hide_password=False)
        yield GuidePostgres(url=url, role=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def test_postgresql_knows_every_setting_the_guide_gives_and_accepts_each_value(postgres: Postgres) -> None:
    lines = [line for line in guide_file("/etc/postgresql/15/main/conf.d/papillon.conf").splitlines() if line]
    settings = dict(re.fullmatch(r"(\w+) = (.*)", line).groups() for line in lines)
    engine = create_engine(postgres.require(), connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            for name, value in settings.items():
                row = conn.execute(
                    text("SELECT context, vartype, enumvals FROM pg_settings WHERE name = :n"), {"n": name}
                ).first()
                assert row is not None, f"PostgreSQL has no setting {name}"
                plain = value.strip("'")
                if row.context in {"user", "superuser"}:
                    conn.execute(text(f"SET LOCAL {name} = {value}"))  # PostgreSQL parses and checks the value
                elif row.vartype == "bool":
                    assert plain in {"on", "off"}, name
                elif row.vartype == "enum":
                    assert plain in row.enumvals, name
            conn.rollback()
    except SQLAlchemyError as exc:
        pytest.fail(f"PostgreSQL refused a question about its settings ({exc})", pytrace=False)
    finally:
        engine.dispose()
    assert "%h" not in settings["log_line_prefix"]
    assert "%r" not in settings["log_line_prefix"]


def test_the_guide_s_role_may_make_the_tables_store_and_purge_and_nothing_more(
    guide_postgres: GuidePostgres, keys_dir: Path
) -> None:
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": guide_postgres.url, "PAPILLON_KEYS_DIR": str(keys_dir)})
    with app.app_context():
        db.create_schema()
        sealed = envelope.seal(b"{}", site(app).keys, "open-letter", "sign").to_json()
        db.store(id=uuid.uuid4().hex, campaign="open-letter", form="sign", sealed_by="server", envelope=sealed)
        db.mark_exported([row.id for row in db.unexported()])
        assert db.purge() == 1  # CLUSTER, which only the table's owner may run
        db.engine.dispose()
    engine = create_engine(guide_postgres.url)
    with engine.connect() as conn:
        rights = conn.execute(
            text("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = :r"),
            {"r": guide_postgres.role},
        ).one()
    engine.dispose()
    assert tuple(rights) == (False, False, False)
    url = make_url(env_value("DATABASE_URL"))
    assert (url.drivername, url.username, url.database, url.query.get("host")) == (
        "postgresql+psycopg",
        "papillon",
        "papillon",
        "/run/postgresql",
    )


@dataclass(frozen=True)
class GuideRedis:
    uri: str
    folder: Path


@pytest.fixture(scope="module")
def guide_redis(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideRedis]:
    """redis-server with section 6's lines, its socket in a temporary folder; stopped at the end."""
    folder = tmp_path_factory.mktemp("redis")
    password = uuid.uuid4().hex
    lines = guide_file("/etc/redis/redis.conf").replace("/run/redis/", f"{folder}/")
    lines = lines.replace("REPLACE-WITH-A-LONG-RANDOM-PASSWORD", password)
    (folder / "redis.conf").write_text(f"{lines}dir {folder}\ndaemonize no\n")
    uri = env_value("RATELIMIT_STORAGE_URI").replace("/run/redis/", f"{folder}/")
    uri = uri.replace("REPLACE-WITH-A-LONG-RANDOM-PASSWORD", password)
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen([redis_server, str(folder / "redis.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not (folder / "redis-server.sock").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start:\n{(folder / 'redis.log').read_text()}", pytrace=False)
            time.sleep(0.1)
        yield GuideRedis(uri=uri, folder=folder)
    finally:
        stop(process)
        log.close()


def test_the_limiter_counts_in_the_guide_s_redis_and_nothing_reaches_its_disk(
    guide_redis: GuideRedis, config: dict[str, object]
) -> None:
    app = create_app(
        {
            **config,
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": guide_redis.uri,
            "RATELIMIT_SUBMIT": "2 per minute",
            # A refused command must show, not be counted in memory instead.
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": False,
            "RATELIMIT_SWALLOW_ERRORS": False,
        }
    )
    with app.app_context():
        db.create_schema()
    client = app.test_client()
    statuses = []
    for _ in range(3):
        page = client.get("/petition/testimony")
        data = {**form_tokens(page.get_data(as_text=True)), "what_happened": "x"}
        statuses.append(client.post("/petition/testimony", data=data).status_code)
    assert statuses == [303, 303, 429]
    assert not list(guide_redis.folder.glob("*.rdb"))
    assert not list(guide_redis.folder.glob("appendonly*"))


# --- gunicorn under MemoryDenyWriteExecute ---------------------------------------------------------

# Installs the rules systemd's MemoryDenyWriteExecute=yes applies (its seccomp filter: no mmap both writable and
# executable, no mprotect or pkey_mprotect to executable, no shmat with SHM_EXEC), then runs the command in argv.
MDWE = r"""
import ctypes, os, platform, struct, sys

ARCHES = {"x86_64": (0xC000003E, 9, 10, 329, 30), "aarch64": (0xC00000B7, 222, 226, 288, 196)}
arch, mmap, mprotect, pkey_mprotect, shmat = ARCHES[platform.machine()]
PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
rules = [(mmap, PROT_WRITE | PROT_EXEC), (mprotect, PROT_EXEC), (pkey_mprotect, PROT_EXEC), (shmat, SHM_EXEC)]
LD, JEQ, AND, RET, ALLOW, EPERM = 0x20, 0x15, 0x54, 0x06, 0x7FFF0000, 0x00050001
allow = 3 + 4 * len(rules)
deny = allow + 1
program = [(LD, 0, 0, 4), (JEQ, 0, allow - 2, arch), (LD, 0, 0, 0)]
for i, (number, mask) in enumerate(rules):
    at = 3 + 4 * i
    following = allow if i == len(rules) - 1 else at + 4
    program += [(JEQ, 0, following - at - 1, number), (LD, 0, 0, 32), (AND, 0, 0, mask)]
    program += [(JEQ, deny - at - 4, allow - at - 4, mask)]
program += [(RET, 0, 0, ALLOW), (RET, 0, 0, EPERM)]
code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *op) for op in program))


class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(Program(len(program), ctypes.addressof(code))), 0, 0):
    raise OSError(ctypes.get_errno(), "could not install the seccomp filter")
os.execv(sys.argv[1], sys.argv[1:])
"""
WRITABLE_CODE = """
import mmap, cffi
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("writable code: allowed")
except PermissionError:
    print("writable code: refused")
try:
    cffi.FFI().callback("int(int)", lambda x: x)
    print("ffi.callback: allowed")
except MemoryError:
    print("ffi.callback: refused")
"""


def under_mdwe(*command: str) -> list[str]:
    if platform.machine() not in {"x86_64", "aarch64"}:
        pytest.fail(f"the MemoryDenyWriteExecute rules are written for x86-64 and arm64, not {platform.machine()}")
    return [sys.executable, "-c", MDWE, *command]


def test_the_memory_rules_refuse_what_systemd_refuses() -> None:
    """The stand-in bites: memory both writable and executable, and so cffi's ABI-mode callbacks, are refused."""
    checked = run(*under_mdwe(sys.executable, "-c", WRITABLE_CODE))
    assert checked.stdout.splitlines() == ["writable code: refused", "ffi.callback: refused"], checked.stderr
    assert run(sys.executable, "-c", WRITABLE_CODE).stdout.splitlines()[0] == "writable code: allowed"


@contextlib.contextmanager
def gunicorn_under_mdwe(env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            under_mdwe(sys.executable, "-m", "gunicorn", "wsgi:app"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_healthy(process, port, lambda: f"(under the memory rules)\n{log.read_text(errors='replace')}")
        yield
    finally:
        stop(process)


def exchange(port: int, method: str, path: str, body: str = "", **headers: str) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body or None, headers=headers)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode()
    finally:
        conn.close()


# The second asks for its services by name, at run time: it is marked by hand.
@pytest.mark.parametrize(
    "stack", ["sqlite", pytest.param("postgresql and redis", marks=[pytest.mark.postgres, pytest.mark.redis])]
)
def test_gunicorn_serves_pages_and_both_kinds_of_post_under_memory_deny_write_execute(
    request: pytest.FixtureRequest, stack: str, tmp_path: Path, keys_dir: Path, organizer_key: X25519PrivateKey
) -> None:
    settings = {"DATABASE_URL": f"sqlite:///{tmp_path / 'papillon.sqlite3'}"}
    if stack != "sqlite":
        settings = {
            "DATABASE_URL": request.getfixturevalue("guide_postgres").url,
            "RATELIMIT_STORAGE_URI": request.getfixturevalue("guide_redis").uri,
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": "false",
            "RATELIMIT_SWALLOW_ERRORS": "false",
        }
    setup = schema_ready({"PAPILLON_KEYS_DIR": str(keys_dir), **settings})
    port = free_port()
    env = server_environment()
    env.update(
        SECRET_KEY="deploy test secret key",
        PAPILLON_KEYS_DIR=str(keys_dir),
        PAPILLON_BIND=f"127.0.0.1:{port}",
        PAPILLON_WORKERS="2",
        **settings,
    )
    for name in ("WEB_CONCURRENCY", "TRUSTED_HOSTS", "FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    definition = site(setup).campaigns["open-letter"].forms["sign"]
    with gunicorn_under_mdwe(env, port, tmp_path / "gunicorn.log"):
        status, headers, page = exchange(port, "GET", "/open-letter/sign")
        assert status == 200
        cookie = headers["set-cookie"].split(";")[0]
        hidden = form_tokens(page)
        ids = [hidden["submission_id"]]
        plain = urlencode({**hidden, **form_data(TYPICAL_ANSWERS)}, doseq=True)
        assert exchange(port, "POST", "/open-letter/sign", plain, Cookie=cookie)[0] == 303
        status, headers, page = exchange(port, "GET", "/open-letter/sign")
        hidden = form_tokens(page)
        ids.append(hidden["submission_id"])
        data = envelope.plaintext(TYPICAL_ANSWERS, definition.version, "en")
        sealed = envelope.seal(data, site(setup).keys, "open-letter", "sign").to_json()
        body = urlencode({**hidden, "envelope": sealed})
        reply = exchange(
            port,
            "POST",
            "/open-letter/sign",
            body,
            Cookie=headers["set-cookie"].split(";")[0],
            Accept="application/json",
        )
        assert reply[0] == 200, reply[2][:500]
    logged = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in logged, logged
    assert "MemoryError" not in logged, logged
    with setup.app_context():
        rows = {row.id: row for row in db.unexported() if row.id in ids}
        db.engine.dispose()
    assert set(rows) == set(ids)
    for row in rows.values():
        opened = envelope.open_envelope(envelope.parse(row.envelope), organizer_key, row.campaign, row.form)
        assert {name: opened["answers"][name] for name in TYPICAL_ANSWERS} == TYPICAL_ANSWERS


# --- the staff commands every guide gives, and the one Chromium setting -------------------------------------------

GUIDES = [
    "README.md",
    "docs/staff-guide.md",
    "docs/deploy.md",
    "SECURITY.md",
    "docs/offline-kit.txt",
    "docs/campaigns.md",
]
# `flask` run as a command, not as the project's own: after anything but a path (`.venv/bin/flask`) or a name
# (`papillon-flask`), and followed by what Papillon's commands take.
FLASK_COMMANDS = "--app|export|purge|status|publish|db|init-db|run|translation-template|routes|shell"
BARE_FLASK = re.compile(rf"(?<![\w/.-])flask (?={FLASK_COMMANDS})")


def bare_flask_lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if BARE_FLASK.search(line)]
    return lines + [line.strip() for line in text.splitlines() if re.search(r"\.venv/bin/flask (?!--app wsgi)", line)]


def test_the_check_for_a_bare_flask_command_finds_one() -> None:
    assert bare_flask_lines("6. then `flask --app wsgi status` shows") == ["6. then `flask --app wsgi status` shows"]
    assert bare_flask_lines("ssh server 'flask export' > bundle")
    assert bare_flask_lines("`.venv/bin/flask purge`")
    assert not bare_flask_lines("ssh s 'cd /srv/papillon && .venv/bin/flask --app wsgi export' > b")
    assert not bare_flask_lines("sudo -u papillon papillon-flask purge --yes; a Flask app; # flask commands")


@pytest.mark.parametrize("guide", GUIDES)
def test_every_staff_command_in_the_guides_is_the_project_s_own_flask(guide: str) -> None:
    """A bare `flask` runs whichever Flask the shell finds first: another project's, or none."""
    assert bare_flask_lines((ROOT / guide).read_text(encoding="utf-8")) == []


def test_the_readme_and_the_staff_guide_say_that_purge_asks_and_that_yes_skips_the_question() -> None:
    for guide in ("README.md", "docs/staff-guide.md", "docs/deploy.md"):
        text = " ".join((ROOT / guide).read_text(encoding="utf-8").split())
        assert "purge --yes" in text, guide
        assert re.search(r"purge.{0,40} asks", text), guide


def test_the_readme_and_the_staff_guide_say_an_empty_export_still_leaves_the_shell_s_file() -> None:
    message = "Nothing is waiting for export; no bundle was written."
    for guide in ("README.md", "docs/staff-guide.md"):
        text = " ".join((ROOT / guide).read_text(encoding="utf-8").split())
        assert message in text, guide
        assert "empty" in text.split(message, 1)[1][:300], guide


def make_sees_chromium(*args: str, env: dict[str, str]) -> str:
    """What PAPILLON_CHROMIUM is in the environment of the Makefile's recipes, as `make test` runs pytest."""
    probe = 'papillon-chromium-probe: ; @echo "$$PAPILLON_CHROMIUM"'
    done = subprocess.run(
        ["make", "--no-print-directory", "--eval", probe, *args, "papillon-chromium-probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_the_makefile_and_the_browser_tests_share_one_chromium_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    name, default = browser_support.CHROMIUM_SETTING, browser_support.DEFAULT_CHROMIUM
    assert name == "PAPILLON_CHROMIUM"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^export {name}$", makefile, re.M)
    assert "$(CHROMIUM)" not in makefile
    env = {k: v for k, v in os.environ.items() if k != name}
    assert make_sees_chromium(env=env) == default  # the same default, passed on to the tests
    assert make_sees_chromium(f"{name}=/opt/other/chromium", env=env) == "/opt/other/chromium"
    assert make_sees_chromium(env={**env, name: "/opt/from/environment"}) == "/opt/from/environment"
    planned = subprocess.run(
        ["make", "-n", "chromium", f"{name}=/opt/other/chromium"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert '[ -x "/opt/other/chromium" ]' in planned
    monkeypatch.delenv(name, raising=False)
    assert browser_support.chromium_path() == default
    monkeypatch.setenv(name, "/opt/nowhere/chromium")
    with pytest.raises(browser_support.ChromiumMissing, match="/opt/nowhere/chromium"):
        browser_support.chromium_path()
    assert f"make test {name}=" in (ROOT / "README.md").read_text()
