"""Faults on demand: every way a WhatsApp server ends or breaks a connection.

| kind          | what the client sees                               | Baileys' DisconnectReason |
|---------------|----------------------------------------------------|---------------------------|
| stream_error  | <stream:error code=N> (440: <conflict replaced>,   | N (440 connectionReplaced)|
|               |  401: <conflict device_removed>)                   |                           |
| failure       | <failure reason=N>                                 | N                         |
| downgrade     | <ib><downgrade_webclient/></ib>                    | 411 multideviceMismatch   |
| stream_end    | <xmlstreamend/>                                    | 428 connectionClosed      |
| close         | the WebSocket closed by the server                 | 428 connectionClosed      |
| drop          | nothing: TCP stays open, nothing answered          | 408 connectionLost        |
| refuse        | no listener for N seconds (connection refused)     | 408 on each attempt       |
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from wasim.protocol.binary import Node
from wasim.server.nodes import SERVER_JID, failure, stream_error
from wasim.server.ports import EventSink, Peer
from wasim.server.registry import Connections

KINDS = ("stream_error", "failure", "downgrade", "stream_end", "close", "drop", "refuse")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    code: int | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind == "failure" and self.code is None:
            raise ValueError("a failure fault needs a reason code, e.g. 401")
        if self.kind == "refuse" and self.seconds <= 0:
            raise ValueError("a refuse fault needs a positive number of seconds")

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "code": self.code, "seconds": self.seconds}


def fault_stanza(fault: Fault) -> Node | None:
    if fault.kind == "stream_error":
        if fault.code == 440:
            return stream_error(440, conflict="replaced")
        if fault.code == 401:
            return stream_error(401, conflict="device_removed")
        return stream_error(fault.code)
    if fault.kind == "failure":
        assert fault.code is not None
        return failure(fault.code)
    if fault.kind == "downgrade":
        return Node("ib", {"from": SERVER_JID}, [Node("downgrade_webclient", {})])
    if fault.kind == "stream_end":
        return Node("xmlstreamend", {})
    return None


async def apply_fault(conn: Peer, fault: Fault) -> None:
    if fault.kind == "drop":
        conn.blackhole()
        return
    if fault.kind == "close":
        await conn.close()
        return
    await conn.end_with(fault_stanza(fault))


class Faults:
    """Injects faults into live connections; `refuse` stops the listener for a while."""

    def __init__(self, connections: Connections, events: EventSink, refuse: Callable[[float], Awaitable[None]]) -> None:
        self._connections = connections
        self._events = events
        self._refuse = refuse

    async def inject(self, fault: Fault, phone: str | None = None) -> list[str]:
        """Apply `fault` to every logged-in connection (of `phone`); returns the affected ids."""
        if fault.kind == "refuse":
            await self._refuse(fault.seconds)
            return []
        targets = self._connections.logged_in(phone) if fault.kind != "all" else list(self._connections)
        await asyncio.gather(*(apply_fault(c, fault) for c in targets))
        self._events.emit("fault", fault=fault.describe(), targets=[c.id for c in targets])
        return [c.id for c in targets]
