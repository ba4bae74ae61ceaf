"""The sidecar supervisor: keeps one sidecar process, and a connection while one is wanted.

It starts the process (ahead of need, for a quick first QR), pumps its events to the channel
and acknowledges message batches once the channel has journaled them, pings it (the watchdog)
and kills it when it stops answering, answers every lost connection with the reconnect policy
(at once after a 515 or a sidecar that died after connecting; later with backoff; or never),
and shuts it down keeping the link. What a lost connection means for the status is the
channel's to say (`on_decision`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.reconnect import Action, Decision, Reconnector
from cortask.channels.whatsapp.sidecar import Exited, Sidecar, SidecarError, SidecarEvent, locate_sidecar

log = logging.getLogger("cortask.whatsapp")
R = TypeVar("R")


class SidecarSupervisor:
    def __init__(
        self,
        config: WhatsAppConfig,
        store: Callable[[], AuthStore],
        on_event: Callable[[SidecarEvent], Awaitable[None]],
        on_decision: Callable[[Decision], None],
        reconnect: Callable[[], Awaitable[None]],
        on_hung: Callable[[str], None],
        on_messages: Callable[[wire.Messages, Callable[[], Awaitable[None]]], None] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._on_event = on_event
        self._on_decision = on_decision
        self._reconnect = reconnect
        self._on_hung = on_hung
        # Message batches, with their acknowledgement to the sidecar that sent them, to whoever
        # journals them; without one they are acknowledged once `on_event` returns.
        self._on_messages = on_messages
        self.reconnector = Reconnector(config.reconnect)
        self.wanted = False  # the user wants a connection (started or linking)
        self.closing = False  # the service is shutting down: nothing restarts
        self._sidecar: Sidecar | None = None
        self._pump: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        """The running sidecar's process id, or None when none runs."""
        return self._sidecar.pid if self._sidecar is not None and self._sidecar.running else None

    @property
    def attached(self) -> bool:
        return self._sidecar is not None

    # -- the process -------------------------------------------------------------------------------

    async def ensure(self) -> Sidecar:
        """The running sidecar, started if none runs."""
        if self._sidecar is not None and self._sidecar.running:
            return self._sidecar
        sidecar = Sidecar(locate_sidecar(), self._store(), log_level=self._config.sidecar_log_level)
        await sidecar.start()
        self._sidecar = sidecar
        self._pump = asyncio.create_task(self._pump_events(sidecar), name="whatsapp-sidecar-events")
        self._watchdog = asyncio.create_task(self._watch(sidecar), name="whatsapp-sidecar-watchdog")
        return sidecar

    async def connect(self, *, linking: bool) -> None:
        """Start the sidecar if needed and tell it to connect; raises SidecarError."""
        config = self._config
        sandbox = config.sandbox
        sidecar = await self.ensure()
        await sidecar.request(
            wire.Connect(
                sandbox=wire.SandboxTarget(sandbox.url, sandbox.root_key) if sandbox is not None else None,
                keep_alive_ms=config.keep_alive_ms,
                # Baileys shows its first QR for qrTimeout; the QR session itself ends at 60 s.
                qr_timeout_ms=int(config.qr_session_seconds * 1000) + 5000 if linking else None,
            )
        )

    async def request(self, command: wire.Command[R], timeout: float = 60.0) -> R:
        sidecar = self._sidecar
        if sidecar is None:
            raise SidecarError("the sidecar is not running")
        return await sidecar.request(command, timeout=timeout)

    async def notify(self, command: wire.Command[Any]) -> None:
        """Send without waiting (typing, read receipts, acks): a lost one costs nothing."""
        if self._sidecar is not None:
            await self._sidecar.notify(command)

    async def _pump_events(self, sidecar: Sidecar) -> None:
        while True:
            event = await sidecar.events.get()
            if isinstance(event, Exited):
                if self._sidecar is sidecar:
                    self._sidecar = None
                await sidecar.stop()  # already gone: this releases its pipes
            if isinstance(event, wire.Messages) and self._on_messages is not None:
                # acknowledged once journaled, which may take a while when the store fails
                self._on_messages(event, functools.partial(sidecar.notify, wire.Ack(event.seq)))
                continue
            try:
                await self._on_event(event)
            except Exception:
                log.exception("failed to handle sidecar event %s", type(event).__name__)
            if isinstance(event, wire.Messages):
                # journaled: the sidecar may forget them (docs/sidecar-protocol.md, "Acks, seq and spill")
                await sidecar.notify(wire.Ack(event.seq))
            if isinstance(event, Exited):
                return

    async def _watch(self, sidecar: Sidecar) -> None:
        """Kill a sidecar that stops answering (hung, stopped): the exit is a lost connection and
        the usual reconnect follows. Keep-alive failures on the WhatsApp socket are Baileys' to
        detect; it reports them as a closed connection."""
        while sidecar.running:
            await asyncio.sleep(self._config.watchdog_interval_seconds)
            try:
                await sidecar.request(wire.Ping(), timeout=self._config.watchdog_timeout_seconds)
            except SidecarError as exc:
                if sidecar.running:
                    log.warning("the sidecar does not answer (%s); restarting it", exc)
                    self._on_hung(str(exc))
                    await sidecar.kill()
                return

    async def shutdown(self) -> None:
        """Stop the sidecar (it closes its socket, keeping the link) and its helpers."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        sidecar, self._sidecar = self._sidecar, None
        if sidecar is not None:
            await sidecar.stop()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None

    def shutdown_later(self) -> None:
        """Stop the sidecar without waiting: for callers inside the event pump, which stopping
        the pump from within would cancel."""
        sidecar, self._sidecar = self._sidecar, None
        if sidecar is not None:
            self.background(sidecar.stop(), "stop sidecar")

    def background(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` without waiting, but keep it: `drain` waits for all of them (before the auth
        store is closed: the sidecar may still be writing keys)."""
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def drain(self) -> None:
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    # -- the connection ----------------------------------------------------------------------------

    def want(self) -> None:
        """The user asked for a connection: a fresh reconnect budget."""
        self.wanted = True
        self.reconnector.reset()

    def unwant(self) -> None:
        self.wanted = False
        self.cancel_retry()

    def opened(self) -> None:
        self.reconnector.on_open(time.time())

    async def lost(self, code: int | None, reason: str) -> None:
        """The connection closed (or the sidecar exited, `code` None): reconnect at once, later, or
        never, as the policy says."""
        if not self.wanted or self.closing:
            return
        decision = self.reconnector.on_close(code, time.time(), reason)
        log.info("connection closed: %s", decision.sentence)
        self._on_decision(decision)
        if decision.action is Action.RECONNECT_NOW:
            await self._reconnect()
        elif decision.action is Action.RETRY_AFTER:
            self._schedule_retry(decision.delay)
        else:
            self.wanted = False
            self.shutdown_later()

    def _schedule_retry(self, delay: float) -> None:
        self.cancel_retry()

        async def later() -> None:
            await asyncio.sleep(delay)
            self._retry = None
            if self.wanted:
                await self._reconnect()

        self._retry = asyncio.create_task(later(), name="whatsapp-reconnect")

    def cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
