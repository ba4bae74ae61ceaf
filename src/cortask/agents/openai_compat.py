"""An agent backed by any OpenAI-compatible chat completions endpoint, through the official `openai` SDK.

OpenAI itself, Ollama (``http://localhost:11434/v1``), vLLM (``http://host:8000/v1``), LM Studio
(``http://localhost:1234/v1``), OpenRouter (``https://openrouter.ai/api/v1``) and others speak
``POST {base_url}/chat/completions``. The request is: the optional system prompt as a ``system``
message, the chat's recent turns as ``user``/``assistant`` messages, then the new text as a ``user``
message. The reply is the first choice's message content.

`timeout` bounds the whole reply, the SDK's retries included, so a person is never kept waiting longer.
The SDK is imported when the first agent is built: `import cortask.agents` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from cortask.agents.base import (
    Agent,
    AgentError,
    FailureKind,
    Session,
    display_url,
    fail,
    sdk_errors,
    short,
)
from cortask.agents.bounds import cut_note

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

log = logging.getLogger("cortask.agents")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_HISTORY = 20
DEFAULT_MAX_RETRIES = 2
# Asked of every model unless set: an answer never runs on without end (cut with a note instead).
DEFAULT_MAX_TOKENS = 4096
# The SDK refuses to start without a key; local servers (Ollama, vLLM, LM Studio) ignore whatever is sent.
NO_KEY = "unused"


class OpenAICompatAgent(Agent):
    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        system_prompt: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_history: int = DEFAULT_MAX_HISTORY,
        max_tokens: int | None = None,
        temperature: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        key_hint: str = "the API key",
    ) -> None:
        """`key_hint` names where the key came from (``OPENAI_API_KEY``, ``settings.api_key``) for error messages."""
        if not model:
            raise ValueError("the OpenAI-compatible agent needs a model name")
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_history < 0:
            raise ValueError(f"max_history must be 0 or more, got {max_history!r}")
        import openai  # deferred: the SDK takes a second to import

        self.model = model
        self.base_url = base_url
        self.system_prompt = system_prompt or None
        self.timeout = float(timeout)
        self.max_history = max_history
        self.max_tokens = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
        self.temperature = temperature
        self.max_retries = max_retries
        self._api_key = api_key
        self._key_hint = key_hint
        self._where = f"model {model} at {display_url(base_url)}"
        self._client: AsyncOpenAI = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY, base_url=base_url, timeout=self.timeout, max_retries=max_retries
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICompatAgent(model={self.model!r}, base_url={display_url(self.base_url)!r}, api_key=<{key}>)"

    def messages(self, session: Session, text: str) -> list[ChatCompletionMessageParam]:
        """The chat completion messages for `text` in `session`, as sent to the model."""
        messages: list[ChatCompletionMessageParam] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for turn in session.recent(self.max_history):
            if turn.role == "user":
                messages.append({"role": "user", "content": turn.text})
            else:
                messages.append({"role": "assistant", "content": turn.text})
        messages.append({"role": "user", "content": text})
        return messages

    async def reply(self, session: Session, text: str) -> str:
        import openai

        log.debug("openai agent (%s) answering in %s: %r", self._where, session.session_id, text)
        with sdk_errors(
            openai,
            lambda kind, sentence: self._fail(kind, sentence, session),
            timeout=self.timeout,
            key_hint=self._key_hint,
            connect_hint="could not connect; check the base URL and that the server is running",
            response_name="a chat completion",
        ):
            async with asyncio.timeout(self.timeout):
                completion: object = await self._client.chat.completions.create(
                    model=self.model,
                    messages=self.messages(session, text),
                    max_tokens=openai.omit if self.max_tokens is None else self.max_tokens,
                    temperature=openai.omit if self.temperature is None else self.temperature,
                )
        return self._text(completion, session)

    def _text(self, completion: object, session: Session) -> str:
        from openai.types.chat import ChatCompletion

        # A non-JSON body comes back from the SDK as a str, and unexpected JSON as a model full of None:
        # read the fields defensively rather than trust the types.
        choices = completion.choices if isinstance(completion, ChatCompletion) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        if choice is None:
            raise self._fail(
                FailureKind.RESPONSE,
                "the answer was not a chat completion (no choices); check the base URL",
                session,
            )
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None)
        if isinstance(content, str) and content.strip():
            if getattr(choice, "finish_reason", None) == "length":
                return content.rstrip() + cut_note(f"the model reached its limit of {self.max_tokens} tokens")
            return content
        refusal = getattr(message, "refusal", None)
        if isinstance(refusal, str) and refusal.strip():
            raise self._fail(FailureKind.RESPONSE, f"the model refused to answer: {short(refusal)}", session)
        finish = getattr(choice, "finish_reason", None) or "none"
        raise self._fail(
            FailureKind.RESPONSE, f"the model returned no text (finish reason: {finish}); try again", session
        )

    def _fail(self, kind: FailureKind, sentence: str, session: Session) -> AgentError:
        return fail(
            f"The OpenAI-compatible agent ({self._where}) could not answer: {sentence}.",
            provider=self.provider,
            kind=kind,
            session=session,
            secrets=(self._api_key,),
        )

    async def aclose(self) -> None:
        await self._client.close()
