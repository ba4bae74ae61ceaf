"""The narrow seams wasim's server parts are built from, so no part needs the whole server.

A part takes only what it uses: the state, an `EventSink` to report what happens, the
`Connections` registry (`registry.py`), a `Spawn` for background work, and the `Peer`s it
sends nodes to. `Wasim` (`app.py`) is the one place that builds the parts and wires them.
"""

from __future__ import annotations

import enum
from collections.abc import Coroutine
from typing import Any, Protocol

from wasim.protocol import wa_pb2
from wasim.protocol.binary import Node
from wasim.server.events import Event
from wasim.state import Account, Device


class Kind(enum.Enum):
    HANDSHAKE = "handshake"
    REGISTRATION = "registration"
    LOGIN = "login"
    REPLACED = "replaced"  # a login of the same device came after it: it gets nothing more


class NotLoggedIn(Exception):
    """A query needs a linked device and the connection has none (answered with a 401)."""


class EventSink(Protocol):
    def emit(self, kind: str, /, **data: Any) -> Event: ...


class Spawn(Protocol):
    """Run a coroutine in the background, keeping it alive and logging its failure."""

    def __call__(self, coro: Coroutine[Any, Any, None], what: str) -> None: ...


class Peer(Protocol):
    """One client connection as the parts see it: who is on it and how to talk to it."""

    id: str
    kind: Kind
    account: Account | None
    device: Device | None
    client_static: bytes
    payload: wa_pb2.ClientPayload | None
    refs: list[str]

    @property
    def account_phone(self) -> str | None: ...

    def require_device(self) -> Device: ...

    def describe(self) -> dict[str, object]: ...

    async def send_node(self, node: Node) -> None: ...

    async def query(self, node: Node, timeout: float = 10.0) -> Node: ...

    async def end_with(self, node: Node | None) -> None: ...

    async def close(self) -> None: ...

    def blackhole(self) -> None: ...

    def abort(self) -> None: ...


class SessionHooks(Protocol):
    """What a connection hands over once its transport is up (see `sessions.Sessions`)."""

    def refs_offered(self, peer: Peer) -> None: ...

    async def login(self, peer: Peer, phone: str, device_id: int) -> None: ...

    async def stanza(self, peer: Peer, node: Node) -> None: ...

    def closed(self, peer: Peer) -> None: ...
