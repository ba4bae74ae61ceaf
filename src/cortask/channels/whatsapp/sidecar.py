"""The Node sidecar process: started, watched and stopped by Python over stdin/stdout.

One JSON object per line each way. The sidecar reports what Baileys reports (events), answers our
commands (`re`), and asks us to read or write the auth state (`req`), which we answer from the
AuthStore only once a write is durable. Baileys' logs arrive on stderr and go to Python logging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError

log = logging.getLogger("cortask.whatsapp.sidecar")
baileys_log = logging.getLogger("cortask.whatsapp.baileys")

PROTOCOL = 1
MIN_NODE_MAJOR = 20
PACKAGE_DIR = Path(__file__).resolve().parent / "sidecar"
MAX_LINE = 64 * 1024 * 1024


class SidecarError(Exception):
    """The sidecar cannot run or stopped working; the message says what to do."""


class SidecarNotInstalled(SidecarError):
    pass


class SidecarLineTooLong(SidecarError):
    pass


@dataclass(frozen=True, slots=True)
class SidecarInstall:
    directory: Path
    node: str
    baileys_version: str


def pinned_baileys_version(directory: Path = PACKAGE_DIR) -> str:
    return str(json.loads((directory / "package.json").read_text())["dependencies"]["baileys"])


def locate_sidecar(home: Path | None = None) -> SidecarInstall:
    """Find Node >= 20 and an installed sidecar whose Baileys matches the pinned version."""
    node = shutil.which("node")
    if node is None:
        raise SidecarNotInstalled("Node.js is not installed: install Node 20 or newer, then run scripts/setup.")
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise SidecarNotInstalled(f"cannot run {node} --version ({exc}); install Node 20 or newer.") from exc
    if major < MIN_NODE_MAJOR:
        raise SidecarNotInstalled(f"Node {version} is too old: the sidecar needs Node {MIN_NODE_MAJOR} or newer.")
    pinned = pinned_baileys_version()
    candidates = [Path(p) for p in [os.environ.get("CORTASK_SIDECAR_DIR")] if p]
    candidates.append(PACKAGE_DIR)
    if home is not None:
        candidates.append(home / "sidecar" / pinned)
    for directory in candidates:
        installed = directory / "node_modules" / "baileys" / "package.json"
        if installed.exists():
            found = json.loads(installed.read_text())["version"]
            if found != pinned:
                raise SidecarNotInstalled(
                    f"the sidecar in {directory} has Baileys {found}, but this version of Cortask needs {pinned}: "
                    f"run `npm ci` in {directory} (or scripts/setup)."
                )
            return SidecarInstall(directory, node, found)
    raise SidecarNotInstalled(
        f"the WhatsApp sidecar is not installed (Baileys {pinned}): run scripts/setup, or `npm ci` in {PACKAGE_DIR}."
    )


class Sidecar:
    """One running sidecar. `events` yields everything it reports; a final {'event': 'exited'}
    says the process is gone (the channel treats that as a lost connection)."""

    def __init__(
        self, install: SidecarInstall, store: AuthStore, log_level: str = "info", max_line: int = MAX_LINE
    ) -> None:
        self._install = install
        self._max_line = max_line
        self._store = store
        self._log_level = log_level
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._tasks: list[asyncio.Task[None]] = []
        # One writer: every store call runs on this single thread, in arrival order.
        self._store_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="authstore")
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.hello: dict[str, Any] = {}
        self.fatal: dict[str, Any] | None = None
        self.on_sent_lookup: Callable[[str], str | None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def launch(self) -> tuple[list[str], Path, dict[str, str]]:
        """The command line, working directory and environment the sidecar runs with."""
        argv = [self._install.node, str(self._install.directory / "index.mjs")]
        env = {
            **os.environ,
            "CORTASK_SIDECAR_LOG_LEVEL": self._log_level,
            # where it leaves messages we had not journaled yet, should we die first
            "CORTASK_SIDECAR_SPILL_DIR": str(self._store.directory),
        }
        return argv, self._install.directory, env

    async def start(self, timeout: float = 30.0) -> None:
        argv, cwd, env = self.launch()
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read_stdout(hello), name="sidecar-stdout"),
            asyncio.create_task(self._read_stderr(), name="sidecar-stderr"),
        ]
        try:
            async with asyncio.timeout(timeout):
                self.hello = await hello
        except TimeoutError:
            await self.kill()
            raise SidecarError(f"the sidecar did not start within {timeout:.0f} s") from None
        if self.hello.get("protocol") != PROTOCOL:
            await self.stop()
            raise SidecarNotInstalled(
                f"the installed sidecar speaks protocol {self.hello.get('protocol')}, Python expects {PROTOCOL}: "
                "reinstall it with scripts/setup."
            )
        if self.hello.get("baileys") != self._install.baileys_version:
            await self.stop()
            raise SidecarNotInstalled(f"the sidecar runs Baileys {self.hello.get('baileys')}; run scripts/setup.")

    async def request(self, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """Send a command and return its result; raises SidecarError on failure or exit."""
        if "id" in args or "cmd" in args:
            raise ValueError("'id' and 'cmd' are the line protocol's own fields; name the argument differently")
        if not self.running or self._proc is None or self._proc.stdin is None:
            raise SidecarError("the sidecar is not running")
        self._next_id += 1
        request_id = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            await self._write({"id": request_id, "cmd": cmd, **args})
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise SidecarError(f"the sidecar did not answer {cmd!r} within {timeout:.0f} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, cmd: str, **args: Any) -> None:
        """Send a command without waiting for its answer (an acknowledgement, say)."""
        if self.running and self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._write({"id": 0, "cmd": cmd, **args})

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the sidecar to close its socket (keeping the link) and exit; kill it if it hangs."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await self._write({"id": 0, "cmd": "exit"})
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self._finish()

    async def kill(self) -> None:
        if self._proc and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        await self._finish()

    async def _finish(self) -> None:
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()  # lets asyncio release the process transport
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2)
        self._store_thread.shutdown(wait=True)

    async def _write(self, obj: dict[str, Any]) -> None:
        assert self._proc and self._proc.stdin
        line = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        if len(line) > MAX_LINE:
            # the sidecar would drop it and whoever waits for it would wait forever
            raise SidecarLineTooLong(f"a line of {len(line)} bytes is more than the sidecar reads ({MAX_LINE})")
        self._proc.stdin.write(line)
        await self._proc.stdin.drain()

    async def _read_stdout(self, hello: asyncio.Future[dict[str, Any]]) -> None:
        assert self._proc and self._proc.stdout
        try:
            async for raw in read_lines(self._proc.stdout, self._max_line):
                try:
                    await self._handle_line(raw, hello)
                except Exception:  # one bad line must not stop us hearing the next
                    log.exception("could not handle a line from the sidecar: %r", raw[:200])
        finally:
            code = await self._proc.wait()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(SidecarError(f"the sidecar exited (code {code})"))
            if not hello.done():
                hello.set_exception(SidecarError(f"the sidecar exited at start (code {code}); see the log"))
            await self.events.put({"event": "exited", "code": code, "fatal": self.fatal})

    async def _handle_line(self, raw: bytes, hello: asyncio.Future[dict[str, Any]]) -> None:
        try:
            msg = json.loads(raw.decode())
        except ValueError:  # not UTF-8, or not JSON
            log.warning("sidecar printed a line that is not JSON: %r", raw[:200])
            return
        if not isinstance(msg, dict):
            log.warning("sidecar printed JSON that is not an object: %r", raw[:200])
            return
        log.debug("from sidecar: %.200s", raw)
        if "req" in msg:
            if not isinstance(msg["req"], int) or isinstance(msg["req"], bool):
                log.warning("sidecar sent a request without a whole-number id: %r", raw[:200])
                return
            await self._serve(msg)
        elif "re" in msg:
            fut = self._pending.get(msg["re"]) if isinstance(msg["re"], int) else None
            if fut is None and msg.get("ok") is False:  # a notification nobody waits for
                log.debug("the sidecar could not carry out a notification: %s", msg.get("error"))
            if fut and not fut.done():
                if msg.get("ok"):
                    result = msg.get("result")
                    fut.set_result(result if isinstance(result, dict) else {})
                else:
                    fut.set_exception(SidecarError(str(msg.get("error"))))
        elif msg.get("event") == "hello" and not hello.done():
            hello.set_result(msg)
        elif msg.get("event") == "protocol_error":
            # the sidecar could not read a line we sent it: a bug on our side, never the user's
            log.error("the sidecar refused a line from us: %s", msg.get("message"))
        else:
            if msg.get("event") == "fatal":
                self.fatal = msg
            await self.events.put(msg)

    async def _read_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        async for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            try:
                record = json.loads(line)
                level = int(record.get("level", 30))
                text = record.get("msg", "")
                baileys_log.log(logging.WARNING if level >= 50 else logging.DEBUG, "%s %s", text, line[:2000])
            except (json.JSONDecodeError, AttributeError, ValueError):
                baileys_log.debug("%s", line[:2000])

    async def _serve(self, msg: dict[str, Any]) -> None:
        """Answer an auth-state request from the sidecar, in order, on the store's thread."""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._store_thread, self._store_call, msg)
            reply: dict[str, Any] = {"re": msg["req"], "ok": True, "result": result}
        except (AuthStoreError, ValueError, KeyError, TypeError) as exc:
            log.error("auth store request %s failed: %s", msg.get("op"), exc)
            reply = {"re": msg["req"], "ok": False, "error": str(exc)}
        except Exception as exc:  # the store must answer even what it did not foresee
            log.exception("auth store request %s failed", msg.get("op"))
            reply = {"re": msg["req"], "ok": False, "error": str(exc)}
        with contextlib.suppress(ConnectionError, RuntimeError, AssertionError):
            try:
                await self._write(reply)
            except SidecarLineTooLong as exc:
                log.error("auth store request %s: %s", msg.get("op"), exc)
                await self._write({"re": msg["req"], "ok": False, "error": str(exc)})

    def _store_call(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        store = self._store
        if op == "keys.get":
            return {"values": store.get_keys(str(msg["type"]), [str(i) for i in msg["ids"]])}
        if op == "keys.set":
            store.set_keys((str(t), str(i), v if v is None else str(v)) for t, i, v in msg["items"])
            return {}
        if op == "creds.get":
            return {"creds": store.creds()}
        if op == "creds.set":
            store.set_creds(str(msg["creds"]))
            return {}
        if op == "sent.get":
            return {"text": store.sent_text(str(msg["id"]))}
        raise ValueError(f"unknown store operation {op!r}")


async def read_lines(stream: asyncio.StreamReader, max_line: int) -> AsyncIterator[bytes]:
    """The lines of `stream` without their newline. A line longer than `max_line` bytes is
    logged and skipped as a whole (never held in memory, never read as the start of the next)."""
    buffer = bytearray()
    discarding = False
    while chunk := await stream.read(256 * 1024):
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            if not discarding and len(buffer) + newline - start <= max_line:
                buffer += chunk[start:newline]
                yield bytes(buffer)
            elif not discarding:
                log.warning("sidecar printed a line longer than %d bytes; it was skipped", max_line)
            buffer.clear()
            discarding = False
            start = newline + 1
        if not discarding and len(buffer) + len(chunk) - start > max_line:
            log.warning("sidecar printed a line longer than %d bytes; it was skipped", max_line)
            buffer.clear()
            discarding = True
        if not discarding:
            buffer += chunk[start:]
