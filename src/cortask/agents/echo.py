"""The demo agent: it answers every message with the message itself, prefixed ("Echo: hello")."""

from __future__ import annotations

import logging

from cortask.agents.base import Agent, Session

log = logging.getLogger("cortask.agents")

DEFAULT_PREFIX = "Echo: "


class EchoAgent(Agent):
    provider = "echo"

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"EchoAgent(prefix={self.prefix!r})"

    async def reply(self, session: Session, text: str) -> str:
        log.debug("echo agent answering in %s: %r", session.session_id, text)
        return f"{self.prefix}{text}"
