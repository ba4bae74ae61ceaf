"""wasim's persistent state: its root key, the simulated accounts and their linked devices.

Kept as one JSON document in the state directory, replaced atomically (temp file, fsync, rename)
on every change, so a killed or restarted wasim comes back with every link intact.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasim.protocol.crypto import KeyPair
from wasim.signal import KeyStore, SessionRecord
from wasim.signal import SignedPreKey as SignalSignedPreKey
from wasim.signal.group import GroupSender

STATE_FILE = "wasim-state.json"
STATE_VERSION = 1


@dataclass(slots=True)
class SignedPreKey:
    key_id: int
    public: bytes
    signature: bytes


@dataclass(slots=True)
class Device:
    """A companion device linked to an account (what Baileys is once paired)."""

    device_id: int
    noise_public: bytes
    identity_public: bytes
    registration_id: int
    signed_prekey: SignedPreKey
    platform: str = ""
    linked_at: float = 0.0
    removed: bool = False
    prekeys: dict[int, bytes] = field(default_factory=dict)  # uploaded and not yet handed out
    consumed: set[int] = field(default_factory=set)  # handed out once; never again

    def take_prekey(self) -> tuple[int, bytes] | None:
        """A one-time pre-key for a session someone starts with this device, used at most once."""
        if not self.prekeys:
            return None
        key_id = min(self.prekeys)
        public = self.prekeys.pop(key_id)
        self.consumed.add(key_id)
        return key_id, public


@dataclass(slots=True)
class Account:
    """A WhatsApp account: a phone number, its LID, and the phone's identity (account) key."""

    phone: str  # digits only, no '+', as in JIDs
    lid: str  # LID user part
    name: str
    identity: KeyPair
    raw_id: int
    key_index: int = 1
    next_device_id: int = 2
    devices: dict[int, Device] = field(default_factory=dict)

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"

    def live_devices(self) -> list[Device]:
        return [d for d in self.devices.values() if not d.removed]


@dataclass(slots=True)
class Contact:
    """A simulated WhatsApp user: a phone number, a LID, a push name and its own Signal keys.

    The account's own phone is a contact too (`own_phone`), whose identity is the account key.
    `sessions` holds one Signal session per companion device it talks to ("phone.device").
    `phone` is the address WhatsApp knows it by (what it sends as); `dialled` the numbers people
    dial that reach it when that differs, as on WhatsApp (Mexico's ``521…`` for ``+52 55 …``, a
    legacy eight-digit Brazilian mobile, Argentina's ``549…``): usync answers them with `phone`.
    """

    phone: str
    lid: str
    name: str
    keys: KeyStore
    own_phone: bool = False
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    dialled: list[str] = field(default_factory=list)

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"

    @property
    def lid_jid(self) -> str:
        return f"{self.lid}@lid"


@dataclass(slots=True)
class Group:
    """A WhatsApp group: members by phone, and each member's sender key once it has posted.

    `distributed` remembers which companion devices already hold a member's sender key
    ("member phone|account phone.device"), so the key travels to each device once.
    """

    jid: str
    subject: str
    members: list[str]
    senders: dict[str, GroupSender] = field(default_factory=dict)
    distributed: set[str] = field(default_factory=set)


def new_lid() -> str:
    return str(100_000_000_000_000 + secrets.randbelow(800_000_000_000_000))


def new_contact(phone: str, name: str, lid: str | None = None, address: str | None = None) -> Contact:
    """A contact people reach by dialling `phone`; registered as `address` when that differs."""
    digits = _digits(phone)
    if lid is not None and (not lid.isdigit() or not 6 <= len(lid) <= 20):
        raise ValueError(f"a LID is 6 to 20 digits, got {lid!r}")
    registered = _digits(address) if address else digits
    dialled = [digits] if registered != digits else []
    return Contact(
        phone=registered, lid=lid or new_lid(), name=name, keys=KeyStore.generate(pre_keys=20), dialled=dialled
    )


def phone_contact(account: Account) -> Contact:
    """The account's own phone (device 0) as a Signal party: its identity is the account key."""
    keys = KeyStore.generate(pre_keys=20)
    keys.identity = account.identity
    keys.signed_pre_key = SignalSignedPreKey.generate(account.identity, 1)
    return Contact(phone=account.phone, lid=account.lid, name=account.name, keys=keys, own_phone=True)


def _digits(phone: str) -> str:
    digits = phone.strip().lstrip("+")
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise ValueError(f"a phone number is + and 6 to 15 digits (E.164), got {phone!r}")
    return digits


def new_account(phone: str, name: str = "Sim User") -> Account:
    return Account(
        phone=_digits(phone),
        lid=new_lid(),
        name=name,
        identity=KeyPair.generate(),
        raw_id=secrets.randbelow(2**31),
    )


class StateError(Exception):
    """The state directory cannot be read or written; the message says which file and why."""


class WasimState:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.root = KeyPair.generate()
        self.accounts: dict[str, Account] = {}
        self.contacts: dict[str, Contact] = {}  # by phone digits; own phones included
        self.groups: dict[str, Group] = {}  # by subject
        # Lookups by key, never a scan of every contact (wasim carries thousands: bench/scale.py).
        self._by_lid: dict[str, Contact] = {}
        self._by_number: dict[str, Contact] = {}  # addresses and dialled numbers
        self._save_pending: asyncio.TimerHandle | None = None

    @classmethod
    def load(cls, directory: Path | None) -> WasimState:
        state = cls(directory)
        if directory is None:
            return state
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATE_FILE
        if path.exists():
            try:
                state._restore(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StateError(f"cannot read wasim state {path}: {exc}; move it away to start afresh") from exc
        else:
            state.save()
        return state

    def account(self, phone: str) -> Account | None:
        return self.accounts.get(phone.lstrip("+"))

    def add_account(self, account: Account) -> Account:
        self.accounts[account.phone] = account
        self._put_contact(phone_contact(account))
        self.save()
        return account

    def add_contact(self, contact: Contact) -> Contact:
        self.add_contacts([contact])
        return contact

    def add_contacts(self, contacts: list[Contact]) -> list[Contact]:
        """Add contacts, all or none, with one save (each save rewrites the whole state file)."""
        numbers: set[str] = set()
        lids: set[str] = set()
        for contact in contacts:
            existing = self.contacts.get(contact.phone)
            if existing is not None and not existing.own_phone:
                raise ValueError(f"contact +{contact.phone} already exists")
            if contact.lid in self._by_lid or contact.lid in lids:
                raise ValueError(f"LID {contact.lid} is already taken")
            own = existing is not None and existing.own_phone
            mine = {contact.phone, *contact.dialled}
            taken = {n for n in mine if n in self._by_number or n in numbers} - ({contact.phone} if own else set())
            if taken:
                raise ValueError(f"+{min(taken)} already reaches another contact")
            numbers |= mine
            lids.add(contact.lid)
        for contact in contacts:
            self._put_contact(contact)
        self.save()
        return contacts

    def _put_contact(self, contact: Contact) -> None:
        replaced = self.contacts.get(contact.phone)
        if replaced is not None:
            self._by_lid.pop(replaced.lid, None)
            for number in (replaced.phone, *replaced.dialled):
                self._by_number.pop(number, None)
        self.contacts[contact.phone] = contact
        self._by_lid[contact.lid] = contact
        for number in (contact.phone, *contact.dialled):
            self._by_number[number] = contact

    def contact_by_number(self, phone: str) -> Contact | None:
        """The contact a dialled number (``+`` optional) reaches: its address or a dialled number."""
        digits = phone.strip().lstrip("+")
        return self.contacts.get(digits) or self._by_number.get(digits)

    def contact_for(self, jid: str) -> Contact | None:
        """The contact a `user@s.whatsapp.net` or `lid@lid` JID (device suffix allowed) names."""
        user_part, _, server = jid.partition("@")
        user = user_part.partition(":")[0]
        if server == "s.whatsapp.net":
            return self.contacts.get(user)
        if server == "lid":
            return self._by_lid.get(user)
        return None

    def find_device_owner(self, phone: str, device_id: int) -> tuple[Account, Device] | None:
        acc = self.account(phone)
        if acc is None or device_id not in acc.devices:
            return None
        return acc, acc.devices[device_id]

    def save_soon(self, delay: float = 0.05) -> None:
        """Save within `delay` seconds, coalescing the many small changes a burst of messages
        makes (each save rewrites the whole file). Structural changes call save() at once."""
        if self.directory is None or self._save_pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        self._save_pending = loop.call_later(delay, self.save)

    def save(self) -> None:
        if self._save_pending is not None:
            self._save_pending.cancel()
            self._save_pending = None
        if self.directory is None:
            return
        data = json.dumps(self._dump(), separators=(",", ":"))
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / STATE_FILE)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StateError(f"cannot write wasim state in {self.directory}: {exc}") from exc

    # -- serialization --------------------------------------------------------------------------

    def _dump(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "root": self.root.to_json(),
            "accounts": [_dump_account(a) for a in self.accounts.values()],
            "contacts": [_dump_contact(c) for c in self.contacts.values()],
            "groups": [
                {
                    "jid": g.jid,
                    "subject": g.subject,
                    "members": g.members,
                    "senders": {k: v.to_json() for k, v in g.senders.items()},
                    "distributed": sorted(g.distributed),
                }
                for g in self.groups.values()
            ],
        }

    def _restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        self.root = KeyPair.from_json(data["root"])
        self.accounts = {a.phone: a for a in (_load_account(x) for x in data["accounts"])}
        self.contacts, self._by_lid, self._by_number = {}, {}, {}
        for contact in (_load_contact(x) for x in data.get("contacts", [])):
            self._put_contact(contact)
        self.groups = {
            g["subject"]: Group(
                jid=g["jid"],
                subject=g["subject"],
                members=list(g["members"]),
                senders={k: GroupSender.from_json(v) for k, v in g["senders"].items()},
                distributed=set(g["distributed"]),
            )
            for g in data.get("groups", [])
        }


def _dump_contact(c: Contact) -> dict[str, Any]:
    return {
        "phone": c.phone,
        "lid": c.lid,
        "name": c.name,
        "own_phone": c.own_phone,
        "keys": c.keys.to_json(),
        "sessions": {k: v.to_json() for k, v in c.sessions.items()},
        "inbox": c.inbox,
        "dialled": c.dialled,
    }


def _load_contact(x: dict[str, Any]) -> Contact:
    return Contact(
        phone=x["phone"],
        lid=x["lid"],
        name=x["name"],
        own_phone=bool(x.get("own_phone", False)),
        keys=KeyStore.from_json(x["keys"]),
        sessions={k: SessionRecord.from_json(v) for k, v in x["sessions"].items()},
        inbox=list(x.get("inbox", [])),
        dialled=list(x.get("dialled", [])),
    )


def _dump_account(a: Account) -> dict[str, Any]:
    return {
        "phone": a.phone,
        "lid": a.lid,
        "name": a.name,
        "identity": a.identity.to_json(),
        "raw_id": a.raw_id,
        "key_index": a.key_index,
        "next_device_id": a.next_device_id,
        "devices": [
            {
                "device_id": d.device_id,
                "noise_public": d.noise_public.hex(),
                "identity_public": d.identity_public.hex(),
                "registration_id": d.registration_id,
                "signed_prekey": [
                    d.signed_prekey.key_id,
                    d.signed_prekey.public.hex(),
                    d.signed_prekey.signature.hex(),
                ],
                "platform": d.platform,
                "linked_at": d.linked_at,
                "removed": d.removed,
                "prekeys": {str(k): v.hex() for k, v in d.prekeys.items()},
                "consumed": sorted(d.consumed),
            }
            for d in a.devices.values()
        ],
    }


def _load_account(x: dict[str, Any]) -> Account:
    devices = {}
    for d in x["devices"]:
        spk_id, spk_pub, spk_sig = d["signed_prekey"]
        devices[int(d["device_id"])] = Device(
            device_id=int(d["device_id"]),
            noise_public=bytes.fromhex(d["noise_public"]),
            identity_public=bytes.fromhex(d["identity_public"]),
            registration_id=int(d["registration_id"]),
            signed_prekey=SignedPreKey(int(spk_id), bytes.fromhex(spk_pub), bytes.fromhex(spk_sig)),
            platform=d.get("platform", ""),
            linked_at=float(d.get("linked_at", 0.0)),
            removed=bool(d["removed"]),
            prekeys={int(k): bytes.fromhex(v) for k, v in d["prekeys"].items()},
            consumed=set(d["consumed"]),
        )
    return Account(
        phone=x["phone"],
        lid=x["lid"],
        name=x["name"],
        identity=KeyPair.from_json(x["identity"]),
        raw_id=int(x["raw_id"]),
        key_index=int(x["key_index"]),
        next_device_id=int(x["next_device_id"]),
        devices=devices,
    )
