"""The server's parts on their own, built from their seams as `Wasim` builds them: no sockets,
no processes. A `Peer` here is a recording stand-in for a client connection (our own seam)."""

from __future__ import annotations

import pytest

from wasim.protocol.binary import Node
from wasim.server.directory import Directory
from wasim.server.events import EventLog
from wasim.server.iq import IqRouter
from wasim.server.messaging import Messaging
from wasim.server.ports import Kind, NotLoggedIn
from wasim.server.registry import Connections
from wasim.server.stanzas import StanzaRouter
from wasim.state import Account, Device, SignedPreKey, WasimState, new_account

PHONE = "15550001111"


class RecordingPeer:
    """Implements `ports.Peer`; keeps what is sent to it."""

    def __init__(self, kind: Kind = Kind.HANDSHAKE, account: Account | None = None, device: Device | None = None):
        self.id = f"peer-{id(self):x}"
        self.kind = kind
        self.account = account
        self.device = device
        self.client_static = b""
        self.payload = None
        self.refs: list[str] = []
        self.sent: list[Node] = []

    @property
    def account_phone(self) -> str | None:
        return self.account.phone if self.account else None

    def require_device(self) -> Device:
        if self.device is None:
            raise NotLoggedIn()
        return self.device

    def describe(self) -> dict[str, object]:
        return {"conn": self.id, "role": self.kind.value, "phone": self.account_phone}

    async def send_node(self, node: Node) -> None:
        self.sent.append(node)

    async def query(self, node: Node, timeout: float = 10.0) -> Node:
        raise AssertionError("not expected in these tests")

    async def end_with(self, node: Node | None) -> None:
        if node is not None:
            self.sent.append(node)

    async def close(self) -> None:
        pass

    def blackhole(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _device(device_id: int) -> Device:
    return Device(device_id, b"noise", b"identity", 7, SignedPreKey(1, b"pub", b"sig"), prekeys={1: b"k1", 2: b"k2"})


def _linked(state: WasimState) -> tuple[Account, Device]:
    account = state.add_account(new_account(PHONE))
    device = account.devices[2] = _device(2)
    return account, device


@pytest.fixture
def parts() -> tuple[WasimState, EventLog, Connections, StanzaRouter]:
    state = WasimState(None)
    events = EventLog()
    connections = Connections()
    directory = Directory(state, events, PHONE)
    messaging = Messaging(state, events, connections, PHONE)
    return state, events, connections, StanzaRouter(messaging, IqRouter(directory, events), events)


def test_the_registry_knows_logins_by_account_and_device_and_refs_by_connection() -> None:
    connections = Connections()
    account, device = _linked(WasimState(None))
    login = RecordingPeer(Kind.LOGIN, account, device)
    pairing = RecordingPeer(Kind.REGISTRATION)
    pairing.refs = ["2@a", "2@b"]
    connections.add(login)
    connections.add(pairing)
    connections.register_refs(pairing)
    assert connections.logged_in() == [login]
    assert connections.logged_in("+" + PHONE) == [login]
    assert connections.logged_in("15550009999") == []
    assert connections.of_device(PHONE, device) is login
    assert connections.is_connected(device)
    assert connections.for_ref("2@b") is pairing
    connections.remove(pairing)
    assert connections.for_ref("2@a") is None
    assert list(connections) == [login] and len(connections) == 1
    login.kind = Kind.REPLACED
    assert connections.of_device(PHONE, device) is None


async def test_every_iq_is_answered_known_or_not_and_device_queries_need_a_login(
    parts: tuple[WasimState, EventLog, Connections, StanzaRouter],
) -> None:
    state, events, _, stanzas = parts
    account, device = _linked(state)
    logged_in = RecordingPeer(Kind.LOGIN, account, device)
    await stanzas.dispatch(logged_in, Node("iq", {"id": "1", "xmlns": "encrypt", "type": "get"}, [Node("count", {})]))
    assert logged_in.sent[-1].attrs["type"] == "result"
    assert logged_in.sent[-1].child("count").attrs == {"value": "2"}  # type: ignore[union-attr]

    stranger = RecordingPeer()
    await stanzas.dispatch(stranger, Node("iq", {"id": "2", "xmlns": "encrypt", "type": "get"}, [Node("count", {})]))
    error = stranger.sent[-1].child("error")
    assert error is not None and error.attrs == {"code": "401", "text": "not-authorized"}

    await stanzas.dispatch(stranger, Node("iq", {"id": "3", "xmlns": "w:nope", "type": "get"}, [Node("x", {})]))
    assert stranger.sent[-1].attrs["type"] == "result" and stranger.sent[-1].attrs["id"] == "3"
    assert [e.data for e in events.since(kind="iq.unknown")] == [{"xmlns": "w:nope", "type": "get", "child": "x"}]


async def test_stanzas_go_through_the_table_and_unknown_ones_are_dropped(
    parts: tuple[WasimState, EventLog, Connections, StanzaRouter],
) -> None:
    state, events, _, stanzas = parts
    account, device = _linked(state)
    peer = RecordingPeer(Kind.LOGIN, account, device)
    assert {"iq", "message", "receipt", "ack", "chatstate", "presence", "ib"} <= set(stanzas.table)

    await stanzas.dispatch(peer, Node("presence", {"type": "available"}))
    assert [e.data["attrs"] for e in events.since(kind="presence")] == [{"type": "available"}]

    before = events.last_seq
    await stanzas.dispatch(peer, Node("call", {"id": "c1"}))
    await stanzas.dispatch(peer, Node("ib", {}, [Node("clean", {})]))
    assert peer.sent == [] and events.last_seq == before

    await stanzas.dispatch(peer, Node("receipt", {"id": "m1", "type": "retry", "to": "1555@s.whatsapp.net"}))
    assert peer.sent == [Node("ack", {"class": "receipt", "id": "m1", "type": "retry"})]
    assert [e.data["attrs"]["id"] for e in events.since(before, kind="receipt")] == ["m1"]


def test_the_directory_describes_accounts_with_what_the_registry_says_is_connected() -> None:
    state = WasimState(None)
    events = EventLog()
    directory = Directory(state, events, PHONE)
    _, device = _linked(state)
    contact = directory.add_contact("+15550002222", "Ada")
    [view] = directory.describe_accounts(lambda d: d is device)
    assert view["phone"] == "+" + PHONE
    assert view["devices"][0]["connected"] and view["devices"][0]["prekeys"] == 2
    assert {"phone": "+15550002222", "lid": contact.lid, "name": "Ada", "own_phone": False, "dialled": []} in (
        directory.describe_contacts()
    )
    assert [e.kind for e in events.since()] == ["contact.added"]


def test_usync_by_number_answers_with_the_registered_address_or_not_on_whatsapp() -> None:
    state = WasimState(None)
    directory = Directory(state, EventLog(), PHONE)
    lupita = directory.add_contact("+525512345678", "Lupita", "100000000000001", address="5215512345678")
    assert (lupita.phone, lupita.dialled) == ("5215512345678", ["525512345678"])
    assert state.contact_by_number("+525512345678") is lupita and state.contact_for(lupita.jid) is lupita

    def ask(*numbers: str) -> list[Node]:
        users = [Node("user", {}, [Node("contact", {}, n)]) for n in numbers]
        query = Node("query", {}, [Node("contact", {}), Node("lid", {})])
        iq = Node(
            "iq", {"id": "q1", "type": "get", "xmlns": "usync"}, [Node("usync", {}, [query, Node("list", {}, users)])]
        )
        answer = directory.usync(None, iq)  # type: ignore[arg-type]  # no connection is needed to answer
        usync = answer.child("usync")
        assert usync is not None and usync.child("list") is not None
        return usync.child("list").children("user")  # type: ignore[union-attr]

    dialled, registered, nobody = ask("+525512345678", "+5215512345678", "+525587654321")
    for user in (dialled, registered):
        assert user.attrs["jid"] == "5215512345678@s.whatsapp.net"
        assert user.child("contact").attrs["type"] == "in"  # type: ignore[union-attr]
        assert user.child("lid").attrs["val"] == "100000000000001@lid"  # type: ignore[union-attr]
    assert nobody.attrs["jid"] == "525587654321@s.whatsapp.net"
    assert nobody.child("contact").attrs["type"] == "out"  # type: ignore[union-attr]
    assert nobody.child("lid") is None
    with pytest.raises(ValueError, match="already reaches"):
        directory.add_contact("+525512345678", "Again")  # the dialled number is taken
