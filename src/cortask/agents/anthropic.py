"""An agent backed by Anthropic's Messages API, through the official `anthropic` SDK.

The request is ``POST {base_url}/v1/messages`` with the system prompt in ``system``, the chat's recent
turns and then the new text in ``messages``, and ``max_tokens``. The Messages API wants the
conversation to open with a ``user`` turn and the roles to alternate, so leading ``assistant`` turns
are dropped and consecutive turns of one role are joined with a blank line (a message the agent never
answered, followed by the new one, becomes one ``user`` turn). The reply is the text blocks of the
answer, joined.

`timeout` bounds the whole reply, the SDK's retries included. The SDK is imported when the first agent
is built (it takes seconds): `import cortask.agents` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from cortask.agents.base import (
    Agent,
    AgentError,
    FailureKind,
    Role,
    Session,
    display_url,
    fail,
    sdk_errors,
)
from cortask.agents.bounds import cut_note

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import MessageParam

log = logging.getLogger("cortask.agents")

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_HISTORY = 20
DEFAULT_MAX_TOKENS = 1024
DEFAULT_MAX_RETRIES = 2


class AnthropicAgent(Agent):
    provider = "anthropic"

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        system_prompt: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: float = DEFAULT_TIMEOUT,
        max_history: int = DEFAULT_MAX_HISTORY,
        max_retries: int = DEFAULT_MAX_RETRIES,
        key_hint: str = "the API key",
    ) -> None:
        """`key_hint` names where the key came from (``ANTHROPIC_API_KEY``, ``settings.api_key``) for error messages."""
        if not model:
            raise ValueError("the Anthropic agent needs a model name")
        if not api_key:
            raise ValueError("the Anthropic agent needs an API key")
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive number, got {max_tokens!r}")
        if max_history < 0:
            raise ValueError(f"max_history must be 0 or more, got {max_history!r}")
        import anthropic  # deferred: the SDK takes seconds to import

        self.model = model
        self.base_url = base_url
        self.system_prompt = system_prompt or None
        self.max_tokens = max_tokens
        self.timeout = float(timeout)
        self.max_history = max_history
        self.max_retries = max_retries
        self._api_key = api_key
        self._key_hint = key_hint
        self._where = f"model {model} at {display_url(base_url)}"
        # An explicit key and base URL: the SDK then reads no credentials, profiles or URL of its own.
        self._client: AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=self.timeout, max_retries=max_retries
        )

    def __repr__(self) -> str:
        return f"AnthropicAgent(model={self.model!r}, base_url={display_url(self.base_url)!r}, api_key=<set>)"

    def messages(self, session: Session, text: str) -> list[MessageParam]:
        """The Messages API ``messages`` for `text` in `session`, as sent to the model."""
        turns: list[tuple[Role, str]] = [(turn.role, turn.text) for turn in session.recent(self.max_history)]
        turns.append(("user", text))
        while turns[0][0] != "user":
            turns.pop(0)
        merged: list[tuple[Role, str]] = []
        for role, content in turns:
            if merged and merged[-1][0] == role:
                merged[-1] = (role, f"{merged[-1][1]}\n\n{content}")
            else:
                merged.append((role, content))
        messages: list[MessageParam] = []
        for role, content in merged:
            if role == "user":
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": content})
        return messages

    async def reply(self, session: Session, text: str) -> str:
        import anthropic

        log.debug("anthropic agent (%s) answering in %s: %r", self._where, session.session_id, text)
        with sdk_errors(
            anthropic,
            lambda kind, sentence: self._fail(kind, sentence, session),
            timeout=self.timeout,
            key_hint=self._key_hint,
            connect_hint="could not connect; check the base URL and the network",
            response_name="a Messages API response",
        ):
            async with asyncio.timeout(self.timeout):
                answer: object = await self._client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    messages=self.messages(session, text),
                    system=self.system_prompt if self.system_prompt else anthropic.omit,
                )
        return self._text(answer, session)

    def _text(self, answer: object, session: Session) -> str:
        from anthropic.types import Message

        # A non-JSON body comes back from the SDK as a str, and unexpected JSON as a model full of None:
        # read the fields defensively rather than trust the types.
        blocks = answer.content if isinstance(answer, Message) else None
        if not isinstance(blocks, list):
            raise self._fail(
                FailureKind.RESPONSE,
                "the answer was not a Messages API response (no content); check the base URL",
                session,
            )
        parts = [getattr(block, "text", None) for block in blocks if getattr(block, "type", None) == "text"]
        text = "".join(part for part in parts if isinstance(part, str))
        if text.strip():
            if getattr(answer, "stop_reason", None) == "max_tokens":
                return text.rstrip() + cut_note(f"the model reached its limit of {self.max_tokens} tokens")
            return text
        stop = getattr(answer, "stop_reason", None) or "none"
        raise self._fail(FailureKind.RESPONSE, f"the model returned no text (stop reason: {stop}); try again", session)

    def _fail(self, kind: FailureKind, sentence: str, session: Session) -> AgentError:
        return fail(
            f"The Anthropic agent ({self._where}) could not answer: {sentence}.",
            provider=self.provider,
            kind=kind,
            session=session,
            secrets=(self._api_key,),
        )

    async def aclose(self) -> None:
        await self._client.close()
