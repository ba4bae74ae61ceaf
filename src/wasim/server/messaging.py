"""Messages between simulated contacts and linked companions, end-to-end encrypted.

Contact -> account: the message is kept as plaintext and encrypted for each companion device at
the moment it is delivered (libsignal-node damages a session when handed a ciphertext made on a
session it already replaced, so ciphertexts are never queued). A device that is not connected
gets it at its next login, flagged `offline` as WhatsApp does, before `<ib><offline>`.

Account -> contact: each `<to>` of a companion's `<message>` is decrypted with the contact's
session; the plain text lands in that contact's inbox with chatstates and receipts, in order.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wasim.protocol import wa_pb2
from wasim.protocol.binary import Node
from wasim.protocol.messages import STANZA_TYPE, Quote, build_message, read_message, wrap_device_sent
from wasim.server.directory import device_bundle
from wasim.server.nodes import now_s
from wasim.server.ports import EventSink, Peer
from wasim.server.registry import Connections
from wasim.signal import SessionCipher, SessionRecord, SignalError, pad, unpad
from wasim.signal.group import GroupSender, SenderKeyRecord
from wasim.state import Account, Contact, Device, WasimState

log = logging.getLogger("wasim.messaging")

STATUS_JID = "status@broadcast"


def new_message_id() -> str:
    return "3A" + secrets.token_hex(9).upper()


@dataclass(slots=True)
class Outgoing:
    """A message from a contact (or the account's own phone) to an account's companions."""

    id: str
    sender_phone: str
    account_phone: str
    kind: str
    text: str
    message: bytes  # the serialized Message, before padding and encryption
    t: int
    lid_addressed: bool = False
    withhold_phone: bool = False  # LID-addressed without sender_pn: the companion must know the LID
    status: bool = False
    chat_jid: str = ""  # for the own phone's messages: the chat it wrote in
    group: str = ""  # subject of the group it was posted in
    group_jid: str = ""
    from_device: int = 0  # the owner's message written on another of the account's devices
    garble_first: bool = False  # the first delivery to each device is undecryptable (a fault)
    delivered_to: set[int] = field(default_factory=set)


class Messaging:
    def __init__(self, state: WasimState, events: EventSink, connections: Connections, default_phone: str) -> None:
        self._state = state
        self._events = events
        self._connections = connections
        self._default_phone = default_phone
        # Contacts whose next decryption fails on purpose (a fault: the phone lost the session),
        # so it asks the companion for a retry.
        self.fail_next_decrypt: set[str] = set()
        # Contacts (phones) whose next message from the account the server refuses with an error
        # code in its ack, e.g. "463" (no privacy token: the account may not start this chat).
        self.refuse_next: dict[str, str] = {}
        self._pending: dict[tuple[str, int], list[Outgoing]] = defaultdict(list)
        self._sent: dict[str, Outgoing] = {}
        # Delivered on a connection but not yet acknowledged by the device (a receipt or an ack).
        # Like WhatsApp, a message stays queued until then: if the connection ends first, it is
        # delivered again, flagged offline, at the device's next login.
        self._unacked: dict[Peer, dict[str, Outgoing]] = {}
        # Receipts for the device (delivery, retry) wait for its ack the same way: a retry receipt
        # lost with a connection would leave that contact without the message for good.
        self._unacked_receipts: dict[Peer, dict[tuple[str, str], Node]] = {}
        self._pending_receipts: dict[tuple[str, int], list[Node]] = defaultdict(list)
        # The account's sender keys, per group and companion device (kept for this run only).
        self._group_keys: dict[str, SenderKeyRecord] = {}

    # -- contact -> account --------------------------------------------------------------------

    async def send(
        self,
        sender: str,
        text: str = "",
        *,
        kind: str = "text",
        to: str | None = None,
        lid_addressed: bool = False,
        withhold_phone: bool = False,
        status: bool = False,
        chat: str | None = None,
        target_id: str = "",
        group: str | None = None,
        garble_first: bool = False,
        age: float = 0.0,
        mentions: Sequence[str] = (),
        reply_to: str | None = None,
        from_device: int = 0,
    ) -> str:
        """A contact (`sender` phone, or 'self' for the account's own phone) sends a message to
        account `to` (default: the only/default account). Returns the message id. `age` stamps it
        as written that many seconds ago (a phone that was offline, a backlog kept by the server).
        `withhold_phone` (with `lid_addressed`) leaves out the sender's phone number, so only a
        LID mapping the companion learned before tells it who wrote. `mentions` (phone numbers,
        or JIDs such as the account's LID) @-mention people; `reply_to` quotes a message the
        account sent this contact (its id), as replying to it on a phone does."""
        if withhold_phone and not lid_addressed:
            raise ValueError("withhold_phone applies to LID-addressed messages: set lid_addressed too")
        state = self._state
        account = state.account(to or self._default_phone)
        if account is None:
            raise ValueError(f"no account {to or self._default_phone}: link a device first")
        from_self = sender == "self"
        contact = state.contacts.get(account.phone) if from_self else state.contact_by_number(sender)
        if contact is None:
            raise ValueError(f"unknown contact {sender}: add it first (wasim contact add)")
        group_jid = ""
        if group is not None:
            found = state.groups.get(group)
            if found is None:
                raise ValueError(f"no group {group!r}: create it first (wasim group create)")
            if contact.phone not in found.members:
                raise ValueError(f"+{contact.phone} is not a member of {group!r}")
            group_jid = found.jid
        if from_device and not from_self:
            raise ValueError("from_device is for the account's own messages: send from 'self'")
        if from_self and not chat:
            raise ValueError("a message from the account's own phone needs the chat it was written in")
        chat_jid = chat if chat and "@" in chat else f"{(chat or '').lstrip('+')}@s.whatsapp.net"
        quote = self._quote(account, contact, reply_to) if reply_to else None
        message = build_message(
            kind, text, target_id=target_id, chat_jid=account.jid if not from_self else chat_jid,
            mentions=[m if "@" in m else f"{m.lstrip('+')}@s.whatsapp.net" for m in mentions], quote=quote,
        )  # fmt: skip
        if from_self:
            message = wrap_device_sent(message, chat_jid)
        out = Outgoing(
            id=new_message_id(),
            sender_phone=contact.phone,
            account_phone=account.phone,
            kind=kind,
            text=text,
            message=message,
            t=int(time.time() - age),
            lid_addressed=lid_addressed,
            withhold_phone=withhold_phone,
            status=status,
            chat_jid=chat_jid if from_self else "",
            group=group or "",
            group_jid=group_jid,
            from_device=from_device,
            garble_first=garble_first,
        )
        self._sent[out.id] = out
        await self._dispatch(account, out)
        self._events.emit("contact.sent", id=out.id, sender=contact.phone, content=kind, to=account.phone)
        return out.id

    @staticmethod
    def _quote(account: Account, contact: Contact, message_id: str) -> Quote:
        """What replying to a message the account sent this contact quotes: its id, the account
        as its author, and its text (as the contact's phone shows it)."""
        got = next((x for x in contact.inbox if x.get("type") == "message" and x.get("id") == message_id), None)
        # A post to a group that wasim could not take is quoted by its id alone.
        return Quote(message_id, account.jid, str(got.get("text") or "") if got else "")

    async def redeliver(self, message_id: str) -> None:
        """Deliver a message again with the same id (as WhatsApp does after a lost ack)."""
        out = self._sent.get(message_id)
        if out is None:
            raise ValueError(f"no message {message_id} was sent through this wasim")
        account = self._state.account(out.account_phone)
        assert account is not None
        out.delivered_to.clear()
        await self._dispatch(account, out)

    async def _dispatch(self, account: Account, out: Outgoing) -> None:
        for device in account.live_devices():
            conn = self._connections.of_device(account.phone, device)
            if conn is None:
                self._pending[(account.phone, device.device_id)].append(out)
            else:
                await self.deliver(conn, out)

    async def deliver_offline(self, conn: Peer) -> int:
        """Deliver what waited for this device (messages, then receipts), flagged offline; returns
        how many stanzas."""
        assert conn.account and conn.device
        queue = self._pending.pop((conn.account.phone, conn.device.device_id), [])
        for out in queue:
            await self.deliver(conn, out, offline=True)
        receipts = self._pending_receipts.pop((conn.account.phone, conn.device.device_id), [])
        for receipt in receipts:
            await self.send_receipt(conn, Node(receipt.tag, {**receipt.attrs, "offline": "1"}, receipt.content))
        if receipts:
            self._events.emit("receipt.redelivered", ids=[r.attrs.get("id") for r in receipts], conn=conn.id)
        return len(queue) + len(receipts)

    async def send_receipt(self, conn: Peer, receipt: Node) -> None:
        """A receipt for the device, kept until it acknowledges it (see `on_receipt_ack`)."""
        key = (receipt.attrs.get("id", ""), receipt.attrs.get("type", ""))
        self._unacked_receipts.setdefault(conn, {})[key] = receipt
        await conn.send_node(receipt)

    def on_receipt_ack(self, conn: Peer, node: Node) -> None:
        unacked = self._unacked_receipts.get(conn)
        if unacked:
            unacked.pop((node.attrs.get("id", ""), node.attrs.get("type", "")), None)

    async def deliver(self, conn: Peer, out: Outgoing, offline: bool = False) -> None:
        account, device = conn.account, conn.device
        assert account is not None and device is not None
        state = self._state
        contact = state.contacts[out.sender_phone]
        cipher = self._cipher(contact, account, device, out.from_device)
        if not cipher.has_open_session:
            cipher.process_bundle(device_bundle(device))
        if out.garble_first and device.device_id not in out.delivered_to:
            # Ciphertext no session can open: the device must answer with a retry receipt.
            encs = [Node("enc", {"v": "2", "type": "msg"}, b"\x33" + secrets.token_bytes(60))]
        elif out.group_jid:
            encs = self._group_encs(account, device, contact, cipher, out)
        else:
            enc = cipher.encrypt(pad(out.message))
            encs = [Node("enc", {"v": "2", "type": enc.type}, enc.body)]
        state.save_soon()
        self._unacked.setdefault(conn, {})[out.id] = out
        await conn.send_node(self._stanza(account, contact, out, encs, offline))
        out.delivered_to.add(device.device_id)
        self._events.emit("delivered", id=out.id, device=device.device_id, offline=offline, conn=conn.id)

    def _group_encs(
        self, account: Account, device: Device, contact: Contact, cipher: SessionCipher, out: Outgoing
    ) -> list[Node]:
        """A group post: the member's sender key over the 1:1 session (first, and only to devices
        that lack it), then the content under the sender key. Encrypted at delivery, so every
        device sees a sender's iterations in order (Baileys cannot decrypt a late one)."""
        group = self._state.groups[out.group]
        sender = group.senders.get(contact.phone)
        if sender is None:
            sender = group.senders[contact.phone] = GroupSender.generate()
        encs: list[Node] = []
        holder = f"{contact.phone}|{account.phone}.{device.device_id}"
        if holder not in group.distributed:
            skdm = wa_pb2.Message(
                sender_key_distribution_message=wa_pb2.Message.SenderKeyDistributionMessage(
                    group_id=group.jid, axolotl_sender_key_distribution_message=sender.distribution_message()
                )
            ).SerializeToString()
            enc = cipher.encrypt(pad(skdm))
            encs.append(Node("enc", {"v": "2", "type": enc.type}, enc.body))
            group.distributed.add(holder)
        encs.append(Node("enc", {"v": "2", "type": "skmsg"}, sender.encrypt(pad(out.message))))
        return encs

    @staticmethod
    def _cipher(contact: Contact, account: Account, device: Device, from_device: int = 0) -> SessionCipher:
        # Another device of the account's own (from_device) has a session of its own with each companion.
        address = f"{account.phone}.{device.device_id}" + (f"|{from_device}" if from_device else "")
        record = contact.sessions.setdefault(address, SessionRecord())
        return SessionCipher(contact.keys, record)

    @staticmethod
    def _stanza(account: Account, contact: Contact, out: Outgoing, encs: list[Node], offline: bool) -> Node:
        attrs: dict[str, str]
        if out.group_jid:
            attrs = {
                "from": out.group_jid,
                "participant": contact.jid,
                "participant_lid": contact.lid_jid,
                "addressing_mode": "pn",
            }
        elif out.status:
            attrs = {"from": STATUS_JID, "participant": contact.jid, "participant_lid": contact.lid_jid}
        elif contact.own_phone:
            sender = f"{account.phone}:{out.from_device}@s.whatsapp.net" if out.from_device else account.jid
            attrs = {"from": sender, "recipient": out.chat_jid}
        elif out.lid_addressed:
            attrs = {"from": contact.lid_jid, "addressing_mode": "lid"}
            if not out.withhold_phone:
                attrs["sender_pn"] = contact.jid
        else:
            attrs = {"from": contact.jid, "sender_lid": contact.lid_jid, "addressing_mode": "pn"}
        attrs |= {"id": out.id, "t": str(out.t), "type": STANZA_TYPE[out.kind]}
        if not contact.own_phone:
            attrs["notify"] = contact.name
        if offline:
            attrs["offline"] = "1"
        return Node("message", attrs, encs)

    # -- account -> contact --------------------------------------------------------------------

    async def on_client_message(self, conn: Peer, node: Node) -> None:
        account, device = conn.account, conn.device
        msg_id = node.attrs.get("id", "")
        to = node.attrs.get("to", "")
        if account is None or device is None:
            return
        participants = node.child("participants")
        if to.endswith("@g.us"):
            await self._group_post(conn, account, device, node)
            return
        targets = participants.children("to") if participants else [Node("to", {"jid": to}, node.children("enc"))]
        recipient = self._state.contact_for(to)
        if recipient is None:
            await conn.send_node(Node("ack", {"class": "message", "id": msg_id, "from": to, "error": "400"}))
            self._events.emit("message.rejected", id=msg_id, to=to, why="unknown recipient")
            return
        refusal = self.refuse_next.pop(recipient.phone, None)
        if refusal is not None:
            await conn.send_node(Node("ack", {"class": "message", "id": msg_id, "from": to, "error": refusal}))
            self._events.emit("message.rejected", id=msg_id, to=to, why=f"refused with {refusal}")
            return
        await conn.send_node(Node("ack", {"class": "message", "id": msg_id, "from": to, "t": now_s()}))
        for target in targets:
            await self._decrypt_for(conn, account, device, msg_id, to, target)
        self._state.save_soon()
        # The recipient's phone got it: a delivery receipt, as WhatsApp sends.
        await self.send_receipt(conn, Node("receipt", {"from": to, "id": msg_id, "t": now_s()}))

    async def _group_post(self, conn: Peer, account: Account, device: Device, node: Node) -> None:
        """The account posts in a group: the sender key travels to each member in a 1:1 message
        (<participants>), the text under it (<enc type="skmsg">); every member's phone shows it."""
        msg_id, to = node.attrs.get("id", ""), node.attrs.get("to", "")
        group = next((g for g in self._state.groups.values() if g.jid == to), None)
        if group is None or account.phone not in group.members:
            await conn.send_node(Node("ack", {"class": "message", "id": msg_id, "from": to, "error": "404"}))
            return
        await conn.send_node(Node("ack", {"class": "message", "id": msg_id, "from": to, "t": now_s()}))
        record = self._group_keys.setdefault(f"{to}|{account.phone}.{device.device_id}", SenderKeyRecord())
        participants = node.child("participants")
        for target in participants.children("to") if participants else []:
            contact = self._state.contact_for(target.attrs.get("jid", ""))
            enc = target.child("enc")
            if contact is None or enc is None:
                continue
            cipher = self._cipher(contact, account, device)
            try:
                inner = wa_pb2.Message.FromString(unpad(cipher.decrypt(enc.attrs.get("type", ""), enc.content_bytes())))
            except SignalError as exc:
                log.warning("contact %s could not decrypt the sender key of %s: %r", contact.phone, msg_id, exc)
                continue
            if inner.HasField("sender_key_distribution_message"):
                record.process(inner.sender_key_distribution_message.axolotl_sender_key_distribution_message)
        content = next((e for e in node.children("enc") if e.attrs.get("type") == "skmsg"), None)
        if content is None:
            return
        try:
            read = read_message(unpad(record.decrypt(content.content_bytes())))
        except SignalError as exc:
            self._events.emit("decrypt.failed", id=msg_id, contact=to, error=repr(exc))
            return
        self._state.save_soon()
        for phone in group.members:
            member = self._state.contacts.get(phone)
            if member is None or member.own_phone:
                continue
            entry = {
                "type": "message", "id": msg_id, "at": time.time(), "kind": read.kind, "text": read.text,
                "quoted": read.quoted, "chat": to, "enc": "skmsg", "device": device.device_id,
            }  # fmt: skip
            member.inbox.append(entry)
            self._events.emit("contact.received", contact=phone, **entry)

    async def _decrypt_for(
        self, conn: Peer, account: Account, device: Device, msg_id: str, chat: str, target: Node
    ) -> None:
        jid = target.attrs.get("jid", "")
        contact = self._state.contact_for(jid)
        enc = target.child("enc")
        if contact is None or enc is None or ":" in jid.partition("@")[0]:
            return  # another companion of the account: nobody simulated reads it
        cipher = self._cipher(contact, account, device)
        try:
            if contact.phone in self.fail_next_decrypt:
                self.fail_next_decrypt.discard(contact.phone)
                raise SignalError("decryption failed on purpose (fault injected)")
            plain = unpad(cipher.decrypt(enc.attrs.get("type", ""), enc.content_bytes()))
        except SignalError as exc:
            log.warning("contact %s could not decrypt %s: %r", contact.phone, msg_id, exc)
            self._events.emit("decrypt.failed", id=msg_id, contact=contact.phone, error=repr(exc))
            await self.send_receipt(conn, self._retry_receipt(contact, msg_id, chat))
            return
        read = read_message(plain)
        if any(x["type"] == "message" and x.get("id") == msg_id for x in contact.inbox):
            # A phone shows a message once, however often it arrives under the same id (a sender
            # that resends after a crash relies on this).
            self._events.emit("contact.duplicate", contact=contact.phone, id=msg_id, text=read.text)
            return
        entry: dict[str, Any] = {
            "type": "message",
            "id": msg_id,
            "at": time.time(),
            "kind": read.kind,
            "text": read.text,
            "quoted": read.quoted,
            "chat": chat,
            "enc": enc.attrs.get("type"),
            "device": device.device_id,
        }
        contact.inbox.append(entry)
        self._events.emit("contact.received", contact=contact.phone, **entry)

    @staticmethod
    def _retry_receipt(contact: Contact, msg_id: str, chat: str) -> Node:
        return Node(
            "receipt",
            {"from": chat, "id": msg_id, "type": "retry", "t": now_s()},
            [
                Node("retry", {"count": "1", "id": msg_id, "t": now_s(), "v": "1"}),
                Node("registration", {}, contact.keys.registration_id.to_bytes(4, "big")),
            ],
        )

    async def on_retry_receipt(self, conn: Peer, node: Node) -> None:
        """Baileys could not decrypt one of our messages: start a fresh session and send it again,
        as a phone does when it gets a retry receipt."""
        out = self._sent.get(node.attrs.get("id", ""))
        if out is None or conn.account is None or conn.device is None:
            return
        contact = self._state.contacts[out.sender_phone]
        cipher = self._cipher(contact, conn.account, conn.device)
        cipher.process_bundle(device_bundle(conn.device))
        self._events.emit("retry.received", id=out.id, device=conn.device.device_id)
        await self.deliver(conn, out)

    def on_client_ack(self, conn: Peer, node: Node) -> None:
        """A receipt or ack from the device: the messages it names are delivered for good."""
        listed = node.child("list")
        ids = (
            [node.attrs.get("id", ""), *(i.attrs.get("id", "") for i in listed.children("item"))]
            if listed
            else [node.attrs.get("id", "")]
        )
        unacked = self._unacked.get(conn)
        if unacked:
            for msg_id in ids:
                unacked.pop(msg_id, None)

    def connection_closed(self, conn: Peer) -> None:
        """Queue again what this connection received but never acknowledged."""
        receipts = self._unacked_receipts.pop(conn, {})
        unacked = self._unacked.pop(conn, {})
        if conn.account is None or conn.device is None:
            return
        if receipts:
            waiting = self._pending_receipts[(conn.account.phone, conn.device.device_id)]
            waiting[:0] = list(receipts.values())
            self._events.emit("receipt.requeued", ids=[k[0] for k in receipts], **conn.describe())
        if not unacked:
            return
        queue = self._pending[(conn.account.phone, conn.device.device_id)]
        queue[:0] = [out for out in unacked.values() if out not in queue]
        self._events.emit("message.requeued", ids=list(unacked), **conn.describe())

    def record_presence(self, conn: Peer, node: Node) -> None:
        """Chatstates and receipts the account sends land in the inbox of the contact concerned."""
        to = node.attrs.get("to", "")
        contact = self._state.contact_for(to)
        if contact is None:
            return
        entry: dict[str, Any] = {"at": time.time()}
        if node.tag == "chatstate":
            kids = node.children()
            state = kids[0].tag if kids else "unknown"
            if state == "composing" and kids[0].attrs.get("media") == "audio":
                state = "recording"
            entry |= {"type": "chatstate", "state": state}
        elif node.tag == "receipt":
            listed = node.child("list")
            more = [i.attrs.get("id", "") for i in listed.children("item")] if listed else []
            ids = [node.attrs.get("id", ""), *more]
            entry |= {"type": "receipt", "receipt": node.attrs.get("type", "delivery"), "ids": ids}
        else:
            return
        contact.inbox.append(entry)
        self._events.emit(f"contact.{entry['type']}", contact=contact.phone, **entry)


__all__ = ["Messaging", "new_message_id"]
