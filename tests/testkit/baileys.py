"""A real Baileys client in a Node process, driven from asyncio over JSON lines.

It is the plain Baileys client of the test kit (`tests/testkit/node/baileys-driver.mjs`):
plain Baileys with its own multi-file auth state, pointed at wasim through the two seams only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from testkit.paths import NODE_DIR, SIDECAR_DIR

if TYPE_CHECKING:
    from wasim.server.app import Wasim

log = logging.getLogger("testkit.baileys")

DRIVER = NODE_DIR / "baileys-driver.mjs"

Event = dict[str, Any]


class DriverError(Exception):
    pass


class BaileysDriver:
    def __init__(self, auth_dir: Path, *, log_level: str = "warn") -> None:
        self.auth_dir = auth_dir
        self.log_level = log_level
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._next_id = 0

    async def start(self) -> BaileysDriver:
        if not (SIDECAR_DIR / "node_modules" / "baileys").exists():
            raise DriverError(f"Baileys is not installed in {SIDECAR_DIR}: run scripts/setup")
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "BAILEYS_LOG_LEVEL": self.log_level},
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        self._stderr = asyncio.create_task(self._drain_stderr())
        await self.wait("ready", timeout=30)
        return self

    async def __aenter__(self) -> BaileysDriver:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.command("exit", wait=False)
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in (self._reader, self._stderr):
            if task:
                task.cancel()
        self._proc = None

    async def kill(self) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def _read(self) -> None:
        assert self._proc and self._proc.stdout
        async for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                log.warning("driver printed a non-JSON line: %r", line[:200])
                continue
            self.events.append(event)
            self._changed.set()
            self._changed = asyncio.Event()
        self.events.append({"event": "exited"})
        self._changed.set()

    async def _drain_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        async for line in self._proc.stderr:
            log.debug("baileys: %s", line.decode(errors="replace").rstrip())

    async def command(self, cmd: str, *, wait: bool = True, timeout: float = 30, **args: Any) -> Event:
        assert self._proc and self._proc.stdin
        self._next_id += 1
        request_id = self._next_id
        mark = len(self.events)
        self._proc.stdin.write((json.dumps({"cmd": cmd, "id": request_id, **args}) + "\n").encode())
        await self._proc.stdin.drain()
        if not wait:
            return {}
        result = await self.wait("result", lambda e: e.get("id") == request_id, since=mark, timeout=timeout)
        if not result.get("ok"):
            raise DriverError(f"{cmd} failed in Baileys: {result.get('error')}")
        return result

    async def wait(
        self,
        kind: str,
        predicate: Callable[[Event], bool] = lambda e: True,
        *,
        since: int = 0,
        timeout: float = 30,
    ) -> Event:
        """The first event `kind` at index >= since matching `predicate`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    for e in self.events[since:]:
                        if e.get("event") == kind and predicate(e):
                            return e
                        if e.get("event") == "exited" and kind != "exited":
                            raise DriverError("the Baileys process exited")
                    await changed.wait()
        except TimeoutError:
            tail = [e.get("event") for e in self.events[-8:]]
            raise TimeoutError(f"no {kind!r} event from Baileys within {timeout}s (last: {tail})") from None

    def mark(self) -> int:
        return len(self.events)

    async def connect(self, url: str, root_key: str, **options: Any) -> int:
        """Open a socket; returns the event index to wait from."""
        mark = self.mark()
        await self.command("connect", auth=str(self.auth_dir), url=url, rootKey=root_key, **options)
        return mark

    async def wait_close(self, since: int, timeout: float = 30) -> Event:
        return await self.wait("connection", lambda e: e["connection"] == "close", since=since, timeout=timeout)

    async def wait_open(self, since: int, timeout: float = 30) -> Event:
        def opened(e: Event) -> bool:
            if e["connection"] == "close":
                raise DriverError(f"connection closed instead of opening: {e['statusCode']} {e['message']}")
            return bool(e["connection"] == "open")

        return await self.wait("connection", opened, since=since, timeout=timeout)

    async def creds(self) -> dict[str, Any]:
        """Baileys' credentials as it holds them now (its creds.json is rewritten in place, so a
        read of the file can catch it half-written)."""
        return dict((await self.command("creds"))["creds"])

    def saved_creds(self) -> dict[str, Any]:
        """The credentials on disk; read only when this client is closed."""
        return dict(json.loads((self.auth_dir / "creds.json").read_text()))


async def link_device(sim: Wasim, client: BaileysDriver, **options: Any) -> dict[str, Any]:
    """QR -> the phone scans -> 515 -> reconnect -> open, as a person linking a device.

    Returns the credentials Baileys saved.
    """
    mark = await client.connect(sim.url, sim.root_public_key, **options)
    qr = await client.wait("qr", since=mark)
    await sim.phone.scan(qr["qr"])
    closed = await client.wait_close(mark)
    if closed["statusCode"] != 515:
        raise DriverError(f"expected a 515 restart after pairing, got {closed}")
    mark = await client.connect(sim.url, sim.root_public_key, **options)
    await client.wait_open(mark)
    return await client.creds()
