"""An agent behind an HTTP endpoint: the message goes out as JSON, the reply comes back as JSON.

Request: ``POST url`` with ``Content-Type: application/json`` and the body

    {"session_id": "...", "workspace": "...", "chat_jid": "...", "sender_phone": "+49..." | null,
     "sender_name": "..." | null, "text": "...", "history": [{"role": "user" | "assistant", "text": "..."}]}

(history oldest first, at most `max_history` turns). Response: any 2xx status with the body
``{"reply": "..."}``, or ``{"text": "..."}``. Anything else (another status, a body that is not JSON,
no non-empty string under either name) is an `AgentError`. Redirects are not followed: the URL should
be the endpoint itself, and the headers (which may carry a token) go nowhere else.

`headers` are sent with every request (e.g. ``Authorization``); their values count as secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from cortask.agents.base import Agent, AgentError, FailureKind, Session, display_url, fail, server_message, short
from cortask.agents.bounds import MAX_REPLY_BYTES, cut_reply, read_bounded, reply_prefix_from_json

log = logging.getLogger("cortask.agents")

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_HISTORY = 20
_JSON_ROOM = 64 * 1024  # the body around the reply: braces, escapes, other fields
_NOT_JSON = object()  # json.loads gives None for "null", which is JSON


class WebhookAgent(Agent):
    provider = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        max_history: int = DEFAULT_MAX_HISTORY,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the webhook URL must start with http:// or https://, got {display_url(url)!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_history < 0:
            raise ValueError(f"max_history must be 0 or more, got {max_history!r}")
        self.url = url
        self.timeout = float(timeout)
        self.max_history = max_history
        self.max_reply_bytes = max_reply_bytes  # of the reply; the body may hold a little more (JSON)
        self._headers = dict(headers or {})
        self._where = display_url(url)

    def __repr__(self) -> str:
        headers = sorted(self._headers)
        return f"WebhookAgent(url={self._where!r}, timeout={self.timeout:g}, headers={headers!r})"

    def payload(self, session: Session, text: str) -> dict[str, Any]:
        """The JSON body posted for `text` in `session`."""
        return {
            "session_id": session.session_id,
            "workspace": session.workspace,
            "chat_jid": session.chat_jid,
            "sender_phone": session.sender_phone,
            "sender_name": session.sender_name,
            "text": text,
            "history": [{"role": turn.role, "text": turn.text} for turn in session.recent(self.max_history)],
        }

    async def reply(self, session: Session, text: str) -> str:
        log.debug("webhook agent (%s) answering in %s: %r", self._where, session.session_id, text)
        import aiohttp  # here, not at import: it costs a fifth of a second, and most runs use another agent

        try:
            async with asyncio.timeout(self.timeout):
                # A session per reply: nothing to close later, no pool bound to an event loop; replies are rare.
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        self.url, json=self.payload(session, text), headers=self._headers, allow_redirects=False
                    ) as response,
                ):
                    status = response.status
                    # Read as it is decompressed, and no further than the bound: a huge body or a
                    # decompression bomb costs at most that much.
                    body, over = await read_bounded(response.content, self.max_reply_bytes + _JSON_ROOM)
        except TimeoutError:
            raise self._fail(
                FailureKind.TIMEOUT, f"no answer within {self.timeout:g} s; try again, or raise its timeout", session
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise self._fail(
                FailureKind.CONNECTION,
                f"could not connect ({type(exc).__name__}); check the URL and that the server is running",
                session,
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: aiohttp's word for a URL it cannot use
            raise self._fail(FailureKind.CONNECTION, f"the request failed ({type(exc).__name__})", session) from None
        if over and 200 <= status < 300:
            return self._cut(body, session)
        decoded = body.decode("utf-8", errors="replace")
        try:
            data: object = json.loads(decoded)
        except ValueError:
            data = _NOT_JSON
        if not 200 <= status < 300:
            said = server_message(data) if data is not _NOT_JSON else short(decoded)
            said_part = f": {said}" if said else ""
            if status in (401, 403):
                kind, hint = FailureKind.AUTH, "check the webhook's headers (token)"
            elif status >= 500:
                kind, hint = FailureKind.SERVER, "try again later"
            else:
                kind, hint = FailureKind.REJECTED, "check the webhook URL and what the endpoint expects"
            raise self._fail(kind, f"it answered HTTP {status}{said_part}; {hint}", session)
        if data is _NOT_JSON:
            raise self._fail(FailureKind.RESPONSE, 'the answer was not JSON; it should be {"reply": "..."}', session)
        reply = _reply_text(data)
        if reply is None:
            raise self._fail(
                FailureKind.RESPONSE,
                'the answer had no reply text; it should be {"reply": "..."} with a non-empty string',
                session,
            )
        return reply

    def _cut(self, body: bytes, session: Session) -> str:
        """A body over the bound: the start of its reply, cut with a note."""
        log.warning("webhook agent (%s) answered more than %d bytes; the reply was cut", self._where, len(body))
        start = reply_prefix_from_json(body)
        if start is None or not start.strip():
            raise self._fail(
                FailureKind.RESPONSE,
                f"the answer was larger than {len(body)} bytes and its start had no reply text; "
                'it should be {"reply": "..."}',
                session,
            )
        return cut_reply(start.encode("utf-8"), self.max_reply_bytes)

    def _fail(self, kind: FailureKind, sentence: str, session: Session) -> AgentError:
        return fail(
            f"The webhook agent ({self._where}) could not answer: {sentence}.",
            provider=self.provider,
            kind=kind,
            session=session,
            secrets=self._secrets(),
        )

    def _secrets(self) -> list[str]:
        # The whole header value, and the token alone when it is "Bearer <token>".
        secrets: list[str] = []
        for value in self._headers.values():
            secrets.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                secrets.append(token)
        return secrets


def _reply_text(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    for key in ("reply", "text"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None
