"""Answers to the queries a logged-in (or pairing) Baileys sends. Every iq gets a reply: an
unanswered query stalls Baileys for 60 s, so unknown ones get an empty result and a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from wasim.protocol.binary import Node
from wasim.server.nodes import iq_error, iq_result, now_s
from wasim.state import SignedPreKey

if TYPE_CHECKING:
    from wasim.server.connection import ClientConnection

log = logging.getLogger("wasim.iq")

Handler = Callable[["ClientConnection", Node], Node | None]
_handlers: dict[tuple[str, str, str], Handler] = {}


def handles(xmlns: str, type_: str, child: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _handlers[(xmlns, type_, child)] = fn
        return fn

    return register


def answer(conn: ClientConnection, node: Node) -> Node | None:
    """The reply to send for `node` (an iq from the client), or None when no reply is due."""
    kids = node.children()
    first = kids[0].tag if kids else ""
    key = (node.attrs.get("xmlns", ""), node.attrs.get("type", ""), first)
    handler = _handlers.get(key)
    if handler is None:
        log.warning("unknown iq %s/%s/%s answered with an empty result: %s", *key, node)
        conn.server.events.emit("iq.unknown", xmlns=key[0], type=key[1], child=key[2])
        return iq_result(node)
    return handler(conn, node)


@handles("w:p", "get", "ping")
def _ping(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node)


@handles("encrypt", "get", "count")
def _prekey_count(conn: ClientConnection, node: Node) -> Node:
    device = conn.require_device()
    return iq_result(node, [Node("count", {"value": str(len(device.prekeys))})])


def _uint(node: Node | None, what: str) -> int:
    if node is None:
        raise ValueError(f"missing <{what}>")
    return int.from_bytes(node.content_bytes(), "big")


@handles("encrypt", "set", "registration")
def _prekey_upload(conn: ClientConnection, node: Node) -> Node:
    device = conn.require_device()
    try:
        registration_id = _uint(node.child("registration"), "registration")
        identity = node.child("identity")
        skey = node.child("skey")
        key_list = node.child("list")
        if identity is None or skey is None or key_list is None:
            raise ValueError("a pre-key upload needs <identity>, <skey> and <list>")
        keys = {_uint(k.child("id"), "id"): _child_bytes(k, "value") for k in key_list.children("key")}
        signed = SignedPreKey(
            _uint(skey.child("id"), "skey id"), _child_bytes(skey, "value"), _child_bytes(skey, "signature")
        )
    except ValueError as exc:
        return iq_error(node, 400, f"bad-request: {exc}")
    reused = keys.keys() & device.consumed
    if reused:
        log.warning("client re-uploaded consumed pre-key ids %s; ignoring them", sorted(reused)[:5])
    device.registration_id = registration_id
    device.identity_public = identity.content_bytes()
    device.signed_prekey = signed
    device.prekeys.update({k: v for k, v in keys.items() if k not in device.consumed})
    conn.server.state.save()
    conn.server.events.emit("prekeys.uploaded", phone=conn.account_phone, device=device.device_id, count=len(keys))
    return iq_result(node)


def _child_bytes(node: Node, tag: str) -> bytes:
    child = node.child(tag)
    if child is None:
        raise ValueError(f"missing <{tag}> in <{node.tag}>")
    return child.content_bytes()


@handles("passive", "set", "active")
def _active(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node)


@handles("passive", "set", "passive")
def _passive(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node)


@handles("encrypt", "get", "digest")
def _digest(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node, [Node("digest", {})])


@handles("abt", "get", "props")
def _props(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node, [Node("props", {"protocol": "1", "hash": "wasim-1"})])


@handles("blocklist", "get", "")
def _blocklist(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node, [Node("list", {})])


_PRIVACY = {
    "readreceipts": "all",
    "last": "all",
    "online": "all",
    "profile": "all",
    "status": "all",
    "groupadd": "all",
    "calladd": "all",
}


@handles("privacy", "get", "privacy")
def _privacy(conn: ClientConnection, node: Node) -> Node:
    cats = [Node("category", {"name": k, "value": v}) for k, v in _PRIVACY.items()]
    return iq_result(node, [Node("privacy", {}, cats)])


@handles("privacy", "set", "tokens")
def _tokens(conn: ClientConnection, node: Node) -> Node:
    return iq_result(node)


@handles("md", "set", "remove-companion-device")
def _remove_device(conn: ClientConnection, node: Node) -> Node:
    conn.server.unlink_device(conn, reason=node.children()[0].attrs.get("reason", "user_initiated"))
    return iq_result(node)


@handles("usync", "get", "usync")
def _usync(conn: ClientConnection, node: Node) -> Node:
    return conn.server.directory.usync(conn, node)


@handles("encrypt", "get", "key")
def _key_bundles(conn: ClientConnection, node: Node) -> Node:
    return conn.server.directory.key_bundles(conn, node)


__all__ = ["answer", "now_s"]
