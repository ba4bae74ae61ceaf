"""Which agent answers in a workspace, and its settings (which may hold API keys)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from types import MappingProxyType

from cortask.store import decode
from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.errors import InvalidInput
from cortask.store.masking import mask_secrets, merge_masked
from cortask.store.models import AgentSettings, JSONValue
from cortask.store.workspaces import require_workspace

__all__ = ["AgentRepository"]


class AgentRepository(Repository[M]):
    @readonly
    def get(self, workspace_id: int) -> AgentSettings | None:
        """The agent's settings with their secrets, for the agent itself; None if never configured."""
        with self._db.read() as db:
            return _load(db, workspace_id)

    @readonly
    def for_display(self, workspace_id: int) -> AgentSettings | None:
        """The same with every secret (API keys, tokens, passwords) replaced by the mask."""
        with self._db.read() as db:
            settings = _load(db, workspace_id)
        if settings is None:
            return None
        return AgentSettings(
            settings.workspace_id,
            settings.provider,
            MappingProxyType(mask_secrets(settings.settings)),
            settings.updated_at,
        )

    @offloadable
    def set(
        self,
        workspace_id: int,
        provider: str,
        settings: Mapping[str, JSONValue],
        *,
        keep_masked: bool = True,
    ) -> AgentSettings:
        """Choose the agent and replace its settings.

        With `keep_masked`, a secret whose value is still the mask (the UI sent back what
        `for_display` showed) keeps its stored value -- unless the provider or the endpoint
        (`ENDPOINTS`) changed: then nothing is restored and masked values are dropped, so a stored
        key is never sent to a new address.
        """
        name = provider.strip() if isinstance(provider, str) else ""
        if not name:
            raise InvalidInput("Choose an agent provider: the provider name is empty.")
        if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
            raise InvalidInput("Agent settings must be an object whose keys are strings.")
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            values = dict(settings)
            if keep_masked:
                row = db.execute(
                    "SELECT provider, settings FROM agent_settings WHERE workspace_id = ?", (workspace_id,)
                ).fetchone()
                old: dict[str, JSONValue] = json.loads(row[1]) if row is not None else {}
                values = merge_masked(name, values, row[0] if row is not None else None, old)
            try:
                encoded = json.dumps(values, allow_nan=False, ensure_ascii=False, sort_keys=True)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"Agent settings must be plain JSON (text, numbers, true/false, lists, objects): {exc}."
                ) from None
            db.execute(
                "INSERT INTO agent_settings (workspace_id, provider, settings, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (workspace_id) DO UPDATE SET provider = excluded.provider, "
                "settings = excluded.settings, updated_at = excluded.updated_at",
                (workspace_id, name, encoded, self._db.now()),
            )
            row = db.execute("SELECT * FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
            return decode.agent_settings(row)


def _load(db: sqlite3.Connection, workspace_id: int) -> AgentSettings | None:
    require_workspace(db, workspace_id)
    row = db.execute("SELECT * FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
    return decode.agent_settings(row) if row is not None else None
