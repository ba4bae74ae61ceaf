"""What is kept and what may go: the retention rules, pure (no SQL; `cortask.store.prune` runs them).

Records older than the retention period (default 30 days) are pruned: finished journal entries,
sent outbox items, session turns beyond the last few of each session, and the sent-message
record kept for retry receipts. Never pruned, whatever their age:

- a journal entry still pending, or one whose reply is still waiting in the outbox;
- an outbox item not yet sent;
- the last `keep_turns` turns of every session: what the agent reads as the conversation so far.

Dropping a finished journal entry cannot bring its message back to life: WhatsApp redelivers
from its offline queue only what is younger than the channel's 24-hour replay limit, and the
retention period is never shorter than a day.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_KEEP_TURNS",
    "MIN_DAYS",
    "JournalRow",
    "OutboxRow",
    "Retention",
    "TurnRow",
    "journal_to_prune",
    "outbox_to_prune",
    "turns_to_prune",
]

DEFAULT_DAYS = 30.0
MIN_DAYS = 1.0  # below this a redelivered message could outlive its journal entry
DEFAULT_KEEP_TURNS = 20  # the service gives the agent the last 20 turns (service.HISTORY_TURNS)
ENV_DAYS = "CORTASK_RETENTION_DAYS"


@dataclass(frozen=True, slots=True)
class Retention:
    days: float = DEFAULT_DAYS
    keep_turns: int = DEFAULT_KEEP_TURNS
    interval_seconds: float = 3600.0  # how often the service prunes
    batch: int = 500  # rows per table per transaction, so other writers wait for one small batch

    def __post_init__(self) -> None:
        if not math.isfinite(self.days) or self.days < MIN_DAYS:
            raise ValueError(
                f"the retention period must be at least {MIN_DAYS:g} day (got {self.days!r}): "
                f"set {ENV_DAYS} to a number of days, e.g. 30."
            )
        if self.keep_turns < 0 or self.batch < 1 or self.interval_seconds <= 0:
            raise ValueError("keep_turns must be 0 or more, batch and interval_seconds more than 0")

    def cutoff(self, now: datetime) -> datetime:
        """Records older than this may be pruned."""
        return now - timedelta(days=self.days)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Retention:
        raw = environ.get(ENV_DAYS, "").strip()
        if not raw:
            return cls()
        try:
            days = float(raw)
        except ValueError:
            raise ValueError(f"{ENV_DAYS}={raw!r} is not a number of days: set it to e.g. 30, or unset it.") from None
        return cls(days=days)


# -- what the SQL hands over, and what may go -----------------------------------------------------
# Times are the store's encoded text (fixed-width UTC ISO 8601), so text order is time order.


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    chat_jid: str
    message_id: str
    state: str
    received_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    state: str
    created_at: str
    sent_at: str | None


@dataclass(frozen=True, slots=True)
class TurnRow:
    seq: int
    at: str
    newer: int  # how many turns of its session come after it


def journal_to_prune(rows: Iterable[JournalRow], cutoff: str, awaiting_reply: Collection[tuple[str, str]]) -> list[int]:
    """The finished entries older than `cutoff` (received and last changed before it), except those
    whose (chat, message id) still has a reply waiting in the outbox."""
    return [
        row.seq
        for row in rows
        if row.state != "pending"
        and row.received_at < cutoff
        and row.updated_at < cutoff
        and (row.chat_jid, row.message_id) not in awaiting_reply
    ]


def outbox_to_prune(rows: Iterable[OutboxRow], cutoff: str) -> list[int]:
    """Items no longer pending (sent, or given up on) whose last news is older than `cutoff`."""
    return [row.id for row in rows if row.state != "pending" and (row.sent_at or row.created_at) < cutoff]


def turns_to_prune(rows: Iterable[TurnRow], cutoff: str, keep_turns: int) -> list[int]:
    """Turns older than `cutoff`, except the last `keep_turns` of each session."""
    return [row.seq for row in rows if row.at < cutoff and row.newer >= keep_turns]
