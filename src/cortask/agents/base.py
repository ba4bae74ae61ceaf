"""The agent seam: what a chat looks like to an agent, the one interface every provider fills in, and its error.

An agent turns one incoming WhatsApp text (plus the chat's recent history) into the reply text:

    reply = await agent.reply(session, "what's on my calendar?")

Every failure of a provider (timeout, refused connection, HTTP error, unreadable answer, rejected key,
crashed command) comes out as `AgentError`, whose `str()` is a sentence for a person: what happened and
what to do. Providers never let an SDK exception through, and never put a secret in a message or a log
line: `redact` scrubs known secrets from anything a server sends back. Log lines go to the
``cortask.agents`` logger: the cause at warning level, message text only at debug level.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from cortask.redact import mask_text, mask_url

log = logging.getLogger("cortask.agents")

Role = Literal["user", "assistant"]
ROLES: tuple[Role, ...] = ("user", "assistant")


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message in the chat: what the person said ("user") or what the agent answered."""

    role: Role
    text: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"a turn's role must be 'user' or 'assistant', got {self.role!r}")
        if not isinstance(self.text, str):
            raise TypeError(f"a turn's text must be a string, got {type(self.text).__name__}")


@dataclass(frozen=True, slots=True)
class Session:
    """The chat a message arrived in, as an agent sees it.

    `session_id` names the conversation (e.g. ``whatsapp:4915123456789@s.whatsapp.net``), `workspace`
    the Cortask workspace it belongs to, `chat_jid` the WhatsApp chat. `sender_phone` is E.164
    (``+4915123456789``) when known, `sender_name` the sender's WhatsApp push name when known.
    `history` is the last turns of the chat, oldest first, not including the message being answered.
    """

    session_id: str
    workspace: str
    chat_jid: str
    sender_phone: str | None = None
    sender_name: str | None = None
    history: tuple[Turn, ...] = ()

    def __post_init__(self) -> None:
        # A list is the natural thing to pass; keep the dataclass immutable and hashable all the same.
        if not isinstance(self.history, tuple):
            object.__setattr__(self, "history", tuple(self.history))
        for turn in self.history:
            if not isinstance(turn, Turn):
                raise TypeError(f"session history must hold Turn objects, got {type(turn).__name__}")

    def recent(self, max_turns: int) -> tuple[Turn, ...]:
        """The last `max_turns` turns of the history, oldest first (none when `max_turns` is 0)."""
        if max_turns <= 0:
            return ()
        return self.history[-max_turns:]


class FailureKind(StrEnum):
    """Why an agent could not answer; callers may pick a message or a retry policy by it."""

    TIMEOUT = "timeout"  # no answer within the configured time
    CONNECTION = "connection"  # could not reach the service
    AUTH = "auth"  # key missing, rejected or without permission
    RATE_LIMIT = "rate_limit"  # too many requests or out of quota
    REJECTED = "rejected"  # the service refused the request (HTTP 4xx)
    SERVER = "server"  # the service failed (HTTP 5xx)
    RESPONSE = "response"  # an answer came back but it was not a usable reply
    PROCESS = "process"  # the local command could not start, failed, or printed nothing


class AgentError(Exception):
    """An agent could not produce a reply. `str()` says what happened and what to do next."""

    def __init__(self, message: str, *, provider: str, kind: FailureKind) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.kind = kind

    def __repr__(self) -> str:
        return f"AgentError({self.message!r}, provider={self.provider!r}, kind={self.kind.value!r})"


class Agent(ABC):
    """Anything that turns a message and its chat's history into a reply.

    `reply` raises `AgentError` for every failure. `aclose` releases connections; agents are also async
    context managers. Instances may be shared: `reply` may run concurrently for different chats.
    """

    provider: ClassVar[str]

    @abstractmethod
    async def reply(self, session: Session, text: str) -> str:
        """The agent's answer to `text`, sent in `session`."""

    async def aclose(self) -> None:  # noqa: B027 - a documented no-op default, not a missing abstract method
        """Release what the agent holds (HTTP connection pools); the default holds nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


REDACTED = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each secret replaced by ``***`` (servers do echo keys back),
    then through the one masker (`cortask.redact`), for a key we were not told about."""
    for secret in secrets:
        # Very short "secrets" would blank out ordinary words; no real key is that short.
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return mask_text(text)


def mask(secret: str | None) -> str | None:
    """A secret as a settings page may show it: the last four characters of a long key, else ``***``."""
    if not secret:
        return None
    if len(secret) >= 16:
        return f"{REDACTED}{secret[-4:]}"
    return REDACTED


def display_url(url: str) -> str:
    """`url` safe to show and log: the one masker's rules (`cortask.redact.mask_url`)."""
    return mask_url(url)


def short(text: str, limit: int = 200) -> str:
    """The first line of `text`, trimmed to `limit` characters, for quoting a peer's error in a sentence."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return ""


def fail(
    message: str,
    *,
    provider: str,
    kind: FailureKind,
    session: Session | None = None,
    secrets: Iterable[str | None] = (),
) -> AgentError:
    """Build the `AgentError` for a failed reply (secrets scrubbed) and log its cause at warning level."""
    message = redact(message, secrets)
    log.warning(
        "%s agent failed (%s) in session %s: %s", provider, kind.value, session.session_id if session else "-", message
    )
    return AgentError(message, provider=provider, kind=kind)


def status_failure(status: int, server_message: str, *, key_hint: str) -> tuple[FailureKind, str]:
    """What an HTTP error status means for a reply, as a failure kind and a sentence (after a comma)."""
    said = f": {server_message}" if server_message else ""
    if status in (401, 403):
        return FailureKind.AUTH, f"the key was refused (HTTP {status}{said}); check {key_hint}"
    if status == 404:
        return (
            FailureKind.REJECTED,
            f"the endpoint or model was not found (HTTP 404{said}); check the model and base URL",
        )
    if status == 429:
        return FailureKind.RATE_LIMIT, f"rate-limited or out of quota (HTTP 429{said}); wait and try again"
    if status >= 500:
        return FailureKind.SERVER, f"the service failed (HTTP {status}{said}); try again later"
    return FailureKind.REJECTED, f"the request was refused (HTTP {status}{said}); check the agent's settings"


def server_message(body: object) -> str:
    """The human part of an API error body (``{"error": {"message": ...}}`` and its cousins), shortened."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail", "type"):
                value = error.get(key)
                if isinstance(value, str) and value.strip():
                    return short(value)
        elif isinstance(error, str):
            return short(error)
        return ""
    if isinstance(body, str):
        return short(body)
    return ""


@contextlib.contextmanager
def sdk_errors(
    sdk: Any,
    fail_with: Callable[[FailureKind, str], AgentError],
    *,
    timeout: float,
    key_hint: str,
    connect_hint: str,
    response_name: str,
) -> Iterator[None]:
    """Turn what an official LLM SDK (openai, anthropic: the same generated error classes) raises
    into an AgentError with a sentence; nothing raw may escape, and secrets never appear."""
    try:
        yield
    except (TimeoutError, sdk.APITimeoutError):
        raise fail_with(
            FailureKind.TIMEOUT, f"no answer within {timeout:g} s; try again, or raise the agent's timeout"
        ) from None
    except sdk.APIConnectionError:
        raise fail_with(FailureKind.CONNECTION, connect_hint) from None
    except sdk.APIStatusError as exc:
        kind, sentence = status_failure(exc.status_code, server_message(exc.body), key_hint=key_hint)
        raise fail_with(kind, sentence) from None
    except Exception as exc:  # the SDKs let JSON and validation errors through; none may escape raw
        log.debug("%s agent: unreadable answer", sdk.__name__, exc_info=True)
        raise fail_with(
            FailureKind.RESPONSE, f"the answer was not {response_name} ({type(exc).__name__}); check the base URL"
        ) from None
