"""Transport details Baileys relies on that the pairing tests do not reach."""

from __future__ import annotations

import os

from testkit.rawclient import RawClient

from wasim.protocol import wa_pb2
from wasim.protocol.binary import decode_node
from wasim.server.app import Wasim

REGISTRATION = wa_pb2.ClientPayload(
    device_pairing_data=wa_pb2.ClientPayload.DevicePairingRegistrationData(
        e_regid=b"\x00\x00\x01\x02", e_keytype=b"\x05", e_ident=os.urandom(32), e_skey_id=b"\x00\x00\x01"
    )
).SerializeToString()


async def test_edge_routing_header_is_accepted_and_pairing_starts(sim: Wasim) -> None:
    # A client that was once sent edge routing info opens with 'ED' + that info, then 'WA'.
    raw = await RawClient.open(sim.url)
    await raw.handshake(REGISTRATION, routing_info=os.urandom(40))
    node = decode_node(await raw.recv_node())
    assert node.tag == "iq" and node.children()[0].tag == "pair-device"
    assert len(node.children()[0].children("ref")) == 6
    await raw.ws.close()


async def test_unknown_queries_get_an_empty_result_and_are_logged(sim: Wasim) -> None:
    from wasim.protocol.binary import Node, encode_node

    raw = await RawClient.open(sim.url)
    await raw.handshake(REGISTRATION)
    await raw.recv_node()  # pair-device
    since = sim.events.last_seq
    query = Node(
        "iq",
        {"id": "q1", "type": "get", "xmlns": "w:sync:app:state", "to": "s.whatsapp.net"},
        [Node("sync", {})],
    )
    await raw.send_encrypted(encode_node(query))
    reply = decode_node(await raw.recv_node())
    assert (reply.tag, reply.attrs["type"], reply.attrs["id"]) == ("iq", "result", "q1")
    unknown = await sim.events.wait_for("iq.unknown", since=since)
    assert unknown.data["xmlns"] == "w:sync:app:state"
    # and a keep-alive ping is answered too, even while pairing
    await raw.send_encrypted(encode_node(Node("iq", {"id": "p1", "type": "get", "xmlns": "w:p"}, [Node("ping", {})])))
    pong = decode_node(await raw.recv_node())
    assert (pong.attrs["type"], pong.attrs["id"]) == ("result", "p1")
    await raw.ws.close()
