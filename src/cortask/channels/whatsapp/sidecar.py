"""The Node sidecar process: started, watched and stopped by Python over stdin/stdout.

Process I/O only: the lines themselves are typed in `wire` (docs/sidecar-protocol.md). The
sidecar reports what Baileys reports (events), answers our commands, and asks us to read or write
the auth state (store requests), which we answer from the AuthStore only once a write is durable.
Baileys' logs arrive on stderr and go to Python logging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError
from cortask.channels.whatsapp.baileys_log import classify as classify_baileys
from cortask.channels.whatsapp.errors import SidecarError as SidecarError  # re-exported: its old home
from cortask.channels.whatsapp.sidecar_files import MIN_NODE_MAJOR as MIN_NODE_MAJOR  # re-exported: old home
from cortask.channels.whatsapp.sidecar_files import PACKAGE_DIR as PACKAGE_DIR
from cortask.channels.whatsapp.sidecar_files import SidecarInstall as SidecarInstall
from cortask.channels.whatsapp.sidecar_files import SidecarNotInstalled as SidecarNotInstalled
from cortask.channels.whatsapp.sidecar_files import locate_sidecar as locate_sidecar
from cortask.channels.whatsapp.sidecar_files import pinned_baileys_version as pinned_baileys_version
from cortask.childenv import child_environment
from cortask.group_commit import GroupCommit

log = logging.getLogger("cortask.whatsapp.sidecar")
baileys_log = logging.getLogger("cortask.whatsapp.baileys")

PROTOCOL = wire.PROTOCOL
# What Node itself reads (index.mjs reads only the CORTASK_SIDECAR_* variables launch() sets).
NODE_VARIABLES = ("NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "NODE_PATH", "NODE_DEBUG", "UV_THREADPOOL_SIZE")
# Node's heap settings for the sidecar (issue #18). By default V8 lets its young generation grow to
# 16 MB semi-spaces, which a text-only sidecar keeps resident while idle (about 35 MB of its RSS);
# 1 MB semi-spaces hold the same working set with shorter, more frequent scavenges. The old
# generation is left unbounded on purpose: a cap would turn a backlog of messages into a crash.
NODE_FLAGS = ("--max-semi-space-size=1",)
# glibc's malloc for the sidecar (issue #18). By default it raises its mmap threshold each time a
# large block is freed, so later large buffers come from the heap, and it keeps one heap per thread:
# after bench/scale.py's burst, per-thread heaps of 10 MB held 26 MB of the sidecar's RSS (14 MB more
# than before it), which V8's gc() does not touch. Fixed thresholds (128 KB: larger blocks are
# mapped and unmapped, free heap tops are trimmed) and two heaps shared by all threads: the
# sidecar went 86 -> 97 MB over the burst instead of 94-98 -> 112-121. The arena cap alone did
# not help. Other C libraries ignore both variables.
MALLOC_ENVIRONMENT = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "131072",  # glibc's own names for the tunables glibc.malloc.*: in
    "MALLOC_TRIM_THRESHOLD_": "131072",  # GLIBC_TUNABLES glibc would rewrite the environment
}
MAX_LINE = 64 * 1024 * 1024


class SidecarLineTooLong(SidecarError):
    pass


@dataclass(frozen=True, slots=True)
class Exited:
    """Not on the wire: the sidecar process is gone (the channel treats it as a lost connection).
    `fatal` is the reason it gave, when it stopped on purpose (a failed durable write)."""

    code: int | None
    fatal: wire.Fatal | None = None


# What `Sidecar.events` yields: the sidecar's events for the channel, then one Exited.
SidecarEvent = (
    wire.Qr | wire.Connection | wire.Messages | wire.Creds | wire.Receipts | wire.Lid | wire.Fatal | Exited
) | wire.CodeRefused
R = TypeVar("R")


class Sidecar:
    """One running sidecar. `events` yields everything it reports for the channel; a final
    `Exited` says the process is gone."""

    def __init__(
        self, install: SidecarInstall, store: AuthStore, log_level: str = "info", max_line: int = MAX_LINE
    ) -> None:
        self._install = install
        self._max_line = max_line
        self._store = store
        self._log_level = log_level
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[wire.Answer]] = {}
        self._next_id = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._answering: set[asyncio.Task[None]] = set()
        # Set by the first write that fails: every write after it fails too, so a key written on
        # top of one that was lost is never kept (the sidecar stops on a failed write).
        self._write_failed: str | None = None
        self.events: asyncio.Queue[SidecarEvent] = asyncio.Queue()
        self.hello: wire.Hello | None = None
        self.fatal: wire.Fatal | None = None
        # How each store request is served (on the store's thread), by its type.
        self._store_ops: Mapping[type[wire.StoreRequest], Callable[[Any], wire.StoreResult]] = {
            wire.KeysGet: self._keys_get,
            wire.KeysSet: self._in_order(self._keys_set),
            wire.CredsGet: self._creds_get,
            wire.CredsSet: self._in_order(self._creds_set),
            wire.SentGet: self._sent_get,
        }

    @property
    def _store_thread(self) -> GroupCommit:
        """Where every store request runs: the store's one writer thread, in arrival order (a read
        sees every write before it); writes waiting at the same moment share one commit (issue #18)."""
        return self._store.writer

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def launch(self) -> tuple[list[str], Path, dict[str, str]]:
        """The command line, working directory and environment the sidecar runs with."""
        argv = [self._install.node, *NODE_FLAGS, str(self._install.directory / "index.mjs")]
        # An allow-list: Node's own settings and ours, never the gateway token or an agent's key.
        env = {
            **child_environment(os.environ, NODE_VARIABLES),
            **MALLOC_ENVIRONMENT,
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
        hello: asyncio.Future[wire.Hello] = asyncio.get_running_loop().create_future()
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
        if self.hello.protocol != PROTOCOL:
            await self.stop()
            raise SidecarNotInstalled(
                f"the installed sidecar speaks protocol {self.hello.protocol}, Python expects {PROTOCOL}: "
                "reinstall it with `cortask sidecar install` (in a checkout: scripts/setup)."
            )
        if self.hello.baileys != self._install.baileys_version:
            await self.stop()
            raise SidecarNotInstalled(
                f"the sidecar runs Baileys {self.hello.baileys}; run `cortask sidecar install` "
                "(in a checkout: scripts/setup)."
            )

    async def request(self, command: wire.Command[R], timeout: float = 60.0) -> R:
        """Send a command and return its typed result; raises SidecarError on failure or exit."""
        if not self.running or self._proc is None or self._proc.stdin is None:
            raise SidecarError("the sidecar is not running")
        self._next_id += 1
        request_id = self._next_id
        fut: asyncio.Future[wire.Answer] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        try:
            await self._write(wire.encode(command, request_id))
            async with asyncio.timeout(timeout):
                answer = await fut
        except TimeoutError:
            raise SidecarError(f"the sidecar did not answer {command.TAG!r} within {timeout:.0f} s") from None
        finally:
            self._pending.pop(request_id, None)
        if not answer.ok:
            raise SidecarError(str(answer.error))
        try:
            return wire.result_of(command, answer)
        except wire.WireError as exc:
            raise SidecarError(f"the sidecar answered {command.TAG!r} with a bad result: {exc}") from None

    async def notify(self, command: wire.Command[Any]) -> None:
        """Send a command without waiting for its answer (an acknowledgement, say)."""
        if self.running and self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._write(wire.encode(command))

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the sidecar to close its socket (keeping the link) and exit; kill it if it hangs."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                await self._write(wire.encode(wire.Exit()))
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
        with contextlib.suppress(RuntimeError, AuthStoreError):  # (a store closed meanwhile wrote it all)
            # What the sidecar asked to write is written: the thread runs in order, so a no-op
            # queued now is done once every request before it is.
            await asyncio.wrap_future(self._store_thread.submit(lambda: None))
        for answering in list(self._answering):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(answering, 2)

    async def _write(self, line: bytes) -> None:
        assert self._proc and self._proc.stdin
        if len(line) > MAX_LINE:
            # the sidecar would drop it and whoever waits for it would wait forever
            raise SidecarLineTooLong(f"a line of {len(line)} bytes is more than the sidecar reads ({MAX_LINE})")
        self._proc.stdin.write(line)
        await self._proc.stdin.drain()

    async def _read_stdout(self, hello: asyncio.Future[wire.Hello]) -> None:
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
            await self.events.put(Exited(code, self.fatal))

    async def _handle_line(self, raw: bytes, hello: asyncio.Future[wire.Hello]) -> None:
        try:
            msg = wire.parse(raw)
        except wire.WireError as exc:
            await self._refuse(raw, exc)
            return
        log.debug("from sidecar: %.200s", raw)
        if isinstance(msg, wire.Answer):
            fut = self._pending.get(msg.re)
            if fut is None and not msg.ok:  # a notification nobody waits for
                log.debug("the sidecar could not carry out a notification: %s", msg.error)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, wire.KeysGet | wire.KeysSet | wire.CredsGet | wire.CredsSet | wire.SentGet):
            self._serve(msg)
        elif isinstance(msg, wire.Hello):
            if not hello.done():
                hello.set_result(msg)
        elif isinstance(msg, wire.ProtocolError):
            # the sidecar could not read a line we sent it: a bug on our side, never the user's
            log.error("the sidecar refused a line from us: %s", msg.message)
        else:
            if isinstance(msg, wire.Fatal):
                self.fatal = msg
            await self.events.put(msg)

    async def _refuse(self, raw: bytes, exc: wire.WireError) -> None:
        """A line that is not the protocol: log it; answer a store request we can name, and fail
        the command whose answer it was meant to be, so nobody waits for it."""
        log.warning("the sidecar printed a line that is not the protocol (%s): %r", exc, raw[:200])
        if exc.req is not None:
            await self._answer(wire.StoreAnswer(exc.req, error=str(exc)), "?")
        if exc.re is not None and (fut := self._pending.get(exc.re)) is not None and not fut.done():
            fut.set_exception(SidecarError(f"the sidecar's answer was not the protocol: {exc}"))

    async def _read_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        await log_stderr(self._proc.stderr)

    def _serve(self, request: wire.StoreRequest) -> None:
        """Queue an auth-state request on the store's thread and go on reading: the sidecar sends
        the next transaction's keys while the last ones are being flushed. Each is answered once
        done, a write once its commit is on disk."""
        future = self._store_thread.submit(self._store_ops[type(request)], request)
        if isinstance(request, wire.KeysSet | wire.CredsSet):
            future.add_done_callback(self._note_failed_write)  # a whole group's commit can fail
        task = asyncio.ensure_future(self._answer_when_done(request, asyncio.wrap_future(future)))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer_when_done(self, request: wire.StoreRequest, done: asyncio.Future[wire.StoreResult]) -> None:
        op = request.OP
        try:
            answer = wire.StoreAnswer(request.req, result=await done)
        except (AuthStoreError, ValueError, KeyError, TypeError) as exc:
            log.error("auth store request %s failed: %s", op, exc)
            answer = wire.StoreAnswer(request.req, error=str(exc))
        except Exception as exc:  # the store must answer even what it did not foresee
            log.exception("auth store request %s failed", op)
            answer = wire.StoreAnswer(request.req, error=str(exc))
        await self._answer(answer, op)

    def _in_order(self, write: Callable[[Any], wire.StoreResult]) -> Callable[[Any], wire.StoreResult]:
        """`write`, refused once an earlier write failed (runs on the store's thread, in order)."""

        def checked(request: Any) -> wire.StoreResult:
            if self._write_failed is not None:
                raise AuthStoreError(f"not saved: an earlier write of WhatsApp keys failed ({self._write_failed})")
            try:
                return write(request)
            except BaseException as exc:
                if not _refused(exc):
                    self._write_failed = str(exc)
                raise

        return checked

    def _note_failed_write(self, future: concurrent.futures.Future[wire.StoreResult]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is not None and not _refused(exc) and self._write_failed is None:
            self._write_failed = str(exc)

    async def _answer(self, answer: wire.StoreAnswer, op: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, AssertionError):
            try:
                await self._write(wire.encode(answer))
            except SidecarLineTooLong as exc:
                log.error("auth store request %s: %s", op, exc)
                await self._write(wire.encode(wire.StoreAnswer(answer.re, error=str(exc))))

    def _keys_get(self, request: wire.KeysGet) -> wire.KeysFound:
        return wire.KeysFound(self._store.get_keys(request.type, request.ids))

    def _keys_set(self, request: wire.KeysSet) -> wire.Done:
        self._store.set_keys(request.items)
        return wire.Done()

    def _creds_get(self, request: wire.CredsGet) -> wire.CredsFound:
        return wire.CredsFound(self._store.creds())

    def _creds_set(self, request: wire.CredsSet) -> wire.Done:
        self._store.set_creds(request.creds)
        return wire.Done()

    def _sent_get(self, request: wire.SentGet) -> wire.SentFound:
        return wire.SentFound(self._store.sent_text(request.id, request.jid))


def _refused(exc: BaseException) -> bool:
    """A request the store turned down before writing anything (an unknown key type, credentials
    that are not JSON): nothing was lost, so later writes may go on."""
    return isinstance(exc, ValueError | TypeError | KeyError)


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


STDERR_KEEP = 64 * 1024  # of one log line; Baileys logs whole stanzas, megabytes at times


async def log_stderr(stream: asyncio.StreamReader, keep: int = STDERR_KEEP) -> None:
    """The sidecar's log lines (pino JSON, or plain text) to Python logging, until the stream
    ends. Read in chunks: a line of any length costs at most `keep` bytes and never stops the
    reader (a stopped reader would fill the pipe and block the sidecar's next log write)."""
    async for head, cut in bounded_lines(stream, keep):
        line = head.decode(errors="replace").rstrip()
        if cut:
            baileys_log.debug("%s… (a log line of %d bytes, cut)", line[:2000], cut)
            continue
        try:
            level, text = classify_baileys(json.loads(line))  # 515 after pairing is routine (issue #17)
            baileys_log.log(level, "%s %s", text, line[:2000])
        except (json.JSONDecodeError, AttributeError, ValueError, TypeError):
            baileys_log.debug("%s", line[:2000])


async def bounded_lines(stream: asyncio.StreamReader, keep: int) -> AsyncIterator[tuple[bytes, int]]:
    """Each line of `stream` as (its first `keep` bytes, its full length when longer, else 0)."""
    head = bytearray()
    length = 0
    while chunk := await stream.read(256 * 1024):
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:newline]
            head += piece[: max(0, keep - len(head))]
            length += len(piece)
            yield bytes(head), (length if length > keep else 0)
            head.clear()
            length = 0
            start = newline + 1
        piece = chunk[start:]
        head += piece[: max(0, keep - len(head))]
        length += len(piece)
    if length:
        yield bytes(head), (length if length > keep else 0)
