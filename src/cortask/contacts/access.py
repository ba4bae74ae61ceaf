"""Who may talk to the agent: trusted contacts, the legacy allowedUsers list, or everyone.

Pure: built from configuration, asked one question per message. The rules, in order:

1. Trusted contacts, when there is at least one, decide alone: ``write``/``admin`` reach the agent,
   ``read`` gets the fixed reply "You have read-only access." and no agent run, and any other
   number is ignored silently (no reply, no typing indicator, no read receipt).
2. Otherwise the legacy ``allowedUsers`` list, when it has entries, decides: listed numbers reach
   the agent, others are ignored. Its entries are normalised with the same rules as contacts
   (with or without +, spaces, dashes, parentheses, a 00 prefix); an entry that cannot be
   normalised is reported in ``problems``, never dropped silently and never matched loosely.
3. Otherwise (both lists empty) nobody reaches the agent unless ``open_to_everyone`` is set.

``open_to_everyone`` only applies in case 3. The spec says that once trusted contacts are
configured any unknown number is silently ignored; the same is kept for a configured
allowedUsers list (even one whose every entry was unusable, so a typo fails closed rather than
opening the agent to everyone). The policy reports the conflict in ``problems``.

Who a sender is, in order: the WhatsApp address a contact's number was found registered as
(`Registration.address`, asked of WhatsApp), then its LID, then the exact E.164 number, then,
for contacts whose registered address is not known yet, the equivalence rules of
`cortask.contacts.addresses` (``5215512345678`` is ``+52 55 1234 5678``). Never a suffix or
substring. A sender with neither a number nor a known LID matches no list, so it is ignored
unless the agent is open to everyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from cortask.contacts.addresses import whatsapp_addresses
from cortask.contacts.phone import InvalidPhoneNumber, is_e164, normalize_phone

__all__ = [
    "READ_ONLY_REPLY",
    "AccessDecision",
    "AccessPolicy",
    "Permission",
    "Registration",
    "RejectedEntry",
    "TrustedContact",
    "Verdict",
    "WhatsAppState",
]

READ_ONLY_REPLY = "You have read-only access."


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"  # write, plus the owner's /commands in WhatsApp (issue #14)

    @classmethod
    def parse(cls, text: str) -> Permission:
        """Read a permission from configuration ("Write" and " admin " are fine)."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f"{text!r} is not a permission: use read, write or admin.") from None


# Lower is more restrictive; used to settle duplicate contacts toward the safer permission.
_RANK = {Permission.READ: 0, Permission.WRITE: 1, Permission.ADMIN: 2}


class WhatsAppState(StrEnum):
    """What WhatsApp said when last asked which account a contact's number is."""

    UNCHECKED = "unchecked"
    REGISTERED = "registered"
    NOT_ON_WHATSAPP = "not_on_whatsapp"


@dataclass(frozen=True, slots=True)
class Registration:
    """The account WhatsApp knows a number as: its PN address (user part, ``5215512345678``) and
    LID (user part), and when it was asked; `UNCHECKED` until asked while linked."""

    state: WhatsAppState = WhatsAppState.UNCHECKED
    address: str | None = None
    lid: str | None = None
    checked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrustedContact:
    """A number that may talk to the agent. `phone` must already be E.164 (see `parse`);
    `written` is the number as the person typed it, shown beside it."""

    phone: str
    permission: Permission
    name: str | None = None
    # What was typed and what WhatsApp said are shown beside the number; they do not make it
    # another contact, so equality stays the number, permission and name.
    written: str | None = field(default=None, compare=False)
    whatsapp: Registration = field(default_factory=Registration, compare=False)

    def __post_init__(self) -> None:
        if not is_e164(self.phone):
            raise ValueError(f"{self.phone!r} is not in E.164 form: build contacts with TrustedContact.parse().")
        if not isinstance(self.permission, Permission):
            raise TypeError(f"permission must be a Permission, not {self.permission!r}")

    @classmethod
    def parse(
        cls,
        phone: str,
        permission: Permission | str = Permission.WRITE,
        name: str | None = None,
        *,
        default_region: str | None = None,
    ) -> TrustedContact:
        """A contact from what a person typed; raises InvalidPhoneNumber or ValueError (permission)."""
        perm = permission if isinstance(permission, Permission) else Permission.parse(permission)
        clean_name = name.strip() if name is not None else None
        return cls(normalize_phone(phone, default_region), perm, clean_name or None, phone.strip() or None)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.phone})" if self.name else self.phone


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    """An allowedUsers entry that could not be normalised, and why."""

    text: str
    reason: str


class Verdict(StrEnum):
    AGENT = "agent"
    READ_ONLY = "read_only"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """What to do with one inbound message; the channel applies the flags mechanically."""

    verdict: Verdict
    reason: str  # short code for logs: trusted_write, trusted_read, allowed_user, open, unknown, …
    contact: TrustedContact | None = None

    @property
    def runs_agent(self) -> bool:
        return self.verdict is Verdict.AGENT

    @property
    def reply(self) -> str | None:
        """A fixed reply to send instead of an agent answer, if any."""
        return READ_ONLY_REPLY if self.verdict is Verdict.READ_ONLY else None

    @property
    def shows_typing(self) -> bool:
        return self.verdict is Verdict.AGENT

    @property
    def sends_read_receipt(self) -> bool:
        # "read" contacts are acknowledged; unknown senders must not learn anyone is there.
        return self.verdict is not Verdict.IGNORE


class AccessPolicy:
    """Immutable once built; `decide` is a dictionary lookup."""

    __slots__ = (
        "_allowed",
        "_allowed_addresses",
        "_by_address",
        "_by_equivalent",
        "_by_lid",
        "_contacts",
        "_legacy_configured",
        "_open",
        "_problems",
        "_rejected",
    )

    def __init__(
        self,
        trusted_contacts: Iterable[TrustedContact] = (),
        allowed_users: Iterable[str | int] = (),
        *,
        open_to_everyone: bool = False,
        default_region: str | None = None,
    ) -> None:
        problems: list[str] = []
        contacts: dict[str, TrustedContact] = {}
        for contact in trusted_contacts:
            known = contacts.get(contact.phone)
            if known is None:
                contacts[contact.phone] = contact
                continue
            keep = known if _RANK[known.permission] <= _RANK[contact.permission] else contact
            contacts[contact.phone] = keep
            if known.permission is not contact.permission:
                problems.append(
                    f"{contact.phone} is listed twice as a trusted contact ({known.permission}, "
                    f"{contact.permission}); the more restrictive {keep.permission} applies."
                )

        # JSON configs sometimes hold numbers as numbers: 4915123456789 means "4915123456789".
        raw_entries = [text for text in (str(entry).strip() for entry in allowed_users) if text]
        allowed: set[str] = set()
        rejected: list[RejectedEntry] = []
        for entry in raw_entries:
            try:
                allowed.add(normalize_phone(entry, default_region))
            except InvalidPhoneNumber as exc:
                rejected.append(RejectedEntry(entry, str(exc)))
        for item in rejected:
            problems.append(f"allowedUsers entry {item.text!r} is not used: {item.reason}")
        if contacts and raw_entries:
            problems.append("The allowedUsers list is not used because trusted contacts are configured.")
        if open_to_everyone and (contacts or raw_entries):
            which = "trusted contacts are" if contacts else "an allowedUsers list is"
            problems.append(f"Answering everyone is switched on but has no effect because {which} configured.")

        self._contacts: Mapping[str, TrustedContact] = MappingProxyType(contacts)
        self._by_address, self._by_lid, self._by_equivalent = _sender_indexes(contacts.values())
        self._allowed = frozenset(allowed)
        self._allowed_addresses = frozenset(a for number in allowed for a in whatsapp_addresses(number))
        self._legacy_configured = bool(raw_entries)
        self._rejected = tuple(rejected)
        self._open = open_to_everyone
        self._problems = tuple(problems)

    # --- the question ---------------------------------------------------------------------

    def decide(self, sender_phone_e164: str | None, sender_lid: str | None = None) -> AccessDecision:
        """Route one message by its sender's number as WhatsApp states it (``+`` and the address's
        digits; None when it could not be resolved) and LID (``…@lid`` or its user part)."""
        if self._contacts:
            contact = self.contact_for(sender_phone_e164, sender_lid)
            if contact is None:
                return AccessDecision(Verdict.IGNORE, "unknown")
            if contact.permission is Permission.READ:
                return AccessDecision(Verdict.READ_ONLY, "trusted_read", contact)
            return AccessDecision(Verdict.AGENT, f"trusted_{contact.permission}", contact)
        if self._legacy_configured:
            if sender_phone_e164 is not None and (
                sender_phone_e164 in self._allowed or sender_phone_e164[1:] in self._allowed_addresses
            ):
                return AccessDecision(Verdict.AGENT, "allowed_user")
            return AccessDecision(Verdict.IGNORE, "unknown")
        if self._open:
            return AccessDecision(Verdict.AGENT, "open")
        return AccessDecision(Verdict.IGNORE, "nobody_allowed")

    def contact_for(self, sender_phone_e164: str | None, sender_lid: str | None = None) -> TrustedContact | None:
        """The trusted contact a sender is: registered address, LID, exact number, then the
        equivalence rules for contacts whose registered address is not known yet."""
        address = sender_phone_e164[1:] if sender_phone_e164 and sender_phone_e164.startswith("+") else None
        lid = sender_lid.partition("@")[0].partition(":")[0] if sender_lid else None
        found = (
            (self._by_address.get(address) if address else None)
            or (self._by_lid.get(lid) if lid else None)
            or (sender_phone_e164 if sender_phone_e164 in self._contacts else None)
            or (self._by_equivalent.get(address) if address else None)
        )
        return self._contacts.get(found) if found else None

    # --- what the UI shows ----------------------------------------------------------------

    @property
    def contacts(self) -> Mapping[str, TrustedContact]:
        return self._contacts

    @property
    def allowed_users(self) -> frozenset[str]:
        """The usable legacy entries, in E.164."""
        return self._allowed

    @property
    def rejected_entries(self) -> tuple[RejectedEntry, ...]:
        return self._rejected

    @property
    def problems(self) -> tuple[str, ...]:
        """Configuration issues worth showing, each a full sentence."""
        return self._problems

    @property
    def open_to_everyone(self) -> bool:
        """True only when the open setting is actually in effect."""
        return self._open and not self._contacts and not self._legacy_configured

    @property
    def nobody_can_reach_agent(self) -> bool:
        if self._contacts:
            return all(c.permission is Permission.READ for c in self._contacts.values())
        if self._legacy_configured:
            return not self._allowed
        return not self._open

    @property
    def status(self) -> str:
        """One sentence for the channel status: who reaches the agent right now."""
        if self._contacts:
            total = len(self._contacts)
            readers = sum(c.permission is Permission.READ for c in self._contacts.values())
            if readers == total:
                who = "the only trusted contact has" if total == 1 else f"all {total} trusted contacts have"
                return f"Nobody can reach the agent: {who} read-only access; give a contact write access."
            agents = total - readers
            tail = ""
            if readers:
                tail = f", and {readers} more {'has' if readers == 1 else 'have'} read-only access"
            return f"{_count(agents, 'trusted contact')} can reach the agent{tail}."
        if self._legacy_configured:
            if not self._allowed:
                return (
                    "Nobody can reach the agent: no allowedUsers entry is a usable phone number; "
                    "fix them or add a trusted contact."
                )
            allowed = _count(len(self._allowed), "number")
            return f"{allowed} from the legacy allowedUsers list can reach the agent."
        if self._open:
            return "Everyone who messages this WhatsApp account can reach the agent."
        return "Nobody can reach the agent: add a trusted contact, or switch on answering everyone."


def _sender_indexes(
    contacts: Iterable[TrustedContact],
) -> tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str]]:
    """(registered address -> phone, LID -> phone, equivalent address -> phone) of the contacts.
    Only contacts WhatsApp has not told us an address for are matched by equivalence."""
    by_address: dict[str, TrustedContact] = {}
    by_lid: dict[str, TrustedContact] = {}
    by_equivalent: dict[str, TrustedContact] = {}

    def put(index: dict[str, TrustedContact], key: str, contact: TrustedContact) -> None:
        # Two contacts that are one account (+54 11 … and +54 9 11 …): the safer permission applies.
        known = index.get(key)
        if known is None or _RANK[contact.permission] < _RANK[known.permission]:
            index[key] = contact

    for contact in contacts:
        reg = contact.whatsapp
        if reg.address:
            put(by_address, reg.address, contact)
        if reg.lid:
            put(by_lid, reg.lid, contact)
        if not reg.address:
            for address in whatsapp_addresses(contact.phone):
                put(by_equivalent, address, contact)

    def phones(index: dict[str, TrustedContact]) -> Mapping[str, str]:
        return MappingProxyType({key: c.phone for key, c in index.items()})

    return phones(by_address), phones(by_lid), phones(by_equivalent)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
