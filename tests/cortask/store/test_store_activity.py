"""The activity kept across restarts (issue #17): bounded, oldest first, reopened intact."""

from __future__ import annotations

from pathlib import Path

from cortask.store import Store
from cortask.store.activity import KEEP


def test_activity_survives_reopening_and_keeps_the_newest(db_path: Path) -> None:
    with Store.open(db_path) as store:
        ws = store.workspaces.ensure_default().id
        for i in range(KEEP + 20):
            store.activity.add(ws, {"at": 1000.0 + i, "kind": "received" if i % 2 else "replied", "n": i})
    with Store.open(db_path) as store:  # a restart
        kept = store.activity.recent(ws)
        assert len(kept) == KEEP
        assert [e["n"] for e in kept] == list(range(20, KEEP + 20))  # the oldest pruned, oldest first
        assert store.activity.last_at(ws, ("received",)) == 1000.0 + KEEP + 19
        assert store.activity.last_at(ws, ("replied",)) == 1000.0 + KEEP + 18
        assert store.activity.last_at(ws, ("watchdog",)) is None
        assert len(store.activity.recent(ws, limit=10 * KEEP)) == KEEP  # pruned on insert, not hidden
