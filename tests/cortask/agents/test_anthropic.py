"""The Anthropic agent against a real local server speaking POST /v1/messages."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from cortask.agents import AgentError, AnthropicAgent, FailureKind, Session

if TYPE_CHECKING:
    from conftest import LocalServer, MakeSession, Recorded

KEY = "sk-ant-test-0123456789abcdefSECRET"
PATH = "/v1/messages"
MakeAgent = Callable[..., AnthropicAgent]


def message(
    *texts: str, stop_reason: str = "end_turn", extra_blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [*(extra_blocks or []), *({"type": "text", "text": text} for text in texts)],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 4},
    }


def sent_key(request: Recorded) -> str | None:
    # Anthropic's API takes the key as x-api-key; SDK releases have also sent it as a bearer token.
    if "x-api-key" in {name.lower() for name in request.headers}:
        return next(value for name, value in request.headers.items() if name.lower() == "x-api-key")
    authorization = request.headers.get("Authorization", "")
    return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None


@pytest.fixture
async def make_agent(server: LocalServer) -> AsyncIterator[MakeAgent]:
    made: list[AnthropicAgent] = []

    def make(**settings: Any) -> AnthropicAgent:
        settings.setdefault("model", "claude-test")
        settings.setdefault("api_key", KEY)
        settings.setdefault("base_url", server.url)
        settings.setdefault("max_retries", 0)
        agent = AnthropicAgent(**settings)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.aclose()


async def test_sends_model_system_prompt_max_tokens_history_and_text_and_returns_the_reply(
    server: LocalServer, make_agent: MakeAgent, make_session: MakeSession
) -> None:
    server.respond(PATH, message("It is noon."))
    agent = make_agent(system_prompt="You are Cortask. Be brief.", max_tokens=300)
    session = make_session(("user", "hi"), ("assistant", "Hello! How can I help?"))

    assert await agent.reply(session, "what time is it?") == "It is noon."

    [request] = server.requests
    assert request.method == "POST"
    assert sent_key(request) == KEY
    assert request.headers.get("anthropic-version")
    assert request.json == {
        "model": "claude-test",
        "max_tokens": 300,
        "system": "You are Cortask. Be brief.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "what time is it?"},
        ],
    }


async def test_turns_are_made_to_alternate_and_to_open_with_the_user(
    server: LocalServer, make_agent: MakeAgent, make_session: MakeSession
) -> None:
    server.respond(PATH, message("ok"))
    # The history opens with the agent's greeting and ends with a message it never answered.
    session = make_session(
        ("assistant", "Welcome!"), ("user", "hi"), ("assistant", "Hello!"), ("user", "are you there?")
    )

    await make_agent().reply(session, "hello?")

    body = server.requests[0].json
    assert "system" not in body
    assert body["max_tokens"] == 1024
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "are you there?\n\nhello?"},
    ]


async def test_history_is_cut_to_the_last_turns(server: LocalServer, make_agent: MakeAgent, session: Session) -> None:
    server.respond(PATH, message("ok"))

    await make_agent(max_history=0).reply(session, "hello")

    assert server.requests[0].json["messages"] == [{"role": "user", "content": "hello"}]


async def test_the_text_blocks_of_the_answer_are_joined(
    server: LocalServer, make_agent: MakeAgent, session: Session
) -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    server.respond(PATH, message("It is ", "noon.", extra_blocks=[thinking]))

    assert await make_agent().reply(session, "time?") == "It is noon."


async def test_the_environment_does_not_override_the_configured_key_and_url(
    server: LocalServer, make_agent: MakeAgent, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-environment")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-from-the-environment")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    server.respond(PATH, message("ok"))

    assert await make_agent().reply(session, "hello") == "ok"
    assert sent_key(server.requests[0]) == KEY


@pytest.mark.parametrize(
    ("status", "body", "kind", "phrase"),
    [
        (500, {"type": "error", "error": {"type": "api_error", "message": "internal"}}, FailureKind.SERVER, "HTTP 500"),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            FailureKind.SERVER,
            "Overloaded",
        ),
        (
            401,
            {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {KEY}"}},
            FailureKind.AUTH,
            "check the API key",
        ),
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            FailureKind.RATE_LIMIT,
            "HTTP 429: slow down",
        ),
        (
            400,
            {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too big"}},
            FailureKind.REJECTED,
            "max_tokens: too big",
        ),
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
    assert error.provider == "anthropic"
    assert "Anthropic agent (model claude-test at http://127.0.0.1:" in str(error)
    assert phrase in str(error)
    assert KEY not in str(error) and KEY not in caplog.text


@pytest.mark.parametrize(
    ("respond", "phrase"),
    [
        ({"text": "<html>502 Bad Gateway</html>", "content_type": "text/html"}, "not a Messages API response"),
        ({"text": "{oops", "content_type": "application/json"}, "not a Messages API response (JSONDecodeError)"),
        ({"body": {"unexpected": True}}, "no content"),
        ({"body": message(stop_reason="max_tokens")}, "returned no text (stop reason: max_tokens)"),
        ({"body": message("  \n")}, "returned no text"),
    ],
)
async def test_answers_that_are_not_a_usable_message_are_response_errors(
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

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await make_agent(timeout=0.3, max_retries=2).reply(session, "hello")

    assert time.monotonic() - started < 2.0
    assert caught.value.kind is FailureKind.TIMEOUT
    assert "no answer within 0.3 s" in str(caught.value)


async def test_a_refused_connection_is_a_connection_error(
    make_agent: MakeAgent, session: Session, closed_port: int
) -> None:
    with pytest.raises(AgentError) as caught:
        await make_agent(base_url=f"http://127.0.0.1:{closed_port}").reply(session, "hello")

    assert caught.value.kind is FailureKind.CONNECTION
    assert f"127.0.0.1:{closed_port}" in str(caught.value)


async def test_repr_does_not_show_the_key(make_agent: MakeAgent) -> None:
    agent = make_agent()

    assert KEY not in repr(agent)
    assert "claude-test" in repr(agent)


async def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="model"):
        AnthropicAgent(model="", api_key=KEY)
    with pytest.raises(ValueError, match="API key"):
        AnthropicAgent(model="m", api_key="")
    with pytest.raises(ValueError, match="max_tokens"):
        AnthropicAgent(model="m", api_key=KEY, max_tokens=0)
    with pytest.raises(ValueError, match="timeout"):
        AnthropicAgent(model="m", api_key=KEY, timeout=-1)
