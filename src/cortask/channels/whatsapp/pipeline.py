"""The reply pipeline: from a message the sidecar handed over to its one reply.

Each chat has a worker that takes its messages one at a time, in order (other chats run
concurrently). Every step's decision is `lifecycle`'s (pure); this module does the I/O around
it: the journal, read receipts, typing, the agent, pacing, sending, and picking up what a crash
or a lost connection left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from cortask.channels.whatsapp import lifecycle, wire
from cortask.channels.whatsapp.activity import ActivityLog
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.flood import SenderLimiter
from cortask.channels.whatsapp.inbound import InboundText, classify
from cortask.channels.whatsapp.journal import Journal, JournalUnavailable, PlannedReply
from cortask.channels.whatsapp.pacing import TokenBucket
from cortask.channels.whatsapp.parts import split_reply
from cortask.channels.whatsapp.sidecar import SidecarError
from cortask.contacts.access import AccessPolicy

log = logging.getLogger("cortask.whatsapp")

Handler = Callable[[InboundText], Awaitable[str]]
ERROR_REPLY = "Sorry, an error occurred."
R = TypeVar("R")
T = TypeVar("T")


def new_message_id() -> str:
    """A message id in the form WhatsApp Web uses (3EB0 + 18 hex digits)."""
    return "3EB0" + secrets.token_hex(9).upper()


class NotConnected(Exception):
    """A reply could not be sent now; it stays planned and goes out after reconnecting."""


class Link(Protocol):
    """What the pipeline needs of the sidecar (the supervisor provides it)."""

    async def request(self, command: wire.Command[R], timeout: float = ...) -> R: ...

    async def notify(self, command: wire.Command[Any]) -> None: ...


class ReplyPipeline:
    def __init__(
        self,
        config: WhatsAppConfig,
        journal: Journal,
        link: Link,
        activity: ActivityLog,
        *,
        connected: Callable[[], bool],
        account: Callable[[], str],
        auth_store: Callable[[], AuthStore | None],
        on_traffic: Callable[[bool], None],
        handler: Handler | None = None,
        on_store: Callable[[str | None], None] = lambda reason: None,
    ) -> None:
        self._config = config
        self._journal = journal
        self._link = link
        self._activity = activity
        self._connected = connected
        self._account = account
        self._auth_store = auth_store
        self._on_traffic = on_traffic  # True: a message came in; False: a reply went out
        self.handler = handler
        self.policy: AccessPolicy = config.access_policy()
        self.answer_groups = config.answer_groups
        self._pacer = TokenBucket(config.pacing) if config.pacing is not None else None
        self._chats: dict[str, asyncio.Queue[InboundText | PlannedReply]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._in_flight: set[str] = set()  # message and reply ids queued or being processed
        self._keys: dict[str, wire.MessageKey | None] = {}  # for read receipts, by message id
        self._flood = SenderLimiter(config.flood)
        self._full_chats: set[str] = set()  # chats whose full queue was reported (once per flood)
        self._resume_wanted = False
        self._resuming: asyncio.Task[None] | None = None
        self._on_store = on_store  # the journal cannot be written (the reason), or can again (None)
        self._store_failing: str | None = None
        self._given_up: set[tuple[str, str | None]] = set()  # replies whose sending was given up
        self.failed_sends = 0  # replies given up since the start (the status says so)
        self.on_send_failed: Callable[[int], None] = lambda count: None

    # -- arrival -----------------------------------------------------------------------------------

    async def arrive(self, raw: wire.WAMessage, upsert_type: str) -> None:
        """Filter, access control, then the journal, before anything else happens to a message."""
        item = classify(raw, upsert_type, answer_groups=self.answer_groups, lid_to_phone=self._phone_for_lid)
        decision = self.policy.decide(item.sender_phone) if isinstance(item, InboundText) else None
        first = lifecycle.arrival(item, decision)
        if isinstance(first, lifecycle.Ignore):
            log.debug("ignored message %s: %s", item.message_id, first.reason)
            self._activity.record("ignored", item.chat_jid, item.message_id, reason=first.reason)
            return
        assert isinstance(item, InboundText) and decision is not None
        # Not acknowledged to the sidecar until this returns: a journal that cannot be written now
        # is retried here, and the sidecar keeps the batch (spilling it should it have to exit).
        admitted = await self._durably(lambda: self._journal.admit(self._account(), item))
        now = time.time()
        outcome = lifecycle.admission(
            admitted, item.message_id in self._in_flight, item.timestamp, now, self._config.max_message_age_seconds
        )
        if isinstance(outcome, lifecycle.Duplicate):
            log.info("message %s in %s was handled before; not answering it again", item.message_id, item.chat_jid)
            self._activity.record("duplicate", item.chat_jid, item.message_id)
            return
        if isinstance(outcome, lifecycle.Enqueue):
            outcome = self._throttle(item, decision.reason == "open", now=time.monotonic())
        if isinstance(outcome, lifecycle.Skip) and outcome.reason != lifecycle.TOO_OLD:
            # Flood control: recorded in the journal (exactly-once bookkeeping), nothing sent, and
            # the activity log says why once per flood, not once per message.
            await self._durably(lambda: self._journal.skip(self._account(), item, outcome.note))
            return
        self._activity.record(
            "received", item.chat_jid, item.message_id, sender=item.sender_phone, verdict=decision.verdict.value
        )
        self._on_traffic(True)
        if isinstance(outcome, lifecycle.Skip):
            await self._skip(item, outcome)
            return
        self._keys[item.message_id] = wire.MessageKey.of(raw)
        self._enqueue(item)

    def _throttle(self, item: InboundText, open_access: bool, now: float) -> lifecycle.Skip | lifecycle.Enqueue:
        """Flood control's verdict on a new message, reported once per flood."""
        sender = item.sender_phone or item.sender_jid
        refused = self._flood.admit(sender, now, open_access)
        queue = self._chats.get(item.chat_jid)
        step = lifecycle.throttle(refused, queue.qsize() if queue else 0, self._config.flood.chat_queue)
        if isinstance(step, lifecycle.Enqueue):
            self._full_chats.discard(item.chat_jid)
            return step
        first = refused.first if refused is not None else item.chat_jid not in self._full_chats
        self._full_chats.add(item.chat_jid)
        if first:
            log.warning(
                "not answering %s in %s (%s): %s; further messages are recorded, not answered, until it slows down",
                sender, item.chat_jid, step.reason, step.note,
            )  # fmt: skip
            self._activity.record("skipped", item.chat_jid, item.message_id, sender=sender, reason=step.reason)
        return step

    def _phone_for_lid(self, lid_jid: str) -> str | None:
        # A LID-addressed message may come without the sender's number; Baileys keeps what it
        # learned earlier (LID <-> phone) in our auth store, so trusted contacts are still known.
        store = self._auth_store()
        return store.phone_for_lid(lid_jid) if store is not None else None

    async def _skip(self, item: InboundText, skip: lifecycle.Skip) -> None:
        age_h = (time.time() - (item.timestamp or 0)) / 3600
        log.info(
            "skipped message %s in %s: it was sent %.1f h ago, more than the %.1f h answered late",
            item.message_id, item.chat_jid, age_h, self._config.max_message_age_seconds / 3600,
        )  # fmt: skip
        await self._durably(lambda: self._journal.skip(self._account(), item, skip.note))
        self._activity.record("skipped", item.chat_jid, item.message_id, reason=skip.reason)

    def _enqueue(self, work: InboundText | PlannedReply) -> None:
        """Queue a message to answer, or a reply to (re)send, behind the chat's earlier work."""
        self._in_flight.add(work.message_id)
        queue = self._chats.setdefault(work.chat_jid, asyncio.Queue())
        queue.put_nowait(work)
        worker = self._workers.get(work.chat_jid)
        if worker is None or worker.done():
            self._workers[work.chat_jid] = asyncio.create_task(
                self._chat_worker(work.chat_jid, queue), name=f"whatsapp-chat-{work.chat_jid}"
            )

    @property
    def busy_chats(self) -> int:
        return len(self._chats)

    # -- a chat's turn -----------------------------------------------------------------------------

    async def _chat_worker(self, chat: str, queue: asyncio.Queue[InboundText | PlannedReply]) -> None:
        """One chat's messages, one at a time, in order; other chats run concurrently."""
        try:
            await self._drain(queue)
        finally:
            # Idle: release the chat's queue and worker (a stranger flood from many numbers must
            # not leave one of each behind per number). No await between the check and the
            # release, so a message enqueued meanwhile finds either this worker or none.
            if queue.empty() and self._chats.get(chat) is queue:
                del self._chats[chat]
                self._full_chats.discard(chat)  # drained: a later overflow is a new flood
                if self._workers.get(chat) is asyncio.current_task():
                    del self._workers[chat]

    async def _drain(self, queue: asyncio.Queue[InboundText | PlannedReply]) -> None:
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
        account = self._account()
        key = self._keys.pop(item.message_id, None)
        # Decided again now, not at arrival: a sender removed or made read-only while this message
        # waited in the queue gets what the rules say now (nothing, or the read-only reply).
        step = lifecycle.plan(self.policy.decide(item.sender_phone), key is not None)
        if isinstance(step, lifecycle.NoLongerAllowed):
            await self._durably(lambda: self._journal.skip(account, item, step.note))
            self._activity.record("skipped", item.chat_jid, item.message_id, reason=lifecycle.NOT_ALLOWED)
            return
        if step.read_receipt and key is not None:
            await self._link.notify(wire.Read((key,)))
        if step.fixed_reply is not None:
            await self._deliver_all(await self._plan(account, item, step.fixed_reply))
            return
        if step.typing:
            await self._presence(item.chat_jid, "composing")
        refresher = asyncio.create_task(self._keep_typing(item.chat_jid)) if step.typing else None
        error: str | None = None
        try:
            if self.handler is None:
                raise RuntimeError("no message handler is registered")
            reply = await self.handler(item)
        except Exception as exc:
            log.exception("the agent failed on a message in %s", item.chat_jid)
            reply, error = ERROR_REPLY, str(exc) or type(exc).__name__
        finally:
            if refresher is not None:
                refresher.cancel()
        try:
            await self._deliver_all(await self._plan(account, item, reply, error))
        finally:
            await self._presence(item.chat_jid, "paused")

    async def _plan(self, account: str, item: InboundText, text: str, error: str | None = None) -> list[PlannedReply]:
        """Record the reply (in parts when it is longer than a message may be), each part under a
        new id, in the journal and, for retry receipts, in the auth store: two databases, written
        side by side so an answer waits for one disk flush, not two."""
        texts = split_reply(text, self._config.max_part_chars) if text else [text]
        ids = [new_message_id() for _ in texts]
        pairs = zip(ids, texts, strict=True)
        remembered = (self._remember_sent(message_id, item.chat_jid, part) for message_id, part in pairs)
        planned, _ = await asyncio.gather(
            self._durably(lambda: self._journal.plan_parts(account, item, texts, ids, error=error)),
            asyncio.gather(*remembered),
        )
        return planned

    async def _deliver_all(self, parts: list[PlannedReply]) -> None:
        """A reply's parts, in order; one that cannot go out now stops the rest (resumed later)."""
        for part in parts:
            if not await self._deliver(part, remembered=True):
                return

    async def _remember_sent(self, message_id: str, chat: str, text: str) -> None:
        store = self._auth_store()
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, store.remember_sent, message_id, chat, text)

    async def _deliver(self, reply: PlannedReply, remembered: bool = False) -> bool:
        """Send a planned reply under its reserved id and mark it sent; True once sent. When the
        connection is down it stays planned, and goes out after the next reconnect. A send that
        fails while connected is retried with backoff (counted on the reply), and given up after
        `send_retry.attempts`: only this chat waits meanwhile, and no pacing token is spent."""
        failures = reply.attempts
        while True:
            if (reply.chat_jid, reply.in_reply_to) in self._given_up:
                return False  # an earlier part was given up: the reply is not sent with a hole
            try:
                await self.send(reply.chat_jid, reply.text, reply.message_id, remembered)
            except (SidecarError, NotConnected) as exc:
                if isinstance(exc, NotConnected) or not self._connected():
                    log.warning("could not send the reply to %s now (%s); it is sent after reconnecting",
                                reply.chat_jid, exc)  # fmt: skip
                    self._activity.record("queued", reply.chat_jid, reply.message_id, reason=str(exc))
                    self.request_resume()
                    return False
                failures = await self._durably(functools.partial(self._journal.send_failed, reply, str(exc)))
                if self._config.send_retry.exhausted(failures):
                    await self._give_up(reply, str(exc), failures)
                    return False
                delay = self._config.send_retry.delay(failures)
                log.warning("sending a reply to %s failed (%s); attempt %d, trying again in %.0f s",
                            reply.chat_jid, exc, failures + 1, delay)  # fmt: skip
                self._activity.record("retrying", reply.chat_jid, reply.message_id, reason=str(exc), attempts=failures)
                await asyncio.sleep(delay)
                continue
            # Sent: recorded as sent even if the journal must be waited for (a full disk), so a
            # reply that went out is never sent again.
            await self._durably(lambda: self._journal.mark_sent(reply))
            return True

    async def _give_up(self, reply: PlannedReply, error: str, failures: int) -> None:
        self._given_up.add((reply.chat_jid, reply.in_reply_to))
        await self._durably(functools.partial(self._journal.give_up, reply, error))
        log.error("gave up sending a reply to %s after %d attempts: %s", reply.chat_jid, failures, error)
        self._activity.record("send_failed", reply.chat_jid, reply.message_id, reason=error, attempts=failures)
        self.failed_sends += 1
        self.on_send_failed(self.failed_sends)

    async def _durably(self, write: Callable[[], Awaitable[T]]) -> T:
        """A journal call, retried with backoff for as long as the journal is unavailable (another
        process holds the database locked, the disk is full): nothing is given up, the status says
        so meanwhile. Cancelled with the pipeline (what was not recorded is redone later)."""
        failures = 0
        while True:
            try:
                result = await write()
            except JournalUnavailable as exc:
                failures += 1
                self._store_trouble(str(exc))
                await asyncio.sleep(self._config.store_retry.delay(failures))
                continue
            if self._store_failing is not None:
                self._store_trouble(None)
            return result

    def _store_trouble(self, reason: str | None) -> None:
        """Say once when the journal starts failing, and once when it works again."""
        if reason == self._store_failing:
            return
        if reason is None:
            log.info("the journal can be written again; what waited is recorded now")
            self._activity.record("store_recovered", None, None)
        elif self._store_failing is None:
            log.warning("the journal cannot be written (%s); retrying, nothing is acknowledged meanwhile", reason)
            self._activity.record("store_failing", None, None, reason=reason)
        self._store_failing = reason
        self._on_store(reason)

    async def _keep_typing(self, chat: str) -> None:
        while True:
            await asyncio.sleep(self._config.typing_refresh_seconds)
            await self._presence(chat, "composing")

    async def _presence(self, chat: str, kind: wire.PresenceType) -> None:
        # Not awaited round trip: the sidecar runs commands in the order they arrive and Baileys
        # writes a chat state at once, so "composing" still precedes the reply, without adding a
        # pipe round trip to every answer (a failed one is only a missing typing indicator).
        await self._link.notify(wire.Presence(kind, chat))

    async def send(self, chat: str, text: str, message_id: str | None = None, remembered: bool = False) -> str:
        """Send `text` to `chat` (paced); returns the message id. The text is stored (durably)
        under its id before it is sent (unless the caller did: `remembered`), so Baileys can
        re-encrypt it if the phone asks for a retry."""
        if self._pacer is not None:
            await asyncio.sleep(self._pacer.reserve(time.monotonic()))
        try:
            if not self._connected():
                raise NotConnected("not connected")
            message_id = message_id or new_message_id()
            if not remembered:
                await self._remember_sent(message_id, chat, text)
            await self._link.request(wire.SendText(chat, text, message_id))
        except (SidecarError, NotConnected):
            if self._pacer is not None:
                self._pacer.refund()  # nothing went out: a failing send must not drain the budget
            raise
        self._activity.record("replied", chat, message_id, chars=len(text))
        self._on_traffic(False)
        return message_id

    # -- what is left after a crash or a lost connection -------------------------------------------

    def request_resume(self) -> None:
        """Pick up unfinished work now if connected, else as soon as the connection opens."""
        self._resume_wanted = True
        if self._connected() and (self._resuming is None or self._resuming.done()):
            self._resuming = asyncio.create_task(self._resume(), name="whatsapp-resume")

    async def _resume(self) -> None:
        while self._resume_wanted and self._connected():
            self._resume_wanted = False
            account = self._account()
            try:
                messages, replies = await self._durably(functools.partial(self._journal.unfinished, account))
            except Exception:
                log.exception("could not read what is left to answer")
                return
            for work in lifecycle.resume_order(messages, replies, self._in_flight):
                if isinstance(work, PlannedReply):
                    log.info("sending a reply to %s that was not sent before", work.chat_jid)
                    self._enqueue(work)
                    continue
                step = lifecycle.resumed(work.timestamp, time.time(), self._config.max_message_age_seconds)
                if isinstance(step, lifecycle.Skip):
                    await self._skip(work, step)
                else:
                    log.info("answering message %s in %s, left unanswered before", work.message_id, work.chat_jid)
                    self._enqueue(work)

    async def close(self) -> None:
        """Stop every chat's worker (service shutdown: what they did not finish is resumed later)."""
        workers = [*self._workers.values(), *([self._resuming] if self._resuming is not None else [])]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
