"""Sessions per chat and their history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_support import clear_history, get_session

from cortask.store import InvalidInput, Role, Store, session_id_for_chat


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "cortask.db", clock=Clock()) as opened:
        yield opened


CHAT = "4915123456789@s.whatsapp.net"
SID = session_id_for_chat(CHAT)


def test_session_id_of_a_chat() -> None:
    assert SID == "whatsapp:4915123456789@s.whatsapp.net"
    assert session_id_for_chat("120363@g.us") == "whatsapp:120363@g.us"


def test_sessions_are_created_on_demand(store: Store) -> None:
    assert get_session(store, SID) is None
    created = store.sessions.ensure(SID)
    assert store.sessions.ensure(SID) == created
    assert get_session(store, SID) == created
    assert store.sessions.history(SID) == []
    with pytest.raises(InvalidInput, match="session id is empty"):
        store.sessions.ensure("")


def test_history_in_order_with_roles_times_and_ids(store: Store) -> None:
    at = datetime(2025, 1, 1, 8, 30, tzinfo=UTC)
    store.sessions.append(SID, Role.USER, "hello", message_id="IN1", at=at)
    store.sessions.append(SID, "assistant", "hi there", message_id="OUT1")
    store.sessions.append(SID, "user", "no id")
    turns = store.sessions.history(SID)
    assert [(t.role, t.text, t.message_id) for t in turns] == [
        (Role.USER, "hello", "IN1"),
        (Role.ASSISTANT, "hi there", "OUT1"),
        (Role.USER, "no id", None),
    ]
    assert turns[0].at == at
    assert turns[1].at.tzinfo is not None
    assert all(t.session_id == SID for t in turns)
    assert turns[0].seq < turns[1].seq < turns[2].seq


def test_history_limit_returns_the_last_turns_oldest_first(store: Store) -> None:
    for i in range(10):
        store.sessions.append(SID, "user" if i % 2 == 0 else "assistant", f"turn {i}")
    assert [t.text for t in store.sessions.history(SID, limit=3)] == ["turn 7", "turn 8", "turn 9"]
    assert [t.text for t in store.sessions.history(SID, 1)] == ["turn 9"]
    assert store.sessions.history(SID, limit=0) == []
    assert len(store.sessions.history(SID, limit=100)) == 10
    assert len(store.sessions.history(SID, limit=2**70)) == 10  # beyond SQLite's integers: all of them
    assert len(store.sessions.history(SID)) == 10
    with pytest.raises(InvalidInput, match="limit"):
        store.sessions.history(SID, limit=-1)


def test_sessions_are_separate(store: Store) -> None:
    other = session_id_for_chat("other@s.whatsapp.net")
    store.sessions.append(SID, "user", "mine")
    store.sessions.append(other, "user", "theirs")
    assert [t.text for t in store.sessions.history(SID)] == ["mine"]
    assert [t.text for t in store.sessions.history(other)] == ["theirs"]
    assert [s.id for s in store.sessions.recent()] == [other, SID]  # most recent first


def test_a_message_id_is_one_turn_however_often_it_is_appended(store: Store) -> None:
    first = store.sessions.append(SID, "user", "hello", message_id="IN1")
    again = store.sessions.append(SID, "user", "hello (redelivered)", message_id="IN1")
    assert again == first
    assert [t.text for t in store.sessions.history(SID)] == ["hello"]
    other = store.sessions.append(session_id_for_chat("x@s.whatsapp.net"), "user", "hello", message_id="IN1")
    assert other.seq != first.seq  # the same id in another chat is another message


def test_clear_history(store: Store) -> None:
    store.sessions.append(SID, "user", "a")
    store.sessions.append(SID, "assistant", "b")
    store.sessions.append(session_id_for_chat("x@s.whatsapp.net"), "user", "kept")
    assert clear_history(store, SID) == 2
    assert store.sessions.history(SID) == []
    assert get_session(store, SID) is not None
    assert clear_history(store, SID) == 0
    assert clear_history(store, "whatsapp:unknown") == 0
    assert len(store.sessions.history(session_id_for_chat("x@s.whatsapp.net"))) == 1
    store.sessions.append(SID, "user", "after")
    assert [t.text for t in store.sessions.history(SID)] == ["after"]


def test_bad_turns_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="'system' is not a role: use user or assistant"):
        store.sessions.append(SID, "system", "x")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        store.sessions.append(SID, "user", "x", at=datetime(2025, 1, 1))
    with pytest.raises(InvalidInput, match="text must be a string"):
        store.sessions.append(SID, "user", None)  # type: ignore[arg-type]
    assert store.sessions.history(SID) == []
    assert get_session(store, SID) is None


def test_appending_and_other_calls_in_one_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.sessions.append(SID, "user", "rolled back")
        raise RuntimeError("boom")
    assert get_session(store, SID) is None
    with store.transaction():
        store.sessions.append(SID, "user", "kept")
        with pytest.raises(InvalidInput), store.transaction():
            store.sessions.append(SID, "user", "inner, rolled back")
            store.sessions.append(SID, "robot", "bad")
        store.sessions.append(SID, "assistant", "also kept")
    assert [t.text for t in store.sessions.history(SID)] == ["kept", "also kept"]
