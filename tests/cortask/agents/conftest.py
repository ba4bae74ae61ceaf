"""A real HTTP server on 127.0.0.1 that records what it is sent and answers as each test tells it to."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from cortask.agents import Session, Turn


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    raw: web.Request  # for handlers that answer in pieces

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Recorded], Awaitable[web.StreamResponse]]


class LocalServer:
    """Routes by path; an unrouted path answers 404. `stall` answers only when the test ends."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[str, Handler] = {}
        self.release = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def respond(self, path: str, body: Any = None, *, status: int = 200, text: str | None = None, **kw: Any) -> None:
        """Answer `path` with JSON `body` (or raw `text`) and `status`; extra keywords go to web.Response."""

        async def handler(_: Recorded) -> web.StreamResponse:
            if text is not None:
                return web.Response(text=text, status=status, **kw)
            return web.json_response(body, status=status, **kw)

        self.route(path, handler)

    def stall(self, path: str) -> None:
        """Accept requests to `path` and never answer them (until the test is over)."""

        async def handler(_: Recorded) -> web.StreamResponse:
            await self.release.wait()
            return web.json_response({})

        self.route(path, handler)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(request.method, request.path, dict(request.headers), await request.read(), request)
        self.requests.append(recorded)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.json_response({"error": {"message": f"no route for {request.path}"}}, status=404)
        return await handler(recorded)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    await local.start()
    yield local
    await local.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


MakeSession = Callable[..., Session]


def _make_session(*history: tuple[str, str], phone: str | None = "+4915123456789", name: str | None = "Ada") -> Session:
    return Session(
        session_id="whatsapp:4915123456789@s.whatsapp.net",
        workspace="default",
        chat_jid="4915123456789@s.whatsapp.net",
        sender_phone=phone,
        sender_name=name,
        history=tuple(Turn(role, text) for role, text in history),  # type: ignore[arg-type]
    )


@pytest.fixture
def make_session() -> MakeSession:
    """A session in a 1:1 chat with the given (role, text) history."""
    return _make_session


@pytest.fixture
def session() -> Session:
    """A chat with three earlier turns, the last one a message the agent never answered."""
    return _make_session(("user", "hi"), ("assistant", "Hello! How can I help?"), ("user", "what time is it?"))
