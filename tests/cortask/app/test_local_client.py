"""The in-process client (no gateway running) on a real store: the same models and the same
refusals as the API, without starting WhatsApp."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.app.client import LocalClient
from cortask.app.errors import AppError, Kind
from cortask.app.models import AgentIn, ContactIn, ContactPatch


async def test_contacts_agent_and_saved_settings(tmp_path: Path) -> None:
    client = await LocalClient.open(tmp_path / "home", environ={})
    try:
        added = await client.add_contact(ContactIn(phone="+44 7911 123456", name="Grace"))
        assert (added.phone, added.permission) == ("+447911123456", "write")
        changed = await client.update_contact("+447911123456", ContactPatch(permission="admin"))
        assert (changed.name, changed.permission) == ("Grace", "admin")  # only what was given changes
        assert await client.contacts() == [changed]
        with pytest.raises(AppError) as missing:
            await client.remove_contact("+14155550123")
        assert missing.value.kind is Kind.NOT_FOUND
        with pytest.raises(AppError) as bad:
            await client.add_contact(ContactIn(phone="12"))
        assert bad.value.kind is Kind.INVALID and "too short" in str(bad.value)

        assert (await client.agent()).model_dump() == {
            "provider": "echo", "settings": {}, "active": "echo", "override": False,
        }  # fmt: skip
        with pytest.raises(AppError) as unknown:
            await client.set_agent(AgentIn(provider="telepathy"))
        assert unknown.value.kind is Kind.INVALID

        with pytest.raises(AppError, match="not linked"):
            await client.start()
        # With no link there is nothing to pause: nothing is saved (issue #17), and only linking is offered.
        paused = await client.pause()
        assert (paused.state, paused.paused, paused.running) == ("unlinked", False, False)
        assert [o.action for o in paused.actions if o.allowed] == ["qr"]
    finally:
        await client.aclose()
