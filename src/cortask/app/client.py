"""How the CLI reaches the application layer: one `Client`, chosen once per command.

- `HttpClient` when a gateway runs (it leaves `$CORTASK_HOME/gateway.json`): every action goes
  through its API, so there is never a second WhatsApp connection on one account.
- `LocalClient` when none does: the same actions in this process (`CortaskApp(serving=False)`).

Both have the same methods and return the same models, so a command has one code path and one
JSON shape. Refusals are `AppError`s with the same sentences either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from cortask.app.errors import EXPECTED, AppError, Kind, classify
from cortask.app.models import (
    Agent,
    AgentIn,
    ApprovalIn,
    ApprovalRequest,
    CodeIn,
    CodeLinkStep,
    Contact,
    ContactIn,
    ContactPatch,
    Event,
    LinkStep,
    Origin,
    PairingCode,
    QrCode,
    Status,
    StatusEvent,
    code_link_steps,
    link_steps,
)
from cortask.home import gateway_token_file

if TYPE_CHECKING:
    from cortask.app.actions import CortaskApp

M = TypeVar("M", bound=BaseModel)
OnStatus = Callable[[Status], None]


class Client(Protocol):
    """What the CLI can ask, whether a gateway runs or not."""

    async def status(self) -> Status: ...
    async def start(self) -> Status: ...
    async def pause(self) -> Status: ...
    async def stop(self, on_status: OnStatus | None = None) -> Status: ...
    async def logout(self) -> Status: ...
    def link(self) -> AsyncIterator[LinkStep]: ...
    def link_by_code(self, body: CodeIn) -> AsyncIterator[CodeLinkStep]: ...
    async def contacts(self) -> list[Contact]: ...
    async def add_contact(self, body: ContactIn) -> Contact: ...
    async def update_contact(self, phone: str, body: ContactPatch) -> Contact: ...
    async def remove_contact(self, phone: str) -> None: ...
    async def agent(self) -> Agent: ...
    async def set_agent(self, body: AgentIn) -> Agent: ...
    async def approvals(self) -> list[ApprovalRequest]: ...
    async def approve(self, code: str, body: ApprovalIn) -> Contact: ...
    async def reject(self, code: str) -> None: ...
    async def aclose(self) -> None: ...


def gateway_address(home: Path) -> tuple[str, str | None] | None:
    """The running gateway's URL and token (from `gateway-token`, readable by its owner only), or
    None when none answers. Without the token the gateway refuses us: its answer says so."""
    info = home / "gateway.json"
    if not info.exists():
        return None
    try:
        data = json.loads(info.read_text())
        httpx.get(data["url"] + "api/health", timeout=2)
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None  # left behind by a gateway that is gone (or half written)
    try:
        token: str | None = gateway_token_file(home).read_text().strip()
    except OSError:
        token = None
    return str(data["url"]), token


async def open_client(
    home: Path, gateway: tuple[str, str | None] | None, environ: Mapping[str, str] = os.environ
) -> Client:
    """The client for this home: through the running gateway (see `gateway_address`), or in this
    process when there is none."""
    if gateway is not None:
        return HttpClient(*gateway)
    return await LocalClient.open(home, environ)


class LocalClient:
    """The application layer in this process, for when no gateway runs."""

    def __init__(self, app: CortaskApp) -> None:
        self.app = app

    @classmethod
    async def open(cls, home: Path, environ: Mapping[str, str] = os.environ) -> LocalClient:
        # Imported here: the service pulls in the channel and the agents, which a command that
        # goes through the gateway never needs.
        from cortask.app.actions import CortaskApp
        from cortask.service import CortaskService

        with _as_app_errors():
            app = CortaskApp(CortaskService(home, environ=environ), serving=False)
            await app.open()
        return cls(app)

    async def status(self) -> Status:
        with _as_app_errors():
            return await self.app.status()

    async def start(self) -> Status:
        with _as_app_errors():
            return await self.app.start()

    async def pause(self) -> Status:
        with _as_app_errors():
            return await self.app.pause()

    async def stop(self, on_status: OnStatus | None = None) -> Status:
        with _as_app_errors(), self.app.events.subscribe() as events:
            follower = asyncio.create_task(_pass_statuses(events, on_status))
            try:
                return await self.app.stop()
            finally:
                follower.cancel()

    async def logout(self) -> Status:
        with _as_app_errors():
            return await self.app.logout()

    async def link(self) -> AsyncIterator[LinkStep]:
        with _as_app_errors():
            async for step in self.app.link():
                yield step

    async def link_by_code(self, body: CodeIn) -> AsyncIterator[CodeLinkStep]:
        with _as_app_errors():
            async for step in self.app.link_by_code(body):
                yield step

    async def contacts(self) -> list[Contact]:
        with _as_app_errors():
            return await self.app.contacts()

    async def add_contact(self, body: ContactIn) -> Contact:
        with _as_app_errors():
            return await self.app.add_contact(body)

    async def update_contact(self, phone: str, body: ContactPatch) -> Contact:
        with _as_app_errors():
            return await self.app.update_contact(phone, body)

    async def remove_contact(self, phone: str) -> None:
        with _as_app_errors():
            await self.app.remove_contact(phone)

    async def agent(self) -> Agent:
        with _as_app_errors():
            return await self.app.agent()

    async def set_agent(self, body: AgentIn) -> Agent:
        with _as_app_errors():
            return await self.app.set_agent(body, origin=Origin.MACHINE)

    async def approvals(self) -> list[ApprovalRequest]:
        with _as_app_errors():
            return await self.app.approvals()

    async def approve(self, code: str, body: ApprovalIn) -> Contact:
        with _as_app_errors():
            return await self.app.approve(code, body)

    async def reject(self, code: str) -> None:
        with _as_app_errors():
            await self.app.reject(code)

    async def aclose(self) -> None:
        await self.app.close()


class HttpClient:
    """The gateway's API, answering with the same models."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url + "api", headers=headers, timeout=60)

    async def _call(self, model: type[M], method: str, path: str, body: BaseModel | None = None) -> M:
        return model.model_validate(await self._send(method, path, body))

    async def _send(self, method: str, path: str, body: BaseModel | None = None) -> object:
        content = body.model_dump(mode="json", exclude_unset=True) if body is not None else None
        try:
            resp = await self._http.request(method, path, json=content)
            data: object = resp.json()
        except httpx.HTTPError as exc:
            raise AppError(f"the Cortask gateway did not answer ({exc}): is it still running?", Kind.FAILED) from None
        except ValueError:
            raise AppError(f"the Cortask gateway answered {resp.status_code} without JSON", Kind.FAILED) from None
        if resp.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            kind = Kind(resp.status_code) if resp.status_code in Kind._value2member_map_ else Kind.FAILED
            raise AppError(str(error or data), kind)
        return data

    async def status(self) -> Status:
        return await self._call(Status, "GET", "/whatsapp/status")

    async def start(self) -> Status:
        return await self._call(Status, "POST", "/whatsapp/start")

    async def pause(self) -> Status:
        return await self._call(Status, "POST", "/whatsapp/pause")

    async def stop(self, on_status: OnStatus | None = None) -> Status:
        return await self._call(Status, "POST", "/whatsapp/stop")

    async def logout(self) -> Status:
        return await self._call(Status, "POST", "/whatsapp/logout")

    async def link(self) -> AsyncIterator[LinkStep]:
        """Follow the event stream, then ask for a code: nothing published in between is missed."""
        async with self._http.stream("GET", "/events", timeout=None) as stream:
            lines = stream.aiter_lines()
            first = await _next_event(lines)  # the stream's opening status: we are subscribed
            if isinstance(first, StatusEvent):
                yield first
            qr = await self._send("POST", "/whatsapp/qr")
            async for step in link_steps(QrCode.model_validate(qr), _events(lines)):
                yield step

    async def link_by_code(self, body: CodeIn) -> AsyncIterator[CodeLinkStep]:
        """As `link`, by phone number: follow the event stream, then ask for a code."""
        async with self._http.stream("GET", "/events", timeout=None) as stream:
            lines = stream.aiter_lines()
            first = await _next_event(lines)
            if isinstance(first, StatusEvent):
                yield first
            code = await self._send("POST", "/whatsapp/code", body)
            async for step in code_link_steps(PairingCode.model_validate(code), _events(lines)):
                yield step

    async def contacts(self) -> list[Contact]:
        return _CONTACTS.validate_python(await self._send("GET", "/whatsapp/contacts"))

    async def add_contact(self, body: ContactIn) -> Contact:
        return await self._call(Contact, "POST", "/whatsapp/contacts", body)

    async def update_contact(self, phone: str, body: ContactPatch) -> Contact:
        return await self._call(Contact, "PUT", f"/whatsapp/contacts/{quote(phone)}", body)

    async def remove_contact(self, phone: str) -> None:
        await self._send("DELETE", f"/whatsapp/contacts/{quote(phone)}")

    async def agent(self) -> Agent:
        return await self._call(Agent, "GET", "/agent")

    async def set_agent(self, body: AgentIn) -> Agent:
        return await self._call(Agent, "PUT", "/agent", body)

    async def approvals(self) -> list[ApprovalRequest]:
        return _APPROVALS.validate_python(await self._send("GET", "/whatsapp/approvals"))

    async def approve(self, code: str, body: ApprovalIn) -> Contact:
        return await self._call(Contact, "POST", f"/whatsapp/approvals/{quote(code)}/approve", body)

    async def reject(self, code: str) -> None:
        await self._send("POST", f"/whatsapp/approvals/{quote(code)}/reject")

    async def aclose(self) -> None:
        await self._http.aclose()


_CONTACTS = TypeAdapter(list[Contact])
_APPROVALS = TypeAdapter(list[ApprovalRequest])
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


async def _next_event(lines: AsyncIterator[str]) -> Event:
    """The next event of a Server-Sent Events stream (comments and heartbeats skipped)."""
    name = ""
    async for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            return _EVENT.validate_python({"event": name, "data": json.loads(line[6:])})
    raise AppError("the gateway closed its event stream", Kind.FAILED)


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    while True:
        yield await _next_event(lines)


async def _pass_statuses(events: AsyncIterator[Event], on_status: OnStatus | None) -> None:
    async for event in events:
        if on_status is not None and isinstance(event, StatusEvent):
            on_status(event.data)


@contextlib.contextmanager
def _as_app_errors() -> Iterator[None]:
    try:
        yield
    except EXPECTED as exc:
        raise classify(exc) from None
