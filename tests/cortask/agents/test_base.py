"""The agent seam itself: sessions, turns, the error, the helpers that keep secrets out, echo, the public API."""

from __future__ import annotations

import logging
from dataclasses import FrozenInstanceError

import pytest

import cortask.agents
from cortask.agents import Agent, AgentError, EchoAgent, FailureKind, Session, Turn
from cortask.agents.base import display_url, fail, mask, redact, server_message, short, status_failure


def test_session_holds_the_chat_and_is_frozen() -> None:
    session = Session("whatsapp:1@s.whatsapp.net", "default", "1@s.whatsapp.net")

    assert (session.sender_phone, session.sender_name, session.history) == (None, None, ())
    with pytest.raises(FrozenInstanceError):
        session.workspace = "other"  # type: ignore[misc]


def test_session_history_becomes_a_tuple_of_turns() -> None:
    turns = [Turn("user", "a"), Turn("assistant", "b")]
    session = Session("s", "w", "j", history=turns)  # type: ignore[arg-type]

    assert session.history == tuple(turns)
    assert hash(session) == hash(Session("s", "w", "j", history=tuple(turns)))
    with pytest.raises(TypeError, match="Turn objects"):
        Session("s", "w", "j", history=({"role": "user", "text": "a"},))  # type: ignore[arg-type]


def test_recent_gives_the_last_turns_oldest_first() -> None:
    session = Session("s", "w", "j", history=tuple(Turn("user", str(n)) for n in range(5)))

    assert [t.text for t in session.recent(2)] == ["3", "4"]
    assert [t.text for t in session.recent(50)] == ["0", "1", "2", "3", "4"]
    assert session.recent(0) == ()


def test_a_turn_is_from_the_user_or_the_assistant() -> None:
    with pytest.raises(ValueError, match="'user' or 'assistant'"):
        Turn("system", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Turn("user", None)  # type: ignore[arg-type]


def test_agent_error_carries_provider_and_kind() -> None:
    error = AgentError("The echo agent broke.", provider="echo", kind=FailureKind.SERVER)

    assert str(error) == "The echo agent broke."
    assert (error.provider, error.kind) == ("echo", FailureKind.SERVER)
    assert "server" in repr(error)


def test_fail_redacts_and_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cortask.agents")
    session = Session("whatsapp:1@s.whatsapp.net", "w", "j")

    error = fail(
        "server said: bad key sk-abcdef", provider="x", kind=FailureKind.AUTH, session=session, secrets=["sk-abcdef"]
    )

    assert str(error) == "server said: bad key ***"
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.name == "cortask.agents"
    assert "sk-abcdef" not in record.getMessage()
    assert "whatsapp:1@s.whatsapp.net" in record.getMessage()


def test_redact_and_mask() -> None:
    assert redact("a KEY123 b KEY123", ["KEY123", None, ""]) == "a *** b ***"
    assert redact("a b c", ["a"]) == "a b c"  # too short to be a key, and would blank out words
    assert mask("sk-0123456789abcdef") == "***cdef"
    assert mask("short") == "***"
    assert mask("") is None and mask(None) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://user:pw@host:8080/p?token=abc&x=1#frag", "http://user:********@host:8080/p?token=********&x=********"),
        ("http://user@host/p?flag", "http://********@host/p?flag"),  # user-info alone may be a token
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
        ("http://[broken", "<invalid URL>"),
    ],
)
def test_display_url_hides_passwords_and_query_values(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_short_and_server_message() -> None:
    assert short("\n  first line  \nsecond") == "first line"
    assert short("x" * 300).endswith("…") and len(short("x" * 300)) == 200
    assert server_message({"error": {"message": "boom", "type": "t"}}) == "boom"
    assert server_message({"error": "plain"}) == "plain"
    assert server_message({"detail": "fastapi style"}) == "fastapi style"
    assert server_message({"error": {"code": 1}}) == ""
    assert server_message(None) == ""
    assert server_message("text body\nmore") == "text body"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, FailureKind.AUTH),
        (403, FailureKind.AUTH),
        (404, FailureKind.REJECTED),
        (422, FailureKind.REJECTED),
        (429, FailureKind.RATE_LIMIT),
        (500, FailureKind.SERVER),
        (529, FailureKind.SERVER),
    ],
)
def test_status_failure(status: int, kind: FailureKind) -> None:
    got, sentence = status_failure(status, "said", key_hint="the API key ($K)")
    assert got is kind
    assert f"HTTP {status}: said" in sentence
    if kind is FailureKind.AUTH:
        assert "check the API key ($K)" in sentence


async def test_echo_replies_with_the_text() -> None:
    session = Session("s", "w", "j")

    async with EchoAgent() as agent:
        assert await agent.reply(session, "hello there") == "Echo: hello there"
        assert await agent.reply(session, "") == "Echo: "
    assert isinstance(agent, Agent)
    assert repr(agent) == "EchoAgent(prefix='Echo: ')"


async def test_a_provider_only_needs_reply() -> None:
    class Upper(Agent):
        provider = "upper"

        async def reply(self, session: Session, text: str) -> str:
            return text.upper()

    async with Upper() as agent:  # aclose defaults to nothing to release
        assert await agent.reply(Session("s", "w", "j"), "hi") == "HI"
    with pytest.raises(TypeError):
        Agent()  # type: ignore[abstract]


def test_the_public_api() -> None:
    assert cortask.agents.__all__ == sorted(cortask.agents.__all__, key=lambda n: (not n.isupper(), n))
    for name in cortask.agents.__all__:
        assert hasattr(cortask.agents, name)
    assert set(cortask.agents.__all__) == {
        "PROVIDERS",
        "Agent",
        "AgentConfig",
        "AgentError",
        "AnthropicAgent",
        "CommandAgent",
        "EchoAgent",
        "FailureKind",
        "OpenAICompatAgent",
        "Role",
        "Session",
        "Turn",
        "WebhookAgent",
        "build_agent",
        "describe",
    }


@pytest.mark.e2e  # starts a process
def test_importing_the_package_does_not_import_the_llm_sdks() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(cortask.agents.__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    code = "import sys, cortask.agents; print('openai' in sys.modules, 'anthropic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env
    )

    assert result.stdout.split() == ["False", "False"]
