"""`cortask doctor`: what can keep Cortask from running for months, checked one thing at a time.

Each check looks, changes nothing, and answers with one line: ok, warn (works, but look at it)
or fail (something is wrong), and for anything but ok the command that fixes it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

from cortask.channels.whatsapp.authpeek import peek_link
from cortask.channels.whatsapp.authstore import DB_FILE as AUTH_DB
from cortask.channels.whatsapp.sidecar import MIN_NODE_MAJOR, pinned_baileys_version
from cortask.channels.whatsapp.sidecar_files import PACKAGE_DIR, candidate_dirs, home_install_dir
from cortask.home import gateway_token_file
from cortask.migrations import schema_version
from cortask.store.db import DB_FILE
from cortask.store.schema import SCHEMA_VERSION

Level = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES = 200 * 1024 * 1024
MAX_SKEW_S = 30.0  # WhatsApp's servers and phones compare timestamps; minutes off breaks linking
BAILEYS_WARN_DAYS, BAILEYS_FAIL_DAYS = 120, 240
DEFAULT_PORT = 8484


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Context:
    home: Path
    environ: Mapping[str, str]
    port: int = DEFAULT_PORT
    today: date | None = None

    @property
    def auth_dir(self) -> Path:
        return self.home / "whatsapp-auth"


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def check_node(ctx: Context) -> Check:
    node = shutil.which("node", path=ctx.environ.get("PATH", os.defpath))
    fix = f"install Node.js {MIN_NODE_MAJOR} or newer with npm (e.g. `sudo apt-get install nodejs npm`)"
    if node is None:
        return Check("node", "fail", "Node.js is not on PATH", fix)
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return Check("node", "fail", f"{node} --version does not answer", fix)
    if major < MIN_NODE_MAJOR:
        return Check("node", "fail", f"Node {version} at {node} is too old", fix)
    return _ok("node", f"Node {version} ({node})")


def check_sidecar(ctx: Context) -> Check:
    pinned = pinned_baileys_version()
    fix = "run `cortask sidecar install`"
    for how, directory in candidate_dirs(ctx.home, ctx.environ):
        installed = directory / "node_modules" / "baileys" / "package.json"
        try:
            found = json.loads(installed.read_text())["version"]
        except (OSError, ValueError, KeyError):
            return Check("sidecar", "fail", f"the sidecar in {directory} ({how}) has no readable Baileys", fix)
        if found != pinned:
            return Check("sidecar", "fail", f"the sidecar in {directory} has Baileys {found}, not {pinned}", fix)
        return _ok("sidecar", f"Baileys {found} in {directory} ({how})")
    where = home_install_dir(ctx.home)
    return Check("sidecar", "fail", f"the WhatsApp sidecar (Baileys {pinned}) is not installed in {where}", fix)


def check_database(ctx: Context) -> Check:
    path = ctx.home / DB_FILE
    if not path.exists():
        return _ok("database", f"{path} does not exist yet (created on first start)")
    fix = f"stop Cortask, move {path} aside and restore it from a backup (or start with a new one)"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()
            version = schema_version(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path} cannot be read as a database ({exc})", fix)
    if not result or result[0] != "ok":
        return Check("database", "fail", f"{path} fails its integrity check ({result[0] if result else '?'})", fix)
    if version > SCHEMA_VERSION:
        return Check(
            "database", "fail", f"{path} is at schema {version}, newer than this Cortask's {SCHEMA_VERSION}",
            "upgrade Cortask (`pipx upgrade cortask-whatsapp` or `uv tool upgrade cortask-whatsapp`)",
        )  # fmt: skip
    if version < SCHEMA_VERSION:
        return Check(
            "database", "warn", f"{path} is at schema {version}; this Cortask brings it to {SCHEMA_VERSION}",
            "nothing to do: the next `cortask serve` migrates it (keep a copy first if you like)",
        )  # fmt: skip
    return _ok("database", f"{path}: integrity ok, schema {version}")


def check_link(ctx: Context) -> Check:
    directory = ctx.auth_dir
    if not (directory / AUTH_DB).exists():
        return Check("link", "warn", f"no WhatsApp link in {directory}", "run `cortask whatsapp link` and scan the QR")
    owner = _foreign_owner(directory)
    if owner is not None:
        return Check(
            "link", "fail", f"{owner} belongs to uid {owner.stat().st_uid}, not to you (uid {os.getuid()})",
            f"run `sudo chown -R {os.getuid()} {directory}`, or run Cortask as that user",
        )  # fmt: skip
    if not os.access(directory / AUTH_DB, os.R_OK):
        return Check("link", "fail", f"{directory / AUTH_DB} is not readable", f"run `chmod 600 {directory / AUTH_DB}`")
    info = peek_link(directory)
    if info.problem:
        return Check("link", "fail", info.problem, "run `cortask whatsapp logout`, then `cortask whatsapp link`")
    if not info.linked:
        return Check("link", "warn", f"{directory} holds no linked device", "run `cortask whatsapp link`")
    held = f"; held by {info.in_use_by}" if info.in_use_by else ""
    return _ok("link", f"linked as {info.account}, owned by uid {os.getuid()}{held}")


def _foreign_owner(directory: Path) -> Path | None:
    for path in [directory, *directory.iterdir()]:
        if path.stat().st_uid != os.getuid():
            return path
    return None


def check_modes(ctx: Context) -> Check:
    """Everything under $CORTASK_HOME is its owner's alone (the link, the token, the chats)."""
    if not ctx.home.exists():
        return _ok("modes", f"{ctx.home} does not exist yet")
    loose: list[str] = []
    for path in [ctx.home, *_private_paths(ctx.home)]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode & 0o077:
            loose.append(f"chmod {want:o} {path}")
    if loose:
        return Check(
            "modes",
            "fail",
            f"{len(loose)} file(s) others can read (first: {loose[0].split()[-1]})",
            "; ".join(loose[:5]),
        )
    return _ok("modes", f"{ctx.home} and its data are private (0700/0600)")


def _private_paths(home: Path) -> list[Path]:
    named = [home / n for n in (DB_FILE, "gateway-token", "gateway.json", "cli.log", "cli.log.1", "whatsapp-auth")]
    found = [p for p in named if p.exists() and not p.is_symlink()]
    auth = home / "whatsapp-auth"
    if auth.is_dir():
        found += [p for p in auth.iterdir() if p.is_file()]
    return found


def check_gateway(ctx: Context) -> Check:
    token = gateway_token_file(ctx.home)
    info = ctx.home / "gateway.json"
    if token.exists():
        value = token.read_text().strip()
        if len(value) < 32:
            return Check(
                "gateway",
                "fail",
                f"{token} holds a token of {len(value)} characters",
                f"remove {token}: `cortask serve` makes a new one",
            )
    running = _running_gateway(info)
    if running is not None:
        return running
    if not _port_free(ctx.port):
        return Check(
            "gateway", "fail", f"port {ctx.port} is taken by another program",
            f"stop that program, or run `cortask serve --port {ctx.port + 1}`",
        )  # fmt: skip
    have = "its token is kept" if token.exists() else "a token is made on first start"
    return _ok("gateway", f"not running; port {ctx.port} is free and {have}")


def _running_gateway(info: Path) -> Check | None:
    try:
        data = json.loads(info.read_text())
    except (OSError, ValueError):
        return None
    url, pid = str(data.get("url", "")), int(data.get("pid", 0))
    host_port = url.split("//", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    alive = _pid_alive(pid)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            answering = True
    except (OSError, ValueError):
        answering = False
    if alive and answering:
        return _ok("gateway", f"running (pid {pid}) at {url}")
    if not alive:
        return Check("gateway", "warn", f"{info} names pid {pid}, which is gone", f"remove {info} (left by a crash)")
    return Check(
        "gateway",
        "fail",
        f"pid {pid} runs but {url} does not answer",
        f"restart it: `kill {pid}`, then `cortask serve`",
    )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_disk(ctx: Context) -> Check:
    where = ctx.home if ctx.home.exists() else ctx.home.parent
    free = shutil.disk_usage(where).free
    if free < int(ctx.environ.get("CORTASK_DOCTOR_MIN_FREE_BYTES", MIN_FREE_BYTES)):
        return Check(
            "disk",
            "fail",
            f"{free // 2**20} MiB free where {ctx.home} lives",
            f"free some space on the disk holding {where}",
        )
    return _ok("disk", f"{free // 2**20} MiB free")


def check_clock(ctx: Context) -> Check:
    """Compared with the Date a registry's server says (seconds' precision is plenty)."""
    import httpx

    url = ctx.environ.get("CORTASK_DOCTOR_TIME_URL") or _npm_registry(ctx)
    if url is None:
        return Check(
            "clock", "warn", "no time reference (npm's registry is unknown)", "check that NTP runs: `timedatectl`"
        )
    try:
        sent = time.time()
        answer = httpx.head(url, timeout=5)
        now = (sent + time.time()) / 2
        theirs = parsedate_to_datetime(answer.headers["date"]).timestamp()
    except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
        return Check(
            "clock",
            "warn",
            f"could not ask {url} for the time ({type(exc).__name__})",
            "check the network, or that NTP runs: `timedatectl`",
        )
    skew = now - theirs
    if abs(skew) > MAX_SKEW_S:
        return Check(
            "clock", "fail", f"this clock is {abs(skew):.0f} s {'ahead' if skew > 0 else 'behind'} of {url}",
            "turn on time synchronisation: `sudo timedatectl set-ntp true` (or run chrony/ntpd)",
        )  # fmt: skip
    return _ok("clock", f"within {max(abs(skew), 1):.0f} s of {url}")


def _npm_registry(ctx: Context) -> str | None:
    """The registry the sidecar is installed from: a server Cortask talks to already."""
    npm = shutil.which("npm", path=ctx.environ.get("PATH", os.defpath))
    if npm is None:
        return None
    try:
        done = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    url = done.stdout.strip()
    return url if url.startswith(("https://", "http://")) else None


def check_baileys_age(ctx: Context) -> Check:
    """WhatsApp retires old Web client versions: an old Baileys stops connecting one day."""
    directory = next((d for _, d in candidate_dirs(ctx.home, ctx.environ)), PACKAGE_DIR)
    try:
        released = date.fromisoformat(
            json.loads((directory / "package.json").read_text())["cortask"]["baileysReleased"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        return Check(
            "baileys",
            "warn",
            f"{directory / 'package.json'} does not say when its Baileys was released",
            "run `cortask sidecar install`",
        )
    today = ctx.today or date.today()
    age = (today - released).days
    fix = "upgrade Cortask for a newer Baileys (`pipx upgrade cortask-whatsapp`), then `cortask sidecar install`"
    detail = f"Baileys {pinned_baileys_version(directory)} was released {released} ({age} days ago)"
    if age > BAILEYS_FAIL_DAYS:
        return Check("baileys", "fail", detail, fix)
    if age > BAILEYS_WARN_DAYS:
        return Check("baileys", "warn", detail, fix)
    return _ok("baileys", detail)


CHECKS: tuple[Callable[[Context], Check], ...] = (
    check_node,
    check_sidecar,
    check_database,
    check_link,
    check_modes,
    check_gateway,
    check_disk,
    check_clock,
    check_baileys_age,
)


def run_checks(ctx: Context) -> list[Check]:
    results = []
    for check in CHECKS:
        try:
            results.append(check(ctx))
        except OSError as exc:  # a check that cannot look says so, and the others still run
            name = check.__name__.removeprefix("check_")
            results.append(Check(name, "fail", f"could not check: {exc}", "see the error; check permissions"))
    return results
