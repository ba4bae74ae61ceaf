"""The gateway's ASGI app: the REST API the UI uses, live events (SSE) and the static UI."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from cortask.channels.whatsapp.authstore import AuthStoreError
from cortask.channels.whatsapp.channel import ChannelError, NotLinked
from cortask.channels.whatsapp.qr import QrCode
from cortask.contacts.phone import InvalidPhoneNumber, normalize_phone
from cortask.gateway.errors import document_errors, http_error_response
from cortask.gateway.security import Guard
from cortask.service import CortaskService
from cortask.store import StoreError

log = logging.getLogger("cortask.gateway")
STATIC = Path(__file__).parent / "static"
HEARTBEAT_SECONDS = float(os.environ.get("CORTASK_SSE_HEARTBEAT", "15"))


# Exactly the JSON types the schema states: 0.0 is not false, and 1 is not "1".
STRICT = ConfigDict(strict=True)


class ContactIn(BaseModel):
    model_config = STRICT
    phone: str
    name: str | None = None
    permission: str = "write"


class ContactPatch(BaseModel):
    model_config = STRICT
    name: str | None = None
    permission: str | None = None


class EntriesIn(BaseModel):
    model_config = STRICT
    entries: list[str]


class SettingsIn(BaseModel):
    model_config = STRICT
    answer_groups: bool | None = None
    open_to_everyone: bool | None = None
    default_region: str | None = None


class PhoneIn(BaseModel):
    model_config = STRICT
    phone: str


class AgentIn(BaseModel):
    model_config = STRICT
    provider: str
    settings: dict[str, Any] = {}


class Hub:
    """Fan-out of live events to every open event stream."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[tuple[str, Any]]] = []

    def publish(self, kind: str, data: Any) -> None:
        for q in self._queues:
            q.put_nowait((kind, data))

    def subscribe(self) -> asyncio.Queue[tuple[str, Any]]:
        q: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._queues.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, Any]]) -> None:
        if q in self._queues:
            self._queues.remove(q)


class _FreshStaticFiles(StaticFiles):
    """The UI's files, revalidated on every load so a browser never runs an old app.js against a
    newer API."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def qr_json(qr: QrCode) -> dict[str, Any]:
    return {
        "qr": qr.data,
        "png": "data:image/png;base64," + base64.b64encode(qr.png()).decode(),
        "expires_at": qr.expires_at,
    }


def create_app(service: CortaskService, *, bind_host: str = "127.0.0.1", token: str | None = None) -> FastAPI:
    hub = Hub()
    state: dict[str, Any] = {"qr": None, "qr_task": None, "tasks": []}

    async def forward_status() -> None:
        assert service.channel
        async for status in service.channel.subscribe():
            if status.state.value != "linking":
                state["qr"] = None if status.state.value == "open" else state["qr"]
            hub.publish("status", status.to_dict())

    async def forward_activity() -> None:
        assert service.channel
        async for entry in service.channel.activities():
            hub.publish("activity", entry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.store is None:
            await service.start()
        state["tasks"] = [asyncio.create_task(forward_status()), asyncio.create_task(forward_activity())]
        yield
        for task in [*state["tasks"], state["qr_task"]]:
            if task is not None:
                task.cancel()
        await service.close()

    app = FastAPI(title="Cortask WhatsApp gateway", lifespan=lifespan)
    app.add_middleware(BaseHTTPMiddleware, dispatch=Guard(bind_host, token))
    document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "the request body is not valid JSON"}, status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid value')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(request, exc)

    @app.exception_handler(InvalidPhoneNumber)
    async def bad_phone(request: Request, exc: InvalidPhoneNumber) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = 404 if type(exc).__name__ == "NotFound" else 400 if isinstance(exc, ValueError) else 500
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(NotLinked)
    async def not_linked(request: Request, exc: NotLinked) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(ChannelError)
    async def channel_error(request: Request, exc: ChannelError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    @app.exception_handler(AuthStoreError)
    async def auth_error(request: Request, exc: AuthStoreError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    def ctx() -> tuple[Any, Any, int]:
        assert service.store and service.channel and service.workspace
        return service.store, service.channel, service.workspace.id

    async def overview() -> dict[str, Any]:
        store, channel, ws = ctx()
        settings = await store.whatsapp.settings(ws)
        policy = settings.access_policy()
        return {
            "enabled": settings.enabled,
            "paused": settings.paused,
            "status": channel.status.to_dict(),
            "settings": {
                "answer_groups": settings.answer_groups,
                "open_to_everyone": settings.open_to_everyone,
                "default_region": settings.default_region,
            },
            "contacts": [
                {"phone": c.phone, "name": c.name, "permission": c.permission.value} for c in settings.trusted_contacts
            ],
            "allowed_users": list(settings.allowed_users),
            "access": {"sentence": policy.status, "problems": list(policy.problems)},
            "account": channel.account,
            "qr": state["qr"],
        }

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        _, channel, _ = ctx()
        return {"ok": True, "whatsapp": channel.status.state.value}

    @app.get("/api/whatsapp")
    async def whatsapp() -> dict[str, Any]:
        return await overview()

    @app.post("/api/whatsapp")
    async def add_channel() -> dict[str, Any]:
        store, _, ws = ctx()
        await store.whatsapp.set_enabled(ws, True)
        return await overview()

    @app.delete("/api/whatsapp")
    async def remove_channel() -> dict[str, Any]:
        store, channel, ws = ctx()
        await channel.logout()
        await store.whatsapp.set_enabled(ws, False)
        return await overview()

    async def require_enabled() -> None:
        store, _, ws = ctx()
        if not (await store.whatsapp.settings(ws)).enabled:
            raise HTTPException(409, "add the WhatsApp channel first")

    @app.post("/api/whatsapp/qr")
    async def generate_qr() -> dict[str, Any]:
        await require_enabled()
        _, channel, _ = ctx()
        if state["qr"] is not None and state["qr_task"] is not None and not state["qr_task"].done():
            return dict(state["qr"])
        first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def follow() -> None:
            try:
                async for qr in channel.generate_qr():
                    state["qr"] = qr_json(qr)
                    hub.publish("qr", state["qr"])
                    if not first.done():
                        first.set_result(state["qr"])
            except Exception as exc:
                if not first.done():
                    first.set_exception(exc)
            finally:
                state["qr"] = None

        state["qr_task"] = asyncio.create_task(follow())
        async with asyncio.timeout(30):
            return await first

    @app.post("/api/whatsapp/start")
    async def start() -> dict[str, Any]:
        await require_enabled()
        store, channel, ws = ctx()
        await channel.start()
        await store.whatsapp.set_paused(ws, False)  # kept: the next `cortask serve` connects too
        return dict(channel.status.to_dict())

    @app.post("/api/whatsapp/stop")
    async def stop() -> dict[str, Any]:
        _, channel, _ = ctx()
        await channel.stop()
        return dict(channel.status.to_dict())

    @app.post("/api/whatsapp/pause")
    async def pause() -> dict[str, Any]:
        store, channel, ws = ctx()
        await channel.pause()
        await store.whatsapp.set_paused(ws, True)  # kept: the next `cortask serve` stays paused
        return dict(channel.status.to_dict())

    @app.post("/api/whatsapp/logout")
    async def logout() -> dict[str, Any]:
        _, channel, _ = ctx()
        await channel.logout()
        return dict(channel.status.to_dict())

    async def contacts_changed() -> list[dict[str, Any]]:
        await service.reload_policy()
        data = (await overview())["contacts"]
        hub.publish("contacts", data)
        return list(data)

    @app.get("/api/whatsapp/contacts")
    async def contacts() -> list[dict[str, Any]]:
        return list((await overview())["contacts"])

    @app.post("/api/whatsapp/contacts", status_code=201)
    async def add_contact(body: ContactIn) -> dict[str, Any]:
        store, _, ws = ctx()
        contact = await store.whatsapp.add_contact(ws, body.phone, body.permission, body.name)
        await contacts_changed()
        return {"phone": contact.phone, "name": contact.name, "permission": contact.permission.value}

    @app.put("/api/whatsapp/contacts/{phone}")
    async def update_contact(phone: str, body: ContactPatch) -> dict[str, Any]:
        store, _, ws = ctx()
        changes: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True).items()}
        contact = await store.whatsapp.update_contact(ws, phone, **changes)
        await contacts_changed()
        return {"phone": contact.phone, "name": contact.name, "permission": contact.permission.value}

    @app.delete("/api/whatsapp/contacts/{phone}")
    async def remove_contact(phone: str) -> dict[str, Any]:
        store, _, ws = ctx()
        if not await store.whatsapp.remove_contact(ws, phone):
            raise HTTPException(404, f"{phone} is not a trusted contact")
        await contacts_changed()
        return {"ok": True}

    @app.put("/api/whatsapp/allowed-users")
    async def allowed_users(body: EntriesIn) -> dict[str, Any]:
        store, _, ws = ctx()
        await store.whatsapp.set_allowed_users(ws, body.entries)
        await service.reload_policy()
        return await overview()

    @app.put("/api/whatsapp/settings")
    async def settings(body: SettingsIn) -> dict[str, Any]:
        store, _, ws = ctx()
        await store.whatsapp.update_settings(ws, **body.model_dump(exclude_unset=True))
        await service.reload_policy()
        return await overview()

    @app.post("/api/whatsapp/validate-phone")
    async def validate_phone(body: PhoneIn) -> dict[str, Any]:
        store, _, ws = ctx()
        region = (await store.whatsapp.settings(ws)).default_region
        try:
            return {"ok": True, "e164": normalize_phone(body.phone, region)}
        except InvalidPhoneNumber as exc:
            return {"ok": False, "error": str(exc)}

    @app.get("/api/activity")
    async def activity() -> list[dict[str, Any]]:
        _, channel, _ = ctx()
        return list(channel.activity)

    @app.get("/api/agent")
    async def agent() -> dict[str, Any]:
        store, _, ws = ctx()
        shown = await store.agents.for_display(ws)
        active = await service.agent_config()
        return {
            "provider": shown.provider if shown else "echo",
            "settings": dict(shown.settings) if shown else {},
            "active": active.provider,
            "override": service.agent_override is not None,
        }

    @app.put("/api/agent")
    async def set_agent(body: AgentIn) -> dict[str, Any]:
        from cortask.agents import AgentConfig, build_agent

        # Building it validates the settings and says what is missing; it is not kept.
        await build_agent(AgentConfig(body.provider, body.settings), service.environ).aclose()
        store, _, ws = ctx()
        await store.agents.set(ws, body.provider, body.settings)
        return await agent()

    @app.get("/api/sessions")
    async def sessions() -> list[dict[str, Any]]:
        store, _, _ = ctx()
        return [{"id": s.id, "created_at": str(s.created_at)} for s in await store.sessions.recent()]

    @app.get("/api/sessions/{session_id}/history")
    async def history(session_id: str, limit: int = 50) -> list[dict[str, Any]]:
        store, _, _ = ctx()
        return [
            {"role": str(m.role), "text": m.text, "at": str(m.at)}
            for m in await store.sessions.history(session_id, limit)
        ]

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        _, channel, _ = ctx()

        async def stream() -> AsyncIterator[str]:
            yield f"event: status\ndata: {json.dumps(channel.status.to_dict())}\n\n"
            if state["qr"] is not None:
                yield f"event: qr\ndata: {json.dumps(state['qr'])}\n\n"
            queue = hub.subscribe()
            try:
                while True:
                    try:
                        kind, data = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                    except TimeoutError:
                        # A comment line keeps proxies from closing an idle stream and lets us
                        # notice a client that went away.
                        if await request.is_disconnected():
                            return
                        yield ": ping\n\n"
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
            finally:
                hub.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    if STATIC.exists():
        app.mount("/", _FreshStaticFiles(directory=STATIC, html=True), name="ui")
    return app
