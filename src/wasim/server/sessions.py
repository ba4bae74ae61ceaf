"""Connection handling: a WebSocket becomes a `ClientConnection`; its QR refs, its login, its
stanzas and its end land here and go to the registry, the mailbox and the stanza table."""

from __future__ import annotations

import logging
from typing import Protocol

from websockets.asyncio.server import ServerConnection

from wasim.protocol.binary import Node
from wasim.server.connection import ClientConnection, ServerKeys
from wasim.server.nodes import SERVER_JID, failure, new_id, now_s, stream_error
from wasim.server.ports import EventSink, Kind, Peer, Spawn
from wasim.server.registry import Connections
from wasim.server.stanzas import StanzaRouter
from wasim.state import WasimState

log = logging.getLogger("wasim")
conn_log = logging.getLogger("wasim.connection")


class Mailbox(Protocol):
    """What waits for a device between its connections (`messaging.Messaging`)."""

    async def deliver_offline(self, conn: Peer) -> int: ...

    def connection_closed(self, conn: Peer) -> None: ...


class Sessions:
    """Implements `ports.SessionHooks` for every connection it serves."""

    def __init__(
        self,
        keys: ServerKeys,
        state: WasimState,
        events: EventSink,
        connections: Connections,
        mailbox: Mailbox,
        stanzas: StanzaRouter,
        spawn: Spawn,
    ) -> None:
        self._keys = keys
        self._state = state
        self._events = events
        self._connections = connections
        self._mailbox = mailbox
        self._stanzas = stanzas
        self._spawn = spawn

    async def serve(self, ws: ServerConnection) -> None:
        conn = ClientConnection(ws, self._keys, self._events, self)
        self._connections.add(conn)
        await conn.run()

    # -- SessionHooks -------------------------------------------------------------------------

    def refs_offered(self, peer: Peer) -> None:
        self._connections.register_refs(peer)

    async def stanza(self, peer: Peer, node: Node) -> None:
        await self._stanzas.dispatch(peer, node)

    def closed(self, peer: Peer) -> None:
        self._connections.remove(peer)
        self._mailbox.connection_closed(peer)

    async def login(self, peer: Peer, phone: str, device_id: int) -> None:
        found = self._state.find_device_owner(phone, device_id)
        why = None
        if found is None:
            why = "unknown device"
        elif found[1].removed:
            why = "device was unlinked"
        elif found[1].noise_public != peer.client_static:
            why = "noise key does not match the linked device"
        if why is not None or found is None:
            self._events.emit("login.rejected", conn=peer.id, phone=phone, device=device_id, why=why)
            conn_log.info("login of %s:%s rejected: %s", phone, device_id, why)
            await peer.end_with(failure(401))
            return
        acc, device = found
        peer.account, peer.device = acc, device
        for other in self._connections.logged_in(acc.phone):
            if other is not peer and other.device is device:
                self._replace(other, by=peer)
        await peer.send_node(
            Node(
                "success",
                {
                    "t": now_s(),
                    "lid": f"{acc.lid}:{device_id}@lid",
                    "display_name": "",
                    "props": "1",
                    "creation": str(int(device.linked_at)),
                    "location": "wasim",
                },
            )
        )
        # Offline-flagged stanzas must come before <ib><offline>, which ends Baileys' offline phase.
        count = await self._mailbox.deliver_offline(peer)
        await peer.send_node(Node("ib", {"from": SERVER_JID}, [Node("offline", {"count": str(count)})]))
        # A live no-op stanza ends Baileys' first-login event buffering at once.
        await peer.send_node(
            Node("notification", {"from": SERVER_JID, "id": new_id(), "type": "sim_flush", "t": now_s()})
        )
        self._events.emit("login", **peer.describe())

    def _replace(self, old: Peer, by: Peer) -> None:
        """One socket per linked device, as on WhatsApp: a newer login of the device replaces the
        older one, which gets a 440 "replaced" and nothing more; what it had not acknowledged
        goes to the newer one (a companion that hangs must not keep swallowing messages)."""
        old.kind = Kind.REPLACED
        self._mailbox.connection_closed(old)
        self._events.emit("login.replaced", old=old.id, new=by.id)
        log.info("connection %s replaced by a newer login of the same device (%s)", old.id, by.id)
        self._spawn(old.end_with(stream_error(440, conflict="replaced")), "end a replaced connection")
