"""Settings changed through the store (what the gateway's PUT does) reach the running channel."""

from __future__ import annotations

from pathlib import Path

from cortask.service import CortaskService


async def test_access_and_group_settings_apply_without_a_restart(tmp_path: Path) -> None:
    service = CortaskService(tmp_path / "home", environ={})
    await service.start()
    try:
        assert service.store and service.workspace and service.channel
        assert not service.channel.answer_groups and not service.channel.policy.open_to_everyone
        await service.store.whatsapp.update_settings(service.workspace.id, answer_groups=True, open_to_everyone=True)
        await service.reload_policy()
        assert service.channel.answer_groups
        assert service.channel.policy.open_to_everyone
    finally:
        await service.close()
