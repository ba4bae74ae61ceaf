"""wasim carries bench/scale.py's crowd (issue #18): a thousand contacts added in one call, found
by number and by LID at once, and an event log whose polls cost what they return."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasim.server.app import Wasim
from wasim.server.control import make_app
from wasim.server.events import EventLog
from wasim.state import STATE_FILE, WasimState, new_contact


def _phone(i: int) -> str:
    return f"+49151{20_000_000 + i:08d}"


async def test_a_thousand_contacts_in_one_call_are_found_by_number_and_lid_and_kept(tmp_path: Path) -> None:
    sim = Wasim(tmp_path / "state")
    people = [{"phone": _phone(i), "name": f"Contact {i}"} for i in range(1000)]
    async with TestClient(TestServer(make_app(sim.control))) as client:
        resp = await client.post("/contacts/bulk", json={"contacts": people})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["added"] == 1000

        # All or none: one taken number refuses the whole list, with a reason.
        resp = await client.post(
            "/contacts/bulk", json={"contacts": [{"phone": _phone(1000), "name": "New"}, people[5]]}
        )
        assert resp.status == 400 and "already exists" in (await resp.json())["error"]
        assert sim.state.contact_by_number(_phone(1000)) is None

        resp = await client.post("/contacts/bulk", json={"contacts": "nobody"})
        assert resp.status == 400 and "list of objects" in (await resp.json())["error"]

    last = sim.state.contact_by_number(_phone(999))
    assert last is not None and last.name == "Contact 999"
    assert sim.state.contact_for(f"{last.lid}@lid") is last
    assert sim.state.contact_for(f"{last.phone}:3@s.whatsapp.net") is last

    restored = WasimState.load(tmp_path / "state")  # one save wrote them all
    assert (tmp_path / "state" / STATE_FILE).exists()
    again = restored.contact_by_number(_phone(999))
    assert again is not None and restored.contact_for(f"{again.lid}@lid") is again


def test_lid_and_dialled_numbers_stay_unique_across_one_bulk_add() -> None:
    state = WasimState(None)
    with pytest.raises(ValueError, match="LID 100000000000001 is already taken"):
        state.add_contacts(
            [new_contact(_phone(1), "A", "100000000000001"), new_contact(_phone(2), "B", "100000000000001")]
        )
    with pytest.raises(ValueError, match="already reaches another contact"):
        state.add_contacts(
            [new_contact("+525512345678", "Lupita", address="5215512345678"), new_contact("+5215512345678", "Other")]
        )
    assert state.contacts == {}  # nothing of a refused list is added


def test_events_since_a_sequence_number_after_the_log_was_trimmed() -> None:
    log = EventLog(keep=100)
    for i in range(250):
        log.emit("tick" if i % 2 else "tock", i=i)
    assert [e.data["i"] for e in log.since(240)] == list(range(240, 250))
    assert [e.data["i"] for e in log.since(240, "tick")] == [241, 243, 245, 247, 249]
    assert log.since(0)[0].seq == 151  # the oldest kept
    assert log.since(250) == [] and log.since(10_000) == []
    assert EventLog().since(5) == []


async def test_waiting_for_an_event_sees_only_what_came_after_since() -> None:
    log = EventLog()
    log.emit("tick", n=1)
    mark = log.last_seq
    log.emit("tock", n=2)
    log.emit("tick", n=3)
    found = await log.wait_for("tick", since=mark, timeout=1)
    assert found.data["n"] == 3
