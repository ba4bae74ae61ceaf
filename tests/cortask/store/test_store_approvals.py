"""Strangers held for the owner's approval (issue #14), in the store: one request per number while
it waits, a muted number after a rejection, a daily allowance, codes decided once and only
before they expire. And the owner's settings, kept."""

from __future__ import annotations

from typing import Any

import pytest
from store_support import default_workspace

from cortask.store import InvalidInput, NotFound, Store
from cortask.store.approvals import DAILY_LIMIT, Held

EVE = "+4915100000666"
HOUR = 3600.0


@pytest.fixture
def ws(store: Store) -> int:
    return default_workspace(store).id


def hold(store: Store, ws: int, phone: str = EVE, now: float = 1000.0, hours: float = 24, text: str = "hi") -> Held:
    fields: dict[str, Any] = {
        "phone": phone, "chat_jid": f"{phone[1:]}@s.whatsapp.net", "message_id": f"3A0{phone[-4:]}{now:.0f}",
        "sender_jid": f"{phone[1:]}@s.whatsapp.net", "push_name": "Eve", "text": text, "message_ts": int(now),
    }  # fmt: skip
    return store.approvals.hold(ws, now=now, valid_hours=hours, **fields)


def test_a_stranger_waits_once_and_a_code_is_decided_once(store: Store, ws: int) -> None:
    first = hold(store, ws, text="hello\nsecond line")
    assert first.approval is not None and first.reason is None
    code = first.approval.code
    assert len(code) == 6 and code.isalnum() and code.isupper()
    assert hold(store, ws, now=1001.0) == Held(None, "waiting")  # no second request, no second notice
    assert [a.code for a in store.approvals.pending(ws, 1002.0)] == [code]
    approved = store.approvals.resolve(ws, code.lower(), "approved", 1003.0)
    assert (approved.state, approved.text, approved.phone) == ("approved", "hello\nsecond line", EVE)
    with pytest.raises(InvalidInput, match=f"The request {code} was approved before"):
        store.approvals.resolve(ws, code, "rejected", 1004.0)
    assert store.approvals.pending(ws, 1005.0) == []
    with pytest.raises(NotFound, match="There is no request with the code ZZZZZZ"):
        store.approvals.resolve(ws, "ZZZZZZ", "approved", 1006.0)


def test_a_rejected_number_is_muted(store: Store, ws: int) -> None:
    held = hold(store, ws).approval
    assert held is not None
    store.approvals.resolve(ws, held.code, "rejected", 1001.0)
    assert hold(store, ws, now=5 * 86400) == Held(None, "muted")


def test_codes_expire_and_the_stranger_may_write_again(store: Store, ws: int) -> None:
    held = hold(store, ws, hours=1).approval
    assert held is not None and held.expires_at == 1000.0 + HOUR
    assert store.approvals.pending(ws, 1000.0 + HOUR) == []
    with pytest.raises(InvalidInput, match="has expired: nothing was answered"):
        store.approvals.resolve(ws, held.code, "approved", 1000.0 + HOUR)
    again = hold(store, ws, now=1000.0 + 2 * HOUR).approval
    assert again is not None and again.code != held.code


def test_at_most_a_few_new_requests_a_day(store: Store, ws: int) -> None:
    for n in range(DAILY_LIMIT):
        assert hold(store, ws, phone=f"+49151000001{n:02d}", now=1000.0 + n).approval is not None
    assert hold(store, ws, phone="+4915100000199", now=2000.0) == Held(None, "daily_limit")
    assert hold(store, ws, phone="+4915100000199", now=1000.0 + 86401).approval is not None  # a day later


def test_the_owners_settings_are_kept(store: Store, ws: int) -> None:
    settings = store.whatsapp.update_settings(
        ws, self_chat=True, self_chat_prefix="🤖 ", answers_paused=True, group_mode="always",
        groups_allowed=["120363025246125486@g.us"], approvals=True, approval_hours=2,
    )  # fmt: skip
    assert (settings.self_chat, settings.self_chat_prefix, settings.answers_paused) == (True, "🤖 ", True)
    assert (settings.group_mode, settings.groups_allowed) == ("always", ("120363025246125486@g.us",))
    assert (settings.approvals, settings.approval_hours) == (True, 2.0)
    assert store.whatsapp.update_settings(ws, self_chat_prefix="  ").self_chat_prefix is None
    with pytest.raises(InvalidInput, match="is not a group mode: use mention"):
        store.whatsapp.update_settings(ws, group_mode="sometimes")
    with pytest.raises(InvalidInput, match=r"is not a group id: use the form 120363025246125486@g\.us"):
        store.whatsapp.update_settings(ws, groups_allowed=["Book club"])
    with pytest.raises(InvalidInput, match="cannot be how long approval codes last"):
        store.whatsapp.update_settings(ws, approval_hours=0)
    with pytest.raises(InvalidInput, match="one line of at most 40 characters"):
        store.whatsapp.update_settings(ws, self_chat_prefix="x" * 41)
