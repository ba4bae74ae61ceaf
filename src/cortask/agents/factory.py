"""From stored configuration to a working agent, and to a description safe to show.

An `AgentConfig` is a provider name and a plain dict of settings, so a JSON column can hold it
(`to_dict` / `from_dict`). `build_agent` checks it and builds the agent, or raises `ValueError` saying
which setting to fix; `describe` shows it with every secret masked, and never raises.

Settings, by provider (``*`` = required):

``openai`` (any OpenAI-compatible chat completions endpoint)
    ``model``\\*, ``base_url`` (default ``https://api.openai.com/v1``), ``api_key`` or ``api_key_env``,
    ``system_prompt``, ``timeout`` (s, 60), ``max_history`` (turns, 20), ``max_tokens``, ``temperature``,
    ``max_retries`` (2). The key: ``api_key``, else the variable ``api_key_env`` names, else, for OpenAI's
    own URL only, ``OPENAI_API_KEY``; it is required for OpenAI's URL and optional elsewhere (Ollama,
    vLLM and LM Studio need none). ``OPENAI_API_KEY`` is not sent to other hosts unless
    ``api_key_env`` says so: an OpenAI key should not leak to OpenRouter or a LAN box by default.
``anthropic``
    ``model``\\*, key\\* (``api_key``, else the variable ``api_key_env`` names, else ``ANTHROPIC_API_KEY``),
    ``base_url`` (default ``https://api.anthropic.com``), ``system_prompt``, ``max_tokens`` (1024),
    ``timeout`` (s, 60), ``max_history`` (turns, 20), ``max_retries`` (2).
``command``
    ``command``\\* (a string split into words, or a list), ``timeout`` (s, 60), ``cwd``, ``shell`` (false),
    ``env`` (a list of variable names passed to the program on top of the allow-list in `cortask.childenv`).
``webhook``
    ``url``\\*, ``timeout`` (s, 30), ``max_history`` (turns, 20), ``headers`` (name: value), ``token`` or
    ``token_env`` (sent as ``Authorization: Bearer <token>``).
``echo``
    ``prefix`` (default ``"Echo: "``).
Where a key comes from a variable (``api_key_env``, ``token_env``), its name must match `KEY_ENV_PATTERN`:
capitals, digits and underscores ending in ``_KEY``, ``_API_KEY`` or ``_TOKEN`` (``OPENAI_API_KEY``,
``MY_AGENT_TOKEN``), and never ``CORTASK_*`` (ours, e.g. the gateway token). So a setting cannot
name an arbitrary variable of the service and send it to an endpoint.

Machine-only (`machine_only`): the ``command`` provider and every setting that names an executable,
a directory or an environment variable (`MACHINE_ONLY_SETTINGS`). The application layer accepts
them only from the machine itself (the CLI in-process, a settings file), never over HTTP.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cortask.agents import anthropic as anthropic_agent
from cortask.agents import openai_compat
from cortask.agents.base import Agent, display_url
from cortask.agents.command import CommandAgent, command_argv
from cortask.agents.echo import DEFAULT_PREFIX, EchoAgent
from cortask.agents.webhook import WebhookAgent
from cortask.redact import mask_settings, mask_text

KEY_ENV_PATTERN = re.compile(r"^(?!CORTASK_)[A-Z][A-Z0-9_]*_(API_KEY|KEY|TOKEN)$")
MACHINE_ONLY_PROVIDERS = ("command",)
MACHINE_ONLY_SETTINGS = ("command", "shell", "cwd", "env", "api_key_env", "token_env")

LABELS: dict[str, str] = {
    "openai": "OpenAI-compatible",
    "anthropic": "Anthropic",
    "command": "Local command",
    "webhook": "HTTP webhook",
    "echo": "Echo (demo)",
}
PROVIDERS: tuple[str, ...] = tuple(LABELS)

SETTINGS: dict[str, tuple[str, ...]] = {
    "openai": (
        "model",
        "base_url",
        "api_key",
        "api_key_env",
        "system_prompt",
        "timeout",
        "max_history",
        "max_tokens",
        "temperature",
        "max_retries",
    ),
    "anthropic": (
        "model",
        "base_url",
        "api_key",
        "api_key_env",
        "system_prompt",
        "max_tokens",
        "timeout",
        "max_history",
        "max_retries",
    ),
    "command": ("command", "timeout", "cwd", "shell", "env"),
    "webhook": ("url", "timeout", "max_history", "headers", "token", "token_env"),
    "echo": ("prefix",),
}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Which agent answers, and its settings (JSON-compatible values; secrets included, masked in `repr`)."""

    provider: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str):
            raise ValueError(f"the agent provider must be a name such as 'openai', got {self.provider!r}")
        if not isinstance(self.settings, Mapping):
            raise ValueError(f"the agent settings must be a mapping of names to values, got {type(self.settings)}")
        object.__setattr__(self, "provider", self.provider.strip().lower())
        object.__setattr__(self, "settings", dict(self.settings))

    def __repr__(self) -> str:
        return f"AgentConfig(provider={self.provider!r}, settings={_masked_settings(self.settings)!r})"

    def to_dict(self) -> dict[str, Any]:
        """For storage: ``{"provider": ..., "settings": {...}}``, secrets included."""
        return {"provider": self.provider, "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentConfig:
        if not isinstance(data, Mapping) or not isinstance(data.get("provider"), str):
            raise ValueError('an agent configuration is {"provider": "<name>", "settings": {...}}')
        settings = data.get("settings") or {}
        return cls(provider=data["provider"], settings=settings)


def build_agent(config: AgentConfig, environ: Mapping[str, str] = os.environ) -> Agent:
    """The agent `config` describes. `environ` supplies keys named by variable (and the command's environment)."""
    builder = _BUILDERS.get(config.provider)
    if builder is None:
        raise ValueError(f"unknown agent provider {config.provider!r}: set provider to one of {', '.join(PROVIDERS)}")
    unknown = sorted(set(config.settings) - set(SETTINGS[config.provider]))
    if unknown:
        raise ValueError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for the "
            f"{config.provider} agent; it knows {', '.join(SETTINGS[config.provider])}"
        )
    return builder(_Settings(config.provider, config.settings), environ)


def machine_only(config: AgentConfig) -> list[str]:
    """What in `config` may be set only on the machine: the provider and settings, as ``provider``/``settings.NAME``."""
    found = ["provider"] if config.provider in MACHINE_ONLY_PROVIDERS else []
    return found + [f"settings.{name}" for name in MACHINE_ONLY_SETTINGS if name in config.settings]


def describe(config: AgentConfig, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`config` for display: provider, a one-line summary, settings with secrets masked, where the key comes from.

    Never raises, so a page can list a stored configuration that no longer builds.
    """
    settings = config.settings
    provider = config.provider
    summary = ""
    key: dict[str, Any] | None = None
    if provider in ("openai", "anthropic"):
        default_url = openai_compat.DEFAULT_BASE_URL if provider == "openai" else anthropic_agent.DEFAULT_BASE_URL
        base_url = settings.get("base_url") or default_url
        summary = f"{settings.get('model') or '(no model)'} at {display_url(str(base_url))}"
        source, value = _key_source(provider, settings, environ)
        key = {"source": source, "set": bool(value)}
    elif provider == "command":
        command = settings.get("command")
        line = " ".join(map(str, command)) if isinstance(command, list) else str(command or "(no command)")
        summary = mask_text(line)
    elif provider == "webhook":
        summary = f"POST {display_url(str(settings.get('url') or '(no URL)'))}"
        if settings.get("token") or settings.get("token_env"):
            source = "settings.token" if settings.get("token") else f"${settings.get('token_env')}"
            value = settings.get("token") or environ.get(str(settings.get("token_env")))
            key = {"source": source, "set": bool(value)}
    elif provider == "echo":
        summary = f"answers {settings.get('prefix', DEFAULT_PREFIX)!r} + the message"
    else:
        summary = "unknown provider"
    return {
        "provider": provider,
        "label": LABELS.get(provider, provider),
        "summary": summary,
        "settings": _masked_settings(settings),
        "key": key,
    }


# --- settings, read and checked -------------------------------------------------------------------------------


class _Settings:
    """A provider's settings dict, read with type checks that name the setting to fix."""

    def __init__(self, provider: str, values: Mapping[str, Any]) -> None:
        self.provider = provider
        self.values = values

    def bad(self, name: str, expected: str) -> ValueError:
        return ValueError(f"settings.{name} of the {self.provider} agent must be {expected}, got {self.values[name]!r}")

    def text(self, name: str, *, required: str | None = None) -> str | None:
        """A string setting; `required` is the example shown when it is missing."""
        value = self.values.get(name)
        if value is None or value == "":
            if required is not None:
                raise ValueError(f"the {self.provider} agent needs settings.{name}: {required}")
            return None
        if not isinstance(value, str):
            raise self.bad(name, "a string")
        return value

    def number(self, name: str, default: float) -> float:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.bad(name, "a positive number")
        return float(value)

    def optional_number(self, name: str) -> float | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.bad(name, "a number, 0 or more")
        return float(value)

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.optional_integer(name, minimum=minimum)
        return default if value is None else value

    def optional_integer(self, name: str, *, minimum: int = 0) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.bad(name, f"a whole number, {minimum} or more")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.bad(name, "true or false")
        return value

    def string_map(self, name: str) -> dict[str, str]:
        value = self.values.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.bad(name, "a mapping of names to string values")
        return dict(value)

    def names(self, name: str) -> list[str]:
        """A list of environment variable names (a comma-separated string is accepted from the CLI)."""
        value = self.values.get(name)
        if value is None or value == "":
            return []
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(
            isinstance(item, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item.strip()) for item in items
        ):
            raise self.bad(name, "a list of environment variable names")
        return [item.strip() for item in items]

    def secret(self, name: str, env_name: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The secret given as settings.`name` or in the variable settings.`env_name` names, and where it came from."""
        value = self.text(name)
        variable = self.text(env_name)
        if value is not None and variable is not None:
            raise ValueError(f"the {self.provider} agent has both settings.{name} and settings.{env_name}: keep one")
        if value is not None:
            return value, f"settings.{name}"
        if variable is not None:
            if not KEY_ENV_PATTERN.match(variable):
                raise ValueError(
                    f"settings.{env_name} of the {self.provider} agent must name a key variable such as "
                    f"OPENAI_API_KEY or MY_AGENT_TOKEN (capitals, digits and _, ending in _KEY, _API_KEY or "
                    f"_TOKEN, not CORTASK_*), got {variable!r}"
                )
            from_env = environ.get(variable)
            if not from_env:
                raise ValueError(
                    f"settings.{env_name} of the {self.provider} agent names {variable}, but {variable} is not set "
                    f"in the environment: set it, or put the value in settings.{name}"
                )
            return from_env, variable
        return None, None


def _key_source(provider: str, settings: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str | None]:
    """Where the key of an LLM provider comes from (a description) and its value, without validating."""
    if settings.get("api_key"):
        return "settings.api_key", str(settings["api_key"])
    if settings.get("api_key_env"):
        return f"${settings['api_key_env']}", environ.get(str(settings["api_key_env"]))
    if provider == "anthropic":
        return "$ANTHROPIC_API_KEY", environ.get("ANTHROPIC_API_KEY")
    if _is_openai(str(settings.get("base_url") or openai_compat.DEFAULT_BASE_URL)):
        return "$OPENAI_API_KEY", environ.get("OPENAI_API_KEY")
    return "none (the server needs none)", None


def _is_openai(base_url: str) -> bool:
    return base_url.rstrip("/") == openai_compat.DEFAULT_BASE_URL


def _build_openai(s: _Settings, environ: Mapping[str, str]) -> Agent:
    model = s.text("model", required="the model name, e.g. 'gpt-4o-mini' (OpenAI) or 'llama3.2' (Ollama)")
    assert model is not None
    base_url = s.text("base_url") or openai_compat.DEFAULT_BASE_URL
    _check_http_url("base_url", base_url)
    api_key, source = s.secret("api_key", "api_key_env", environ)
    if api_key is None and _is_openai(base_url):
        api_key, source = environ.get("OPENAI_API_KEY") or None, "OPENAI_API_KEY"
        if api_key is None:
            raise ValueError(
                "the openai agent needs an API key for OpenAI: set OPENAI_API_KEY in the environment, or "
                "settings.api_key, or settings.api_key_env to the name of a variable that holds it"
            )
    hint = f"the API key ({source})" if source else "the API key (settings.api_key; none is set)"
    return openai_compat.OpenAICompatAgent(
        model=model,
        api_key=api_key,
        base_url=base_url,
        system_prompt=s.text("system_prompt"),
        timeout=s.number("timeout", openai_compat.DEFAULT_TIMEOUT),
        max_history=s.integer("max_history", openai_compat.DEFAULT_MAX_HISTORY),
        max_tokens=s.optional_integer("max_tokens", minimum=1),
        temperature=s.optional_number("temperature"),
        max_retries=s.integer("max_retries", openai_compat.DEFAULT_MAX_RETRIES),
        key_hint=hint,
    )


def _build_anthropic(s: _Settings, environ: Mapping[str, str]) -> Agent:
    model = s.text("model", required="the model name, e.g. 'claude-sonnet-4-5'")
    assert model is not None
    base_url = s.text("base_url") or anthropic_agent.DEFAULT_BASE_URL
    _check_http_url("base_url", base_url)
    api_key, source = s.secret("api_key", "api_key_env", environ)
    if api_key is None:
        api_key, source = environ.get("ANTHROPIC_API_KEY") or None, "ANTHROPIC_API_KEY"
        if api_key is None:
            raise ValueError(
                "the anthropic agent needs an API key: set ANTHROPIC_API_KEY in the environment, or "
                "settings.api_key, or settings.api_key_env to the name of a variable that holds it"
            )
    return anthropic_agent.AnthropicAgent(
        model=model,
        api_key=api_key,
        base_url=base_url,
        system_prompt=s.text("system_prompt"),
        max_tokens=s.integer("max_tokens", anthropic_agent.DEFAULT_MAX_TOKENS, minimum=1),
        timeout=s.number("timeout", anthropic_agent.DEFAULT_TIMEOUT),
        max_history=s.integer("max_history", anthropic_agent.DEFAULT_MAX_HISTORY),
        max_retries=s.integer("max_retries", anthropic_agent.DEFAULT_MAX_RETRIES),
        key_hint=f"the API key ({source})",
    )


def _build_command(s: _Settings, environ: Mapping[str, str]) -> Agent:
    command = s.values.get("command")
    if command is None or command == "" or command == []:
        raise ValueError(
            "the command agent needs settings.command: the program to run, e.g. 'python3 /path/to/agent.py'"
        )
    if not isinstance(command, str) and not (isinstance(command, list) and all(isinstance(a, str) for a in command)):
        raise s.bad("command", "a string or a list of strings")
    shell = s.flag("shell", False)
    try:
        command_argv(command, shell=shell)
    except ValueError as exc:
        raise ValueError(f"settings.command of the command agent: {exc}") from None
    return CommandAgent(
        command,
        timeout=s.number("timeout", 60.0),
        cwd=s.text("cwd"),
        shell=shell,
        environ=environ,
        pass_env=s.names("env"),
    )


def _build_webhook(s: _Settings, environ: Mapping[str, str]) -> Agent:
    url = s.text("url", required="the endpoint to POST messages to, e.g. 'https://example.com/cortask'")
    assert url is not None
    _check_http_url("url", url)
    headers = s.string_map("headers")
    token, _ = s.secret("token", "token_env", environ)
    if token is not None:
        if any(name.lower() == "authorization" for name in headers):
            raise ValueError("the webhook agent has both settings.token and an Authorization header: keep one")
        headers["Authorization"] = f"Bearer {token}"
    return WebhookAgent(
        url,
        timeout=s.number("timeout", 30.0),
        headers=headers,
        max_history=s.integer("max_history", 20),
    )


def _build_echo(s: _Settings, environ: Mapping[str, str]) -> Agent:
    prefix = s.values.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str):
        raise s.bad("prefix", "a string")
    return EchoAgent(prefix)


def _check_http_url(name: str, url: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise ValueError(f"settings.{name} must be an http:// or https:// URL, got {display_url(url)!r}")


_BUILDERS: dict[str, Callable[[_Settings, Mapping[str, str]], Agent]] = {
    "openai": _build_openai,
    "anthropic": _build_anthropic,
    "command": _build_command,
    "webhook": _build_webhook,
    "echo": _build_echo,
}

# --- masking ----------------------------------------------------------------------------------------------------


def _masked_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return mask_settings(settings)
