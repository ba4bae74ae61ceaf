"""The OpenAI-compatible agent against a real local server speaking POST /v1/chat/completions."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from cortask.agents import AgentError, FailureKind, OpenAICompatAgent, Session
from cortask.agents.openai_compat import DEFAULT_MAX_TOKENS

if TYPE_CHECKING:
    from conftest import LocalServer, MakeSession, Recorded

KEY = "sk-test-0123456789abcdefSECRET"
PATH = "/v1/chat/completions"
MakeAgent = Callable[..., OpenAICompatAgent]


def completion(content: str | None, finish_reason: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "message": {"role": "assistant", "content": content, **message},
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
    }


@pytest.fixture
async def make_agent(server: LocalServer) -> AsyncIterator[MakeAgent]:
    made: list[OpenAICompatAgent] = []

    def make(**settings: Any) -> OpenAICompatAgent:
        settings.setdefault("model", "gpt-test")
        settings.setdefault("api_key", KEY)
        settings.setdefault("base_url", f"{server.url}/v1")
        settings.setdefault("max_retries", 0)
        agent = OpenAICompatAgent(**settings)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.aclose()


async def test_sends_model_system_prompt_history_and_text_and_returns_the_reply(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    server.respond(PATH, completion("It is noon."))
    agent = make_agent(system_prompt="You are Cortask. Be brief.")

    assert await agent.reply(session, "and the date?") == "It is noon."

    [request] = server.requests
    assert request.method == "POST"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "You are Cortask. Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "what time is it?"},
            {"role": "user", "content": "and the date?"},
        ],
        "max_tokens": DEFAULT_MAX_TOKENS,  # always bounded (issue #13), unless set otherwise
    }


async def test_history_is_cut_to_the_last_turns_and_options_are_sent_when_set(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    server.respond(PATH, completion("ok"))
    agent = make_agent(max_history=1, max_tokens=50, temperature=0.2)

    await agent.reply(session, "now")

    body = server.requests[0].json
    assert body["messages"] == [{"role": "user", "content": "what time is it?"}, {"role": "user", "content": "now"}]
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.2


async def test_without_system_prompt_or_history_only_the_text_is_sent(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    server.respond(PATH, completion("ok"))

    await make_agent(max_history=0).reply(session, "hello")

    assert server.requests[0].json["messages"] == [{"role": "user", "content": "hello"}]


async def test_a_keyless_local_server_gets_a_placeholder_never_the_openai_key_from_the_environment(
    server: LocalServer, make_agent: MakeAgent, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-must-not-leak")
    server.respond(PATH, completion("ok"))

    await make_agent(api_key=None).reply(session, "hello")

    assert server.requests[0].headers["Authorization"] == "Bearer unused"


async def test_the_sdk_retries_as_configured_within_the_timeout(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    calls = 0

    async def flaky(_: Recorded) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({"error": {"message": "busy"}}, status=503, headers={"retry-after-ms": "10"})
        return web.json_response(completion("second time lucky"))

    server.route(PATH, flaky)

    assert await make_agent(max_retries=1).reply(session, "hello") == "second time lucky"
    assert calls == 2


@pytest.mark.parametrize(
    ("status", "body", "kind", "phrase"),
    [
        (500, {"error": {"message": "the model crashed"}}, FailureKind.SERVER, "HTTP 500: the model crashed"),
        (503, "upstream unavailable", FailureKind.SERVER, "HTTP 503"),
        (401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}, FailureKind.AUTH, "HTTP 401"),
        (403, {"error": {"message": "not allowed"}}, FailureKind.AUTH, "check the API key"),
        (
            404,
            {"error": {"message": "model 'gpt-test' not found"}},
            FailureKind.REJECTED,
            "check the model and base URL",
        ),
        (429, {"error": {"message": "quota exceeded"}}, FailureKind.RATE_LIMIT, "HTTP 429: quota exceeded"),
        (400, {"error": {"message": "bad request"}}, FailureKind.REJECTED, "HTTP 400: bad request"),
    ],
)
async def test_http_errors_become_agent_errors_that_name_the_provider_and_cause(
    server: LocalServer,
    make_agent: MakeAgent,
    session: Session,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: Any,
    kind: FailureKind,
    phrase: str,
) -> None:
    server.respond(PATH, body, status=status)
    caplog.set_level(logging.DEBUG, logger="cortask.agents")

    with pytest.raises(AgentError) as caught:
        await make_agent().reply(session, "hello")

    error = caught.value
    assert error.kind is kind
    assert error.provider == "openai"
    assert "OpenAI-compatible agent (model gpt-test at http://127.0.0.1:" in str(error)
    assert phrase in str(error)
    assert KEY not in str(error) and KEY not in repr(error)
    assert KEY not in caplog.text
    assert error.__cause__ is None and error.__context__ is not None  # SDK exception kept out of the chain


async def test_a_rejected_key_says_where_the_key_came_from(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    server.respond(PATH, {"error": {"message": "invalid key"}}, status=401)

    with pytest.raises(AgentError, match=r"check the API key \(OPENAI_API_KEY\)"):
        await make_agent(key_hint="the API key (OPENAI_API_KEY)").reply(session, "hello")


@pytest.mark.parametrize(
    ("respond", "phrase"),
    [
        ({"text": "<html>502 Bad Gateway</html>", "content_type": "text/html"}, "not a chat completion"),
        ({"text": "{not json", "content_type": "application/json"}, "not a chat completion (JSONDecodeError)"),
        ({"body": {"unexpected": True}}, "no choices"),
        ({"body": {**completion("x"), "choices": []}}, "no choices"),
        ({"body": {**completion("x"), "choices": "nope"}}, "not a chat completion"),
        ({"body": completion(None, "length")}, "returned no text (finish reason: length)"),
        ({"body": completion("   ")}, "returned no text"),
        ({"body": completion(None, refusal="I cannot help with that.")}, "refused to answer: I cannot help with that."),
    ],
)
async def test_answers_that_are_not_a_usable_completion_are_response_errors(
    server: LocalServer, make_agent: MakeAgent, session: Session, respond: dict[str, Any], phrase: str
) -> None:
    server.respond(PATH, **respond)

    with pytest.raises(AgentError) as caught:
        await make_agent().reply(session, "hello")

    assert caught.value.kind is FailureKind.RESPONSE
    assert phrase in str(caught.value)


async def test_a_server_slower_than_the_timeout_is_a_timeout_error_promptly(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    server.stall(PATH)
    agent = make_agent(timeout=0.3, max_retries=2)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await agent.reply(session, "hello")

    assert time.monotonic() - started < 2.0  # retries included: the timeout bounds the whole reply
    assert caught.value.kind is FailureKind.TIMEOUT
    assert "no answer within 0.3 s" in str(caught.value)


async def test_a_refused_connection_is_a_connection_error(
    make_agent: MakeAgent, session: Session, closed_port: int
) -> None:
    agent = make_agent(base_url=f"http://127.0.0.1:{closed_port}/v1")

    with pytest.raises(AgentError) as caught:
        await agent.reply(session, "hello")

    assert caught.value.kind is FailureKind.CONNECTION
    assert f"127.0.0.1:{closed_port}" in str(caught.value)
    assert "check the base URL" in str(caught.value)


async def test_failures_are_logged_at_warning_with_the_cause_and_without_the_message_text(
    server: LocalServer, make_agent: MakeAgent, make_session: MakeSession, caplog: pytest.LogCaptureFixture
) -> None:
    server.respond(PATH, {"error": {"message": "boom"}}, status=500)
    caplog.set_level(logging.DEBUG, logger="cortask.agents")
    session = make_session(("user", "my bank PIN is 1234"))

    with pytest.raises(AgentError):
        await make_agent().reply(session, "private message text")

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 500: boom" in warnings[0].getMessage()
    assert warnings[0].name == "cortask.agents"
    for record in caplog.records:
        if record.levelno > logging.DEBUG:
            assert "private message text" not in record.getMessage()
            assert "PIN" not in record.getMessage()


async def test_repr_does_not_show_the_key(make_agent: MakeAgent) -> None:
    agent = make_agent(base_url="https://user:pw-secret@example.com/v1?key=abc")

    assert KEY not in repr(agent)
    assert "pw-secret" not in repr(agent) and "abc" not in repr(agent)
    assert "gpt-test" in repr(agent)


async def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="model"):
        OpenAICompatAgent(model="")
    with pytest.raises(ValueError, match="timeout"):
        OpenAICompatAgent(model="m", timeout=0)
    with pytest.raises(ValueError, match="max_history"):
        OpenAICompatAgent(model="m", max_history=-1)
