"""Building agents from stored configuration, its errors, and describe()'s masking."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from cortask.agents import (
    PROVIDERS,
    Agent,
    AgentConfig,
    AnthropicAgent,
    CommandAgent,
    EchoAgent,
    OpenAICompatAgent,
    Session,
    WebhookAgent,
    build_agent,
    describe,
)

if TYPE_CHECKING:
    from conftest import LocalServer

OPENAI_KEY = "sk-openai-0123456789abcdefSECRET"
ANTHROPIC_KEY = "sk-ant-0123456789abcdefSECRET"
OTHER_KEY = "sk-other-0123456789abcdefSECRET"
ENV = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "MY_KEY": OTHER_KEY, "PATH": "/usr/bin:/bin"}
SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, OTHER_KEY)
Build = Callable[..., Agent]


@pytest.fixture
async def build() -> AsyncIterator[Build]:
    """build_agent with a fixed environment; every agent built is closed when the test ends."""
    built: list[Agent] = []

    def make(provider: str, settings: dict[str, Any] | None = None, environ: dict[str, str] = ENV) -> Agent:
        agent = build_agent(AgentConfig(provider, settings or {}), environ)
        built.append(agent)
        return agent

    yield make
    for agent in built:
        await agent.aclose()


def key_of(agent: Agent) -> str | None:
    key: str | None = getattr(agent, "_api_key")  # noqa: B009 - the tests look at what the agent will send
    return key


# --- each provider ----------------------------------------------------------------------------------------------


async def test_openai_defaults_to_openai_with_the_key_from_openai_api_key(build: Build) -> None:
    agent = build("openai", {"model": "gpt-4o-mini"})

    assert isinstance(agent, OpenAICompatAgent)
    assert agent.model == "gpt-4o-mini"
    assert agent.base_url == "https://api.openai.com/v1"
    assert key_of(agent) == OPENAI_KEY
    assert (agent.timeout, agent.max_history, agent.max_retries) == (60.0, 20, 2)
    assert agent.system_prompt is None and agent.max_tokens == 4096 and agent.temperature is None


async def test_openai_with_every_setting(build: Build) -> None:
    agent = build(
        "openai",
        {
            "model": "llama3.2",
            "base_url": "http://localhost:11434/v1",
            "api_key_env": "MY_KEY",
            "system_prompt": "Be brief.",
            "timeout": 5,
            "max_history": 4,
            "max_tokens": 200,
            "temperature": 0.5,
            "max_retries": 0,
        },
    )

    assert isinstance(agent, OpenAICompatAgent)
    assert (agent.model, agent.base_url, key_of(agent)) == ("llama3.2", "http://localhost:11434/v1", OTHER_KEY)
    assert (agent.system_prompt, agent.timeout, agent.max_history) == ("Be brief.", 5.0, 4)
    assert (agent.max_tokens, agent.temperature, agent.max_retries) == (200, 0.5, 0)


async def test_openai_key_is_not_sent_to_another_host_unless_asked(build: Build) -> None:
    local = build("openai", {"model": "llama3.2", "base_url": "http://localhost:11434/v1"})
    asked = build("openai", {"model": "x", "base_url": "https://openrouter.ai/api/v1", "api_key_env": "OPENAI_API_KEY"})
    explicit = build("openai", {"model": "x", "base_url": "https://openrouter.ai/api/v1", "api_key": "sk-or-explicit"})

    assert key_of(local) is None
    assert key_of(asked) == OPENAI_KEY
    assert key_of(explicit) == "sk-or-explicit"


async def test_openai_against_a_local_server_end_to_end(build: Build, server: LocalServer, session: Session) -> None:
    server.respond(
        "/v1/chat/completions",
        {
            "id": "1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "built and working"}}
            ],
        },
    )
    agent = build("openai", {"model": "m", "base_url": f"{server.url}/v1", "api_key": OTHER_KEY, "max_retries": 0})

    assert await agent.reply(session, "hi") == "built and working"
    assert server.requests[0].headers["Authorization"] == f"Bearer {OTHER_KEY}"


async def test_anthropic_takes_its_key_from_anthropic_api_key(build: Build) -> None:
    agent = build("anthropic", {"model": "claude-sonnet-4-5", "system_prompt": "Be kind.", "max_tokens": 500})

    assert isinstance(agent, AnthropicAgent)
    assert (agent.model, agent.base_url, key_of(agent)) == (
        "claude-sonnet-4-5",
        "https://api.anthropic.com",
        ANTHROPIC_KEY,
    )
    assert (agent.system_prompt, agent.max_tokens, agent.timeout, agent.max_history) == ("Be kind.", 500, 60.0, 20)


async def test_anthropic_with_a_named_variable_or_an_explicit_key_and_base_url(build: Build) -> None:
    named = build("anthropic", {"model": "c", "api_key_env": "MY_KEY", "base_url": "https://proxy.example/anthropic"})
    explicit = build("anthropic", {"model": "c", "api_key": "sk-ant-explicit", "timeout": 3, "max_retries": 1})

    assert isinstance(named, AnthropicAgent) and isinstance(explicit, AnthropicAgent)
    assert (key_of(named), named.base_url) == (OTHER_KEY, "https://proxy.example/anthropic")
    assert (key_of(explicit), explicit.timeout, explicit.max_retries) == ("sk-ant-explicit", 3.0, 1)


@pytest.mark.e2e  # starts a process
async def test_command_from_a_string_or_a_list_with_the_given_environment(build: Build, session: Session) -> None:
    code = "import os; print(os.environ['MY_KEY'][:8])"
    agent = build("command", {"command": [sys.executable, "-c", code], "env": ["MY_KEY"]})  # named: passed
    split = build("command", {"command": "python3 agent.py --fast", "timeout": 5, "cwd": "/tmp"})
    shell = build("command", {"command": "cat | tr a-z A-Z", "shell": True})

    assert isinstance(agent, CommandAgent) and isinstance(split, CommandAgent) and isinstance(shell, CommandAgent)
    assert await agent.reply(session, "hi") == OTHER_KEY[:8]  # the command starts from build_agent's environ
    assert (split.argv, split.timeout, str(split.cwd)) == (["python3", "agent.py", "--fast"], 5.0, "/tmp")
    assert await shell.reply(session, "shout") == "SHOUT"


async def test_webhook_with_headers_and_a_token(build: Build) -> None:
    agent = build(
        "webhook",
        {
            "url": "https://example.com/hook",
            "timeout": 10,
            "max_history": 3,
            "headers": {"X-Team": "a"},
            "token": "t0k",
        },
    )
    from_env = build("webhook", {"url": "https://example.com/hook", "token_env": "MY_KEY"})

    assert isinstance(agent, WebhookAgent) and isinstance(from_env, WebhookAgent)
    assert (agent.url, agent.timeout, agent.max_history) == ("https://example.com/hook", 10.0, 3)
    assert agent._headers == {"X-Team": "a", "Authorization": "Bearer t0k"}
    assert from_env._headers == {"Authorization": f"Bearer {OTHER_KEY}"}


async def test_echo(build: Build, session: Session) -> None:
    assert await build("echo").reply(session, "hello") == "Echo: hello"
    assert await build("echo", {"prefix": "> "}).reply(session, "hello") == "> hello"


async def test_the_provider_name_is_forgiving_about_case_and_spaces(build: Build) -> None:
    assert isinstance(build(" Echo "), EchoAgent)


# --- errors that say what to set ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "settings", "environ", "message"),
    [
        (
            "gpt",
            {},
            ENV,
            "unknown agent provider 'gpt': set provider to one of openai, anthropic, command, webhook, echo",
        ),
        ("openai", {}, ENV, "the openai agent needs settings.model"),
        ("openai", {"model": "gpt-4o"}, {}, "set OPENAI_API_KEY in the environment, or settings.api_key"),
        ("openai", {"model": "m", "modle": "x"}, ENV, "unknown setting 'modle' for the openai agent; it knows model"),
        (
            "openai",
            {"model": "m", "api_key_env": "NOPE_KEY"},
            ENV,
            "settings.api_key_env of the openai agent names NOPE_KEY, but NOPE_KEY is not set",
        ),
        (
            "openai",
            {"model": "m", "api_key": "k", "api_key_env": "MY_KEY"},
            ENV,
            "both settings.api_key and settings.api_key_env",
        ),
        (
            "openai",
            {"model": "m", "base_url": "localhost:11434"},
            ENV,
            "settings.base_url must be an http:// or https:// URL",
        ),
        ("openai", {"model": "m", "timeout": 0}, ENV, "settings.timeout of the openai agent must be a positive number"),
        ("openai", {"model": "m", "timeout": "30"}, ENV, "must be a positive number, got '30'"),
        (
            "openai",
            {"model": "m", "max_history": -1},
            ENV,
            "settings.max_history of the openai agent must be a whole number",
        ),
        ("openai", {"model": "m", "max_history": 2.5}, ENV, "must be a whole number, 0 or more"),
        (
            "openai",
            {"model": "m", "max_tokens": 0},
            ENV,
            "settings.max_tokens of the openai agent must be a whole number, 1 or more",
        ),
        ("openai", {"model": "m", "max_retries": True}, ENV, "settings.max_retries"),
        ("openai", {"model": 4}, ENV, "settings.model of the openai agent must be a string"),
        ("anthropic", {"model": "c"}, {}, "the anthropic agent needs an API key: set ANTHROPIC_API_KEY"),
        ("anthropic", {"api_key": "k"}, ENV, "the anthropic agent needs settings.model"),
        ("anthropic", {"model": "c", "temperature": 1}, ENV, "unknown setting 'temperature' for the anthropic agent"),
        ("command", {}, ENV, "the command agent needs settings.command: the program to run"),
        ("command", {"command": "   "}, ENV, "the command is empty"),
        ("command", {"command": "agent 'unclosed"}, ENV, "cannot be split into words"),
        (
            "command",
            {"command": 42},
            ENV,
            "settings.command of the command agent must be a string or a list of strings",
        ),
        ("command", {"command": "a", "shell": "yes"}, ENV, "settings.shell of the command agent must be true or false"),
        ("webhook", {}, ENV, "the webhook agent needs settings.url"),
        ("webhook", {"url": "example.com/hook"}, ENV, "settings.url must be an http:// or https:// URL"),
        (
            "webhook",
            {"url": "https://e.com", "headers": {"X": 1}},
            ENV,
            "settings.headers of the webhook agent must be a mapping",
        ),
        (
            "webhook",
            {"url": "https://e.com", "token": "t", "headers": {"authorization": "x"}},
            ENV,
            "both settings.token and an Authorization header",
        ),
        (
            "webhook",
            {"url": "https://e.com", "token_env": "NOPE_TOKEN"},
            ENV,
            "names NOPE_TOKEN, but NOPE_TOKEN is not set",
        ),
        ("echo", {"prefix": 1}, ENV, "settings.prefix of the echo agent must be a string"),
    ],
)
def test_bad_configurations_are_value_errors_that_say_what_to_set(
    provider: str, settings: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        build_agent(AgentConfig(provider, settings), environ)

    assert message in str(caught.value)
    for secret in SECRETS:
        assert secret not in str(caught.value)


def test_agent_config_itself_refuses_what_is_not_a_config() -> None:
    with pytest.raises(ValueError, match="provider"):
        AgentConfig(None, {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="settings"):
        AgentConfig("echo", ["model"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r'\{"provider"'):
        AgentConfig.from_dict({"settings": {}})


# --- storage and display ----------------------------------------------------------------------------------------


def test_a_config_survives_a_json_round_trip() -> None:
    config = AgentConfig("openai", {"model": "m", "api_key": OPENAI_KEY, "max_history": 3})

    restored = AgentConfig.from_dict(json.loads(json.dumps(config.to_dict())))

    assert restored == config
    assert restored.settings["api_key"] == OPENAI_KEY  # storage keeps the secret; display masks it
    assert AgentConfig.from_dict({"provider": "echo"}) == AgentConfig("echo", {})


def test_the_config_keeps_its_own_copy_of_the_settings() -> None:
    settings = {"prefix": "a"}
    config = AgentConfig("echo", settings)
    settings["prefix"] = "b"

    assert config.settings == {"prefix": "a"}


def test_repr_of_a_config_masks_secrets() -> None:
    config = AgentConfig(
        "webhook",
        {"url": "https://u:pw-secret@e.com/h?token=qs-secret", "token": OTHER_KEY, "headers": {"X-Api": "hdr-secret"}},
    )

    shown = repr(config)

    for secret in (OTHER_KEY, "pw-secret", "qs-secret", "hdr-secret"):
        assert secret not in shown
    assert "'token': '********'" in shown and "X-Api" in shown


def test_describe_openai_masks_the_key_and_says_where_it_comes_from() -> None:
    explicit = describe(AgentConfig("openai", {"model": "gpt-4o", "api_key": OPENAI_KEY, "max_tokens": 9}), ENV)
    from_env = describe(AgentConfig("openai", {"model": "gpt-4o"}), ENV)
    missing = describe(AgentConfig("openai", {"model": "gpt-4o"}), {})
    local = describe(AgentConfig("openai", {"model": "llama3.2", "base_url": "http://localhost:11434/v1"}), ENV)

    assert explicit == {
        "provider": "openai",
        "label": "OpenAI-compatible",
        "summary": "gpt-4o at https://api.openai.com/v1",
        "settings": {"model": "gpt-4o", "api_key": "********", "max_tokens": 9},
        "key": {"source": "settings.api_key", "set": True},
    }
    assert from_env["key"] == {"source": "$OPENAI_API_KEY", "set": True}
    assert missing["key"] == {"source": "$OPENAI_API_KEY", "set": False}
    assert local["key"] == {"source": "none (the server needs none)", "set": False}
    assert local["summary"] == "llama3.2 at http://localhost:11434/v1"


def test_describe_each_provider() -> None:
    anthropic = describe(AgentConfig("anthropic", {"model": "claude", "api_key_env": "MY_KEY"}), ENV)
    command = describe(AgentConfig("command", {"command": ["python3", "agent.py"], "timeout": 5}), ENV)
    webhook = describe(AgentConfig("webhook", {"url": "https://e.com/h?sig=abc", "token_env": "MY_KEY"}), ENV)
    echo = describe(AgentConfig("echo"), ENV)

    assert (anthropic["summary"], anthropic["key"]) == (
        "claude at https://api.anthropic.com",
        {"source": "$MY_KEY", "set": True},
    )
    assert anthropic["settings"] == {"model": "claude", "api_key_env": "MY_KEY"}  # a variable's name is no secret
    assert (command["label"], command["summary"], command["key"]) == ("Local command", "python3 agent.py", None)
    assert webhook["summary"] == "POST https://e.com/h?sig=********"
    assert webhook["key"] == {"source": "$MY_KEY", "set": True}
    assert (echo["label"], echo["summary"]) == ("Echo (demo)", "answers 'Echo: ' + the message")


@pytest.mark.parametrize(
    "config",
    [
        AgentConfig("openai", {"model": 4, "base_url": 7, "api_key": 12345678901234567890}),
        AgentConfig("command", {"command": 42}),
        AgentConfig("webhook", {"url": None, "headers": "Authorization: Bearer hdr-secret", "token": ["x"]}),
        AgentConfig("martian", {"password": "pw-secret", "client_secret": "cs-secret", "other": 1}),
        AgentConfig("anthropic", {"base_url": "http://[broken"}),
    ],
)
def test_describe_never_raises_and_never_shows_a_secret(config: AgentConfig) -> None:
    shown = describe(config, ENV)

    assert shown["provider"] == config.provider
    text = json.dumps(shown)  # safe for display means JSON-serialisable too
    for secret in ("hdr-secret", "pw-secret", "cs-secret", "12345678901234567890", *SECRETS):
        assert secret not in text


async def test_every_provider_has_a_label_and_builds_from_an_example(build: Build) -> None:
    examples = {
        "openai": {"model": "m"},
        "anthropic": {"model": "m"},
        "command": {"command": "agent"},
        "webhook": {"url": "https://e.com"},
        "echo": {},
    }
    assert set(examples) == set(PROVIDERS)
    for provider, settings in examples.items():
        assert build(provider, settings).provider == provider
        assert describe(AgentConfig(provider, settings), ENV)["label"]
