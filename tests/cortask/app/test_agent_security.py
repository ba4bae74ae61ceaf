"""Issue #12: what runs a program or reads the environment is set only on the machine, and a
stored key is never replayed to a new address (a real store, a real HTTP server on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from fastapi.testclient import TestClient

from cortask.agents import Session, build_agent
from cortask.app.client import LocalClient
from cortask.app.errors import AppError, Kind
from cortask.app.models import AgentIn, Origin
from cortask.channels.whatsapp.config import Sandbox
from cortask.gateway.app import create_app
from cortask.service import CortaskService

OLD_KEY = "sk-proj-OldKeyThatMustNeverTravel0123456789abcdef"
TOKEN = "t" * 40
SANDBOX = Sandbox("ws://127.0.0.1:9/ws/chat", "00" * 32)
SESSION = Session(session_id="s", workspace="default", chat_jid="4915123456789@s.whatsapp.net")


class Endpoint:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        self.seen: list[str] = []  # headers and body of each request, as text
        self.url = ""

    async def _chat(self, request: web.Request) -> web.Response:
        self.seen.append(f"{dict(request.headers)!r} {(await request.read()).decode()}")
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    runners = []
    pair = (Endpoint(), Endpoint())
    for endpoint in pair:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", endpoint._chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        endpoint.url = f"http://127.0.0.1:{port}/v1"
        runners.append(runner)
    yield pair
    for runner in runners:
        await runner.cleanup()


async def ask(client: LocalClient) -> None:
    """One message through the agent the store now describes."""
    agent = build_agent(await client.app.service.agent_config(), {})
    try:
        assert await agent.reply(SESSION, "hello") == "hi"
    finally:
        await agent.aclose()


async def test_a_new_base_url_gets_no_stored_key(tmp_path: Path, endpoints: tuple[Endpoint, Endpoint]) -> None:
    first, second = endpoints
    client = await LocalClient.open(tmp_path / "home", environ={})
    try:
        await client.app.set_agent(
            AgentIn(provider="openai", settings={"model": "m", "base_url": first.url, "api_key": OLD_KEY}),
            origin=Origin.MACHINE,
        )
        shown = (await client.agent()).settings
        assert shown["api_key"] == "********"
        # The page sends back what it was shown: same address, the key stays.
        await client.app.set_agent(AgentIn(provider="openai", settings={**shown, "model": "m2"}), origin=Origin.NETWORK)
        await ask(client)
        assert OLD_KEY in first.seen[-1]
        # Now the same, pointed at another address: the masked key is not restored.
        moved = {**shown, "base_url": second.url}
        await client.app.set_agent(AgentIn(provider="openai", settings=moved), origin=Origin.NETWORK)
        assert "api_key" not in (await client.agent()).settings
        await ask(client)
        assert second.seen and all(OLD_KEY not in request and "********" not in request for request in second.seen)
        # A change of provider drops it too.
        await client.app.set_agent(
            AgentIn(provider="openai", settings={"model": "m", "base_url": first.url, "api_key": OLD_KEY}),
            origin=Origin.MACHINE,
        )
        shown = (await client.agent()).settings
        with pytest.raises(ValueError, match="needs an API key"):  # the masked key is not carried over
            await client.app.set_agent(AgentIn(provider="anthropic", settings=shown), origin=Origin.NETWORK)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("provider", "settings", "named"),
    [
        ("command", {"command": "python3 agent.py"}, "provider, settings.command"),
        ("openai", {"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "OTHER_API_KEY"}, "api_key_env"),
        ("webhook", {"url": "http://127.0.0.1:9/h", "token_env": "HOOK_TOKEN"}, "settings.token_env"),
    ],
)
def test_the_http_api_refuses_machine_only_settings_and_says_how(
    tmp_path: Path, provider: str, settings: dict[str, object], named: str
) -> None:
    service = CortaskService(tmp_path / "home", sandbox=SANDBOX, environ={"OTHER_API_KEY": "x", "HOOK_TOKEN": "y"})
    with TestClient(create_app(service, token=TOKEN), base_url="http://127.0.0.1") as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        answer = http.put("/api/agent", json={"provider": provider, "settings": settings}, headers=auth)
        assert answer.status_code == 403
        sentence = answer.json()["error"]
        assert named in sentence and "only on the machine" in sentence
        assert "cortask agent set command --set" in sentence
        assert http.get("/api/agent", headers=auth).json()["provider"] == "echo"  # nothing changed


async def test_the_machine_sets_them_and_the_api_may_send_them_back_unchanged(tmp_path: Path) -> None:
    client = await LocalClient.open(tmp_path / "home", environ={})
    try:
        command = AgentIn(provider="command", settings={"command": "python3 agent.py", "env": ["MY_TOOL_KEY"]})
        await client.set_agent(command)  # the in-process client is the machine
        shown = await client.agent()
        assert shown.provider == "command"
        same = AgentIn(provider="command", settings={**shown.settings, "timeout": 5})
        assert (await client.app.set_agent(same, origin=Origin.NETWORK)).settings["timeout"] == 5
        with pytest.raises(AppError) as refused:
            changed = AgentIn(provider="command", settings={**shown.settings, "command": "sh -c 'curl evil'"})
            await client.app.set_agent(changed, origin=Origin.NETWORK)
        assert refused.value.kind is Kind.FORBIDDEN and "settings.command" in str(refused.value)
    finally:
        await client.aclose()


def test_key_variables_must_match_the_pattern(tmp_path: Path) -> None:
    from cortask.agents import AgentConfig
    from cortask.agents.factory import KEY_ENV_PATTERN

    for good in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_AGENT_TOKEN", "LAN_KEY"):
        assert KEY_ENV_PATTERN.match(good)
    for bad in ("CORTASK_TOKEN", "HOME", "PATH", "openai_api_key", "AWS_SECRET_ACCESS_KEY_ID", "KEY", "_KEY"):
        assert not KEY_ENV_PATTERN.match(bad)
        with pytest.raises(ValueError, match="must name a key variable"):
            build_agent(AgentConfig("openai", {"model": "m", "api_key_env": bad}), {bad: "v"})
