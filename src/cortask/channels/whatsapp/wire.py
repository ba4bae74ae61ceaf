"""The sidecar's line protocol as types: every command, answer, event and store request.

Sans-I/O: `parse(line)` turns one line the sidecar printed into a typed value (or raises
`WireError` saying what is wrong with it), `encode(...)` turns a command or an answer of ours into
one line. Classes are found through tables (tag -> class), and each field's wire name is its
Python name in camelCase. The Node side keeps the same tables in `sidecar/protocol.mjs`; a test
compares the two (see docs/sidecar-protocol.md for the protocol in words).

One part stays untyped on purpose: the Baileys messages inside a `messages` event (`WAMessage`,
a TypedDict over JSON). Only `inbound.classify` reads them, defensively, field by field, and
they are what the sidecar spills to disk as they are; validating Baileys' whole message schema
here would drop messages Baileys added a field to.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar

PROTOCOL = 1

# -- shared shapes -----------------------------------------------------------------------------


class WireError(ValueError):
    """A line that is not a valid message of the protocol. `req` is set when it was a store
    request with a usable id (answer it with this error); `re` when it answers one of our
    commands (that command failed)."""

    def __init__(self, message: str, *, req: int | None = None, re: int | None = None) -> None:
        super().__init__(message)
        self.req = req
        self.re = re


class WAMessageKey(TypedDict, total=False):
    remoteJid: str
    id: str
    fromMe: bool
    participant: str
    remoteJidAlt: str
    participantAlt: str


class WAMessage(TypedDict, total=False):
    """One Baileys message as the sidecar describes it (index.mjs, describeMessage); raw JSON."""

    key: WAMessageKey
    message: object
    pushName: str | None
    messageTimestamp: int
    messageStubType: object
    messageStubParameters: object
    broadcast: bool


@dataclass(frozen=True, slots=True)
class MessageKey:
    """What a read receipt needs of a message: Baileys' WAMessageKey, the fields it reads."""

    id: str
    remote_jid: str
    participant: str | None = None
    from_me: bool | None = None

    @classmethod
    def of(cls, message: WAMessage) -> MessageKey | None:
        key = message.get("key")
        if not isinstance(key, dict):
            return None
        try:
            return typing.cast(MessageKey, _decode(cls, key, "key", strict=False))
        except WireError:
            return None


@dataclass(frozen=True, slots=True)
class Quoted:
    """The message a reply quotes (a group message we answer): its key and text (issue #14)."""

    id: str
    remote_jid: str
    participant: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class SandboxTarget:
    url: str
    root_key: str


@dataclass(frozen=True, slots=True)
class Receipt:
    id: str
    remote_jid: str
    status: int
    error: str | None = None


# -- commands: Python -> sidecar, each answered with {"re": id, "ok", "result" | "error"} --------


@dataclass(frozen=True, slots=True)
class Done:
    """The result of a command that returns nothing."""


@dataclass(frozen=True, slots=True)
class Connected:
    generation: int


@dataclass(frozen=True, slots=True)
class Sent:
    id: str
    remote_jid: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Pong:
    connected: bool


@dataclass(frozen=True, slots=True)
class LidFound:
    lid: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneFound:
    jid: str | None = None


@dataclass(frozen=True, slots=True)
class NumberFound:
    """WhatsApp's answer for one number: `jid` is the account it is registered as (which may not
    be the number's own digits), `lid` its LID; `exists` false means not on WhatsApp."""

    number: str
    exists: bool
    jid: str | None = None
    lid: str | None = None


@dataclass(frozen=True, slots=True)
class NumbersChecked:
    numbers: tuple[NumberFound, ...]


R = TypeVar("R")


class Command(Generic[R]):
    """A command; `R` is the type of its result."""

    __slots__ = ()
    TAG: ClassVar[str]
    RESULT: ClassVar[type[Any]]


@dataclass(frozen=True, slots=True)
class Connect(Command[Connected]):
    TAG: ClassVar[str] = "connect"
    RESULT: ClassVar[type[Any]] = Connected
    sandbox: SandboxTarget | None = None
    qr_timeout_ms: int | None = None
    keep_alive_ms: int | None = None
    connect_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SendText(Command[Sent]):
    TAG: ClassVar[str] = "send_text"
    RESULT: ClassVar[type[Any]] = Sent
    jid: str
    text: str
    message_id: str | None = None
    quoted: Quoted | None = None  # a reply in a group quotes the message it answers


PresenceType = Literal["available", "unavailable", "composing", "recording", "paused"]


@dataclass(frozen=True, slots=True)
class Presence(Command[Done]):
    TAG: ClassVar[str] = "presence"
    RESULT: ClassVar[type[Any]] = Done
    type: PresenceType
    jid: str | None = None


@dataclass(frozen=True, slots=True)
class Read(Command[Done]):
    TAG: ClassVar[str] = "read"
    RESULT: ClassVar[type[Any]] = Done
    keys: tuple[MessageKey, ...]


@dataclass(frozen=True, slots=True)
class LidForPhone(Command[LidFound]):
    TAG: ClassVar[str] = "lid_for_phone"
    RESULT: ClassVar[type[Any]] = LidFound
    jid: str


@dataclass(frozen=True, slots=True)
class PhoneForLid(Command[PhoneFound]):
    TAG: ClassVar[str] = "phone_for_lid"
    RESULT: ClassVar[type[Any]] = PhoneFound
    jid: str


@dataclass(frozen=True, slots=True)
class CheckNumbers(Command[NumbersChecked]):
    """Ask WhatsApp (usync, what Baileys' onWhatsApp asks) which account each number is; each
    number ``+`` and digits, one answer per number in the same order."""

    TAG: ClassVar[str] = "check_numbers"
    RESULT: ClassVar[type[Any]] = NumbersChecked
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ack(Command[Done]):
    """The `messages` batches up to `seq` are journaled: the sidecar may forget them."""

    TAG: ClassVar[str] = "ack"
    RESULT: ClassVar[type[Any]] = Done
    seq: int


@dataclass(frozen=True, slots=True)
class Logout(Command[Done]):
    TAG: ClassVar[str] = "logout"
    RESULT: ClassVar[type[Any]] = Done


@dataclass(frozen=True, slots=True)
class Ping(Command[Pong]):
    TAG: ClassVar[str] = "ping"
    RESULT: ClassVar[type[Any]] = Pong


@dataclass(frozen=True, slots=True)
class Close(Command[Done]):
    TAG: ClassVar[str] = "close"
    RESULT: ClassVar[type[Any]] = Done


@dataclass(frozen=True, slots=True)
class Exit(Command[Done]):
    TAG: ClassVar[str] = "exit"
    RESULT: ClassVar[type[Any]] = Done


@dataclass(frozen=True, slots=True)
class PairingCodeIssued:
    code: str  # eight characters, as the phone's person types them


@dataclass(frozen=True, slots=True)
class RequestPairingCode(Command[PairingCodeIssued]):
    """Link by phone number instead of a QR: on a linking connection, ask WhatsApp for a code
    that the phone of account `phone` (digits only) types. `code`: a custom one, 8 characters."""

    TAG: ClassVar[str] = "pairing_code"
    RESULT: ClassVar[type[Any]] = PairingCodeIssued
    phone: str
    code: str | None = None


COMMANDS: Mapping[str, type[Command[Any]]] = {
    c.TAG: c
    for c in (Connect, SendText, Presence, Read, LidForPhone, PhoneForLid, Ack, Logout, Ping, Close, Exit, CheckNumbers)
}
COMMANDS = {**COMMANDS, RequestPairingCode.TAG: RequestPairingCode}


@dataclass(frozen=True, slots=True)
class Answer:
    """The sidecar's answer to command `re`; its result is read with `result_of`."""

    re: int
    ok: bool
    result: dict[str, object] | None = None
    error: str | None = None


# -- events: sidecar -> Python ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    TAG: ClassVar[str] = "hello"
    protocol: int
    baileys: str
    node: str


@dataclass(frozen=True, slots=True)
class Qr:
    TAG: ClassVar[str] = "qr"
    qr: str
    ms: int


@dataclass(frozen=True, slots=True)
class Connection:
    TAG: ClassVar[str] = "connection"
    is_new_login: bool
    ms: int
    connection: str | None = None  # "open", "close", "connecting"
    status_code: int | None = None
    reason: str | None = None
    data: object = None  # Baileys' error detail (stanza attributes or a reason), for logs


@dataclass(frozen=True, slots=True)
class Messages:
    TAG: ClassVar[str] = "messages"
    seq: int
    type: str  # Baileys' upsert type: "notify" (live), "append" (offline queue)
    messages: tuple[WAMessage, ...]


@dataclass(frozen=True, slots=True)
class Creds:
    TAG: ClassVar[str] = "creds"
    registered: bool
    me: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Receipts:
    TAG: ClassVar[str] = "receipts"
    receipts: tuple[Receipt, ...]


@dataclass(frozen=True, slots=True)
class Lid:
    TAG: ClassVar[str] = "lid"
    mapping: object  # Baileys' lid-mapping.update payload; Python reads LIDs from the auth store


@dataclass(frozen=True, slots=True)
class Fatal:
    TAG: ClassVar[str] = "fatal"
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    TAG: ClassVar[str] = "protocol_error"
    message: str


@dataclass(frozen=True, slots=True)
class CodeRefused:
    """WhatsApp told the companion its pairing code was refused on the phone (typed wrong): the
    code is spent, and linking needs a new one."""

    TAG: ClassVar[str] = "code_refused"
    message: str


Event = Hello | Qr | Connection | Messages | Creds | Receipts | Lid | Fatal | ProtocolError | CodeRefused
EVENTS: Mapping[str, type[Event]] = {
    c.TAG: c for c in (Hello, Qr, Connection, Messages, Creds, Receipts, Lid, Fatal, ProtocolError)
}
EVENTS = {**EVENTS, CodeRefused.TAG: CodeRefused}

# -- store requests: sidecar -> Python, each answered with {"re": req, "ok", "result" | "error"} --


@dataclass(frozen=True, slots=True)
class KeysGet:
    OP: ClassVar[str] = "keys.get"
    req: int
    type: str
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeysSet:
    OP: ClassVar[str] = "keys.set"
    req: int
    items: tuple[tuple[str, str, str | None], ...]  # (type, id, stored text or None to delete)


@dataclass(frozen=True, slots=True)
class CredsGet:
    OP: ClassVar[str] = "creds.get"
    req: int


@dataclass(frozen=True, slots=True)
class CredsSet:
    OP: ClassVar[str] = "creds.set"
    req: int
    creds: str


@dataclass(frozen=True, slots=True)
class SentGet:
    OP: ClassVar[str] = "sent.get"
    req: int
    id: str
    jid: str | None = None


StoreRequest = KeysGet | KeysSet | CredsGet | CredsSet | SentGet
REQUESTS: Mapping[str, type[StoreRequest]] = {c.OP: c for c in (KeysGet, KeysSet, CredsGet, CredsSet, SentGet)}


@dataclass(frozen=True, slots=True)
class KeysFound:
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class CredsFound:
    creds: str | None = None


@dataclass(frozen=True, slots=True)
class SentFound:
    text: str | None = None


StoreResult = KeysFound | CredsFound | SentFound | Done
STORE_RESULTS: Mapping[str, type[StoreResult]] = {
    "keys.get": KeysFound,
    "keys.set": Done,
    "creds.get": CredsFound,
    "creds.set": Done,
    "sent.get": SentFound,
}


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """Our answer to store request `re`: a result, or an error the sidecar treats as fatal."""

    re: int
    result: StoreResult | None = None
    error: str | None = None


Incoming = Event | Answer | StoreRequest


@dataclass(frozen=True, slots=True)
class SpilledBatch:
    """One line of a spill file (`inbound-spill-*.jsonl` in the auth directory): a `messages`
    batch the sidecar had not seen acknowledged when it had to stop."""

    type: str
    messages: tuple[WAMessage, ...]


def spilled_batch(obj: Mapping[str, object]) -> SpilledBatch:
    return typing.cast(SpilledBatch, _decode(SpilledBatch, obj, "a spilled batch"))


# -- parsing ------------------------------------------------------------------------------------


def parse(line: bytes | str) -> Incoming:
    """One line from the sidecar, typed and checked; raises WireError with a clear sentence."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise WireError(f"expected a JSON object, got {_kind(obj)}")
    if "req" in obj:
        return _parse_request(obj)
    if "re" in obj:
        re = obj["re"]
        if not _whole(re):
            raise WireError(f'"re" must be the whole-number id of a command, got {_kind(re)}')
        try:
            return typing.cast(Answer, _decode(Answer, obj, "an answer"))
        except WireError as exc:
            raise WireError(str(exc), re=re) from None
    tag = obj.get("event")
    cls = EVENTS.get(tag) if isinstance(tag, str) else None
    if cls is None or not isinstance(tag, str):
        raise WireError(f"unknown event {str(tag)[:100]!r}: expected one of {', '.join(EVENTS)}")
    return typing.cast(Event, _decode(cls, {k: v for k, v in obj.items() if k != "event"}, tag))


def _parse_request(obj: dict[str, object]) -> StoreRequest:
    req = obj["req"]
    if not _whole(req):
        raise WireError(f'"req" must be a whole number, got {_kind(req)}')
    assert isinstance(req, int)
    op = obj.get("op")
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise WireError(f"unknown store operation {str(op)[:100]!r}: expected one of {', '.join(REQUESTS)}", req=req)
    try:
        return typing.cast(StoreRequest, _decode(cls, {k: v for k, v in obj.items() if k != "op"}, str(op)))
    except WireError as exc:
        raise WireError(str(exc), req=req) from None


def result_of(command: Command[R], answer: Answer) -> R:
    """The typed result of `command` from the sidecar's (successful) answer to it."""
    return typing.cast(R, _decode(command.RESULT, answer.result or {}, f"the result of {command.TAG}"))


# -- encoding -----------------------------------------------------------------------------------


def encode(message: Command[Any] | StoreAnswer, request_id: int = 0) -> bytes:
    """One line (with its newline) for a command (`request_id` 0: nobody waits for the answer)
    or for our answer to a store request."""
    if isinstance(message, StoreAnswer):
        body: dict[str, object] = {"re": message.re, "ok": message.error is None}
        if message.error is not None:
            body["error"] = message.error
        else:
            body["result"] = _encode(message.result) if message.result is not None else {}
    else:
        body = {"id": request_id, "cmd": message.TAG, **typing.cast(dict[str, object], _encode(message))}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _encode(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _wire_name(f.name): _encode(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None  # the sidecar reads absent and null alike
        }
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


# -- the generic decoder behind the tables -------------------------------------------------------


def _wire_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _decode(cls: type[Any], obj: Mapping[str, object], where: str, *, strict: bool = True) -> Any:
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    if strict:
        known = {_wire_name(f.name) for f in fields}
        for name in obj:
            if name not in known:
                raise WireError(f"{where}: unknown field {str(name)[:100]!r}")
    values: dict[str, object] = {}
    for f in fields:
        name = _wire_name(f.name)
        value = obj.get(name)
        if value is None:
            if _required(f):
                raise WireError(f"{where} needs {name!r}")
            continue
        values[f.name] = _convert(hints[f.name], value, f"{where}: {name!r}")
    return cls(**values)


def _convert(hint: Any, value: object, where: str) -> object:
    """Check one JSON value against a field's type and build it; a helper per kind of type."""
    if hint is object:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_optional(hint, value, where)
    if origin is Literal:
        return _convert_literal(hint, value, where)
    if hint is bool or hint is int or hint is str:
        return _convert_scalar(hint, value, where)
    if origin is tuple:
        return _convert_tuple(hint, value, where)
    if origin is dict or typing.is_typeddict(hint) or dataclasses.is_dataclass(hint):
        return _convert_object(hint, value, where)
    raise TypeError(f"wire: no decoder for {hint!r}")  # a field type this module does not support


def _convert_optional(hint: Any, value: object, where: str) -> object:
    """`X | None`: null when allowed, else the one other member (no other unions are used)."""
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    [inner] = [a for a in args if a is not type(None)]
    return _convert(inner, value, where)


def _convert_literal(hint: Any, value: object, where: str) -> object:
    args = typing.get_args(hint)
    if value in args:
        return value
    raise WireError(f"{where} must be one of {', '.join(map(str, args))}")


def _convert_scalar(hint: type[Any], value: object, where: str) -> object:
    # Exact type: JSON's true is not a number here, nor 1 a boolean.
    if type(value) is hint:
        return value
    raise WireError(f"{where} must be {_NAMES[hint]}, got {_kind(value)}")


def _convert_tuple(hint: Any, value: object, where: str) -> object:
    """`tuple[X, ...]` from a list of any length, `tuple[X, Y]` from a list of exactly that many."""
    args = typing.get_args(hint)
    if not isinstance(value, list):
        raise WireError(f"{where} must be a list, got {_kind(value)}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise WireError(f"{where} must be a list of {len(args)}")
    return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _convert_object(hint: Any, value: object, where: str) -> object:
    """A JSON object as a dataclass, a `dict[str, X]`, or a TypedDict kept as it came."""
    if not isinstance(value, dict):
        raise WireError(f"{where} must be an object, got {_kind(value)}")
    if dataclasses.is_dataclass(hint):
        return _decode(typing.cast(type[Any], hint), value, where)
    if typing.get_origin(hint) is dict:
        value_hint = typing.get_args(hint)[1]
        return {str(k): _convert(value_hint, v, f"{where}[{str(k)[:50]!r}]") for k, v in value.items()}
    return value  # a TypedDict over raw JSON (WAMessage): read defensively by its consumer


_NAMES = {bool: "true or false", int: "a whole number", str: "a string"}


def _whole(value: object) -> bool:
    return type(value) is int and value >= 0


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


# -- the field tables, as protocol.mjs describes its own (compared by a test) -------------------


def _shape(cls: type[Any]) -> dict[str, bool]:
    return {_wire_name(f.name): _required(f) for f in dataclasses.fields(cls) if f.name != "req"}


def describe() -> dict[str, dict[str, dict[str, bool]]]:
    """Every message's fields (wire name -> required), in the form protocol.mjs's `describe()` has."""
    return {
        "commands": {tag: _shape(cls) for tag, cls in COMMANDS.items()},
        "results": {tag: _shape(cls.RESULT) for tag, cls in COMMANDS.items()},
        "events": {tag: _shape(cls) for tag, cls in EVENTS.items()},
        "requests": {op: _shape(cls) for op, cls in REQUESTS.items()},
        "storeResults": {op: _shape(cls) for op, cls in STORE_RESULTS.items()},
        "spill": {"batch": _shape(SpilledBatch)},
        "shapes": {
            "sandbox": _shape(SandboxTarget),
            "messageKey": _shape(MessageKey),
            "receipt": _shape(Receipt),
            "numberFound": _shape(NumberFound),
        },
    }
