"""The WhatsApp channel: the thin async layer that drives the sidecar with the pure policy.

    channel = WhatsAppChannel(WhatsAppConfig.from_env(), handler=my_agent)
    async for qr in channel.generate_qr(): show(qr.png())   # once; then it starts by itself
    await channel.start()                                    # later runs: no scan needed

Everything that decides (access, message classification, reconnect policy, what the status
says) lives in pure modules; this one only does I/O and timing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError, CredentialsUnreadable
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.inbound import InboundText, classify, too_old
from cortask.channels.whatsapp.ledger import Admission, Ledger, MemoryLedger, PlannedReply
from cortask.channels.whatsapp.pacing import TokenBucket
from cortask.channels.whatsapp.qr import QrCode
from cortask.channels.whatsapp.reconnect import Action, Reconnector
from cortask.channels.whatsapp.sidecar import Sidecar, SidecarError, locate_sidecar
from cortask.channels.whatsapp.state import NOT_LINKED_ERROR, ChannelStatus, ConnectionState, from_decision
from cortask.contacts.access import AccessDecision, AccessPolicy

log = logging.getLogger("cortask.whatsapp")

Handler = Callable[[InboundText], Awaitable[str]]
READ_ONLY_REPLY = "You have read-only access."
ERROR_REPLY = "Sorry, an error occurred."


def new_message_id() -> str:
    """A message id in the form WhatsApp Web uses (3EB0 + 18 hex digits)."""
    return "3EB0" + secrets.token_hex(9).upper()


class NotLinked(Exception):
    """Start needs a linked device; the message says how to link one."""


class ChannelError(Exception):
    pass


class WhatsAppChannel:
    def __init__(self, config: WhatsAppConfig, handler: Handler | None = None, ledger: Ledger | None = None) -> None:
        self.config = config
        self._handler = handler
        # What was received and answered; the service passes one kept in its store (durable).
        self._ledger: Ledger = ledger if ledger is not None else MemoryLedger()
        self._pacer = TokenBucket(config.pacing) if config.pacing is not None else None
        self._policy: AccessPolicy = config.access_policy()
        self._answer_groups = config.answer_groups
        self._reconnector = Reconnector(config.reconnect)
        sandbox = config.sandbox is not None
        self._status = ChannelStatus.unlinked(sandbox=sandbox)
        self._listeners: list[asyncio.Queue[ChannelStatus]] = []
        self._store: AuthStore | None = None
        self._sidecar: Sidecar | None = None
        self._pump: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._qr_queue: asyncio.Queue[QrCode | None] | None = None
        self._qr_deadline: asyncio.TimerHandle | None = None
        self._qr_expires_at = 0.0
        self._chats: dict[str, asyncio.Queue[InboundText | PlannedReply]] = {}
        self._in_flight: set[str] = set()  # message and reply ids queued or being processed
        self._resume_wanted = False
        self._resuming: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wanted = False  # the user wants a connection (started or linking)
        self._closing = False
        self._connected_once = asyncio.Event()
        self.account: dict[str, str] | None = None
        self._last_qr: QrCode | None = None
        self._qr_followers: list[asyncio.Queue[QrCode | None]] = []
        self._decisions: dict[str, tuple[AccessDecision, dict[str, Any]]] = {}
        self._activity: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self._activity_changed = asyncio.Event()
        self._activity_listeners: list[asyncio.Queue[dict[str, Any]]] = []
        self._stopping: set[asyncio.Task[None]] = set()

    # -- public API ------------------------------------------------------------------------------

    def on_message(self, handler: Handler) -> None:
        self._handler = handler

    def set_policy(self, policy: AccessPolicy) -> None:
        """Apply new access rules (trusted contacts, allowedUsers) at once, without reconnecting."""
        self._policy = policy

    @property
    def policy(self) -> AccessPolicy:
        """The access rules in force."""
        return self._policy

    @property
    def answer_groups(self) -> bool:
        return self._answer_groups

    def set_answer_groups(self, on: bool) -> None:
        """Answer group messages (from allowed participants) or not, at once, without reconnecting."""
        self._answer_groups = on

    @property
    def status(self) -> ChannelStatus:
        return self._status

    @property
    def sandbox(self) -> bool:
        return self.config.sandbox is not None

    async def subscribe(self) -> AsyncIterator[ChannelStatus]:
        """Every status change from now on (starting with the current status)."""
        queue: asyncio.Queue[ChannelStatus] = asyncio.Queue()
        queue.put_nowait(self._status)
        self._listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(queue)

    @property
    def activity(self) -> list[dict[str, Any]]:
        """Recent message activity, oldest first: what came in, what was done with it, replies."""
        return list(self._activity)

    async def wait_activity(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                changed = self._activity_changed
                for entry in self._activity:
                    if predicate(entry):
                        return entry
                await changed.wait()

    def _record(self, kind: str, chat: str | None, message_id: str | None, **detail: Any) -> None:
        entry = {"at": time.time(), "kind": kind, "chat": chat, "message_id": message_id, **detail}
        self._activity.append(entry)
        self._activity_changed.set()
        self._activity_changed = asyncio.Event()
        for queue in self._activity_listeners:
            queue.put_nowait(entry)

    async def activities(self) -> AsyncIterator[dict[str, Any]]:
        """Every activity entry from now on."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._activity_listeners.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._activity_listeners.remove(queue)

    @property
    def sidecar_pid(self) -> int | None:
        """The running sidecar's process id, or None when none runs (nothing can reconnect)."""
        return self._sidecar.pid if self._sidecar is not None and self._sidecar.running else None

    def is_linked(self) -> bool:
        return self._open_store().is_linked()

    async def warm_up(self) -> None:
        """Start the sidecar (Node + Baileys) ahead of need, so a QR code appears at once when
        asked for; it stays idle, without a connection, until told to connect."""
        await self._ensure_sidecar()

    async def start(self) -> None:
        """Connect with the stored link. Raises NotLinked when nothing is linked yet."""
        store = self._open_store()
        if not store.is_linked():
            raise NotLinked(NOT_LINKED_ERROR)
        self._wanted = True
        self._reconnector.reset()
        await self._connect()

    async def generate_qr(self) -> AsyncIterator[QrCode]:
        """Start linking and yield QR codes as WhatsApp issues them, for at most
        `qr_session_seconds`. A second call while one is live follows the same session."""
        if self._qr_queue is None:
            await self._begin_linking()
        if self._qr_queue is None:
            return  # the session already ended while connecting (expired or failed): the state says which
        last = self._last_qr
        if last is not None:
            yield last
        follower: asyncio.Queue[QrCode | None] = asyncio.Queue()
        self._qr_followers.append(follower)
        try:
            while True:
                qr = await follower.get()
                if qr is None:
                    return
                yield qr
        finally:
            self._qr_followers.remove(follower)

    async def stop(self) -> None:
        """Close the socket and log the device out on the server: the link is void afterwards."""
        self._wanted = False
        self._cancel_retry()
        if self._status.state is ConnectionState.OPEN and self._sidecar is not None:
            try:
                await self._sidecar.request("logout", timeout=15)
            except SidecarError as exc:
                log.warning("logout on the server failed: %s", exc)
        await self._shutdown_sidecar()
        await self._drain_background()
        if self._store is not None:
            self._store.close()
            self._store = None
        AuthStore.remove(self.config.auth_dir)
        self.account = None  # the link is gone with the credentials
        self._publish(ChannelStatus.unlinked(sandbox=self.sandbox, detail="Stopped: the device was logged out."))

    async def logout(self) -> None:
        """Log out on the server if connected, then remove the auth directory entirely."""
        await self.stop()

    async def pause(self) -> None:
        """Disconnect but keep the link; resume() reconnects."""
        self._wanted = False
        self._cancel_retry()
        await self._shutdown_sidecar()
        self._publish(ChannelStatus.paused(sandbox=self.sandbox))

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        """Service shutdown (Ctrl-C, SIGTERM): close the socket, keep the link for next time."""
        self._closing = True
        self._wanted = False
        self._cancel_retry()
        self._end_qr_session(expired=False)
        await self._shutdown_sidecar()
        for worker in list(self._workers.values()):
            worker.cancel()
        for worker in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        await self._drain_background()
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- connection ------------------------------------------------------------------------------

    def _open_store(self) -> AuthStore:
        if self._store is None:
            try:
                self._store = AuthStore.open(self.config.auth_dir)
            except CredentialsUnreadable as exc:
                self._publish(ChannelStatus.credentials_unreadable(str(exc), sandbox=self.sandbox))
                raise
        return self._store

    async def _ensure_sidecar(self) -> Sidecar:
        if self._sidecar is not None and self._sidecar.running:
            return self._sidecar
        install = locate_sidecar()
        sidecar = Sidecar(install, self._open_store(), log_level=self.config.sidecar_log_level)
        await sidecar.start()
        self._sidecar = sidecar
        self._pump = asyncio.create_task(self._pump_events(sidecar), name="whatsapp-sidecar-events")
        self._watchdog = asyncio.create_task(self._watch(sidecar), name="whatsapp-sidecar-watchdog")
        return sidecar

    async def _watch(self, sidecar: Sidecar) -> None:
        """Kill a sidecar that stops answering (hung, stopped): the exit is a lost connection and
        the usual reconnect follows. Keep-alive failures on the WhatsApp socket are Baileys' to
        detect; it reports them as a closed connection."""
        while sidecar.running:
            await asyncio.sleep(self.config.watchdog_interval_seconds)
            try:
                await sidecar.request("ping", timeout=self.config.watchdog_timeout_seconds)
            except SidecarError as exc:
                if sidecar.running:
                    log.warning("the sidecar does not answer (%s); restarting it", exc)
                    self._record("watchdog", None, None, reason=str(exc))
                    await sidecar.kill()
                return

    async def _shutdown_sidecar(self) -> None:
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

    async def _connect(self) -> None:
        if self._qr_queue is None or self._last_qr is not None:
            self._publish(ChannelStatus.connecting(sandbox=self.sandbox))
        try:
            if self._qr_queue is None:
                await self._ingest_spill()
            sidecar = await self._ensure_sidecar()
            args: dict[str, Any] = {}
            if self.config.sandbox is not None:
                args["sandbox"] = {"url": self.config.sandbox.url, "rootKey": self.config.sandbox.root_key}
            if self.config.keep_alive_ms is not None:
                args["keepAliveMs"] = self.config.keep_alive_ms
            if self._qr_queue is not None:
                # Baileys shows its first QR for qrTimeout; we end the session ourselves at 60 s.
                args["qrTimeoutMs"] = int(self.config.qr_session_seconds * 1000) + 5000
            await sidecar.request("connect", **args)
        except SidecarError as exc:
            log.warning("could not connect: %s", exc)
            await self._on_close(None, str(exc))

    async def _begin_linking(self) -> None:
        store = self._open_store()
        if store.is_linked():
            raise ChannelError("WhatsApp is already linked: log out first to link another phone.")
        self._qr_queue = asyncio.Queue()
        self._qr_followers = []
        self._last_qr = None
        self._wanted = True
        self._reconnector.reset()
        self._qr_expires_at = time.time() + self.config.qr_session_seconds
        loop = asyncio.get_running_loop()
        self._qr_deadline = loop.call_later(self.config.qr_session_seconds, self._qr_timed_out)
        self._publish(ChannelStatus.linking(self._qr_expires_at, time.time(), sandbox=self.sandbox))
        await self._connect()

    def _qr_timed_out(self) -> None:
        if self._qr_queue is None:
            return
        log.info("QR session expired after %.0f s", self.config.qr_session_seconds)
        self._end_qr_session(expired=True)
        self._wanted = False
        self._background(self._shutdown_sidecar(), "end QR session")
        self._publish(ChannelStatus.qr_expired(sandbox=self.sandbox))

    def _end_qr_session(self, expired: bool) -> None:
        if self._qr_deadline is not None:
            self._qr_deadline.cancel()
            self._qr_deadline = None
        if self._qr_queue is not None:
            for follower in self._qr_followers:
                follower.put_nowait(None)
            self._qr_queue = None
            self._last_qr = None

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    # -- sidecar events --------------------------------------------------------------------------

    async def _pump_events(self, sidecar: Sidecar) -> None:
        while True:
            event = await sidecar.events.get()
            if event.get("event") == "exited":
                if self._sidecar is sidecar:
                    self._sidecar = None
                await sidecar.stop()  # already gone: this releases its pipes
            try:
                await self._on_event(event)
            except Exception:
                log.exception("failed to handle sidecar event %s", event.get("event"))
            if event.get("event") == "messages" and isinstance(event.get("seq"), int):
                await sidecar.notify("ack", seq=event["seq"])  # journaled: the sidecar may forget them
            if event.get("event") == "exited":
                return

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "qr" and self._qr_queue is not None:
            qr = QrCode(str(event["qr"]), self._qr_expires_at)
            self._last_qr = qr
            self._publish(ChannelStatus.linking(self._qr_expires_at, time.time(), sandbox=self.sandbox))
            for follower in self._qr_followers:
                follower.put_nowait(qr)
        elif kind == "connection":
            if event.get("connection") == "open":
                self._on_open()
            elif event.get("connection") == "close":
                await self._on_close(event.get("statusCode"), str(event.get("reason") or ""))
        elif kind == "messages":
            for raw in event.get("messages") or []:
                if isinstance(raw, dict):
                    await self._on_inbound(raw, str(event.get("type")))
        elif kind == "receipts":
            for receipt in event.get("receipts") or []:
                if isinstance(receipt, dict) and receipt.get("error"):
                    # e.g. 463: WhatsApp refused it for this contact; sending again would make it worse
                    log.warning("WhatsApp refused message %s (error %s); it is not sent again",
                                receipt.get("id"), receipt.get("error"))  # fmt: skip
                    self._record("refused", receipt.get("remoteJid"), receipt.get("id"), error=str(receipt["error"]))
        elif kind == "creds" and event.get("registered"):
            self.account = event.get("me")
            if self._qr_deadline is not None:
                # Scanned: the link exists now, so the QR session can no longer expire while the
                # 515 restart that follows is still connecting.
                self._qr_deadline.cancel()
                self._qr_deadline = None
        elif kind == "fatal":
            log.error("sidecar stopped: %s", event.get("message"))
        elif kind == "exited":
            fatal = event.get("fatal")
            if fatal:
                self._wanted = False
                self._publish(ChannelStatus.stopped(sandbox=self.sandbox, detail=str(fatal.get("message"))))
            elif self._wanted and not self._closing:
                await self._on_close(None, f"the sidecar exited (code {event.get('code')})")

    def _on_open(self) -> None:
        self._reconnector.on_open(time.time())
        if self._qr_queue is not None:
            self._end_qr_session(expired=False)
            log.info("linked")
        if self._store is not None:
            self.account = self._store.linked_account()
        me = (self.account or {}).get("id")
        self._publish(
            ChannelStatus.open(me, sandbox=self.sandbox).with_activity(
                inbound_at=self._status.last_inbound_at, outbound_at=self._status.last_outbound_at
            )
        )
        self._request_resume()  # replies the last connection could not send, messages left over

    async def _on_close(self, code: int | None, reason: str) -> None:
        if not self._wanted or self._closing:
            return
        if self._qr_queue is not None and code == 408 and "QR refs" in reason:
            return  # Baileys ran out of refs before our 60 s: the deadline handler reports expiry
        decision = self._reconnector.on_close(code, time.time(), reason)
        log.info("connection closed: %s", decision.sentence)
        self._publish(from_decision(decision, sandbox=self.sandbox))
        if decision.action is Action.RECONNECT_NOW:
            await self._connect()
        elif decision.action is Action.RETRY_AFTER:
            self._schedule_retry(decision.delay)
        else:
            self._wanted = False
            self._end_qr_session(expired=False)
            await self._shutdown_sidecar_later()

    async def _shutdown_sidecar_later(self) -> None:
        # Called from inside the event pump: stopping the pump from within would cancel ourselves.
        sidecar, self._sidecar = self._sidecar, None
        if sidecar is not None:
            self._background(sidecar.stop(), "stop sidecar")

    def _background(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` without waiting, but keep it: close() waits for all of them before the
        auth store is closed (the sidecar may still be writing keys)."""
        task = asyncio.get_running_loop().create_task(coro, name=what)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _drain_background(self) -> None:
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    def _schedule_retry(self, delay: float) -> None:
        self._cancel_retry()

        async def later() -> None:
            await asyncio.sleep(delay)
            self._retry = None
            if self._wanted:
                await self._connect()

        self._retry = asyncio.create_task(later(), name="whatsapp-reconnect")

    # -- inbound messages ------------------------------------------------------------------------

    def _account_id(self) -> str:
        account = self.account or (self._store.linked_account() if self._store is not None else None)
        return str((account or {}).get("id") or "unknown")

    async def _on_inbound(self, raw: dict[str, Any], upsert_type: str) -> None:
        """Filter, access control, then the ledger, before anything else happens to a message."""
        item = classify(raw, upsert_type, answer_groups=self._answer_groups, lid_to_phone=self._phone_for_lid)
        if not isinstance(item, InboundText):
            log.debug("ignored message %s: %s", item.message_id, item.sentence)
            self._record("ignored", item.chat_jid, item.message_id, reason=item.reason.value)
            return
        decision = self._policy.decide(item.sender_phone)
        if not decision.runs_agent and decision.reply is None:
            log.info("ignored a message from a number that is not allowed")
            self._record("ignored", item.chat_jid, item.message_id, reason="not_allowed")
            return
        admission = await self._ledger.admit(self._account_id(), item)
        if admission is Admission.DONE or item.message_id in self._in_flight:
            log.info("message %s in %s was handled before; not answering it again", item.message_id, item.chat_jid)
            self._record("duplicate", item.chat_jid, item.message_id)
            return
        self._record(
            "received", item.chat_jid, item.message_id, sender=item.sender_phone, verdict=decision.verdict.value
        )
        self._status = self._status.with_activity(inbound_at=time.time())
        self._notify()
        if raw.get("key"):
            self._decisions[item.message_id] = (decision, raw["key"])
        await self._enqueue(item)

    def _phone_for_lid(self, lid_jid: str) -> str | None:
        # A LID-addressed message may come without the sender's number; Baileys keeps what it
        # learned earlier (LID <-> phone) in our auth store, so trusted contacts are still known.
        return self._store.phone_for_lid(lid_jid) if self._store is not None else None

    async def _enqueue(self, work: InboundText | PlannedReply) -> None:
        """Queue a message to answer, or a reply to (re)send, behind the chat's earlier work."""
        if isinstance(work, InboundText):
            if too_old(work.timestamp, time.time(), self.config.max_message_age_seconds):
                age_h = (time.time() - (work.timestamp or 0)) / 3600
                log.info(
                    "skipped message %s in %s: it was sent %.1f h ago, more than the %.1f h answered late",
                    work.message_id, work.chat_jid, age_h, self.config.max_message_age_seconds / 3600,
                )  # fmt: skip
                await self._ledger.skip(self._account_id(), work, "too old when it arrived")
                self._record("skipped", work.chat_jid, work.message_id, reason="too_old")
                return
        self._in_flight.add(work.message_id)
        queue = self._chats.setdefault(work.chat_jid, asyncio.Queue())
        queue.put_nowait(work)
        worker = self._workers.get(work.chat_jid)
        if worker is None or worker.done():
            self._workers[work.chat_jid] = asyncio.create_task(
                self._chat_worker(queue), name=f"whatsapp-chat-{work.chat_jid}"
            )

    async def _chat_worker(self, queue: asyncio.Queue[InboundText | PlannedReply]) -> None:
        """One chat's messages, one at a time, in order; other chats run concurrently."""
        while not queue.empty():
            work = queue.get_nowait()
            try:
                if isinstance(work, InboundText):
                    await self._process(work)
                else:
                    await self._deliver(work)
                    await self._presence(work.chat_jid, "paused")
            except Exception:
                log.exception("failed to process a message in %s", work.chat_jid)
            finally:
                self._in_flight.discard(work.message_id)

    async def _process(self, item: InboundText) -> None:
        account = self._account_id()
        decision, key = self._decisions.pop(item.message_id, (self._policy.decide(item.sender_phone), {}))
        if not decision.runs_agent and decision.reply is None:  # no longer allowed (resumed after a change)
            await self._ledger.skip(account, item, "the sender is no longer allowed")
            return
        if decision.sends_read_receipt and key and self._sidecar is not None:
            await self._sidecar.notify("read", keys=[key])
        if decision.reply is not None:
            await self._deliver(await self._plan(account, item, decision.reply), remembered=True)
            return
        await self._presence(item.chat_jid, "composing")
        refresher = asyncio.create_task(self._keep_typing(item.chat_jid))
        error: str | None = None
        try:
            if self._handler is None:
                raise ChannelError("no message handler is registered")
            reply = await self._handler(item)
        except Exception as exc:
            log.exception("the agent failed on a message in %s", item.chat_jid)
            reply, error = ERROR_REPLY, str(exc) or type(exc).__name__
        finally:
            refresher.cancel()
        try:
            await self._deliver(await self._plan(account, item, reply, error), remembered=True)
        finally:
            await self._presence(item.chat_jid, "paused")

    async def _plan(self, account: str, item: InboundText, text: str, error: str | None = None) -> PlannedReply:
        """Record the reply under a new id in the ledger and, for retry receipts, in the auth store:
        two databases, written side by side so an answer waits for one disk flush, not two."""
        message_id = new_message_id()
        planned, _ = await asyncio.gather(
            self._ledger.plan_reply(account, item, text, message_id, error=error),
            self._remember_sent(message_id, item.chat_jid, text),
        )
        return planned

    async def _remember_sent(self, message_id: str, chat: str, text: str) -> None:
        if self._store is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._store.remember_sent, message_id, chat, text)

    async def _deliver(self, reply: PlannedReply, remembered: bool = False) -> None:
        """Send a planned reply under its reserved id and mark it sent. When the connection is
        down it stays planned, and goes out after the next reconnect."""
        try:
            await self._send(reply.chat_jid, reply.text, reply.message_id, remembered)
        except (SidecarError, ChannelError) as exc:
            log.warning("could not send the reply to %s now (%s); it is sent after reconnecting", reply.chat_jid, exc)
            self._record("queued", reply.chat_jid, reply.message_id, reason=str(exc))
            self._request_resume()
            return
        await self._ledger.mark_sent(reply)

    async def _keep_typing(self, chat: str) -> None:
        while True:
            await asyncio.sleep(self.config.typing_refresh_seconds)
            await self._presence(chat, "composing")

    async def _presence(self, chat: str, kind: str) -> None:
        # Not awaited round trip: the sidecar runs commands in the order they arrive and Baileys
        # writes a chat state at once, so "composing" still precedes the reply, without adding a
        # pipe round trip to every answer (a failed one is only a missing typing indicator).
        if self._sidecar is not None:
            await self._sidecar.notify("presence", type=kind, jid=chat)

    async def _send(self, chat: str, text: str, message_id: str | None = None, remembered: bool = False) -> str:
        """Send `text` to `chat` (paced); returns the message id. The text is stored (durably)
        under its id before it is sent (unless the caller did: `remembered`), so Baileys can
        re-encrypt it if the phone asks for a retry."""
        if self._pacer is not None:
            await asyncio.sleep(self._pacer.reserve(time.monotonic()))
        sidecar = self._sidecar
        if sidecar is None or self._status.state is not ConnectionState.OPEN:
            raise ChannelError("not connected")
        message_id = message_id or new_message_id()
        if not remembered:
            await self._remember_sent(message_id, chat, text)
        await sidecar.request("send_text", jid=chat, text=text, messageId=message_id)
        self._record("replied", chat, message_id, chars=len(text))
        self._status = self._status.with_activity(outbound_at=time.time())
        self._notify()
        return message_id

    # -- what is left after a crash or a lost connection --------------------------------------

    def _request_resume(self) -> None:
        """Pick up unfinished work now if connected, else as soon as the connection opens."""
        self._resume_wanted = True
        if self._status.state is ConnectionState.OPEN and (self._resuming is None or self._resuming.done()):
            self._resuming = asyncio.create_task(self._resume(), name="whatsapp-resume")

    async def _resume(self) -> None:
        while self._resume_wanted and self._status.state is ConnectionState.OPEN:
            self._resume_wanted = False
            try:
                messages, replies = await self._ledger.unfinished(self._account_id())
            except Exception:
                log.exception("could not read what is left to answer")
                return
            for reply in replies:
                # A reply planned by a message still being processed is that worker's to send.
                if reply.message_id not in self._in_flight and reply.in_reply_to not in self._in_flight:
                    log.info("sending a reply to %s that was not sent before", reply.chat_jid)
                    await self._enqueue(reply)
            for item in messages:
                if item.message_id not in self._in_flight:
                    log.info("answering message %s in %s, left unanswered before", item.message_id, item.chat_jid)
                    await self._enqueue(item)

    async def _ingest_spill(self) -> None:
        """Messages a sidecar handed over but we had not journaled when it had to stop."""
        store = self._open_store()
        for path, batches in await asyncio.get_running_loop().run_in_executor(None, store.spilled):
            for batch in batches:
                for raw in batch["messages"]:
                    if isinstance(raw, dict):
                        await self._on_inbound(raw, str(batch.get("type")))
            store.discard_spill(path)

    # -- status ----------------------------------------------------------------------------------

    def _notify(self) -> None:
        """Tell subscribers about the current status again (last message times changed)."""
        for queue in self._listeners:
            queue.put_nowait(self._status)

    def _publish(self, status: ChannelStatus) -> None:
        status = status.with_activity(
            inbound_at=self._status.last_inbound_at, outbound_at=self._status.last_outbound_at
        )
        self._status = status
        log.info("WhatsApp: %s", status.sentence)
        for queue in self._listeners:
            queue.put_nowait(status)


__all__ = ["ERROR_REPLY", "READ_ONLY_REPLY", "AuthStoreError", "ChannelError", "NotLinked", "WhatsAppChannel"]
