"""The channel's activity, kept across restarts: what came in, what was done, the replies.

Bounded: each workspace keeps its newest `KEEP` entries, pruned on every insert, so a busy
account never grows the database without end (issue #17).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.workspaces import require_workspace

__all__ = ["KEEP", "ActivityRepository"]

KEEP = 500


class ActivityRepository(Repository[M]):
    @offloadable
    def add(self, workspace_id: int, entry: Mapping[str, Any]) -> None:
        """Keep one entry (a mapping of plain values with `at` and `kind`); drop the oldest beyond KEEP."""
        data = json.dumps(dict(entry), default=str, ensure_ascii=False)
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            db.execute(
                "INSERT INTO activity (workspace_id, at, kind, data) VALUES (?, ?, ?, ?)",
                (workspace_id, float(entry.get("at") or 0.0), str(entry.get("kind", "")), data),
            )
            db.execute(
                "DELETE FROM activity WHERE workspace_id = ? AND id <= "
                "(SELECT id FROM activity WHERE workspace_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (workspace_id, workspace_id, KEEP),
            )

    @readonly
    def recent(self, workspace_id: int, limit: int = KEEP) -> list[dict[str, Any]]:
        """The newest `limit` entries, oldest first."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT data FROM activity WHERE workspace_id = ? ORDER BY id DESC LIMIT ?", (workspace_id, limit)
            ).fetchall()
        return [json.loads(row[0]) for row in reversed(rows)]

    @readonly
    def last_at(self, workspace_id: int, kinds: tuple[str, ...]) -> float | None:
        """When the newest entry of one of `kinds` happened (epoch seconds), if any."""
        marks = ", ".join("?" for _ in kinds)
        with self._db.read() as db:
            row = db.execute(
                f"SELECT max(at) FROM activity WHERE workspace_id = ? AND kind IN ({marks})",
                (workspace_id, *kinds),
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else None
