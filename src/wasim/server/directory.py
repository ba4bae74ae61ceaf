"""Who exists and which keys they have: answers device lists (usync) and key-bundle fetches.

Users are the simulated accounts (the phone as device 0, linked companions as devices 1..n) and
the simulated contacts (device 0 only). Unknown users get an empty device list, as on WhatsApp.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wasim.protocol.binary import Node
from wasim.server.nodes import iq_error, iq_result, now_s
from wasim.signal import PreKeyBundle, raw_key
from wasim.state import Account, Contact, Device

if TYPE_CHECKING:
    from wasim.server.app import Wasim
    from wasim.server.connection import ClientConnection

log = logging.getLogger("wasim.directory")


def split_jid(jid: str) -> tuple[str, int, str]:
    """`user[:device]@server` -> (user, device, server); device 0 when absent."""
    user, _, server = jid.partition("@")
    user, _, device = user.partition(":")
    user = user.partition("_")[0]  # agent suffix (`user_1:2@…`): not used by WhatsApp Web companions
    return user, int(device) if device.isdigit() else 0, server


class Directory:
    def __init__(self, server: Wasim) -> None:
        self._server = server

    def account_for(self, user: str, server: str) -> Account | None:
        for acc in self._server.state.accounts.values():
            if (server == "s.whatsapp.net" and acc.phone == user) or (server == "lid" and acc.lid == user):
                return acc
        return None

    def usync(self, conn: ClientConnection, node: Node) -> Node:
        usync = node.child("usync")
        query = usync.child("query") if usync else None
        users_in = usync.child("list") if usync else None
        if usync is None or query is None or users_in is None:
            return iq_error(node, 400, "bad-request")
        wanted = {q.tag for q in query.children()}
        users_out: list[Node] = []
        for user in users_in.children("user"):
            jid = user.attrs.get("jid")
            if not jid or "@" not in jid:
                return iq_error(node, 400, "bad-request")
            u, _, srv = split_jid(jid)
            acc = self.account_for(u, srv)
            contact = self._server.state.contact_for(jid)
            parts: list[Node] = []
            if "devices" in wanted:
                parts.append(self._device_list(acc, contact))
            lid = acc.lid if acc else contact.lid if contact else None
            if "lid" in wanted and lid is not None:
                parts.append(Node("lid", {"val": f"{lid}@lid"}))
            users_out.append(Node("user", {"jid": jid}, parts))
        self._server.events.emit(
            "usync", users=[u.attrs.get("jid", "") for u in users_out], context=usync.attrs.get("context")
        )
        result = Node("usync", dict(usync.attrs), [Node("result", {}), Node("list", {}, users_out)])
        return iq_result(node, [result])

    @staticmethod
    def _device_list(acc: Account | None, contact: Contact | None) -> Node:
        items: list[Node] = []
        if contact is not None:
            items.append(Node("device", {"id": "0"}))  # the phone needs no key index
        if acc is not None:
            items += [
                Node("device", {"id": str(d.device_id), "key-index": str(acc.key_index)}) for d in acc.live_devices()
            ]
        return Node("devices", {}, [Node("device-list", {}, items), Node("key-index-list", {"ts": now_s()})])

    def key_bundles(self, conn: ClientConnection, node: Node) -> Node:
        key = node.child("key")
        if key is None:
            return iq_error(node, 400, "bad-request")
        out: list[Node] = []
        for user in key.children("user"):
            jid = user.attrs.get("jid", "")
            u, dev, srv = split_jid(jid)
            nodes: list[Node] | None = None
            if dev == 0:
                contact = self._server.state.contact_for(jid)
                if contact is not None:
                    nodes = contact_bundle_nodes(contact.keys.bundle())
            else:
                acc = self.account_for(u, srv)
                device = acc.devices.get(dev) if acc else None
                if device is not None and not device.removed:
                    nodes = device_bundle_nodes(device)
            if nodes is None:
                log.info("no key bundle for %s; omitted from the reply", jid)
                continue
            out.append(Node("user", {"jid": jid}, nodes))
        self._server.events.emit("keys.fetched", jids=[u.attrs.get("jid", "") for u in key.children("user")])
        self._server.state.save_soon()  # one-time pre-keys handed out are never handed out again
        return iq_result(node, [Node("list", {}, out)])


def _bundle(
    registration_id: int, identity: bytes, spk: tuple[int, bytes, bytes], prekey: tuple[int, bytes] | None
) -> list[Node]:
    spk_id, spk_pub, spk_sig = spk
    nodes = [
        Node("registration", {}, registration_id.to_bytes(4, "big")),
        Node("type", {}, b"\x05"),
        Node("identity", {}, raw_key(identity)),
        Node(
            "skey",
            {},
            [
                Node("id", {}, spk_id.to_bytes(3, "big")),
                Node("value", {}, raw_key(spk_pub)),
                Node("signature", {}, spk_sig),
            ],
        ),
    ]
    if prekey is not None:
        key_id, public = prekey
        nodes.append(Node("key", {}, [Node("id", {}, key_id.to_bytes(3, "big")), Node("value", {}, raw_key(public))]))
    return nodes


def device_bundle_nodes(device: Device) -> list[Node]:
    spk = device.signed_prekey
    return _bundle(
        device.registration_id,
        device.identity_public,
        (spk.key_id, spk.public, spk.signature),
        device.take_prekey(),
    )


def contact_bundle_nodes(bundle: PreKeyBundle) -> list[Node]:
    prekey = None
    if bundle.pre_key_id is not None and bundle.pre_key is not None:
        prekey = (bundle.pre_key_id, bundle.pre_key)
    return _bundle(
        bundle.registration_id,
        bundle.identity_key,
        (bundle.signed_pre_key_id, bundle.signed_pre_key, bundle.signed_pre_key_signature),
        prekey,
    )


def device_bundle(device: Device) -> PreKeyBundle:
    """The bundle a contact uses to start a session with a companion device."""
    spk = device.signed_prekey
    prekey = device.take_prekey()
    return PreKeyBundle(
        registration_id=device.registration_id,
        identity_key=device.identity_public,
        signed_pre_key_id=spk.key_id,
        signed_pre_key=spk.public,
        signed_pre_key_signature=spk.signature,
        pre_key_id=prekey[0] if prekey else None,
        pre_key=prekey[1] if prekey else None,
    )
