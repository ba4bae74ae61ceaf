"""One client connection: the Noise transport over a WebSocket, then binary nodes both ways.

A connection is either a registration (a new companion showing QR codes) or a login (a linked
companion). Protocol errors close only this connection, with a logged reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from wasim.protocol import wa_pb2
from wasim.protocol.binary import BinaryError, Node, decode_node, encode_node
from wasim.protocol.crypto import KeyPair
from wasim.protocol.noise import ClientAuthenticated, Frame, NoiseServer, Send, TransportError
from wasim.server.nodes import SERVER_JID, new_id, now_s
from wasim.server.ports import EventSink, Kind, NotLoggedIn, SessionHooks
from wasim.state import Account, Device

log = logging.getLogger("wasim.connection")
node_log = logging.getLogger("wasim.nodes")

REFS_PER_QR_SESSION = 6
# Baileys sets up its transport keys only once its ClientFinish write completes; a short pause
# before the first server node avoids racing that (docs/wasim.md, "A connection, step by step").
FIRST_NODE_DELAY = 0.02
CLOSE_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """What the Noise handshake needs from the server: its static key and certificate chain."""

    static_key: KeyPair
    cert_chain: bytes
    max_frame: int


class ClientConnection:
    """Implements `ports.Peer`; hands logins, stanzas and its end to `hooks`."""

    def __init__(self, ws: ServerConnection, keys: ServerKeys, events: EventSink, hooks: SessionHooks) -> None:
        self.ws = ws
        self._events = events
        self._hooks = hooks
        self.id = secrets.token_hex(4)
        self.kind = Kind.HANDSHAKE
        self.noise = NoiseServer(keys.static_key, keys.cert_chain, max_frame=keys.max_frame)
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
            raise NotLoggedIn()
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
        self._events.emit("connection.opened", conn=self.id, peer=str(self.ws.remote_address))
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
            self._hooks.closed(self)
            self._events.emit("connection.closed", reason=reason, **self.describe())

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

    async def close(self) -> None:
        """Close the WebSocket from the server's side, with nothing said first."""
        self.closing = True
        await self.ws.close()

    def abort(self) -> None:
        """Drop the TCP connection at once (the server is stopping)."""
        self.ws.transport.abort()

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
            await self._hooks.login(self, str(payload.username), payload.device)
        else:
            raise TransportError("ClientPayload is neither a registration nor a login")

    async def _offer_refs(self) -> None:
        self.refs = [f"2@{secrets.token_urlsafe(36)}" for _ in range(REFS_PER_QR_SESSION)]
        self._hooks.refs_offered(self)
        refs = [Node("ref", {}, r.encode()) for r in self.refs]
        await self.send_node(
            Node(
                "iq",
                {"type": "set", "id": new_id(), "xmlns": "md", "from": SERVER_JID, "t": now_s()},
                [Node("pair-device", {}, refs)],
            )
        )
        self._events.emit("pairing.refs", conn=self.id, refs=list(self.refs))

    # -- nodes from the client ----------------------------------------------------------------

    async def _on_node(self, node: Node) -> None:
        if node.tag == "iq" and node.attrs.get("type") in ("result", "error"):
            pending = self._pending.get(node.attrs.get("id", ""))
            if pending is not None:
                pending.set_result(node)
            return  # otherwise a reply to something we no longer wait for
        await self._hooks.stanza(self, node)
