"""Agents: what answers a WhatsApp message. One interface (`Agent.reply`), five providers, one factory.

    agent = build_agent(AgentConfig("openai", {"model": "llama3.2", "base_url": "http://localhost:11434/v1"}))
    text = await agent.reply(Session("whatsapp:...", "default", "...@s.whatsapp.net"), "hello")

Every failure is an `AgentError` with a sentence for a person. The LLM SDKs are imported only when an
agent of theirs is built.
"""

from cortask.agents.anthropic import AnthropicAgent
from cortask.agents.base import Agent, AgentError, FailureKind, Role, Session, Turn
from cortask.agents.command import CommandAgent
from cortask.agents.echo import EchoAgent
from cortask.agents.factory import PROVIDERS, AgentConfig, build_agent, describe
from cortask.agents.openai_compat import OpenAICompatAgent
from cortask.agents.webhook import WebhookAgent

__all__ = [
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
]
