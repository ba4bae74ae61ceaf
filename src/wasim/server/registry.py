"""The registry of live connections: who is connected, logged in as which device, and which
connection showed which QR ref. Bookkeeping only; no I/O."""

from __future__ import annotations

from collections.abc import Iterator

from wasim.server.ports import Kind, Peer
from wasim.state import Device


class Connections:
    def __init__(self) -> None:
        self._live: set[Peer] = set()
        self._refs: dict[str, Peer] = {}

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._live))

    def __len__(self) -> int:
        return len(self._live)

    def add(self, peer: Peer) -> None:
        self._live.add(peer)

    def remove(self, peer: Peer) -> None:
        self._live.discard(peer)
        self.forget_refs(peer)

    def logged_in(self, phone: str | None = None) -> list[Peer]:
        """The logged-in connections (of account `phone`)."""
        return [
            c
            for c in self._live
            if c.kind is Kind.LOGIN and c.account and (phone is None or c.account.phone == phone.lstrip("+"))
        ]

    def of_device(self, phone: str, device: Device) -> Peer | None:
        """The logged-in connection of this device of account `phone`, if it is online."""
        return next((c for c in self.logged_in(phone) if c.device is device), None)

    def is_connected(self, device: Device) -> bool:
        return any(c.device is device for c in self._live)

    # -- pairing refs -------------------------------------------------------------------------

    def register_refs(self, peer: Peer) -> None:
        for ref in peer.refs:
            self._refs[ref] = peer

    def for_ref(self, ref: str) -> Peer | None:
        return self._refs.get(ref)

    def forget_refs(self, peer: Peer) -> None:
        for ref in peer.refs:
            self._refs.pop(ref, None)
