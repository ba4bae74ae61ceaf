"""The JSON control API on loopback: what tests, scripts and the CLI use to drive wasim."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

from aiohttp import web

from wasim.protocol.pairing import PairingError
from wasim.server.directory import AccountView, ContactView, Directory
from wasim.server.events import EventLog
from wasim.server.faults import Fault, Faults
from wasim.server.linkcode import CodeLinking
from wasim.server.messaging import Messaging
from wasim.server.phone import SimulatedPhone

log = logging.getLogger("wasim.control")
STATIC = Path(__file__).parent / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Snapshot(TypedDict):
    url: str
    root_public_key: str
    accounts: list[AccountView]
    contacts: list[ContactView]


@dataclass(frozen=True, slots=True)
class ControlParts:
    """The parts the control API drives (`Wasim.control` is one)."""

    events: EventLog
    directory: Directory
    phone: SimulatedPhone
    messaging: Messaging
    faults: Faults
    snapshot: Callable[[], Snapshot]
    link_codes: CodeLinking | None = None


class Controlled(Protocol):
    """Whatever offers its parts to the control API: a `Wasim`."""

    @property
    def control(self) -> ControlParts: ...


class BadRequest(Exception):
    pass


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return _error(400, str(exc))
    except PairingError as exc:
        return _error(409, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name!r}")
        return None
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"field {name!r} must be a {kind.__name__}")
    return value


# The handlers live at module level and find the parts on their app: one function per route.
_PARTS = web.AppKey("parts", ControlParts)
_routes = web.RouteTableDef()


@_routes.get("/status")
async def _status(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    return web.json_response(parts.snapshot())


@_routes.get("/devices")
async def _devices(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    return web.json_response({"accounts": parts.snapshot()["accounts"]})


@_routes.post("/scan")
async def _scan(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    result = await parts.phone.scan(
        _field(data, "qr", str),
        phone=_field(data, "phone", str, False),
        name=data.get("name") or "Sim User",
    )
    return web.json_response(
        {"ok": True, "phone": result.phone, "device_jid": result.device_jid, "lid": result.lid_jid}
    )


@_routes.post("/pair")
async def _pair(request: web.Request) -> web.Response:
    """The phone's "Link with phone number instead": the person types the code shown."""
    parts = request.app[_PARTS]
    if parts.link_codes is None:
        raise BadRequest("this wasim does not link by code")
    data = await _body(request)
    result = await parts.link_codes.pair(_field(data, "code", str), phone=_field(data, "phone", str, False))
    return web.json_response(
        {"ok": True, "phone": result.phone, "device_jid": result.device_jid, "lid": result.lid_jid}
    )


@_routes.get("/phone")
async def _phone_page(request: web.Request) -> web.Response:
    return web.Response(text=(STATIC / "phone.html").read_text(), content_type="text/html")


@_routes.post("/scan-image")
async def _scan_image(request: web.Request) -> web.Response:
    """The simulated phone's camera: decode the QR in an uploaded image, then scan it."""
    parts = request.app[_PARTS]
    data = await request.read()
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # optional: only the demo's phone page needs it
        raise BadRequest("reading QR images needs the zxing-cpp and pillow packages; paste the code's text") from exc
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise BadRequest("that file is not an image; upload a screenshot of the QR code") from exc
    codes = [r.text for r in zxingcpp.read_barcodes(image)]
    if not codes:
        raise BadRequest("no QR code found in that image; upload a sharper screenshot of the whole code")
    result = await parts.phone.scan(codes[0])
    return web.json_response(
        {"ok": True, "phone": result.phone, "device_jid": result.device_jid, "lid": result.lid_jid}
    )


@_routes.post("/refuse")
async def _refuse(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    parts.phone.refuse(_field(await _body(request), "qr", str))
    return web.json_response({"ok": True})


@_routes.post("/unlink")
async def _unlink(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    await parts.phone.unlink(_field(data, "phone", str), _field(data, "device", int))
    return web.json_response({"ok": True})


@_routes.post("/fault")
async def _fault(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    f = Fault(
        kind=_field(data, "kind", str),
        code=_field(data, "code", int, False),
        seconds=_field(data, "seconds", float, False) or 0.0,
    )
    targets = await parts.faults.inject(f, phone=_field(data, "phone", str, False))
    return web.json_response({"ok": True, "connections": targets})


@_routes.post("/contacts")
async def _add_contact(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    contact = parts.directory.add_contact(
        _field(data, "phone", str),
        _field(data, "name", str),
        _field(data, "lid", str, False),
        _field(data, "address", str, False),
    )
    return web.json_response(
        {
            "ok": True,
            "phone": "+" + contact.phone,
            "lid": contact.lid,
            "name": contact.name,
            "dialled": ["+" + d for d in contact.dialled],
        }
    )


@_routes.post("/contacts/bulk")
async def _add_contacts(request: web.Request) -> web.Response:
    """Many contacts in one call, saved once: {"contacts": [{"phone": ..., "name": ...}, ...]}."""
    parts = request.app[_PARTS]
    people = (await _body(request)).get("contacts")
    if not isinstance(people, list) or not all(isinstance(p, dict) for p in people):
        raise BadRequest("field 'contacts' must be a list of objects, each with a 'phone' and a 'name'")
    added = parts.directory.add_contacts([(_field(p, "phone", str), _field(p, "name", str)) for p in people])
    return web.json_response({"ok": True, "added": len(added)})


@_routes.get("/contacts")
async def _contacts(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    return web.json_response({"contacts": parts.snapshot()["contacts"]})


@_routes.post("/groups")
async def _create_group(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    members = data.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise BadRequest("field 'members' must be a list of phone numbers")
    group = parts.directory.create_group(_field(data, "subject", str), members, _field(data, "account", str, False))
    return web.json_response({"ok": True, "jid": group.jid, "subject": group.subject, "members": group.members})


@_routes.post("/send")
async def _send(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    data = await _body(request)
    count = _field(data, "count", int, False) or 1
    if not 1 <= count <= 10_000:
        raise BadRequest("'count' must be between 1 and 10000")
    ids = [
        await parts.messaging.send(
            _field(data, "from", str),
            data.get("text") or "",
            kind=_field(data, "kind", str, False) or "text",
            to=_field(data, "to", str, False),
            lid_addressed=bool(data.get("lid_addressed")),
            withhold_phone=bool(data.get("withhold_phone")),
            status=bool(data.get("status")),
            chat=_field(data, "chat", str, False),
            group=_field(data, "group", str, False),
            mentions=_mentions(data),
            reply_to=_field(data, "reply_to", str, False),
            from_device=_field(data, "from_device", int, False) or 0,
        )
        for _ in range(count)
    ]
    return web.json_response({"ok": True, "id": ids[0], "ids": ids})


def _mentions(data: dict[str, Any]) -> list[str]:
    mentions = data.get("mentions") or []
    if not isinstance(mentions, list) or not all(isinstance(m, str) and m for m in mentions):
        raise BadRequest("field 'mentions' must be a list of phone numbers or JIDs")
    return mentions


@_routes.post("/redeliver")
async def _redeliver(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    await parts.messaging.redeliver(_field(await _body(request), "id", str))
    return web.json_response({"ok": True})


@_routes.get("/inbox")
async def _inbox(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    contact = request.query.get("contact")
    if not contact:
        raise BadRequest("missing query parameter 'contact' (a phone number)")
    return web.json_response({"contact": contact, "inbox": parts.directory.inbox(contact)})


@_routes.get("/events")
async def _events(request: web.Request) -> web.Response:
    parts = request.app[_PARTS]
    try:
        since = int(request.query.get("since", "0"))
    except ValueError as exc:
        raise BadRequest("'since' must be an event sequence number") from exc
    kind = request.query.get("kind")
    found = parts.events.since(since, kind)
    wait = request.query.get("wait")
    if not found and wait and kind:
        # Long poll: answer as soon as a matching event happens (or with nothing after `wait` s).
        try:
            seconds = min(float(wait), 60.0)
        except ValueError as exc:
            raise BadRequest("'wait' must be a number of seconds") from exc
        with contextlib.suppress(TimeoutError):
            await parts.events.wait_for(kind, since=since, timeout=seconds)
        found = parts.events.since(since, kind)
    return web.json_response({"events": [e.to_json() for e in found], "last": parts.events.last_seq})


def make_app(parts: ControlParts) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=1024 * 1024)
    app[_PARTS] = parts
    app.add_routes(_routes)
    return app


async def start_control(sim: Controlled, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(make_app(sim.control), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes the bound port only through the server's sockets
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://{host}:{bound}"
