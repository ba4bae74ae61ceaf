"""The channel's journal (`channels.whatsapp.journal.Journal`) kept in the product's store: the
inbound journal and the outbox tables.

Every write is durable before the call returns, so a kill -9 at any moment leaves the store
saying exactly what is left: a message recorded but without a planned reply is processed again;
a planned reply not marked sent is sent again under its reserved id; nothing else is repeated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.journal import Admission, JournalUnavailable, PlannedReply
from cortask.store import AsyncStore, DatabaseFailed, JournalEntry, JournalState, OutboxItem, Store
from cortask.store.validate import normalize_account

__all__ = ["StoreJournal"]


def _planned(item: OutboxItem) -> PlannedReply:
    assert item.message_id is not None, "the journal always reserves an id"
    return PlannedReply(
        item.chat_jid, item.text, item.message_id, item.in_reply_to, ref=item.id,
        part=item.part, parts=item.parts, attempts=item.attempts,
    )  # fmt: skip


def _inbound(entry: JournalEntry) -> InboundText:
    """A journaled message, as the channel needs it to process it again after a restart."""
    phone = entry.sender if entry.sender.startswith("+") else None
    stamp = int(entry.message_timestamp.timestamp()) if entry.message_timestamp is not None else None
    return InboundText(
        chat_jid=entry.chat_jid,
        message_id=entry.message_id,
        sender_jid=entry.sender if phone is None else phone[1:] + "@s.whatsapp.net",
        sender_phone=phone,
        sender_lid=None,
        push_name=None,
        text=entry.text,
        timestamp=stamp,
        is_group=entry.chat_jid.endswith("@g.us"),
        offline=True,
    )


def _fail_pending(store: Store, account: str, item: InboundText, error: str) -> None:
    """The agent failed on `item`: its journal entry, if still pending, says so (in the caller's
    transaction, with the apology that is planned as its reply)."""
    entry = store.journal.get(account, item.chat_jid, item.message_id)
    if entry is not None and entry.state is JournalState.PENDING:
        store.journal.mark_failed(account, item.chat_jid, item.message_id, error)


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """A database that cannot be written now (locked past the busy timeout, disk full) is the
    journal being unavailable, which the channel retries; anything else is a bug and raised as is."""
    try:
        yield
    except DatabaseFailed as exc:
        raise JournalUnavailable(str(exc)) from exc


class StoreJournal:
    def __init__(self, store: AsyncStore) -> None:
        self._store = store

    async def admit(self, account: str, item: InboundText) -> Admission:
        def admit(store: Store) -> Admission:
            with store.transaction():
                fresh = store.journal.record(
                    account, item.chat_jid, item.message_id, item.sender_phone or item.sender_jid, item.text,
                    message_timestamp=float(item.timestamp) if item.timestamp else None,
                )  # fmt: skip
                if fresh:
                    return Admission.NEW
                entry = store.journal.get(account, item.chat_jid, item.message_id)
                pending = entry is not None and entry.state is JournalState.PENDING
                return Admission.PENDING if pending else Admission.DONE

        with _unavailable():
            return await self._store.run(admit)

    async def skip(self, account: str, item: InboundText, reason: str) -> None:
        def skip(store: Store) -> None:
            with store.transaction():
                entry = store.journal.get(account, item.chat_jid, item.message_id)
                if entry is None:
                    store.journal.record(
                        account, item.chat_jid, item.message_id, item.sender_phone or item.sender_jid, item.text,
                        message_timestamp=float(item.timestamp) if item.timestamp else None,
                    )  # fmt: skip
                elif entry.state.is_final:
                    return
                store.journal.mark_skipped(account, item.chat_jid, item.message_id, reason)

        with _unavailable():
            await self._store.run(skip)

    async def plan_reply(
        self, account: str, item: InboundText, text: str, message_id: str, *, error: str | None = None
    ) -> PlannedReply:
        def plan(store: Store) -> OutboxItem:
            with store.transaction():
                if error is not None:
                    _fail_pending(store, account, item, error)
                return store.outbox.enqueue(
                    item.chat_jid, text, in_reply_to=item.message_id, account=account, message_id=message_id
                )

        with _unavailable():
            return _planned(await self._store.run(plan))

    async def plan_parts(
        self,
        account: str,
        item: InboundText,
        texts: Sequence[str],
        message_ids: Sequence[str],
        *,
        error: str | None = None,
    ) -> list[PlannedReply]:
        def plan(store: Store) -> list[OutboxItem]:
            with store.transaction():
                earlier = store.outbox.reply_parts(item.chat_jid, item.message_id)
                if earlier:
                    return earlier  # planned before (the agent ran again after a crash): that one stands
                if error is not None:
                    _fail_pending(store, account, item, error)
                parts = len(texts)
                pairs = enumerate(zip(texts, message_ids, strict=True))
                return [
                    store.outbox.enqueue(item.chat_jid, text, in_reply_to=item.message_id, account=account,
                                         message_id=message_id, part=n, parts=parts)
                    for n, (text, message_id) in pairs
                ]  # fmt: skip

        with _unavailable():
            return [_planned(o) for o in await self._store.run(plan)]

    async def send_failed(self, reply: PlannedReply, error: str) -> int:
        assert isinstance(reply.ref, int)
        with _unavailable():
            return await self._store.outbox.record_failure(reply.ref, error)

    async def give_up(self, reply: PlannedReply, error: str) -> None:
        assert isinstance(reply.ref, int)
        with _unavailable():
            await self._store.outbox.mark_failed(reply.ref, error)

    async def mark_sent(self, reply: PlannedReply) -> None:
        assert isinstance(reply.ref, int)
        with _unavailable():
            await self._store.outbox.mark_sent(reply.ref, reply.message_id)

    async def unfinished(self, account: str) -> tuple[list[InboundText], list[PlannedReply]]:
        def unfinished(store: Store) -> tuple[list[JournalEntry], list[OutboxItem]]:
            with store.transaction():
                return store.journal.pending(account), store.outbox.pending()

        with _unavailable():
            entries, unsent = await self._store.run(unfinished)
        planned = {(o.chat_jid, o.in_reply_to) for o in unsent}
        messages = [_inbound(e) for e in entries if (e.chat_jid, e.message_id) not in planned]
        # replies of this account, and those queued without one (nothing else queues them)
        mine = (None, normalize_account(account))
        replies = [_planned(o) for o in unsent if o.message_id is not None and o.account in mine]
        return messages, replies
