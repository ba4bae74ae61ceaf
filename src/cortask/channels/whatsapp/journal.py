"""The channel's journal: what it remembers about each message, so that none is lost and none is
answered twice. This module is the port (what the channel needs); implementations live elsewhere.

The channel consults its journal when a message arrives (before anything else happens to it),
before a reply is sent (the reply and the WhatsApp id it will carry are recorded first) and after
(it was sent). After a restart or a reconnect, `unfinished()` tells what is left to do: messages
never answered and replies never confirmed sent. A reply resent after a crash carries the id that
was reserved for it, so a phone that already got it shows it once.

`MemoryJournal` keeps this in memory: enough for a library user, but a crash forgets it. The
service uses the durable `StoreJournal` in `cortask.store_journal`, backed by the product's store.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from cortask.channels.whatsapp.inbound import InboundText

__all__ = ["Admission", "Journal", "JournalUnavailable", "MemoryJournal", "PlannedReply"]


class JournalUnavailable(Exception):
    """The journal could not record anything now (its database is locked by another process for
    longer than it waits, or the disk is full): nothing was recorded, the same call may succeed
    later. The channel retries with backoff and says so in its status."""


class Admission(StrEnum):
    NEW = "new"  # first time seen: process it
    PENDING = "pending"  # seen before and never finished (a crash, or redelivered while in progress)
    DONE = "done"  # answered, failed or skipped before: never again


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """A reply recorded before it is sent; every attempt to send it uses `message_id`."""

    chat_jid: str
    text: str
    message_id: str
    in_reply_to: str | None
    ref: int | str  # the journal's own handle for it
    part: int = 0  # a long reply goes out in `parts` messages, each planned with its own id
    parts: int = 1
    attempts: int = 0  # failed sends so far


class Journal(Protocol):
    async def admit(self, account: str, item: InboundText) -> Admission:
        """Record an inbound message (durably, for a durable journal) and say what to do with it."""
        ...

    async def skip(self, account: str, item: InboundText, reason: str) -> None:
        """The message is deliberately left unanswered (too old, no longer allowed)."""
        ...

    async def plan_reply(
        self, account: str, item: InboundText, text: str, message_id: str, *, error: str | None = None
    ) -> PlannedReply:
        """Record the reply before sending it. If one was planned already, that one is returned
        (and must be sent instead): a message gets exactly one reply. `error` says the reply is
        the apology for a failed agent run."""
        ...

    async def plan_parts(
        self,
        account: str,
        item: InboundText,
        texts: Sequence[str],
        message_ids: Sequence[str],
        *,
        error: str | None = None,
    ) -> list[PlannedReply]:
        """`plan_reply` for a reply in several parts, all recorded at once, each under its own
        id; if the reply was planned before, those parts are returned instead."""
        ...

    async def mark_sent(self, reply: PlannedReply) -> None: ...

    async def send_failed(self, reply: PlannedReply, error: str) -> int:
        """A send of the reply failed: count it; returns its failed attempts so far."""
        ...

    async def give_up(self, reply: PlannedReply, error: str) -> None:
        """Sending kept failing: the reply (and its later parts) is never sent; its message is
        recorded as failed."""
        ...

    async def unfinished(self, account: str) -> tuple[list[InboundText], list[PlannedReply]]:
        """Messages admitted but never answered (no reply planned), in arrival order, and replies
        planned but not confirmed sent, in the order they were planned."""
        ...


@dataclass(slots=True)
class _Entry:
    item: InboundText
    done: bool = False
    reply: PlannedReply | None = None
    later: list[PlannedReply] = dataclasses.field(default_factory=list)  # a long reply's other parts


class MemoryJournal:
    """The journal for a channel without a store: remembers the last `capacity` messages."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: collections.OrderedDict[tuple[str, str, str], _Entry] = collections.OrderedDict()
        self._unsent: dict[str, PlannedReply] = {}
        self._reply_of: dict[str, tuple[str, str, str]] = {}  # reply id -> the message it answers

    @staticmethod
    def _key(account: str, item: InboundText) -> tuple[str, str, str]:
        return (account, item.chat_jid, item.message_id)

    async def admit(self, account: str, item: InboundText) -> Admission:
        entry = self._entries.get(self._key(account, item))
        if entry is not None:
            return Admission.DONE if entry.done else Admission.PENDING
        self._entries[self._key(account, item)] = _Entry(item)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return Admission.NEW

    async def skip(self, account: str, item: InboundText, reason: str) -> None:
        entry = self._entries.setdefault(self._key(account, item), _Entry(item))
        entry.done = True

    async def plan_reply(
        self, account: str, item: InboundText, text: str, message_id: str, *, error: str | None = None
    ) -> PlannedReply:
        # A reply in one part: the one planned before, if any, stands (its first part).
        return (await self.plan_parts(account, item, [text], [message_id], error=error))[0]

    async def plan_parts(
        self,
        account: str,
        item: InboundText,
        texts: Sequence[str],
        message_ids: Sequence[str],
        *,
        error: str | None = None,
    ) -> list[PlannedReply]:
        entry = self._entries.setdefault(self._key(account, item), _Entry(item))
        if entry.reply is not None:
            return [entry.reply, *entry.later]
        planned = [
            PlannedReply(item.chat_jid, text, message_id, item.message_id, ref=message_id, part=n, parts=len(texts))
            for n, (text, message_id) in enumerate(zip(texts, message_ids, strict=True))
        ]
        entry.reply, entry.later = planned[0], planned[1:]
        for reply in planned:
            self._unsent[reply.message_id] = reply
            self._reply_of[reply.message_id] = self._key(account, item)
        return planned

    async def send_failed(self, reply: PlannedReply, error: str) -> int:
        known = self._unsent.get(str(reply.ref), reply)
        self._unsent[str(reply.ref)] = replace(known, attempts=known.attempts + 1)
        return known.attempts + 1

    async def give_up(self, reply: PlannedReply, error: str) -> None:
        key = self._reply_of.get(str(reply.ref))
        for ref, other in list(self._unsent.items()):
            if self._reply_of.get(ref) == key and other.part >= reply.part:
                del self._unsent[ref]
        entry = self._entries.get(key) if key is not None else None
        if entry is not None:
            entry.done = True

    async def mark_sent(self, reply: PlannedReply) -> None:
        self._unsent.pop(str(reply.ref), None)
        key = self._reply_of.pop(str(reply.ref), ("", "", ""))
        entry = self._entries.get(key)
        if entry is not None and key not in {self._reply_of.get(ref) for ref in self._unsent}:
            entry.done = True  # every part of its reply is sent

    async def unfinished(self, account: str) -> tuple[list[InboundText], list[PlannedReply]]:
        messages = [
            e.item for (owner, _, _), e in self._entries.items() if owner == account and not e.done and e.reply is None
        ]
        return messages, list(self._unsent.values())
