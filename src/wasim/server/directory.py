"""Who exists and which keys they have: answers device lists (usync) and key-bundle fetches.

For now it knows the simulated accounts and their linked companion devices; simulated contacts
register here too, so a companion can find their devices and start Signal sessions with them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wasim.protocol.binary import Node
from wasim.server.nodes import iq_result, now_s
from wasim.state import Account, Device

if TYPE_CHECKING:
    from wasim.server.app import Wasim
    from wasim.server.connection import ClientConnection

log = logging.getLogger("wasim.directory")


def split_jid(jid: str) -> tuple[str, int, str]:
    """`user[:device]@server` -> (user, device, server); device 0 when absent."""
    user, _, server = jid.partition("@")
    user, _, device = user.partition(":")
    user = user.partition("_")[0]  # agent suffix (`user_1:2@…`) is not used by WhatsApp Web companions
    return user, int(device) if device.isdigit() else 0, server


class Directory:
    def __init__(self, server: Wasim) -> None:
        self._server = server

    def _account_for(self, user: str, server: str) -> Account | None:
        for acc in self._server.state.accounts.values():
            if (server == "s.whatsapp.net" and acc.phone == user) or (server == "lid" and acc.lid == user):
                return acc
        return None

    def usync(self, conn: ClientConnection, node: Node) -> Node:
        usync = node.child("usync")
        assert usync is not None
        query = usync.child("query")
        wanted = {q.tag for q in query.children()} if query else set()
        users_in = usync.child("list")
        users_out: list[Node] = []
        for user in users_in.children("user") if users_in else []:
            jid = user.attrs.get("jid", "")
            u, _, srv = split_jid(jid)
            acc = self._account_for(u, srv)
            parts: list[Node] = []
            if "devices" in wanted:
                parts.append(self._device_list(acc.live_devices() if acc else [], acc))
            if "lid" in wanted and acc is not None:
                parts.append(Node("lid", {"val": f"{acc.lid}@lid"}))
            users_out.append(Node("user", {"jid": jid}, parts))
        result = Node("usync", dict(usync.attrs), [Node("result", {}), Node("list", {}, users_out)])
        return iq_result(node, [result])

    @staticmethod
    def _device_list(devices: list[Device], acc: Account | None) -> Node:
        items = [
            Node("device", {"id": str(d.device_id), "key-index": str(acc.key_index if acc else 0)})
            for d in devices
        ]
        return Node(
            "devices",
            {},
            [Node("device-list", {}, items), Node("key-index-list", {"ts": now_s()})],
        )

    def key_bundles(self, conn: ClientConnection, node: Node) -> Node:
        key = node.child("key")
        out: list[Node] = []
        for user in key.children("user") if key else []:
            jid = user.attrs.get("jid", "")
            u, dev, srv = split_jid(jid)
            acc = self._account_for(u, srv)
            device = acc.devices.get(dev) if acc else None
            if device is None or device.removed:
                log.info("no key bundle for %s; omitted from the reply", jid)
                continue
            out.append(Node("user", {"jid": jid}, bundle_nodes(device)))
        self._server.state.save()  # one-time pre-keys handed out are never handed out again
        return iq_result(node, [Node("list", {}, out)])


def bundle_nodes(device: Device) -> list[Node]:
    spk = device.signed_prekey
    nodes = [
        Node("registration", {}, device.registration_id.to_bytes(4, "big")),
        Node("type", {}, b"\x05"),
        Node("identity", {}, device.identity_public),
        Node(
            "skey",
            {},
            [
                Node("id", {}, spk.key_id.to_bytes(3, "big")),
                Node("value", {}, spk.public),
                Node("signature", {}, spk.signature),
            ],
        ),
    ]
    prekey = device.take_prekey()
    if prekey is not None:
        key_id, public = prekey
        nodes.append(Node("key", {}, [Node("id", {}, key_id.to_bytes(3, "big")), Node("value", {}, public)]))
    return nodes
