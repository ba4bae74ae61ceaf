"""What a logged-in companion sends, dispatched by tag through one table, as on the server.

Stanzas with no entry are logged and dropped, as WhatsApp ignores what it does not expect; iqs
are the exception, answered always (see `iq.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from wasim.protocol.binary import Node
from wasim.server.iq import IqRouter
from wasim.server.messaging import Messaging
from wasim.server.ports import EventSink, Peer

log = logging.getLogger("wasim")

StanzaHandler = Callable[[Peer, Node], Awaitable[None]]


class StanzaRouter:
    def __init__(self, messaging: Messaging, iq: IqRouter, events: EventSink) -> None:
        self._messaging = messaging
        self._iq = iq
        self._events = events
        self.table: dict[str, StanzaHandler] = {
            "iq": self._on_iq,
            "message": messaging.on_client_message,
            "receipt": self._on_receipt,
            "ack": self._on_ack,
            "chatstate": self._on_chatstate,
            "presence": self._on_presence,
            "ib": self._ignore,
        }

    async def dispatch(self, conn: Peer, node: Node) -> None:
        handler = self.table.get(node.tag)
        if handler is None:
            log.debug("unhandled stanza from %s: %s", conn.id, node)
            return
        await handler(conn, node)

    async def _on_iq(self, conn: Peer, node: Node) -> None:
        reply = self._iq.answer(conn, node)
        if reply is not None:
            await conn.send_node(reply)

    async def _on_receipt(self, conn: Peer, node: Node) -> None:
        if node.attrs.get("type") == "retry":
            await self._messaging.on_retry_receipt(conn, node)
            await conn.send_node(Node("ack", {"class": "receipt", "id": node.attrs.get("id", ""), "type": "retry"}))
        else:
            self._messaging.on_client_ack(conn, node)
        await self._on_chatstate(conn, node)

    async def _on_chatstate(self, conn: Peer, node: Node) -> None:
        self._messaging.record_presence(conn, node)
        self._report(conn, node)

    async def _on_presence(self, conn: Peer, node: Node) -> None:
        self._report(conn, node)

    async def _on_ack(self, conn: Peer, node: Node) -> None:
        if node.attrs.get("class") == "message":
            self._messaging.on_client_ack(conn, node)
        elif node.attrs.get("class") == "receipt":
            self._messaging.on_receipt_ack(conn, node)

    async def _ignore(self, conn: Peer, node: Node) -> None:
        pass

    def _report(self, conn: Peer, node: Node) -> None:
        self._events.emit(node.tag, node=str(node), attrs=dict(node.attrs), **conn.describe())
