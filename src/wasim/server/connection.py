"""One client connection: the Noise transport over a WebSocket, then binary nodes both ways.

A connection is either a registration (a new companion showing QR codes) or a login (a linked
companion). Protocol errors close only this connection, with a logged reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import time
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wasim.protocol import wa_pb2
from wasim.protocol.binary import BinaryError, Node, decode_node, encode_node
from wasim.protocol.noise import ClientAuthenticated, Frame, NoiseServer, Send, TransportError
from wasim.server import iq
from wasim.server.nodes import SERVER_JID, failure, new_id, now_s
from wasim.state import Account, Device

if TYPE_CHECKING:
    from wasim.server.app import Wasim

log = logging.getLogger("wasim.connection")
node_log = logging.getLogger("wasim.nodes")

REFS_PER_QR_SESSION = 6
# Baileys sets up its transport keys only once its ClientFinish write completes; a short pause
# before the first server node avoids racing that (protocol notes, section 1.3).
FIRST_NODE_DELAY = 0.02
CLOSE_GRACE = 1.0


class Kind(enum.Enum):
    HANDSHAKE = "handshake"
    REGISTRATION = "registration"
    LOGIN = "login"
    REPLACED = "replaced"  # a login of the same device came after it: it gets nothing more


class ClientConnection:
    def __init__(self, server: Wasim, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.id = secrets.token_hex(4)
        self.kind = Kind.HANDSHAKE
        self.noise = NoiseServer(server.static_key, server.cert_chain, max_frame=server.max_frame)
        self.client_static = b""
        self.payload: wa_pb2.ClientPayload | None = None
        self.account: Account | None = None
        self.device: Device | None = None
        self.refs: list[str] = []
        self.blackholed = False
        self.closing = False
        self.opened_at = time.time()
        self._pending: dict[str, asyncio.Future[Node]] = {}
        self._send_lock = asyncio.Lock()

    # -- identity -----------------------------------------------------------------------------

    @property
    def account_phone(self) -> str | None:
        return self.account.phone if self.account else None

    def require_device(self) -> Device:
        if self.device is None:
            raise _NotLoggedIn()
        return self.device

    def describe(self) -> dict[str, object]:
        return {
            "conn": self.id,
            "role": self.kind.value,
            "phone": self.account_phone,
            "device": self.device.device_id if self.device else None,
        }

    # -- I/O loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.server.events.emit("connection.opened", conn=self.id, peer=str(self.ws.remote_address))
        reason = "client closed the connection"
        try:
            async for message in self.ws:
                if self.blackholed:
                    continue  # a silent drop: read and discard, answer nothing
                if isinstance(message, str):
                    raise TransportError("text WebSocket message; WhatsApp Web speaks binary frames only")
                for event in self.noise.receive(message):
                    await self._on_transport_event(event)
        except (TransportError, BinaryError) as exc:
            reason = f"protocol error: {exc}"
            log.warning("closing connection %s: %s", self.id, reason)
            await self.ws.close(1002, str(exc)[:120])
        except ConnectionClosed:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.server.connection_closed(self)
            self.server.events.emit("connection.closed", reason=reason, **self.describe())

    async def _on_transport_event(self, event: Send | ClientAuthenticated | Frame) -> None:
        if isinstance(event, Send):
            await self.ws.send(event.data)
        elif isinstance(event, ClientAuthenticated):
            await self._on_authenticated(event)
        else:
            node = decode_node(event.payload)
            if node_log.isEnabledFor(logging.DEBUG):
                node_log.debug("in  %s %s", self.id, node)
            await self._on_node(node)

    async def send_node(self, node: Node) -> None:
        if self.blackholed or self.closing:
            return
        if node_log.isEnabledFor(logging.DEBUG):
            node_log.debug("out %s %s", self.id, node)
        async with self._send_lock:  # Noise counters must advance in send order
            data = self.noise.encrypt_frame(encode_node(node))
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(data)

    async def query(self, node: Node, timeout: float = 10.0) -> Node:
        """Send a server-initiated iq and wait for the client's reply with the same id."""
        node.attrs.setdefault("id", new_id())
        fut: asyncio.Future[Node] = asyncio.get_running_loop().create_future()
        self._pending[node.attrs["id"]] = fut
        try:
            await self.send_node(node)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._pending.pop(node.attrs["id"], None)

    async def end_with(self, node: Node | None) -> None:
        """Send a terminal stanza (stream error, failure) and close once the client has gone."""
        if node is not None:
            await self.send_node(node)
        self.closing = True
        try:
            async with asyncio.timeout(CLOSE_GRACE):
                await self.ws.wait_closed()
        except TimeoutError:
            await self.ws.close()

    def blackhole(self) -> None:
        """From now on ignore everything and send nothing, keeping TCP open (a silent drop)."""
        self.blackholed = True

    # -- handshake outcome --------------------------------------------------------------------

    async def _on_authenticated(self, event: ClientAuthenticated) -> None:
        self.client_static = event.client_static
        self.payload = payload = event.payload
        if payload.HasField("device_pairing_data"):
            self.kind = Kind.REGISTRATION
            await asyncio.sleep(FIRST_NODE_DELAY)
            await self._offer_refs()
        elif payload.HasField("username"):
            self.kind = Kind.LOGIN
            await asyncio.sleep(FIRST_NODE_DELAY)
            await self._login(str(payload.username), payload.device)
        else:
            raise TransportError("ClientPayload is neither a registration nor a login")

    async def _offer_refs(self) -> None:
        self.refs = [f"2@{secrets.token_urlsafe(36)}" for _ in range(REFS_PER_QR_SESSION)]
        self.server.register_refs(self)
        refs = [Node("ref", {}, r.encode()) for r in self.refs]
        await self.send_node(
            Node(
                "iq",
                {"type": "set", "id": new_id(), "xmlns": "md", "from": SERVER_JID, "t": now_s()},
                [Node("pair-device", {}, refs)],
            )
        )
        self.server.events.emit("pairing.refs", conn=self.id, refs=list(self.refs))

    async def _login(self, phone: str, device_id: int) -> None:
        found = self.server.state.find_device_owner(phone, device_id)
        why = None
        if found is None:
            why = "unknown device"
        elif found[1].removed:
            why = "device was unlinked"
        elif found[1].noise_public != self.client_static:
            why = "noise key does not match the linked device"
        if why is not None or found is None:
            self.server.events.emit("login.rejected", conn=self.id, phone=phone, device=device_id, why=why)
            log.info("login of %s:%s rejected: %s", phone, device_id, why)
            await self.end_with(failure(401))
            return
        self.account, self.device = found
        acc = self.account
        for other in self.server.logged_in(acc.phone):
            if other is not self and other.device is self.device:
                await self.server.replace(other, by=self)
        await self.send_node(
            Node(
                "success",
                {
                    "t": now_s(),
                    "lid": f"{acc.lid}:{device_id}@lid",
                    "display_name": "",
                    "props": "1",
                    "creation": str(int(self.device.linked_at)),
                    "location": "wasim",
                },
            )
        )
        # Offline-flagged stanzas must come before <ib><offline>, which ends Baileys' offline phase.
        count = await self.server.deliver_offline(self)
        await self.send_node(Node("ib", {"from": SERVER_JID}, [Node("offline", {"count": str(count)})]))
        # A live no-op stanza ends Baileys' first-login event buffering at once.
        await self.send_node(
            Node("notification", {"from": SERVER_JID, "id": new_id(), "type": "sim_flush", "t": now_s()})
        )
        self.server.events.emit("login", **self.describe())

    # -- nodes from the client ----------------------------------------------------------------

    async def _on_node(self, node: Node) -> None:
        node_id = node.attrs.get("id")
        if node.tag == "iq" and node.attrs.get("type") in ("result", "error") and node_id in self._pending:
            self._pending[node_id].set_result(node)
            return
        if node.tag == "iq":
            if node.attrs.get("type") in ("result", "error"):
                return  # a reply to something we no longer wait for
            try:
                reply = iq.answer(self, node)
            except _NotLoggedIn:
                reply = Node(
                    "iq",
                    {"type": "error", "id": node_id or "", "from": SERVER_JID},
                    [Node("error", {"code": "401", "text": "not-authorized"})],
                )
            if reply is not None:
                await self.send_node(reply)
            return
        await self.server.on_client_stanza(self, node)


class _NotLoggedIn(Exception):
    pass
