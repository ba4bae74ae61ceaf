"""Answers to the queries a logged-in (or pairing) Baileys sends. Every iq gets a reply: an
unanswered query stalls Baileys for 60 s, so unknown ones get an empty result and a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable

from wasim.protocol.binary import Node
from wasim.server.directory import Directory
from wasim.server.nodes import SERVER_JID, iq_result
from wasim.server.ports import EventSink, NotLoggedIn, Peer

log = logging.getLogger("wasim.iq")

IqHandler = Callable[[Peer, Node], Node | None]

_PRIVACY = {
    "readreceipts": "all",
    "last": "all",
    "online": "all",
    "profile": "all",
    "status": "all",
    "groupadd": "all",
    "calladd": "all",
}


def _empty(conn: Peer, node: Node) -> Node:
    return iq_result(node)


def _digest(conn: Peer, node: Node) -> Node:
    return iq_result(node, [Node("digest", {})])


def _props(conn: Peer, node: Node) -> Node:
    return iq_result(node, [Node("props", {"protocol": "1", "hash": "wasim-1"})])


def _blocklist(conn: Peer, node: Node) -> Node:
    return iq_result(node, [Node("list", {})])


def _privacy(conn: Peer, node: Node) -> Node:
    cats = [Node("category", {"name": k, "value": v}) for k, v in _PRIVACY.items()]
    return iq_result(node, [Node("privacy", {}, cats)])


class IqRouter:
    """One table from (xmlns, type, first child) to the handler that answers it."""

    def __init__(self, directory: Directory, events: EventSink) -> None:
        self._events = events

        def remove_device(conn: Peer, node: Node) -> Node:
            directory.unlink_device(conn, reason=node.children()[0].attrs.get("reason", "user_initiated"))
            return iq_result(node)

        self.table: dict[tuple[str, str, str], IqHandler] = {
            ("w:p", "get", "ping"): _empty,
            ("encrypt", "get", "count"): directory.prekey_count,
            ("encrypt", "set", "registration"): directory.upload_prekeys,
            ("passive", "set", "active"): _empty,
            ("passive", "set", "passive"): _empty,
            ("encrypt", "get", "digest"): _digest,
            ("abt", "get", "props"): _props,
            ("blocklist", "get", ""): _blocklist,
            ("privacy", "get", "privacy"): _privacy,
            ("privacy", "set", "tokens"): _empty,
            ("md", "set", "remove-companion-device"): remove_device,
            ("usync", "get", "usync"): directory.usync,
            ("encrypt", "get", "key"): directory.key_bundles,
            ("w:g2", "get", "query"): directory.group_metadata,
        }

    def answer(self, conn: Peer, node: Node) -> Node | None:
        """The reply to send for `node` (an iq from the client), or None when no reply is due."""
        kids = node.children()
        first = kids[0].tag if kids else ""
        key = (node.attrs.get("xmlns", ""), node.attrs.get("type", ""), first)
        handler = self.table.get(key)
        if handler is None:
            log.warning("unknown iq %s/%s/%s answered with an empty result: %s", *key, node)
            self._events.emit("iq.unknown", xmlns=key[0], type=key[1], child=key[2])
            return iq_result(node)
        try:
            return handler(conn, node)
        except NotLoggedIn:
            return Node(
                "iq",
                {"type": "error", "id": node.attrs.get("id", ""), "from": SERVER_JID},
                [Node("error", {"code": "401", "text": "not-authorized"})],
            )


__all__ = ["IqRouter"]
