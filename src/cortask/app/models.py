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
    notes: list[StatusNote] = []


class Contact(BaseModel):
    phone: str
    name: str | None
    permission: PermissionName


class Settings(BaseModel):
    answer_groups: bool
    open_to_everyone: bool
    default_region: str | None


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


# -- events (the gateway's stream, the clients' link) ---------------------------------------------


class StatusEvent(BaseModel):
    event: Literal["status"] = "status"
    data: Status


class QrEvent(BaseModel):
    event: Literal["qr"] = "qr"
    data: QrCode


class LinkEvent(BaseModel):
    event: Literal["link"] = "link"
    data: LinkResult


class ActivityEvent(BaseModel):
    event: Literal["activity"] = "activity"
    data: ActivityEntry


class ContactsEvent(BaseModel):
    event: Literal["contacts"] = "contacts"
    data: list[Contact]


Event = Annotated[StatusEvent | QrEvent | LinkEvent | ActivityEvent | ContactsEvent, Field(discriminator="event")]
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
