"""What the CLI's end-to-end tests share: wasim in its own process with its control API, a fresh
Cortask home configured by environment to use it (exactly as for `serve`), and `cortask` run
through its real entry point."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from testkit.paths import ROOT

CORTASK = [sys.executable, "-m", "cortask"]


async def wasim_cli(*args: str) -> tuple[int, str, str]:
    """`python -m wasim` with `args`, to its end: its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wasim", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class SimProcess:
    """`python -m wasim serve` in a subprocess (`args` added to its command line), and its control API."""

    def __init__(self, state: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wasim", "serve", "--state", str(state), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.url, self.root_key, self.control = info["url"], info["root_public_key"], info["control_url"]

    def scan(self, qr: str) -> None:
        resp = httpx.post(self.control + "/scan", json={"qr": qr}, timeout=30)
        assert resp.status_code == 200, resp.text

    def pair(self, code: str) -> httpx.Response:
        return httpx.post(self.control + "/pair", json={"code": code}, timeout=30)

    def devices(self) -> list[dict[str, Any]]:
        accounts = httpx.get(self.control + "/devices", timeout=30).json()["accounts"]
        return [d for a in accounts for d in a["devices"]]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def sandbox_env(home: Path, sim: SimProcess) -> dict[str, str]:
    """A Cortask home on the sandbox, configured by environment exactly as for `serve`."""
    return {
        **os.environ,
        "CORTASK_HOME": str(home),
        "CORTASK_WHATSAPP_SANDBOX_URL": sim.url,
        "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": sim.root_key,
        "COLUMNS": "200",
    }


def popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`cortask` with `args`, its output read by the test as it comes."""
    return subprocess.Popen(
        [*CORTASK, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )


@contextmanager
def on_terminal(env: dict[str, str], *args: str, rows: int = 24) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`cortask` with `args` on a pseudo-terminal `rows` lines high (100 wide): the process and the
    terminal's end to read; the process is killed afterwards if it is still running."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 100, 0, 0))
    proc = subprocess.Popen(
        [*CORTASK, *args], env={**env, "TERM": "xterm"}, stdin=follower, stdout=follower, stderr=follower, cwd=ROOT
    )
    os.close(follower)
    try:
        yield proc, leader
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_terminal(leader: int, until: bytes) -> bytes:
    """What the terminal showed, read until the pattern `until` appears (failing if it closes first)."""
    seen = b""
    while not re.search(until, seen):
        chunk = os.read(leader, 65536)
        assert chunk, seen
        seen += chunk
    return seen


def plain(seen: bytes) -> str:
    """A terminal's output without its escape sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
