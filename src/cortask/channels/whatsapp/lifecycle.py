"""A message's lifecycle, decided: pure functions, no asyncio, no I/O.

The reply pipeline (`pipeline.py`) asks these at each step and does what they say:

    arrival(item, decision)            -> Ignore | Admit          before anything is recorded
    admission(admission, in_flight, …) -> Duplicate | Skip | Enqueue   once the journal has it
    throttle(refused, waiting, limit)  -> Skip | Enqueue          flood control, before queueing it
    resumed(item, now, max_age)        -> Skip | Enqueue          a message left over after a crash
    plan(decision, has_key)            -> NoLongerAllowed | Plan  when its turn in the chat comes
    resume_order(messages, replies, in_flight)                    what to pick up again, in order

This is the most crash-critical logic of the product (nothing lost, nothing answered twice), so
it is kept where a test can walk every branch in microseconds (tests/cortask/test_lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cortask.channels.whatsapp.flood import Refused
from cortask.channels.whatsapp.inbound import Ignored, InboundText, too_old
from cortask.channels.whatsapp.journal import Admission, PlannedReply
from cortask.contacts.access import AccessDecision

__all__ = [
    "Admit",
    "Duplicate",
    "Enqueue",
    "Ignore",
    "NoLongerAllowed",
    "Plan",
    "Skip",
    "admission",
    "arrival",
    "plan",
    "resume_order",
    "resumed",
    "throttle",
]

TOO_OLD = "too_old"
NOT_ALLOWED = "not_allowed"
QUEUE_FULL = "chat_queue_full"


@dataclass(frozen=True, slots=True)
class Ignore:
    """Not for us (a kind we do not answer, a sender not allowed): logged, never journaled."""

    reason: str  # the activity entry's reason code


@dataclass(frozen=True, slots=True)
class Admit:
    """Allowed: record it in the journal, which says whether it is new."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Answered before, or being answered now: never again."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Recorded, deliberately left unanswered."""

    reason: str  # the activity entry's reason code
    note: str  # what the journal keeps


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Queue it behind its chat's earlier work."""


@dataclass(frozen=True, slots=True)
class NoLongerAllowed:
    """The rules changed between arrival and processing (resumed after a restart)."""

    note: str = "the sender is no longer allowed"


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer one message."""

    read_receipt: bool  # mark it read (a contact we answer; never a stranger)
    fixed_reply: str | None  # send this instead of asking the agent (read-only access)
    typing: bool  # show "typing…" while the agent works


def arrival(item: InboundText | Ignored, decision: AccessDecision | None) -> Ignore | Admit:
    """A message the sidecar handed over: what to do before the journal sees it. `decision` is
    the access decision for its sender (None for an Ignored item)."""
    if isinstance(item, Ignored):
        return Ignore(item.reason.value)
    if decision is None or (not decision.runs_agent and decision.reply is None):
        return Ignore(NOT_ALLOWED)
    return Admit()


def admission(
    outcome: Admission, in_flight: bool, timestamp: float | None, now: float, max_age: float
) -> Duplicate | Skip | Enqueue:
    """After the journal recorded it: a message done before, or already queued or being answered
    (WhatsApp redelivered it), is a duplicate; one too old is skipped; the rest is queued."""
    if outcome is Admission.DONE or in_flight:
        return Duplicate()
    return _age(timestamp, now, max_age)


def throttle(refused: Refused | None, waiting: int, queue_limit: int) -> Skip | Enqueue:
    """Flood control for a new message: over its sender's limit (`refused`, from the flood
    limiter) or with its chat's queue full, it is recorded and left unanswered, so nothing
    reaches the agent and the sender gets nothing; otherwise it is queued."""
    if refused is not None:
        return Skip(refused.reason, "over the sender's message limit")
    if waiting >= queue_limit:
        return Skip(QUEUE_FULL, "the chat's queue was full")
    return Enqueue()


def resumed(timestamp: float | None, now: float, max_age: float) -> Skip | Enqueue:
    """A message left unanswered before (a crash, a lost connection): answered unless too old."""
    return _age(timestamp, now, max_age)


def _age(timestamp: float | None, now: float, max_age: float) -> Skip | Enqueue:
    if too_old(timestamp, now, max_age):
        return Skip(TOO_OLD, "too old when it arrived")
    return Enqueue()


def plan(decision: AccessDecision, has_key: bool) -> NoLongerAllowed | Plan:
    """When the message's turn comes. `has_key`: we know its WhatsApp key (a read receipt needs it;
    messages resumed from the journal have none)."""
    if not decision.runs_agent and decision.reply is None:
        return NoLongerAllowed()
    return Plan(
        read_receipt=decision.sends_read_receipt and has_key,
        fixed_reply=decision.reply,
        typing=decision.reply is None and decision.shows_typing,
    )


def resume_order(
    messages: Sequence[InboundText], replies: Sequence[PlannedReply], in_flight: Collection[str]
) -> list[InboundText | PlannedReply]:
    """What to pick up again: replies never confirmed sent first (their messages were answered
    before the ones still waiting), then unanswered messages, each in journal order. Skipped:
    anything queued or being worked on now, and a reply whose message is still being processed
    (that worker sends it)."""
    work: list[InboundText | PlannedReply] = [
        reply for reply in replies if reply.message_id not in in_flight and reply.in_reply_to not in in_flight
    ]
    work += [item for item in messages if item.message_id not in in_flight]
    return work
