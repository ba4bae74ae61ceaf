"""The running service prunes on its schedule, and the status says how big the database is and how
far back it goes (issue #13, section 4). Real SQLite files in a temporary Cortask home."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cortask.app.actions import CortaskApp
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.service import CortaskService
from cortask.store import Store
from cortask.store.retention import Retention

ACCOUNT = "4915100000000@s.whatsapp.net"
CHAT = "4915123456789@s.whatsapp.net"
LONG_AGO = datetime.now(UTC) - timedelta(days=40)


def seed(home: Path) -> None:
    """A month and a half old conversation, answered, and one message still pending."""
    with Store.open(home / "cortask.db", clock=lambda: LONG_AGO) as store:
        store.journal.record(ACCOUNT, CHAT, "OLD", "+4915123456789", "hi", received_at=LONG_AGO)
        item = store.outbox.enqueue(CHAT, "hello", in_reply_to="OLD", account=ACCOUNT, message_id="ROLD")
        store.outbox.mark_sent(item.id, "ROLD")
        store.journal.record(ACCOUNT, CHAT, "WAITING", "+4915123456789", "still to answer", received_at=LONG_AGO)
    auth = AuthStore.open(home / "whatsapp-auth")
    auth.remember_sent("ROLD", CHAT, "hello", at=LONG_AGO.timestamp())
    auth.remember_sent("RNEW", CHAT, "fresh", at=time.time())
    auth.close()


async def test_the_service_prunes_on_its_schedule_and_keeps_what_is_pending(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seed(home)
    service = CortaskService(home, environ={}, retention=Retention(days=30, interval_seconds=0.2))
    await service.start()  # the channel is not added: nothing connects, but the schedule runs
    try:
        assert service.store is not None and service.channel is not None
        deadline = time.monotonic() + 10
        while await service.store.journal.get(ACCOUNT, CHAT, "OLD") is not None:
            assert time.monotonic() < deadline, "the schedule did not prune the old journal entry"
            await asyncio.sleep(0.05)
        assert [e.message_id for e in await service.store.journal.pending(ACCOUNT)] == ["WAITING"]
        assert await service.store.outbox.pending() == []
        auth = service.channel._store
        assert auth is not None
        assert auth.sent_text("ROLD", CHAT) is None and auth.sent_text("RNEW", CHAT) == "fresh"
    finally:
        await service.close()


async def test_the_status_shows_the_database_size_and_the_oldest_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    seed(home)
    app = CortaskApp(CortaskService(home, environ={"CORTASK_RETENTION_DAYS": "60"}), serving=False)
    await app.open()
    try:
        status = json.loads((await app.status()).model_dump_json())
        on_disk = (home / "cortask.db").stat().st_size + _size(home / "cortask.db-wal")
    finally:
        await app.close()
    storage = status["storage"]
    assert storage["database_bytes"] == on_disk > 0
    assert abs(storage["oldest_record_at"] - LONG_AGO.timestamp()) < 1
    assert storage["retention_days"] == 60
    assert "the oldest record kept is 40 days old" in storage["sentence"]
    assert "older than 60 days are pruned" in storage["sentence"]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
