"""The retention rules alone (no database): what may go, and what stays whatever its age."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cortask.service import HISTORY_TURNS
from cortask.store.retention import (
    DEFAULT_KEEP_TURNS,
    JournalRow,
    OutboxRow,
    Retention,
    TurnRow,
    journal_to_prune,
    outbox_to_prune,
    turns_to_prune,
)

OLD = "2026-01-01T00:00:00.000000+00:00"
CUT = "2026-02-01T00:00:00.000000+00:00"
NEW = "2026-03-01T00:00:00.000000+00:00"


def test_finished_journal_entries_older_than_the_cutoff_go_pending_ones_and_awaited_replies_stay() -> None:
    rows = [
        JournalRow(1, "a", "m1", "answered", OLD, OLD),
        JournalRow(2, "a", "m2", "pending", OLD, OLD),  # never answered yet: must stay
        JournalRow(3, "a", "m3", "failed", OLD, OLD),  # its error reply still waits in the outbox
        JournalRow(4, "a", "m4", "skipped", OLD, OLD),
        JournalRow(5, "a", "m5", "answered", OLD, NEW),  # finished only recently
        JournalRow(6, "a", "m6", "answered", NEW, NEW),
    ]
    assert journal_to_prune(rows, CUT, awaiting_reply={("a", "m3")}) == [1, 4]


def test_sent_outbox_items_go_after_the_cutoff_unsent_ones_never() -> None:
    rows = [
        OutboxRow(1, "sent", OLD, OLD),
        OutboxRow(2, "pending", OLD, None),
        OutboxRow(3, "sent", OLD, NEW),  # queued long ago, sent recently
        OutboxRow(4, "failed", OLD, None),  # given up on long ago
    ]
    assert outbox_to_prune(rows, CUT) == [1, 4]


def test_the_last_turns_of_a_session_stay_whatever_their_age() -> None:
    rows = [TurnRow(seq, OLD, newer) for seq, newer in ((1, 3), (2, 2), (3, 1), (4, 0))]
    assert turns_to_prune(rows, CUT, keep_turns=2) == [1, 2]
    assert turns_to_prune([TurnRow(9, NEW, 50)], CUT, keep_turns=2) == []


def test_the_agent_always_keeps_the_history_it_reads() -> None:
    assert DEFAULT_KEEP_TURNS >= HISTORY_TURNS


def test_the_retention_period_comes_from_the_environment_with_a_clear_error() -> None:
    assert Retention.from_env({}).days == 30
    assert Retention.from_env({"CORTASK_RETENTION_DAYS": "7"}).days == 7
    assert Retention().cutoff(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="CORTASK_RETENTION_DAYS='soon' is not a number of days"):
        Retention.from_env({"CORTASK_RETENTION_DAYS": "soon"})
    with pytest.raises(ValueError, match="at least 1 day"):
        Retention.from_env({"CORTASK_RETENTION_DAYS": "0.1"})
