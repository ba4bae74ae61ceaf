"""Every branch of a message's lifecycle (lifecycle.py), without processes, sockets or a loop."""

from __future__ import annotations

import pytest

from cortask.channels.whatsapp import lifecycle
from cortask.channels.whatsapp.inbound import Ignored, IgnoreReason, InboundText
from cortask.channels.whatsapp.journal import Admission, PlannedReply
from cortask.contacts.access import READ_ONLY_REPLY, AccessDecision, Verdict

NOW = 1_800_000_000.0
DAY = 24 * 3600.0
AGENT = AccessDecision(Verdict.AGENT, "trusted_write")
READ_ONLY = AccessDecision(Verdict.READ_ONLY, "trusted_read")
IGNORE = AccessDecision(Verdict.IGNORE, "unknown")


def text(message_id: str = "M1", chat: str = "491@s.whatsapp.net", timestamp: int | None = int(NOW)) -> InboundText:
    return InboundText(chat, message_id, chat, "+491", None, None, "hi", timestamp, False, False)


def reply(message_id: str, in_reply_to: str | None, chat: str = "491@s.whatsapp.net") -> PlannedReply:
    return PlannedReply(chat, "answer", message_id, in_reply_to, ref=message_id)


# -- arrival: before the journal ---------------------------------------------------------------


def test_a_message_we_do_not_answer_is_ignored_with_its_reason() -> None:
    assert lifecycle.arrival(Ignored(IgnoreReason.MEDIA, "M1", "c"), None) == lifecycle.Ignore("media")


@pytest.mark.parametrize("decision", [IGNORE, None])
def test_a_sender_not_allowed_is_ignored_and_never_journaled(decision: AccessDecision | None) -> None:
    assert lifecycle.arrival(text(), decision) == lifecycle.Ignore("not_allowed")


@pytest.mark.parametrize("decision", [AGENT, READ_ONLY])
def test_an_allowed_sender_goes_to_the_journal(decision: AccessDecision) -> None:
    assert lifecycle.arrival(text(), decision) == lifecycle.Admit()


# -- admission: after the journal --------------------------------------------------------------


def test_a_new_message_is_queued() -> None:
    assert lifecycle.admission(Admission.NEW, False, NOW - 5, NOW, DAY) == lifecycle.Enqueue()


def test_a_pending_message_not_in_flight_is_queued_again() -> None:
    # journaled before a crash and never answered: WhatsApp redelivered it, answer it now
    assert lifecycle.admission(Admission.PENDING, False, NOW - 5, NOW, DAY) == lifecycle.Enqueue()


def test_a_message_answered_before_is_a_duplicate() -> None:
    assert lifecycle.admission(Admission.DONE, False, NOW - 5, NOW, DAY) == lifecycle.Duplicate()


@pytest.mark.parametrize("outcome", [Admission.NEW, Admission.PENDING])
def test_a_message_already_queued_or_being_answered_is_a_duplicate(outcome: Admission) -> None:
    assert lifecycle.admission(outcome, True, NOW - 5, NOW, DAY) == lifecycle.Duplicate()


def test_a_duplicate_wins_over_too_old() -> None:
    assert lifecycle.admission(Admission.DONE, False, NOW - 2 * DAY, NOW, DAY) == lifecycle.Duplicate()


def test_a_message_older_than_the_limit_is_skipped() -> None:
    skip = lifecycle.admission(Admission.NEW, False, NOW - DAY - 1, NOW, DAY)
    assert skip == lifecycle.Skip("too_old", "too old when it arrived")


def test_a_message_exactly_at_the_limit_or_without_a_time_is_answered() -> None:
    assert lifecycle.admission(Admission.NEW, False, NOW - DAY, NOW, DAY) == lifecycle.Enqueue()
    assert lifecycle.admission(Admission.NEW, False, None, NOW, DAY) == lifecycle.Enqueue()


def test_a_resumed_message_is_answered_unless_too_old() -> None:
    assert lifecycle.resumed(NOW - 60, NOW, DAY) == lifecycle.Enqueue()
    assert isinstance(lifecycle.resumed(NOW - 2 * DAY, NOW, DAY), lifecycle.Skip)


# -- plan: when the message's turn comes -------------------------------------------------------


def test_an_agent_message_gets_a_read_receipt_typing_and_the_agent() -> None:
    assert lifecycle.plan(AGENT, has_key=True) == lifecycle.Plan(read_receipt=True, fixed_reply=None, typing=True)


def test_a_resumed_message_without_its_key_gets_no_read_receipt() -> None:
    assert lifecycle.plan(AGENT, has_key=False) == lifecycle.Plan(read_receipt=False, fixed_reply=None, typing=True)


def test_a_read_only_contact_gets_a_receipt_and_the_fixed_reply_without_typing() -> None:
    plan = lifecycle.plan(READ_ONLY, has_key=True)
    assert plan == lifecycle.Plan(read_receipt=True, fixed_reply=READ_ONLY_REPLY, typing=False)


def test_a_sender_no_longer_allowed_is_skipped_without_a_receipt() -> None:
    assert lifecycle.plan(IGNORE, has_key=True) == lifecycle.NoLongerAllowed()


# -- resume order --------------------------------------------------------------------------------


def test_resume_sends_unsent_replies_before_answering_waiting_messages() -> None:
    waiting = [text("M2"), text("M3")]
    unsent = [reply("R1", "M1"), reply("R0", None)]
    assert lifecycle.resume_order(waiting, unsent, set()) == [*unsent, *waiting]


def test_resume_skips_what_is_in_flight() -> None:
    waiting = [text("M2"), text("M3")]
    unsent = [reply("R1", "M1"), reply("R2", "M4"), reply("R5", "M5")]
    # R1 is being sent; M4 is being processed (its worker sends R2); M2 is queued
    order = lifecycle.resume_order(waiting, unsent, {"R1", "M4", "M2"})
    assert order == [reply("R5", "M5"), text("M3")]


def test_resume_with_nothing_left_is_empty() -> None:
    assert lifecycle.resume_order([], [], {"M1"}) == []
