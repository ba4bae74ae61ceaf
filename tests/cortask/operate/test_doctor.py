"""Each `cortask doctor` check, with the thing it checks broken for real (files, modes, owners,
a SQLite file, a taken port, a clock server on loopback): it fails, and says the fix."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from time import time

import pytest

from cortask.channels.whatsapp.sidecar_files import PACKAGE_DIR
from cortask.home import private_dir, private_file
from cortask.operate.doctor import (
    Context,
    check_baileys_age,
    check_clock,
    check_database,
    check_disk,
    check_gateway,
    check_link,
    check_modes,
    check_node,
    check_sidecar,
)
from cortask.store.db import connect

PINNED = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]["baileys"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = private_dir(tmp_path / "home")
    connect(home / "cortask.db").close()  # a real, current database
    return home


def ctx(home: Path, **environ: str) -> Context:
    return Context(home, {"PATH": os.environ["PATH"], **environ})


def test_node_missing_from_path(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = check_node(Context(home, {"PATH": str(empty)}))
    assert result.level == "fail" and "not on PATH" in result.detail
    assert result.fix is not None and "install Node.js 20 or newer" in result.fix


def test_sidecar_with_another_baileys(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "sidecar"
    (other / "node_modules" / "baileys").mkdir(parents=True)
    (other / "node_modules" / "baileys" / "package.json").write_text('{"version": "6.7.0"}')
    result = check_sidecar(ctx(home, CORTASK_SIDECAR_DIR=str(other)))
    assert result.level == "fail" and f"has Baileys 6.7.0, not {PINNED}" in result.detail
    assert result.fix == "run `cortask sidecar install`"


def test_database_that_is_not_one(home: Path) -> None:
    (home / "cortask.db").write_bytes(b"this is not SQLite" * 100)
    result = check_database(ctx(home))
    assert result.level == "fail" and "cannot be read as a database" in result.detail
    assert result.fix is not None and "restore it from a backup" in result.fix


def test_database_from_a_newer_cortask(home: Path) -> None:
    with sqlite3.connect(home / "cortask.db") as db:
        db.execute("INSERT INTO schema_version VALUES (999, 'from a later Cortask', 'later')")
    result = check_database(ctx(home))
    assert result.level == "fail" and "schema 999, newer than" in result.detail
    assert result.fix is not None and "upgrade Cortask" in result.fix


def test_database_that_fails_its_integrity_check(home: Path) -> None:
    path = home / "cortask.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE filler (x TEXT)")
        db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 400)
        db.execute("CREATE INDEX filler_x ON filler (x)")
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file, where we scribble
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'filler_x'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:  # scribble over the index's root page
        f.seek((root - 1) * page)
        f.write(b"\x0d\x00\x00\x00\x09" + b"\xff" * 200)
    result = check_database(ctx(home))
    assert result.level == "fail" and ("integrity" in result.detail or "cannot be read" in result.detail)
    assert result.fix is not None and "backup" in result.fix


def _auth(home: Path, creds: str) -> Path:
    auth = private_dir(home / "whatsapp-auth")
    with sqlite3.connect(auth / "auth.db") as db:
        db.execute("CREATE TABLE creds (id INTEGER PRIMARY KEY, json TEXT)")
        db.execute("INSERT INTO creds VALUES (1, ?)", (creds,))
    private_file(auth / "auth.db")
    return auth


def test_link_missing_then_unreadable(home: Path) -> None:
    missing = check_link(ctx(home))
    assert missing.level == "warn" and missing.fix == "run `cortask whatsapp link` and scan the QR"
    _auth(home, "{not json")
    broken = check_link(ctx(home))
    assert broken.level == "fail" and "cannot be read" in broken.detail
    assert broken.fix == "run `cortask whatsapp logout`, then `cortask whatsapp link`"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_link_owned_by_someone_else(home: Path) -> None:
    auth = _auth(home, json.dumps({"me": {"id": "4915100000000:1@s.whatsapp.net"}, "registered": True}))
    os.chown(auth / "auth.db", 4242, 4242)
    result = check_link(ctx(home))
    assert result.level == "fail" and "belongs to uid 4242" in result.detail
    assert result.fix is not None and f"chown -R {os.getuid()} {auth}" in result.fix


def test_modes_others_can_read(home: Path) -> None:
    assert check_modes(ctx(home)).level == "ok"
    os.chmod(home / "cortask.db", 0o644)
    result = check_modes(ctx(home))
    assert result.level == "fail" and result.fix is not None and f"chmod 600 {home / 'cortask.db'}" in result.fix


def test_gateway_port_taken_by_another_program(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = check_gateway(Context(home, {}, port=port))
    assert result.level == "fail" and f"port {port} is taken" in result.detail
    assert result.fix is not None and f"--port {port + 1}" in result.fix


def test_gateway_weak_token_and_a_stale_address(home: Path) -> None:
    private_file(home / "gateway-token").write_text("short")
    weak = check_gateway(ctx(home))
    assert weak.level == "fail" and "5 characters" in weak.detail and weak.fix is not None
    private_file(home / "gateway-token").write_text("t" * 43)
    (home / "gateway.json").write_text(json.dumps({"url": "http://127.0.0.1:1/", "pid": 2**22 + 7}))
    stale = check_gateway(ctx(home))
    assert stale.level == "warn" and "which is gone" in stale.detail
    assert stale.fix == f"remove {home / 'gateway.json'} (left by a crash)"


def test_disk_too_full(home: Path) -> None:
    free = shutil.disk_usage(home).free
    result = check_disk(ctx(home, CORTASK_DOCTOR_MIN_FREE_BYTES=str(free * 2)))
    assert result.level == "fail" and result.fix is not None and "free some space" in result.fix


@pytest.fixture
def clock_server() -> Iterator[tuple[str, list[float]]]:
    """An HTTP server on loopback whose Date header says what the test wants."""
    offset = [0.0]

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(time() + offset[0], usegmt=True)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", offset
    server.shutdown()
    server.server_close()


def test_clock_skewed(home: Path, clock_server: tuple[str, list[float]]) -> None:
    url, offset = clock_server
    assert check_clock(ctx(home, CORTASK_DOCTOR_TIME_URL=url)).level == "ok"
    offset[0] = -600  # the reference is ten minutes behind us: our clock is ahead
    result = check_clock(ctx(home, CORTASK_DOCTOR_TIME_URL=url))
    assert result.level == "fail" and "ahead" in result.detail
    assert result.fix is not None and "timedatectl set-ntp true" in result.fix


def test_baileys_too_old(home: Path) -> None:
    released = date.fromisoformat(json.loads((PACKAGE_DIR / "package.json").read_text())["cortask"]["baileysReleased"])
    fresh = check_baileys_age(Context(home, {}, today=released))
    assert fresh.level == "ok"
    result = check_baileys_age(Context(home, {}, today=date(released.year + 1, released.month, 1)))
    assert result.level == "fail" and "days ago" in result.detail
    assert result.fix is not None and "upgrade Cortask" in result.fix
