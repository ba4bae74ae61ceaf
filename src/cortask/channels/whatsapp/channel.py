"""The WhatsApp channel: the coordinator of its parts.

    channel = WhatsAppChannel(WhatsAppConfig.from_env(), handler=my_agent)
    async for qr in channel.generate_qr(): show(qr.png())   # once; then it starts by itself
    await channel.start()                                    # later runs: no scan needed

The parts, each in its own module: `linking.QrSession` (a QR session and its deadline),
`supervisor.SidecarSupervisor` (the Node process, its watchdog, reconnecting), and
`pipeline.ReplyPipeline` (per-chat workers, resume, receipts, typing, pacing, the journal), whose
decisions are `lifecycle`'s pure functions. This class owns them, turns the sidecar's typed events
(`wire`) into their calls through a table, and says what the status is.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cortask.broadcast import Broadcast
from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.activity import ActivityLog
from cortask.channels.whatsapp.admission import Admitter, Batch
from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError, CredentialsUnreadable
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.errors import ChannelError as ChannelError  # re-exported: its old home
from cortask.channels.whatsapp.errors import NotLinked as NotLinked
from cortask.channels.whatsapp.groups import GroupRule
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.journal import Journal, MemoryJournal
from cortask.channels.whatsapp.linking import PairingCode, QrSession
from cortask.channels.whatsapp.pipeline import ERROR_REPLY, Handler, ReplyPipeline, new_message_id
from cortask.channels.whatsapp.qr import QrCode
from cortask.channels.whatsapp.reconnect import Action, Decision
from cortask.channels.whatsapp.sidecar import Exited, SidecarError, SidecarEvent
from cortask.channels.whatsapp.state import (
    NOT_LINKED_ERROR,
    ChannelStatus,
    ConnectionState,
    StatusNote,
    from_decision,
)
from cortask.channels.whatsapp.supervisor import SidecarSupervisor
from cortask.contacts.access import AccessPolicy
from cortask.metrics import Metrics

log = logging.getLogger("cortask.whatsapp")

READ_ONLY_REPLY = "You have read-only access."


class WhatsAppChannel:
    def __init__(self, config: WhatsAppConfig, handler: Handler | None = None, ledger: Journal | None = None) -> None:
        self.config = config
        self.account: dict[str, str] | None = None
        self.metrics = Metrics(states=[s.value for s in ConnectionState])
        self._statuses: Broadcast[ChannelStatus] = Broadcast(replay_latest=True)
        self._status = ChannelStatus.unlinked(sandbox=self.sandbox)
        self._statuses.publish(self._status)
        self._activity = ActivityLog()
        self._activity.listeners.append(self.metrics.on_activity)
        self._store: AuthStore | None = None
        self._qr: QrSession | None = None
        self._supervisor = SidecarSupervisor(
            config,
            self._open_store,
            on_event=self._on_event,
            on_decision=self._on_decision,
            reconnect=self._connect,
            on_hung=lambda reason: self._activity.record("watchdog", None, None, reason=reason),
            on_messages=self._on_batch,
        )
        # What was received and answered: `ledger` is the journal (the service passes one kept in
        # its store, durable); the name stays for callers that pass it by keyword.
        self._pipeline = ReplyPipeline(
            config,
            ledger if ledger is not None else MemoryJournal(),
            self._supervisor,
            self._activity,
            connected=lambda: self._status.state is ConnectionState.OPEN and self._supervisor.attached,
            account=self._account_id,
            auth_store=lambda: self._store,
            on_traffic=self._on_traffic,
            handler=handler,
            on_store=self._on_store,
        )
        self._open_hooks: list[Callable[[], Awaitable[None]]] = []
        # Batches go into the journal in order, off the event pump; each is acknowledged (or its
        # spill file removed) only once all of it is recorded.
        self._admitter = Admitter(self._pipeline.arrive)
        self._pipeline.on_send_failed = self._on_send_failed
        self._spills_queued: set[Path] = set()
        self._notes: dict[str, StatusNote] = {}
        # The sidecar's events, each to its handler (wire.py names them; Exited is the process's end).
        self._handlers: Mapping[type[SidecarEvent], Callable[[Any], Awaitable[None]]] = {
            wire.Qr: self._on_qr,
            wire.Connection: self._on_connection,
            wire.Messages: self._on_messages,
            wire.Receipts: self._on_receipts,
            wire.Creds: self._on_creds,
            wire.Lid: self._on_lid,
            wire.Fatal: self._on_fatal,
            Exited: self._on_exited,
            wire.CodeRefused: self._on_code_refused,
        }

    # -- public API ------------------------------------------------------------------------------

    def on_message(self, handler: Handler) -> None:
        self._pipeline.handler = handler

    def set_policy(self, policy: AccessPolicy) -> None:
        """Apply new access rules (trusted contacts, allowedUsers) at once, without reconnecting."""
        self._pipeline.policy = policy

    @property
    def policy(self) -> AccessPolicy:
        """The access rules in force."""
        return self._pipeline.policy

    @property
    def answer_groups(self) -> bool:
        return self._pipeline.answer_groups

    def set_self_chat(self, on: bool) -> None:
        """The owner talks to the agent in their own chat (or not), from the next message."""
        self._pipeline.self_chat = on

    def is_owner_chat(self, message: InboundText) -> bool:
        """A message the owner wrote in their own chat, with self-chat on (replies there are theirs)."""
        return self._pipeline.decide(message).reason == "owner"

    def set_group_rule(self, rule: GroupRule) -> None:
        """With groups on: answer when mentioned or replied to, or always; in which groups."""
        self._pipeline.group_rule = rule

    def set_hold(self, hold: Callable[[InboundText], Awaitable[bool]] | None) -> None:
        """Who keeps strangers' messages for the owner's approval (None: they are ignored)."""
        self._pipeline.hold = hold

    async def answer_held(self, message: InboundText) -> bool:
        """Answer a message that waited for the owner's approval (once)."""
        return await self._pipeline.answer_held(message)

    async def tell_owner(self, text: str) -> str:
        """Send `text` to the owner's own chat ("Message yourself"); returns its id. Raises
        NotConnected when not connected; our id is reserved first, so it is never taken as input."""
        me = (self.account or {}).get("id") or self._account_id()
        user = me.partition("@")[0].partition(":")[0]
        return await self._pipeline.send(f"{user}@s.whatsapp.net", text)

    def set_silent(self, silent: Callable[[InboundText], bool] | None) -> None:
        """Which allowed messages get no answer at all (answers paused), asked at their turn."""
        self._pipeline.silent = silent

    def record(self, kind: str, chat: str | None, message_id: str | None, **detail: Any) -> None:
        """Add an entry to the activity log (an admin command, who sent it)."""
        self._activity.record(kind, chat, message_id, **detail)

    def set_answer_groups(self, on: bool) -> None:
        """Answer group messages (from allowed participants) or not, at once, without reconnecting."""
        self._pipeline.answer_groups = on

    @property
    def status(self) -> ChannelStatus:
        return self._status

    def on_open(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` in the background each time the connection opens (after each link)."""
        self._open_hooks.append(hook)

    async def check_numbers(self, numbers: Sequence[str], timeout: float = 20) -> tuple[wire.NumberFound, ...] | None:
        """Ask WhatsApp which account each number (``+`` and digits) is; None when not connected
        or the question failed (the caller keeps what it knew)."""
        if not numbers or self._status.state is not ConnectionState.OPEN or not self._supervisor.attached:
            return None
        try:
            result = await self._supervisor.request(wire.CheckNumbers(tuple(numbers)), timeout=timeout)
        except (SidecarError, TimeoutError) as exc:
            log.warning("could not ask WhatsApp about %d number(s): %s", len(numbers), exc)
            return None
        return result.numbers

    @property
    def sandbox(self) -> bool:
        return self.config.sandbox is not None

    async def subscribe(self) -> AsyncIterator[ChannelStatus]:
        """Every status change from now on (starting with the current status)."""
        with self._statuses.subscribe() as statuses:
            async for status in statuses:
                yield status

    @property
    def busy_chats(self) -> int:
        """Chats with a worker and queue held now (idle ones are released)."""
        return self._pipeline.busy_chats

    @property
    def queued_messages(self) -> int:
        """Messages and replies waiting in the chats' queues."""
        return self._pipeline.queued_messages

    @property
    def activity(self) -> list[dict[str, Any]]:
        """Recent message activity, oldest first: what came in, what was done with it, replies."""
        return self._activity.entries

    async def wait_activity(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        return await self._activity.wait(predicate, timeout)

    async def activities(self) -> AsyncIterator[dict[str, Any]]:
        """Every activity entry from now on."""
        async for entry in self._activity.follow():
            yield entry

    @property
    def sidecar_pid(self) -> int | None:
        """The running sidecar's process id, or None when none runs (nothing can reconnect)."""
        return self._supervisor.pid

    def is_linked(self) -> bool:
        return self._open_store().is_linked()

    async def prune_sent(self, before: float) -> int:
        """Forget the texts we sent before `before` (Unix seconds), kept for retry receipts: the
        service's retention schedule calls this. Nothing to do while the link is not open here."""
        store = self._store
        if store is None:
            return 0
        return await asyncio.get_running_loop().run_in_executor(None, store.prune_sent, before)

    async def warm_up(self) -> None:
        """Start the sidecar (Node + Baileys) ahead of need, so a QR code appears at once when
        asked for; it stays idle, without a connection, until told to connect."""
        await self._supervisor.ensure()

    async def start(self) -> None:
        """Connect with the stored link. Raises NotLinked when nothing is linked yet."""
        store = self._open_store()
        if not store.is_linked():
            raise NotLinked(NOT_LINKED_ERROR)
        self._supervisor.want()
        await self._connect()

    async def generate_qr(self) -> AsyncIterator[QrCode]:
        """Start linking and yield QR codes as WhatsApp issues them, for at most
        `qr_session_seconds`. A second call while one is live follows the same session."""
        if self._qr is None:
            await self._begin_linking()
        session = self._qr
        if session is None:
            return  # the session already ended while connecting (expired or failed): the state says which
        async for qr in session.follow():
            yield qr

    async def request_pairing_code(self, phone: str, code: str | None = None) -> PairingCode:
        """Link by phone number instead of a QR: within the linking session (started if none runs),
        ask WhatsApp for a code that the phone of account `phone` (E.164 digits) types. Asking
        again gives a new code. The session's 60 seconds start again from the code.

        Raises ChannelError with a sentence saying what to do when no code can be had."""
        if self._qr is None:
            await self._begin_linking()
        session = self._qr
        if session is None or not await session.ready():
            raise ChannelError(f"linking ended before a code could be asked for: {self._status.sentence}")
        try:
            issued = await self._supervisor.request(wire.RequestPairingCode(phone, code), timeout=30)
        except SidecarError as exc:
            if "refused a code" in str(exc):
                raise ChannelError(
                    f"WhatsApp has no account for +{phone} to link: check that it is your phone's own number, "
                    "with its country code, or link with a QR code instead."
                ) from exc
            raise ChannelError(f"could not get a code from WhatsApp: {exc}") from exc
        if self._qr is not session:
            raise ChannelError(f"linking ended while the code was asked for: {self._status.sentence}")
        shown = session.show_code(issued.code, phone)
        self._publish(ChannelStatus.code_linking(shown.grouped, shown.expires_at, time.time(), sandbox=self.sandbox))
        return shown

    def back_to_qr(self) -> None:
        """The person switched back from the code to the QR: the live session's QR links as before."""
        if self._qr is not None and self._qr.code is not None:
            self._qr.code = None
            self._publish(ChannelStatus.linking(self._qr.expires_at, time.time(), sandbox=self.sandbox))

    async def stop(self) -> None:
        """Close the socket and log the device out on the server: the link is void afterwards."""
        self._supervisor.unwant()
        if self._status.state is ConnectionState.OPEN and self._supervisor.attached:
            try:
                await self._supervisor.request(wire.Logout(), timeout=15)
            except SidecarError as exc:
                log.warning("logout on the server failed: %s", exc)
        await self._supervisor.shutdown()
        await self._supervisor.drain()
        if self._store is not None:
            self._store.close()
            self._store = None
        AuthStore.remove(self.config.auth_dir)
        self.account = None  # the link is gone with the credentials
        self._publish(ChannelStatus.unlinked(sandbox=self.sandbox, detail="Stopped: the device was logged out."))

    async def logout(self) -> None:
        """Forget the link here without telling WhatsApp (the phone lists the device until it is
        removed there): what `stop` does less the server logout, so the two differ (issue #17)."""
        self._supervisor.unwant()
        await self._supervisor.shutdown()
        await self._supervisor.drain()
        if self._store is not None:
            self._store.close()
            self._store = None
        AuthStore.remove(self.config.auth_dir)
        self.account = None
        self._publish(ChannelStatus.unlinked(sandbox=self.sandbox, detail="Logged out here; WhatsApp was not told."))

    async def pause(self) -> None:
        """Disconnect but keep the link; resume() reconnects."""
        self._supervisor.unwant()
        await self._supervisor.shutdown()
        self._publish(ChannelStatus.paused(sandbox=self.sandbox))

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        """Service shutdown (Ctrl-C, SIGTERM): close the socket, keep the link for next time."""
        self._supervisor.closing = True
        self._supervisor.unwant()
        self._end_qr_session()
        await self._supervisor.shutdown()
        await self._admitter.close()
        await self._pipeline.close()
        await self._supervisor.drain()
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

    async def _connect(self) -> None:
        linking = self._qr is not None
        if not linking or (self._qr is not None and self._qr.latest is not None):
            self._publish(ChannelStatus.connecting(sandbox=self.sandbox))
        try:
            if not linking:
                await self._ingest_spill()
            await self._supervisor.connect(linking=linking)
        except SidecarError as exc:
            log.warning("could not connect: %s", exc)
            await self._lost(None, str(exc))

    async def _begin_linking(self) -> None:
        store = self._open_store()
        if store.is_linked():
            raise ChannelError("WhatsApp is already linked: log out first to link another phone.")
        self._supervisor.want()
        self._qr = QrSession(self.config.qr_session_seconds, self._qr_timed_out)
        self._publish(ChannelStatus.linking(self._qr.expires_at, time.time(), sandbox=self.sandbox))
        await self._connect()

    def _qr_timed_out(self) -> None:
        if self._qr is None:
            return
        log.info("QR session expired after %.0f s", self.config.qr_session_seconds)
        by_code = self._qr.code is not None
        self._end_qr_session()
        self._supervisor.wanted = False
        self._supervisor.background(self._supervisor.shutdown(), "end QR session")
        expired = ChannelStatus.code_expired if by_code else ChannelStatus.qr_expired
        self._publish(expired(sandbox=self.sandbox))

    def _end_qr_session(self) -> None:
        session, self._qr = self._qr, None
        if session is not None:
            session.end()

    async def _lost(self, code: int | None, reason: str) -> None:
        if self._qr is not None and code == 408 and "QR refs" in reason:
            return  # Baileys ran out of refs before our 60 s: the deadline handler reports expiry
        await self._supervisor.lost(code, reason)

    def _on_decision(self, decision: Decision) -> None:
        """The reconnect policy answered a lost connection: say so, and end a QR session that
        can no longer succeed."""
        if decision.reconnects:
            self.metrics.reconnect(decision.reason.value)
        self._publish(from_decision(decision, sandbox=self.sandbox))
        if decision.action not in (Action.RECONNECT_NOW, Action.RETRY_AFTER):
            self._end_qr_session()

    # -- sidecar events --------------------------------------------------------------------------

    async def _on_event(self, event: SidecarEvent) -> None:
        await self._handlers[type(event)](event)

    async def _on_qr(self, event: wire.Qr) -> None:
        if self._qr is not None:
            self._qr.show(event.qr)
            if self._qr.code is None:  # linking by code: the status keeps speaking of the code
                self._publish(ChannelStatus.linking(self._qr.expires_at, time.time(), sandbox=self.sandbox))

    async def _on_code_refused(self, event: wire.CodeRefused) -> None:
        """The phone refused our pairing code: WhatsApp spent it, and Baileys' pairing secret is
        now one no phone shares, so this linking session cannot succeed any more."""
        if self._qr is None:
            return
        log.info("the pairing code was refused: %s", event.message)
        self._end_qr_session()
        self._supervisor.wanted = False
        self._supervisor.background(self._supervisor.shutdown(), "end linking after a refused code")
        self._publish(ChannelStatus.code_refused(sandbox=self.sandbox))

    async def _on_connection(self, event: wire.Connection) -> None:
        if event.connection == "open":
            self._on_open()
        elif event.connection == "close":
            await self._lost(event.status_code, event.reason or "")

    async def _on_messages(self, event: wire.Messages) -> None:
        # Only without an admitter wired to the supervisor (it takes batches as `_on_batch`).
        self._admitter.submit(Batch(event.messages, event.type, None))

    async def _on_receipts(self, event: wire.Receipts) -> None:
        for receipt in event.receipts:
            if receipt.error:
                # e.g. 463: WhatsApp refused it for this contact; sending again would make it worse
                log.warning("WhatsApp refused message %s (error %s); it is not sent again", receipt.id, receipt.error)
                self._activity.record("refused", receipt.remote_jid, receipt.id, error=receipt.error)

    async def _on_creds(self, event: wire.Creds) -> None:
        if event.registered:
            self.account = event.me
            if self._qr is not None:
                # Scanned: the link exists now, so the QR session can no longer expire while the
                # 515 restart that follows is still connecting.
                self._qr.scanned()

    async def _on_lid(self, event: wire.Lid) -> None:
        """Baileys keeps LID mappings in the auth store, where the pipeline reads them."""

    async def _on_fatal(self, event: wire.Fatal) -> None:
        log.error("sidecar stopped: %s", event.message)

    async def _on_exited(self, event: Exited) -> None:
        if event.fatal is not None:
            self._supervisor.wanted = False
            self._publish(ChannelStatus.stopped(sandbox=self.sandbox, detail=event.fatal.message))
        elif self._supervisor.wanted and not self._supervisor.closing:
            await self._lost(None, f"the sidecar exited (code {event.code})")

    def _on_open(self) -> None:
        self._supervisor.opened()
        if self._qr is not None:
            self._end_qr_session()
            log.info("linked")
        if self._store is not None:
            self.account = self._store.linked_account()
        me = (self.account or {}).get("id")
        self._publish(ChannelStatus.open(me, sandbox=self.sandbox))
        self._pipeline.request_resume()  # replies the last connection could not send, messages left over
        for hook in self._open_hooks:
            self._supervisor.background(_logged(hook), "on open")

    def _account_id(self) -> str:
        account = self.account or (self._store.linked_account() if self._store is not None else None)
        return str((account or {}).get("id") or "unknown")

    async def _ingest_spill(self) -> None:
        """Messages a sidecar handed over but we had not journaled when it had to stop (see
        docs/sidecar-protocol.md, "Acks, seq and spill"). Queued ahead of the new connection's;
        a file is removed only once all of it is in the journal (a failing store keeps it)."""
        store = self._open_store()
        for path, batches in await asyncio.get_running_loop().run_in_executor(None, store.spilled):
            if path in self._spills_queued:
                continue  # still being admitted since an earlier connect
            readable = []
            for obj in batches:
                try:
                    readable.append(wire.spilled_batch(obj))
                except wire.WireError as exc:
                    log.warning("skipped an unreadable batch in %s: %s", path.name, exc)
            self._spills_queued.add(path)
            messages = [raw for batch in readable for raw in batch.messages]
            for batch in readable:
                self._admitter.submit(Batch(batch.messages, batch.type, None))
            self._admitter.submit(Batch((), "append", functools.partial(self._spill_admitted, path)))
            log.info("re-admitting %d message(s) a stopped sidecar left in %s", len(messages), path.name)

    async def _spill_admitted(self, path: Path) -> None:
        self._spills_queued.discard(path)
        AuthStore.discard_spill(path)

    def _on_batch(self, event: wire.Messages, ack: Callable[[], Awaitable[None]]) -> None:
        self._admitter.submit(Batch(event.messages, event.type, ack))

    def _on_store(self, reason: str | None) -> None:
        """The journal cannot be written (or can again): the status says so until it recovers."""
        if reason is None:
            self._note("store_failing", None)
        else:
            self._note(
                "store_failing",
                "Cortask cannot write to its database now: incoming messages are kept by the WhatsApp "
                f"sidecar and recorded as soon as it works again. {reason}",
            )

    def _on_send_failed(self, count: int) -> None:
        replies = "1 reply" if count == 1 else f"{count} replies"
        self._note(
            "send_failed",
            f"{replies} could not be sent after repeated attempts and {'was' if count == 1 else 'were'} given up "
            "(other chats were answered meanwhile); the activity log says which.",
        )

    def _note(self, kind: str, sentence: str | None) -> None:
        """Set (or with None, clear) a note on the status, and publish the status."""
        if sentence is None:
            if self._notes.pop(kind, None) is None:
                return
        else:
            if kind in self._notes and self._notes[kind].sentence == sentence:
                return
            self._notes[kind] = StatusNote(kind, sentence)
        self._publish(self._status)

    # -- status ----------------------------------------------------------------------------------

    def _on_traffic(self, inbound: bool) -> None:
        """A message came in or a reply went out: the status's last times change."""
        now = time.time()
        self._status = self._status.with_activity(**({"inbound_at": now} if inbound else {"outbound_at": now}))
        self._statuses.publish(self._status)

    def _publish(self, status: ChannelStatus) -> None:
        status = status.with_activity(
            inbound_at=self._status.last_inbound_at, outbound_at=self._status.last_outbound_at
        )
        status = replace(status, notes=tuple(self._notes.values()))
        self._status = status
        self.metrics.state(status.state.value)
        log.info("WhatsApp: %s", status.sentence)
        self._statuses.publish(status)


async def _logged(hook: Callable[[], Awaitable[None]]) -> None:
    try:
        await hook()
    except Exception:
        log.exception("a task run when the connection opened failed")


__all__ = [
    "ERROR_REPLY",
    "READ_ONLY_REPLY",
    "AuthStoreError",
    "ChannelError",
    "NotLinked",
    "WhatsAppChannel",
    "new_message_id",
]
