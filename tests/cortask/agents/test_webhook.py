"""The webhook agent against a real local HTTP server."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from cortask.agents import AgentError, FailureKind, Session, WebhookAgent

if TYPE_CHECKING:
    from conftest import LocalServer, MakeSession, Recorded

TOKEN = "whk-0123456789abcdefSECRET"
PATH = "/hooks/cortask"


async def test_posts_the_chat_as_json_and_returns_the_reply(server: LocalServer, session: Session) -> None:
    server.respond(PATH, {"reply": "It is noon."})
    agent = WebhookAgent(f"{server.url}{PATH}", headers={"Authorization": f"Bearer {TOKEN}", "X-Team": "a"})

    assert await agent.reply(session, "and the date?") == "It is noon."

    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Team"] == "a"
    assert request.json == {
        "session_id": "whatsapp:4915123456789@s.whatsapp.net",
        "workspace": "default",
        "chat_jid": "4915123456789@s.whatsapp.net",
        "sender_phone": "+4915123456789",
        "sender_name": "Ada",
        "text": "and the date?",
        "history": [
            {"role": "user", "text": "hi"},
            {"role": "assistant", "text": "Hello! How can I help?"},
            {"role": "user", "text": "what time is it?"},
        ],
    }


async def test_unknown_sender_details_are_null_and_history_is_cut(
    server: LocalServer, make_session: MakeSession
) -> None:
    server.respond(PATH, {"reply": "ok"})
    session = make_session(("user", "one"), ("assistant", "two"), phone=None, name=None)

    await WebhookAgent(f"{server.url}{PATH}", max_history=1).reply(session, "three")

    body = server.requests[0].json
    assert body["sender_phone"] is None and body["sender_name"] is None
    assert body["history"] == [{"role": "assistant", "text": "two"}]


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        ({"reply": "from reply"}, "from reply"),
        ({"text": "from text"}, "from text"),
        ({"reply": "", "text": "text when reply is empty"}, "text when reply is empty"),
        ({"reply": "  keeps its spaces \n"}, "  keeps its spaces \n"),
    ],
)
async def test_the_reply_may_be_under_reply_or_text(
    server: LocalServer, session: Session, body: dict[str, Any], reply: str
) -> None:
    server.respond(PATH, body)

    assert await WebhookAgent(f"{server.url}{PATH}").reply(session, "hi") == reply


async def test_any_2xx_status_and_content_type_are_accepted(server: LocalServer, session: Session) -> None:
    server.respond(PATH, text='{"reply": "created"}', status=201, content_type="text/plain")

    assert await WebhookAgent(f"{server.url}{PATH}").reply(session, "hi") == "created"


@pytest.mark.parametrize(
    ("status", "respond", "kind", "phrase"),
    [
        (500, {"body": {"error": "database down"}}, FailureKind.SERVER, "HTTP 500: database down; try again later"),
        (502, {"text": "<html>Bad Gateway</html>"}, FailureKind.SERVER, "HTTP 502: <html>Bad Gateway</html>"),
        (401, {"body": {"detail": f"bad token Bearer {TOKEN}"}}, FailureKind.AUTH, "HTTP 401: bad token"),
        (404, {"text": ""}, FailureKind.REJECTED, "HTTP 404; check the webhook URL"),
        (302, {"text": "", "headers": {"Location": "http://127.0.0.1:9/elsewhere"}}, FailureKind.REJECTED, "HTTP 302"),
    ],
)
async def test_a_non_2xx_status_is_an_error_naming_it(
    server: LocalServer,
    session: Session,
    caplog: pytest.LogCaptureFixture,
    status: int,
    respond: dict[str, Any],
    kind: FailureKind,
    phrase: str,
) -> None:
    server.respond(PATH, status=status, **respond)
    caplog.set_level(logging.DEBUG, logger="cortask.agents")
    agent = WebhookAgent(f"{server.url}{PATH}", headers={"Authorization": f"Bearer {TOKEN}"})

    with pytest.raises(AgentError) as caught:
        await agent.reply(session, "hi")

    error = caught.value
    assert error.kind is kind
    assert error.provider == "webhook"
    assert f"The webhook agent ({server.url}{PATH})" in str(error)
    assert phrase in str(error)
    assert TOKEN not in str(error) and TOKEN not in caplog.text
    assert len(server.requests) == 1  # a redirect is not followed


@pytest.mark.parametrize(
    ("respond", "phrase"),
    [
        ({"text": "It is noon."}, "the answer was not JSON"),
        ({"text": "{broken"}, "the answer was not JSON"),
        ({"body": {"answer": "wrong name"}}, "had no reply text"),
        ({"body": {"reply": 42}}, "had no reply text"),
        ({"body": {"reply": "   "}}, "had no reply text"),
        ({"body": ["a list"]}, "had no reply text"),
        ({"body": None}, "had no reply text"),
    ],
)
async def test_bad_json_or_no_reply_is_a_response_error(
    server: LocalServer, session: Session, respond: dict[str, Any], phrase: str
) -> None:
    server.respond(PATH, **respond)

    with pytest.raises(AgentError) as caught:
        await WebhookAgent(f"{server.url}{PATH}").reply(session, "hi")

    assert caught.value.kind is FailureKind.RESPONSE
    assert phrase in str(caught.value)


async def test_a_slow_endpoint_is_a_timeout_error_promptly(server: LocalServer, session: Session) -> None:
    server.stall(PATH)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await WebhookAgent(f"{server.url}{PATH}", timeout=0.3).reply(session, "hi")

    assert time.monotonic() - started < 2.0
    assert caught.value.kind is FailureKind.TIMEOUT
    assert "no answer within 0.3 s" in str(caught.value)


async def test_a_slow_body_counts_against_the_timeout_too(server: LocalServer, session: Session) -> None:
    async def trickle(recorded: Recorded) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(recorded.raw)
        await response.write(b'{"reply": ')
        await server.release.wait()
        return response

    server.route(PATH, trickle)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await WebhookAgent(f"{server.url}{PATH}", timeout=0.3).reply(session, "hi")

    assert time.monotonic() - started < 2.0
    assert caught.value.kind is FailureKind.TIMEOUT


async def test_a_refused_connection_is_a_connection_error(session: Session, closed_port: int) -> None:
    with pytest.raises(AgentError) as caught:
        await WebhookAgent(f"http://127.0.0.1:{closed_port}/hook").reply(session, "hi")

    assert caught.value.kind is FailureKind.CONNECTION
    assert f"127.0.0.1:{closed_port}/hook" in str(caught.value)
    assert "check the URL" in str(caught.value)


async def test_a_token_in_the_url_query_is_masked_in_errors_and_repr(session: Session, closed_port: int) -> None:
    agent = WebhookAgent(f"http://127.0.0.1:{closed_port}/hook?token={TOKEN}")

    with pytest.raises(AgentError) as caught:
        await agent.reply(session, "hi")

    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(agent)
    assert "token=***" in str(caught.value)


def test_repr_shows_header_names_but_not_values() -> None:
    agent = WebhookAgent("https://example.com/hook", headers={"Authorization": f"Bearer {TOKEN}"})

    assert "Authorization" in repr(agent)
    assert TOKEN not in repr(agent)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookAgent("ftp://example.com/hook")
    with pytest.raises(ValueError, match="timeout"):
        WebhookAgent("https://example.com/hook", timeout=0)
    with pytest.raises(ValueError, match="max_history"):
        WebhookAgent("https://example.com/hook", max_history=-1)
