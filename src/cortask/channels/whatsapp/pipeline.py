"""The reply pipeline: from a message the sidecar handed over to its one reply.

Each chat has a worker that takes its messages one at a time, in order (other chats run
concurrently). Every step's decision is `lifecycle`'s (pure); this module does the I/O around
it: the journal, read receipts, typing, the agent, pacing, sending, and picking up what a crash
or a lost connection left unfinished.
"""

from __future__ import annotations

import asyncio
import collections
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
from cortask.channels.whatsapp.groups import group_gate
from cortask.channels.whatsapp.idle import IDLE_RELEASE_S, IdleRelease, release_memory
from cortask.channels.whatsapp.inbound import InboundText, SelfChat, classify
from cortask.channels.whatsapp.journal import Journal, JournalUnavailable, PlannedReply
from cortask.channels.whatsapp.pacing import TokenBucket
from cortask.channels.whatsapp.parts import split_reply
from cortask.channels.whatsapp.sidecar import SidecarError
from cortask.contacts.access import AccessDecision, AccessPolicy, Verdict
from cortask.redact import mask_text

log = logging.getLogger("cortask.whatsapp")

Handler = Callable[[InboundText], Awaitable[str]]
ERROR_REPLY = "Sorry, an error occurred."
SENT_IDS_KEPT = 1000  # our own replies recognised when WhatsApp echoes them back
PAUSED = "paused"  # the activity reason of a message not answered while answers are paused
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
        self.self_chat = config.self_chat  # the owner talks to the agent in their own chat
        self.group_rule = config.group_rule  # when groups are on: mentions only, or always; which groups
        self._quotes: dict[str, wire.Quoted] = {}  # reply id -> the group message it quotes
        self._own: tuple[str, frozenset[str]] | None = None  # (account, its own addresses)
        # Says a message gets no answer at all (answers paused from WhatsApp, `/pause`); asked when
        # its turn comes, before receipts and typing. None: every allowed message is answered.
        self.silent: Callable[[InboundText], bool] | None = None
        # Keeps a stranger's message for the owner's approval; True when it did (issue #14).
        self.hold: Callable[[InboundText], Awaitable[bool]] | None = None
        self._pacer = TokenBucket(config.pacing) if config.pacing is not None else None
        self._chats: dict[str, asyncio.Queue[InboundText | PlannedReply]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._in_flight: set[str] = set()  # message and reply ids queued or being processed
        # Replies sent whose "sent" is not on disk yet, by chat (at most one a chat: the chat's next
        # send waits for it); their ids and those of the messages they answer stay in flight
        # meanwhile (a resume must not send the reply again, a redelivery not answer again).
        self._marking: dict[str, asyncio.Task[None]] = {}
        self._unrecorded: set[str] = set()
        self._typing: set[str] = set()  # chats shown "typing" (composing) and not yet "paused"
        self._keys: dict[str, wire.MessageKey | None] = {}  # for read receipts, by message id
        self._flood = SenderLimiter(config.flood)
        self._full_chats: set[str] = set()  # chats whose full queue was reported (once per flood)
        self._resume_wanted = False
        self._resuming: asyncio.Task[None] | None = None
        self._agent_failures: dict[str, str] = {}  # reply id → why the agent failed (masked)
        self._sent_ids: collections.OrderedDict[str, None] = collections.OrderedDict()  # our recent replies
        self._on_store = on_store  # the journal cannot be written (the reason), or can again (None)
        self._store_failing: str | None = None
        self._given_up: set[tuple[str, str | None]] = set()  # replies whose sending was given up
        self.failed_sends = 0  # replies given up since the start (the status says so)
        self.on_send_failed: Callable[[int], None] = lambda count: None
        # Once every chat's worker is released and nothing came for a while, memory the burst
        # left behind goes back (issue #18).
        self._idle = IdleRelease(
            IDLE_RELEASE_S, release_memory, lambda delay, fire: asyncio.get_running_loop().call_later(delay, fire)
        )

    # -- arrival -----------------------------------------------------------------------------------

    async def arrive(self, raw: wire.WAMessage, upsert_type: str) -> None:
        """Filter, access control, then the journal, before anything else happens to a message."""
        item = classify(
            raw, upsert_type, answer_groups=self.answer_groups, lid_to_phone=self._phone_for_lid,
            self_chat=self._own_chat(),
        )  # fmt: skip
        decision = self.decide(item) if isinstance(item, InboundText) else None
        first = lifecycle.arrival(item, decision)
        if isinstance(first, lifecycle.Admit) and isinstance(item, InboundText):
            # Groups answer only when called (a mention, a reply to us) or always, as set.
            unwanted = self._group_reason(item)
            first = lifecycle.Ignore(unwanted) if unwanted is not None else first
        if isinstance(first, lifecycle.Ignore) and isinstance(item, InboundText) and await self._held(item, first):
            return
        if isinstance(first, lifecycle.Ignore):
            log.debug("ignored message %s: %s", item.message_id, first.reason)
            if item.message_id not in self._sent_ids:  # our own reply coming back is not news (issue #17)
                self._activity.record("ignored", item.chat_jid, item.message_id, reason=first.reason)
            return
        assert isinstance(item, InboundText) and decision is not None
        # Not acknowledged to the sidecar until this returns: a journal that cannot be written now
        # is retried here, and the sidecar keeps the batch (spilling it should it have to exit).
        admitted = await self._durably(lambda: self._journal.admit(self._account(), item))
        now = time.time()
        outcome = lifecycle.admission(
            admitted, self._is_busy(item.message_id), item.timestamp, now, self._config.max_message_age_seconds
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

    async def _held(self, item: InboundText, ignore: lifecycle.Ignore) -> bool:
        """A stranger's message kept for the owner's approval (issue #14), instead of ignored:
        still no receipt, no typing, no reply, nothing journaled until it is approved."""
        if self.hold is None or ignore.reason != lifecycle.NOT_ALLOWED or item.is_group or not item.sender_phone:
            return False
        if not await self.hold(item):
            return False
        self._activity.record("held", item.chat_jid, item.message_id, sender=item.sender_phone)
        return True

    async def answer_held(self, item: InboundText) -> bool:
        """Answer a message that waited for approval, now that its sender is allowed: journaled
        and queued like a new one (once: the journal says whether it was seen)."""
        admitted = await self._journal.admit(self._account(), item)
        step = lifecycle.admission(admitted, self._is_busy(item.message_id), None, time.time(), 0)
        if not isinstance(step, lifecycle.Enqueue):
            return False
        self._activity.record("received", item.chat_jid, item.message_id, sender=item.sender_phone, verdict="agent")
        self._enqueue(item)
        return True

    def decide(self, item: InboundText) -> AccessDecision:
        """Who the sender is to the rules: the owner in their own chat counts as admin (also for
        a message resumed from the journal, which does not keep the flag: its chat says it)."""
        own = self._own_chat()
        if own is not None and (item.from_owner or (own.is_own_chat(item.chat_jid) and not item.is_group)):
            return AccessDecision(Verdict.AGENT, "owner")
        return self.policy.decide(item.sender_phone, item.sender_lid)

    def _own_chat(self) -> SelfChat | None:
        """The self-chat rule's view of this account, when the setting is on and we are linked."""
        store = self._auth_store()
        own = self._own_users() if self.self_chat else frozenset()
        if store is None or not own:
            return None
        # A reply of ours comes back from Baileys as our own message: its id is in the sent record.
        return SelfChat(own, store.has_sent)

    def _own_users(self) -> frozenset[str]:
        """This account's user parts (phone and LID), once known; read once per linked account."""
        store = self._auth_store()
        if store is None:
            return frozenset()
        account = self._account()
        if self._own is None or self._own[0] != account:
            me = store.linked_account() or {}
            users = (jid.partition("@")[0].partition(":")[0] for jid in (me.get("id"), me.get("lid")) if jid)
            self._own = (account, frozenset(users))
        return self._own[1]

    def _group_reason(self, item: InboundText) -> str | None:
        """Why a group message is not for the agent (not mentioned, group not listed), or None."""
        if not item.is_group:
            return None
        store = self._auth_store()
        return group_gate(item, self.group_rule, self._own_users(), store.has_sent if store else lambda _: False)

    def _throttle(self, item: InboundText, open_access: bool, now: float) -> lifecycle.Skip | lifecycle.Enqueue:
        """Flood control's verdict on a new message, reported once per flood."""
        sender = item.sender_phone or item.sender_jid
        # The owner writing to themselves is not a flood to guard against (loops are ruled out by
        # the reserved ids); the chat's queue bound still holds.
        refused = None if item.from_owner else self._flood.admit(sender, now, open_access)
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
            self._idle.busy()
            self._workers[work.chat_jid] = asyncio.create_task(
                self._chat_worker(work.chat_jid, queue), name=f"whatsapp-chat-{work.chat_jid}"
            )

    def _is_busy(self, message_id: str) -> bool:
        """Whether a message or reply is being worked on: queued, processed, or sent and not yet recorded."""
        return message_id in self._in_flight or message_id in self._unrecorded

    @property
    def busy_chats(self) -> int:
        """Chats with work left: messages queued or being answered, or a reply being recorded as sent."""
        return len(self._chats.keys() | self._marking.keys())

    @property
    def queued_messages(self) -> int:
        return sum(queue.qsize() for queue in self._chats.values())

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
                if not self._chats:
                    self._idle.idle()

    async def _drain(self, queue: asyncio.Queue[InboundText | PlannedReply]) -> None:
        while not queue.empty():
            work = queue.get_nowait()
            try:
                if isinstance(work, InboundText):
                    await self._process(work)
                else:
                    await self._deliver(work)
            except Exception:
                log.exception("failed to process a message in %s", work.chat_jid)
            finally:
                self._in_flight.discard(work.message_id)
                # "Typing" ends when the chat has nothing more to answer. Between two queued
                # messages it is not cleared just to be shown again a moment later: the reply
                # itself clears it on the phone, and the next message shows it again.
                if queue.empty() and work.chat_jid in self._typing:
                    with contextlib.suppress(Exception):
                        await self._presence(work.chat_jid, "paused")

    async def _process(self, item: InboundText) -> None:
        account = self._account()
        key = self._keys.pop(item.message_id, None)
        # Decided again now, not at arrival: a sender removed or made read-only while this message
        # waited in the queue gets what the rules say now (nothing, or the read-only reply).
        step = lifecycle.plan(self.decide(item), key is not None)
        if isinstance(step, lifecycle.NoLongerAllowed):
            await self._durably(lambda: self._journal.skip(account, item, step.note))
            self._activity.record("skipped", item.chat_jid, item.message_id, reason=lifecycle.NOT_ALLOWED)
            return
        if step.fixed_reply is None and self.silent is not None and self.silent(item):
            await self._journal.skip(account, item, "answers are paused")
            self._activity.record("skipped", item.chat_jid, item.message_id, reason=PAUSED)
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
            error = mask_text(str(exc) or type(exc).__name__)
            # One line that says why (an agent's errors are sentences); the traceback only at debug.
            log.error("the agent failed on a message in %s: %s", item.chat_jid, error)
            log.debug("the agent's failure", exc_info=True)
            reply = ERROR_REPLY
        finally:
            if refresher is not None:
                refresher.cancel()
        parts = await self._plan(account, item, reply, error)
        for planned in parts:
            if error is not None:  # the activity says the agent failed, not "replied" (issue #17)
                self._agent_failures[planned.message_id] = error
            if item.is_group:  # each part of a group reply quotes the message it answers
                quoted = wire.Quoted(item.message_id, item.chat_jid, item.sender_jid, item.text)
                self._quotes[planned.message_id] = quoted
        await self._deliver_all(parts)

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
        if store is not None:  # on the store's writer: it shares a commit with the sidecar's key writes
            await asyncio.wrap_future(store.writer.submit(store.remember_sent, message_id, chat, text))

    async def _deliver(self, reply: PlannedReply, remembered: bool = False) -> bool:
        """Send a planned reply under its reserved id and mark it sent; True once sent. When the
        connection is down it stays planned, and goes out after the next reconnect. A send that
        fails while connected is retried with backoff (counted on the reply), and given up after
        `send_retry.attempts`: only this chat waits meanwhile, and no pacing token is spent."""
        failures = reply.attempts
        while True:
            if (reply.chat_jid, reply.in_reply_to) in self._given_up:
                return False  # an earlier part was given up: the reply is not sent with a hole
            await self._recorded(reply.chat_jid)
            try:
                await self.send(
                    reply.chat_jid, reply.text, reply.message_id, remembered, part=(reply.part, reply.parts)
                )
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
            self._record_sent(reply)
            return True

    def _record_sent(self, reply: PlannedReply) -> None:
        """Record a reply that went out as sent, even if the journal must be waited for (a full
        disk), so it is never sent again; meanwhile the chat goes on with its next message, whose
        reply is planned in the same commit instead of waiting for one of its own (issue #18). The
        chat's next send waits until this is on disk, so at most the last reply of a chat can be
        left sent but unrecorded by a crash, as when this was awaited here."""
        ids = {reply.message_id, *([reply.in_reply_to] if reply.in_reply_to else [])}
        self._unrecorded |= ids
        task = asyncio.create_task(self._durably(lambda: self._journal.mark_sent(reply)), name="whatsapp-mark-sent")
        self._marking[reply.chat_jid] = task

        def recorded(done: asyncio.Task[None]) -> None:
            self._unrecorded -= ids
            if self._marking.get(reply.chat_jid) is done:
                del self._marking[reply.chat_jid]
            if not done.cancelled() and done.exception() is not None:
                log.error("could not record a reply to %s as sent: %s", reply.chat_jid, done.exception())

        task.add_done_callback(recorded)

    async def _recorded(self, chat: str) -> None:
        """Wait until the chat's last reply sent is on disk as sent (its failure was logged)."""
        marking = self._marking.get(chat)
        if marking is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(marking)

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
        if kind == "composing":
            self._typing.add(chat)
        else:
            self._typing.discard(chat)
        await self._link.notify(wire.Presence(kind, chat))

    async def send(
        self, chat: str, text: str, message_id: str | None = None, remembered: bool = False,
        part: tuple[int, int] = (0, 1),
    ) -> str:  # fmt: skip
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
            self._sent_ids[message_id] = None  # before sending: its echo may come back before the answer
            while len(self._sent_ids) > SENT_IDS_KEPT:
                self._sent_ids.popitem(last=False)
            quoted = self._quotes.get(message_id)  # a group reply quotes what it answers; kept for a resend
            await self._link.request(wire.SendText(chat, text, message_id, quoted))
        except (SidecarError, NotConnected):
            if self._pacer is not None:
                self._pacer.refund()  # nothing went out: a failing send must not drain the budget
            raise
        self._quotes.pop(message_id, None)
        failure = self._agent_failures.pop(message_id, None)
        # Which part of a long reply this is, so the reply latency runs until its last part.
        of = {"part": part[0], "parts": part[1]} if part[1] > 1 else {}
        if failure is not None:
            self._activity.record("failed", chat, message_id, chars=len(text), agent_error=failure, **of)
        else:
            self._activity.record("replied", chat, message_id, chars=len(text), **of)
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
            for work in lifecycle.resume_order(messages, replies, self._in_flight | self._unrecorded):
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
        self._idle.busy()  # the cancelled workers went idle on their way out: nothing to release now
        # Replies sent but not yet recorded as sent: a moment to finish (a healthy journal takes
        # milliseconds); one still waiting for a failing journal is sent again after the restart.
        marking = list(self._marking.values())
        if marking:
            _, late = await asyncio.wait(marking, timeout=2)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
