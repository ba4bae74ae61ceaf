"""What the application layer takes and gives: the same models for the gateway's JSON, the CLI's
--json and the clients. Inputs are strict (exactly the JSON types the schema states: 0.0 is not
false, and 1 is not "1"); outputs describe themselves, so no reader needs the server's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from cortask.channels.whatsapp.state import ConnectionState, Tone, UserAction

STRICT = ConfigDict(strict=True)

PermissionName = Literal["read", "write", "admin"]


# -- inputs --------------------------------------------------------------------------------------


class ContactIn(BaseModel):
    model_config = STRICT
    phone: str
    name: str | None = None
    permission: str = "write"  # checked by the store, whose sentence names the choices


class ContactPatch(BaseModel):
    model_config = STRICT
    name: str | None = None
    permission: str | None = None


class EntriesIn(BaseModel):
    model_config = STRICT
    entries: list[str]


class SettingsPatch(BaseModel):
    model_config = STRICT
    answer_groups: bool | None = None
    open_to_everyone: bool | None = None
    default_region: str | None = None
    self_chat: bool | None = None  # the owner talks to the agent in their own chat (issue #14)
    self_chat_prefix: str | None = None  # marks the agent's replies there; "" for none
    answers_paused: bool | None = None  # connected, but only admin commands are answered
    group_mode: str | None = None  # with groups on: "mention" (the default) or "always"
    groups_allowed: list[str] | None = None  # group JIDs answered in; [] for every group
    approvals: bool | None = None  # a stranger's first message waits for the owner's approval
    approval_hours: float | None = None  # how long an approval code is valid (default 24)


class PhoneIn(BaseModel):
    model_config = STRICT
    phone: str


class Origin(Enum):
    """Where a request comes from, said by the caller (never guessed from the request)."""

    MACHINE = "machine"  # the CLI in this process, or a settings file: the owner at the machine
    NETWORK = "network"  # the HTTP API: anyone who reached the gateway


class AgentIn(BaseModel):
    model_config = STRICT
    provider: str
    settings: dict[str, JsonValue] = {}


# -- outputs -------------------------------------------------------------------------------------


class ActionOffer(BaseModel):
    """One button the UI may show: whether it may be pressed now, its words, and why not."""

    action: UserAction
    allowed: bool
    label: str
    why_not: str | None = None


class Storage(BaseModel):
    """What Cortask keeps on disk: the database's size and how far back its records go."""

    database_bytes: int  # cortask.db with its write-ahead log
    oldest_record_at: float | None  # Unix time of the oldest journal entry, reply or session turn kept
    retention_days: float  # older records are pruned (pending ones and each session's last turns stay)
    sentence: str


class StatusNote(BaseModel):
    """Something to know beside the connection's state: `kind` a code (`store_failing`,
    `send_failed`), `sentence` in words."""

    kind: str
    sentence: str


class Status(BaseModel):
    """The WhatsApp channel as a person should see it, with Cortask running or not."""

    state: ConnectionState
    label: str  # a few words for a badge
    tone: Tone
    sentence: str
    action: str | None  # what to do about it, in words
    actions: list[ActionOffer]  # the buttons a UI may offer now
    running: bool  # whether Cortask (the gateway) runs: False means this is the stored state
    linked: bool
    account: str | None  # our own JID, when linked
    enabled: bool  # the channel is added to the workspace
    paused: bool  # saved: `cortask serve` stays disconnected until started
    sandbox: bool
    in_use_by: str | None  # another process holding the link, when Cortask is not running
    attempt: int = 0
    max_attempts: int = 0
    next_retry_at: float | None = None
    qr_expires_at: float | None = None
    last_inbound_at: float | None = None
    last_outbound_at: float | None = None
    detail: str | None = None
    terminal: bool
    needs_relink: bool
    storage: Storage | None = None  # the database (issue #13): size, oldest record, retention
    notes: list[StatusNote] = []


WhatsAppStateName = Literal["unchecked", "registered", "not_on_whatsapp"]


class Contact(BaseModel):
    phone: str  # E.164: what the API and the CLI take to change or remove it
    name: str | None
    permission: PermissionName
    written: str | None = None  # the number as the person wrote it, to show
    whatsapp: WhatsAppStateName = "unchecked"  # what WhatsApp said when last asked (while linked)
    whatsapp_address: str | None = None  # the account it is registered as, written as a number
    whatsapp_checked_at: float | None = None
    note: str | None = None  # a sentence when WhatsApp knows it under another address, or not at all


class Settings(BaseModel):
    answer_groups: bool
    open_to_everyone: bool
    default_region: str | None
    self_chat: bool = False
    self_chat_prefix: str | None = None
    answers_paused: bool = False
    group_mode: str = "mention"
    groups_allowed: list[str] = []
    approvals: bool = False
    approval_hours: float = 24.0


class AccessSummary(BaseModel):
    sentence: str
    problems: list[str]


class Account(BaseModel):
    id: str
    name: str | None = None


class QrCode(BaseModel):
    qr: str  # exactly the string Baileys produced; a phone scans this
    png: str  # a data: URL
    expires_at: float


class CodeIn(BaseModel):
    """Link by phone number: the account's own number, and optionally a code of one's own."""

    phone: str
    code: str | None = None


class PairingCode(BaseModel):
    code: str  # eight characters, as WhatsApp issued it
    grouped: str  # as shown and typed: ABCD-EFGH
    phone: str  # E.164, the account's own number
    expires_at: float


class Overview(BaseModel):
    """Everything the channel page shows."""

    enabled: bool
    paused: bool
    status: Status
    settings: Settings
    contacts: list[Contact]
    allowed_users: list[str]
    access: AccessSummary
    account: Account | None
    qr: QrCode | None
    code: PairingCode | None = None  # linking by phone number: the code to type on the phone
    # The demo's simulated phone page (sandbox mode only): the page links to it.
    phone_url: str | None = None
    # Our own account's number written for people (e.g. "+1 555-000-1111"), when linked.
    account_number: str | None = None


class ActivityEntry(BaseModel):
    """Something that happened to a message, with its description."""

    at: float
    kind: str
    chat: str | None
    message_id: str | None
    sender: str | None = None
    verdict: str | None = None
    reason: str | None = None
    chars: int | None = None
    error: str | None = None
    label: str  # the kind in a word or two
    sentence: str  # what happened, for a person
    tone: Tone
    quiet: bool  # routine noise (own messages, history sync): shown dimmed
    chat_title: str | None = None  # the chat in words, where the server knows it (the owner's own chat)
    chat_sub: str | None = None


class Agent(BaseModel):
    provider: str
    settings: dict[str, JsonValue]  # secrets masked
    active: str  # the agent that answers now (an override of `serve --agent` wins)
    override: bool


class PhoneCheck(BaseModel):
    ok: bool
    e164: str | None = None
    error: str | None = None


class Done(BaseModel):
    ok: bool


class SessionInfo(BaseModel):
    id: str
    created_at: str


class HistoryEntry(BaseModel):
    role: str
    text: str
    at: str


LinkOutcome = Literal["linked", "expired", "failed"]


class LinkResult(BaseModel):
    """How a linking session ended; `reason` says why when it failed."""

    outcome: LinkOutcome
    status: Status
    reason: str | None = None


class ApprovalRequest(BaseModel):
    """A stranger waiting for the owner's approval (issue #14)."""

    code: str
    phone: str
    name: str | None  # what their WhatsApp profile says
    first_line: str
    at: float
    expires_at: float


class ApprovalIn(BaseModel):
    model_config = STRICT
    permission: str = "write"  # read or write


# -- events (the gateway's stream, the clients' link) ---------------------------------------------


class StatusEvent(BaseModel):
    event: Literal["status"] = "status"
    data: Status


class QrEvent(BaseModel):
    event: Literal["qr"] = "qr"
    data: QrCode


class CodeEvent(BaseModel):
    event: Literal["code"] = "code"
    data: PairingCode


class LinkEvent(BaseModel):
    event: Literal["link"] = "link"
    data: LinkResult


class ActivityEvent(BaseModel):
    event: Literal["activity"] = "activity"
    data: ActivityEntry


class ContactsEvent(BaseModel):
    event: Literal["contacts"] = "contacts"
    data: list[Contact]


class ApprovalsEvent(BaseModel):
    event: Literal["approvals"] = "approvals"
    data: list[ApprovalRequest]


Event = Annotated[
    StatusEvent | QrEvent | LinkEvent | ActivityEvent | ContactsEvent | CodeEvent | ApprovalsEvent,
    Field(discriminator="event"),
]
LinkStep = StatusEvent | QrEvent | LinkEvent  # what a person follows while linking


async def link_steps(first: QrCode, events: AsyncIterator[Event]) -> AsyncIterator[LinkStep]:
    """A linking session as a person follows it, wherever its events come from (in-process or the
    gateway's stream): the first code, each new code, each state change, and last the result."""
    last = first
    yield QrEvent(data=first)
    async for event in events:
        if isinstance(event, QrEvent) and event.data != last:
            last = event.data
            yield event
        elif isinstance(event, StatusEvent):
            yield event
        elif isinstance(event, LinkEvent):
            yield event
            return


CodeLinkStep = StatusEvent | CodeEvent | LinkEvent  # what a person follows while linking by code


async def code_link_steps(first: PairingCode, events: AsyncIterator[Event]) -> AsyncIterator[CodeLinkStep]:
    """A linking session by code as a person follows it: the code, each new code, each state
    change, and last the result (the session's QR codes are not shown)."""
    last = first
    yield CodeEvent(data=first)
    async for event in events:
        if isinstance(event, CodeEvent) and event.data != last:
            last = event.data
            yield event
        elif isinstance(event, StatusEvent | LinkEvent):
            yield event
            if isinstance(event, LinkEvent):
                return
