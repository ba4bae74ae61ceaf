"""Who exists and which keys they have: accounts and their devices, contacts and groups;
answers device lists (usync), key-bundle fetches and the devices' pre-key uploads.

Users are the simulated accounts (the phone as device 0, linked companions as devices 1..n) and
the simulated contacts (device 0 only). Unknown users get an empty device list, as on WhatsApp.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, TypedDict

from wasim.protocol.binary import Node
from wasim.server.nodes import iq_error, iq_result, now_s
from wasim.server.ports import EventSink, Peer
from wasim.signal import PreKeyBundle, raw_key
from wasim.state import Account, Contact, Device, Group, SignedPreKey, WasimState, new_contact

log = logging.getLogger("wasim.directory")


def split_jid(jid: str) -> tuple[str, int, str]:
    """`user[:device]@server` -> (user, device, server); device 0 when absent."""
    user, _, server = jid.partition("@")
    user, _, device = user.partition(":")
    user = user.partition("_")[0]  # agent suffix (`user_1:2@…`): not used by WhatsApp Web companions
    return user, int(device) if device.isdigit() else 0, server


class DeviceView(TypedDict):
    device: int
    jid: str
    linked: bool
    platform: str
    linked_at: float
    prekeys: int
    connected: bool


class AccountView(TypedDict):
    phone: str
    lid: str
    name: str
    devices: list[DeviceView]


class ContactView(TypedDict):
    phone: str
    lid: str
    name: str
    own_phone: bool
    dialled: list[str]


class Directory:
    def __init__(self, state: WasimState, events: EventSink, default_phone: str) -> None:
        self._state = state
        self._events = events
        self._default_phone = default_phone

    def account_for(self, user: str, server: str) -> Account | None:
        for acc in self._state.accounts.values():
            if (server == "s.whatsapp.net" and acc.phone == user) or (server == "lid" and acc.lid == user):
                return acc
        return None

    def usync(self, conn: Peer, node: Node) -> Node:
        usync = node.child("usync")
        query = usync.child("query") if usync else None
        users_in = usync.child("list") if usync else None
        if usync is None or query is None or users_in is None:
            return iq_error(node, 400, "bad-request")
        wanted = {q.tag for q in query.children()}
        users_out: list[Node] = []
        for user in users_in.children("user"):
            asked = user.child("contact")
            if "jid" not in user.attrs and asked is not None and asked.content_bytes():
                users_out.append(self._number_user(asked.content_bytes().decode(), wanted))
                continue
            jid = user.attrs.get("jid")
            if not jid or "@" not in jid:
                return iq_error(node, 400, "bad-request")
            u, _, srv = split_jid(jid)
            acc = self.account_for(u, srv)
            contact = self._state.contact_for(jid)
            parts: list[Node] = []
            if "contact" in wanted:
                parts.append(Node("contact", {"type": "in" if acc or contact else "out"}))
            if "devices" in wanted:
                parts.append(self._device_list(acc, contact))
            lid = acc.lid if acc else contact.lid if contact else None
            if "lid" in wanted and lid is not None:
                parts.append(Node("lid", {"val": f"{lid}@lid"}))
            users_out.append(Node("user", {"jid": jid}, parts))
        self._events.emit(
            "usync", users=[u.attrs.get("jid", "") for u in users_out], context=usync.attrs.get("context")
        )
        result = Node("usync", dict(usync.attrs), [Node("result", {}), Node("list", {}, users_out)])
        return iq_result(node, [result])

    def _number_user(self, number: str, wanted: set[str]) -> Node:
        """A usync user asked for by phone number (Baileys' onWhatsApp): the account the number
        reaches, which may be registered under another address, or `type="out"`: not on WhatsApp."""
        digits = number.strip().lstrip("+")
        acc = self._state.account(digits)
        contact = self._state.contact_by_number(digits)
        if acc is None and contact is None:
            return Node("user", {"jid": f"{digits}@s.whatsapp.net"}, [Node("contact", {"type": "out"}, number)])
        address = acc.phone if acc is not None else contact.phone if contact is not None else digits
        parts = [Node("contact", {"type": "in"}, number)]
        if "devices" in wanted:
            parts.append(self._device_list(acc, contact))
        lid = acc.lid if acc else contact.lid if contact else None
        if "lid" in wanted and lid is not None:
            parts.append(Node("lid", {"val": f"{lid}@lid"}))
        return Node("user", {"jid": f"{address}@s.whatsapp.net"}, parts)

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

    def group_metadata(self, conn: Peer, node: Node) -> Node:
        """A group's subject and members (``w:g2`` query): what a client asks before it posts."""
        to = node.attrs.get("to", "")
        group = next((g for g in self._state.groups.values() if g.jid == to), None)
        if group is None or conn.account is None or conn.account.phone not in group.members:
            return iq_error(node, 404, "item-not-found")
        owner = conn.account.phone
        members = [
            Node("participant", {"jid": f"{m}@s.whatsapp.net", **({"type": "superadmin"} if m == owner else {})})
            for m in group.members
        ]
        attrs = {
            "id": group.jid.partition("@")[0], "subject": group.subject, "creation": "1700000000",
            "creator": f"{owner}@s.whatsapp.net", "s_t": "1700000000", "addressing_mode": "pn",
        }  # fmt: skip
        return iq_result(node, [Node("group", attrs, members)])

    def key_bundles(self, conn: Peer, node: Node) -> Node:
        key = node.child("key")
        if key is None:
            return iq_error(node, 400, "bad-request")
        out: list[Node] = []
        for user in key.children("user"):
            jid = user.attrs.get("jid", "")
            u, dev, srv = split_jid(jid)
            nodes: list[Node] | None = None
            if dev == 0:
                contact = self._state.contact_for(jid)
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
        self._events.emit("keys.fetched", jids=[u.attrs.get("jid", "") for u in key.children("user")])
        self._state.save_soon()  # one-time pre-keys handed out are never handed out again
        return iq_result(node, [Node("list", {}, out)])

    # -- devices' pre-keys --------------------------------------------------------------------

    def prekey_count(self, conn: Peer, node: Node) -> Node:
        device = conn.require_device()
        return iq_result(node, [Node("count", {"value": str(len(device.prekeys))})])

    def upload_prekeys(self, conn: Peer, node: Node) -> Node:
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
        self._state.save()
        self._events.emit("prekeys.uploaded", phone=conn.account_phone, device=device.device_id, count=len(keys))
        return iq_result(node)

    def unlink_device(self, conn: Peer, reason: str) -> None:
        """The companion on `conn` removes itself (Baileys' logout)."""
        device = conn.require_device()
        device.removed = True
        device.prekeys.clear()
        self._state.save()
        self._events.emit("device.unlinked", reason=reason, **conn.describe())

    # -- contacts and groups ------------------------------------------------------------------

    def add_contact(self, phone: str, name: str, lid: str | None = None, address: str | None = None) -> Contact:
        """A simulated person reached by dialling `phone`, registered as `address` when given
        (``5215512345678`` for ``+525512345678``): it sends as that address, and usync says so."""
        contact = self._state.add_contact(new_contact(phone, name, lid, address))
        self._events.emit(
            "contact.added", phone=contact.phone, lid=contact.lid, name=name, dialled=list(contact.dialled)
        )
        return contact

    def add_contacts(self, people: list[tuple[str, str]]) -> list[Contact]:
        """Many simulated people at once, (phone, name) each: all or none, saved once."""
        contacts = self._state.add_contacts([new_contact(phone, name) for phone, name in people])
        self._events.emit("contacts.added", phones=[c.phone for c in contacts])
        return contacts

    def create_group(self, subject: str, members: list[str], account: str | None = None) -> Group:
        """A group of the account and the given contacts (phones)."""
        acc = self._state.account(account or self._default_phone)
        if acc is None:
            raise ValueError("no account to create a group for: link a device first")
        if subject in self._state.groups:
            raise ValueError(f"a group named {subject!r} already exists")
        phones = [m.lstrip("+") for m in members]
        unknown = [p for p in phones if p not in self._state.contacts]
        if unknown:
            raise ValueError(f"unknown contacts {', '.join('+' + p for p in unknown)}: add them first")
        group = Group(jid=f"120363{secrets.randbelow(10**12):012d}@g.us", subject=subject, members=[acc.phone, *phones])
        self._state.groups[subject] = group
        self._state.save()
        self._events.emit("group.created", jid=group.jid, subject=subject, members=group.members)
        return group

    def inbox(self, phone: str) -> list[dict[str, Any]]:
        contact = self._state.contact_by_number(phone)
        if contact is None:
            raise ValueError(f"unknown contact {phone}")
        return list(contact.inbox)

    # -- views for the control API --------------------------------------------------------------

    def describe_accounts(self, connected: Callable[[Device], bool]) -> list[AccountView]:
        return [
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
                        "connected": connected(d),
                    }
                    for d in a.devices.values()
                ],
            }
            for a in self._state.accounts.values()
        ]

    def describe_contacts(self) -> list[ContactView]:
        return [
            {
                "phone": "+" + c.phone,
                "lid": c.lid,
                "name": c.name,
                "own_phone": c.own_phone,
                "dialled": ["+" + d for d in c.dialled],
            }
            for c in self._state.contacts.values()
        ]


def _uint(node: Node | None, what: str) -> int:
    if node is None:
        raise ValueError(f"missing <{what}>")
    return int.from_bytes(node.content_bytes(), "big")


def _child_bytes(node: Node, tag: str) -> bytes:
    child = node.child(tag)
    if child is None:
        raise ValueError(f"missing <{tag}> in <{node.tag}>")
    return child.content_bytes()


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
