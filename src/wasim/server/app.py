"""The wasim server: listens on loopback, owns the state, the connections and the simulated phone.

async with Wasim(state_dir=path) as sim:
    ...  # point Baileys at sim.url with WA_CERT_DETAILS.PUBLIC_KEY = sim.root_public_key
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wasim.protocol.binary import Node
from wasim.protocol.certs import build_cert_chain
from wasim.protocol.crypto import KeyPair
from wasim.protocol.noise import MAX_FRAME
from wasim.server.connection import ClientConnection, Kind
from wasim.server.directory import Directory
from wasim.server.events import EventLog
from wasim.server.faults import Fault, apply_fault
from wasim.server.messaging import Messaging
from wasim.server.nodes import stream_error
from wasim.server.phone import SimulatedPhone
from wasim.state import Contact, Group, WasimState, new_contact

log = logging.getLogger("wasim")

WS_PATH = "/ws/chat"
DEFAULT_PHONE = "15550001111"


class Wasim:
    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_frame: int = 8 * 1024 * 1024,
        default_phone: str = DEFAULT_PHONE,
    ) -> None:
        self.state = WasimState.load(Path(state_dir) if state_dir is not None else None)
        self.host = host
        self.port = port
        self.max_frame = min(max_frame, MAX_FRAME)
        self.default_phone = default_phone
        self.events = EventLog()
        self.directory = Directory(self)
        self.phone = SimulatedPhone(self)
        self.messaging = Messaging(self)
        self.connections: set[ClientConnection] = set()
        self.static_key = KeyPair.generate()
        self._intermediate = KeyPair.generate()
        self.cert_chain = build_cert_chain(self.state.root, self._intermediate, self.static_key.public)
        self._refs: dict[str, ClientConnection] = {}
        self._server: Server | None = None
        self._retired: list[Server] = []  # stopped listening, may still hold connections
        self._reopen_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def root_public_key(self) -> str:
        return self.state.root.public.hex()

    async def start(self) -> Wasim:
        await self._listen()
        log.info("wasim listening on %s", self.url)
        self.events.emit("server.started", url=self.url)
        return self

    async def _listen(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._check_request,
            max_size=self.max_frame + 1024,
            ping_interval=None,  # WhatsApp's server never pings; Baileys' own keep-alive does the work
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._reopen_task:
            self._reopen_task.cancel()
        servers = [*self._retired, *([self._server] if self._server else [])]
        for server in servers:
            server.close(close_connections=False)
        for conn in list(self.connections):
            conn.ws.transport.abort()
        for server in servers:
            await server.wait_closed()
        self._server = None
        self._retired.clear()
        self.state.save()
        self.events.emit("server.stopped")

    async def __aenter__(self) -> Wasim:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != WS_PATH:
            return Response(404, "Not Found", Headers(), b"wasim serves WhatsApp Web at /ws/chat\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = ClientConnection(self, ws)
        self.connections.add(conn)
        await conn.run()

    async def replace(self, old: ClientConnection, by: ClientConnection) -> None:
        """One socket per linked device, as on WhatsApp: a newer login of the device replaces the
        older one, which gets a 440 "replaced" and nothing more; what it had not acknowledged
        goes to the newer one (a companion that hangs must not keep swallowing messages)."""
        old.kind = Kind.REPLACED
        self.messaging.connection_closed(old)
        self.events.emit("login.replaced", old=old.id, new=by.id)
        log.info("connection %s replaced by a newer login of the same device (%s)", old.id, by.id)
        self.spawn(old.end_with(stream_error(440, conflict="replaced")), "end a replaced connection")

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        self.messaging.connection_closed(conn)
        for ref in conn.refs:
            self._refs.pop(ref, None)

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` in the background, keeping a reference and logging its failure."""
        task = asyncio.create_task(coro, name=what)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)

    # -- pairing ------------------------------------------------------------------------------

    def register_refs(self, conn: ClientConnection) -> None:
        for ref in conn.refs:
            self._refs[ref] = conn

    def connection_for_ref(self, ref: str) -> ClientConnection | None:
        return self._refs.get(ref)

    def forget_refs(self, conn: ClientConnection) -> None:
        for ref in conn.refs:
            self._refs.pop(ref, None)

    def unlink_device(self, conn: ClientConnection, reason: str) -> None:
        device = conn.require_device()
        device.removed = True
        device.prekeys.clear()
        self.state.save()
        self.events.emit("device.unlinked", reason=reason, **conn.describe())

    # -- traffic hooks (extended by simulated contacts) ----------------------------------------

    async def deliver_offline(self, conn: ClientConnection) -> int:
        """Send what queued up while this device was away; returns how many stanzas."""
        return await self.messaging.deliver_offline(conn)

    async def on_client_stanza(self, conn: ClientConnection, node: Node) -> None:
        kind = node.tag
        if kind == "receipt" and node.attrs.get("type") == "retry":
            await self.messaging.on_retry_receipt(conn, node)
            await conn.send_node(Node("ack", {"class": "receipt", "id": node.attrs.get("id", ""), "type": "retry"}))
        if kind == "receipt" and node.attrs.get("type") != "retry":
            self.messaging.on_client_ack(conn, node)
        if kind in ("chatstate", "receipt"):
            self.messaging.record_presence(conn, node)
            self.events.emit(kind, node=str(node), attrs=dict(node.attrs), **conn.describe())
        elif kind == "presence":
            self.events.emit(kind, node=str(node), attrs=dict(node.attrs), **conn.describe())
        elif kind == "message":
            await self.messaging.on_client_message(conn, node)
        elif kind == "ack":
            if node.attrs.get("class") == "message":
                self.messaging.on_client_ack(conn, node)
            elif node.attrs.get("class") == "receipt":
                self.messaging.on_receipt_ack(conn, node)
        elif kind == "ib":
            pass
        else:
            log.debug("unhandled stanza from %s: %s", conn.id, node)

    # -- contacts -----------------------------------------------------------------------------

    def add_contact(self, phone: str, name: str, lid: str | None = None) -> Contact:
        contact = self.state.add_contact(new_contact(phone, name, lid))
        self.events.emit("contact.added", phone=contact.phone, lid=contact.lid, name=name)
        return contact

    def create_group(self, subject: str, members: list[str], account: str | None = None) -> Group:
        """A group of the account and the given contacts (phones)."""
        acc = self.state.account(account or self.default_phone)
        if acc is None:
            raise ValueError("no account to create a group for: link a device first")
        if subject in self.state.groups:
            raise ValueError(f"a group named {subject!r} already exists")
        phones = [m.lstrip("+") for m in members]
        unknown = [p for p in phones if p not in self.state.contacts]
        if unknown:
            raise ValueError(f"unknown contacts {', '.join('+' + p for p in unknown)}: add them first")
        group = Group(jid=f"120363{secrets.randbelow(10**12):012d}@g.us", subject=subject, members=[acc.phone, *phones])
        self.state.groups[subject] = group
        self.state.save()
        self.events.emit("group.created", jid=group.jid, subject=subject, members=group.members)
        return group

    def inbox(self, phone: str) -> list[dict[str, Any]]:
        contact = self.state.contacts.get(phone.lstrip("+"))
        if contact is None:
            raise ValueError(f"unknown contact {phone}")
        return list(contact.inbox)

    # -- faults -------------------------------------------------------------------------------

    def logged_in(self, phone: str | None = None) -> list[ClientConnection]:
        return [
            c
            for c in self.connections
            if c.kind is Kind.LOGIN and c.account and (phone is None or c.account.phone == phone.lstrip("+"))
        ]

    async def inject(self, fault: Fault, phone: str | None = None) -> list[str]:
        """Apply `fault` to every logged-in connection (of `phone`); returns the affected ids."""
        if fault.kind == "refuse":
            await self.refuse_connections(fault.seconds)
            return []
        targets = self.logged_in(phone) if fault.kind != "all" else list(self.connections)
        await asyncio.gather(*(apply_fault(c, fault) for c in targets))
        self.events.emit("fault", fault=fault.describe(), targets=[c.id for c in targets])
        return [c.id for c in targets]

    async def refuse_connections(self, seconds: float) -> None:
        """Stop listening for `seconds` (clients get connection refused), then listen again.
        Connections already open stay open, as with a real server that stops accepting."""
        if self._server is not None:
            self._server.server.close()  # the listening socket only
            self._retired.append(self._server)
            self._server = None
        self.events.emit("server.refusing", seconds=seconds)

        async def reopen() -> None:
            await asyncio.sleep(seconds)
            await self._listen()
            self.events.emit("server.accepting")

        self._reopen_task = asyncio.create_task(reopen())

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "root_public_key": self.root_public_key,
            "accounts": [
                {
                    "phone": "+" + a.phone,
                    "lid": a.lid,
                    "name": a.name,
                    "devices": [
                        {
                            "device": d.device_id,
                            "jid": f"{a.phone}:{d.device_id}@s.whatsapp.net",
                            "linked": not d.removed,
                            "platform": d.platform,
                            "linked_at": d.linked_at,
                            "prekeys": len(d.prekeys),
                            "connected": any(c.device is d for c in self.connections),
                        }
                        for d in a.devices.values()
                    ],
                }
                for a in self.state.accounts.values()
            ],
            "contacts": [
                {"phone": "+" + c.phone, "lid": c.lid, "name": c.name, "own_phone": c.own_phone}
                for c in self.state.contacts.values()
            ],
        }


__all__ = ["Wasim"]
