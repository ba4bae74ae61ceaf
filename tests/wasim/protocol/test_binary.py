"""wasim's WABinary codec, checked against Baileys' own encoder and decoder.

Baileys runs in one long-lived `node tests/testkit/node/wabinary-oracle.mjs` process (JSON lines). For each
node we check both directions: Baileys encodes -> we decode, and we encode -> Baileys decodes. Our
decoder must agree exactly with Baileys' decoder on the same bytes (including str-vs-bytes content),
our encoder must produce Baileys' exact bytes wherever Baileys' encoding is lossless, and the decoded
node must equal the original up to the two things the format itself loses: a ':0' device and
whether non-binary content was a str or bytes.
"""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from testkit.paths import NODE_DIR, ROOT

from wasim.protocol import binary
from wasim.protocol.binary import (
    DOUBLE_BYTE_TOKENS,
    MAX_INFLATED,
    SINGLE_BYTE_TOKENS,
    BinaryError,
    Node,
    decode_node,
    encode_node,
)

TEST_CLIENT = NODE_DIR
ORACLE_JS = TEST_CLIENT / "wabinary-oracle.mjs"
TOKENS_JSON = ROOT / "src/wasim/protocol/tokens.json"


# -- the oracle ----------------------------------------------------------------------------------

Json = dict[str, Any]


def to_json(node: Node) -> Json:
    content: Any
    if node.content is None or isinstance(node.content, str):
        content = node.content
    elif isinstance(node.content, list):
        content = [to_json(c) for c in node.content]
    else:
        content = {"b64": base64.b64encode(node.content).decode()}
    return {"tag": node.tag, "attrs": node.attrs, "content": content}


def from_json(j: Json) -> Node:
    content = j["content"]
    if isinstance(content, list):
        content = [from_json(c) for c in content]
    elif isinstance(content, dict):
        content = base64.b64decode(content["b64"])
    return Node(j["tag"], dict(j["attrs"]), content)


class Oracle:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(ORACLE_JS)], cwd=TEST_CLIENT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def request(self, req: Json) -> Json:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"wabinary-oracle exited with {self.proc.wait()}")
        reply: Json = json.loads(line)
        return reply

    def batch(self, items: list[Json]) -> list[Json]:
        reply = self.request({"op": "batch", "items": items})
        assert reply["ok"], reply
        result: list[Json] = reply["items"]
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    oracle = Oracle()
    yield oracle
    oracle.close()


# -- comparison helpers --------------------------------------------------------------------------

_ZERO_DEVICE = re.compile(r"([^:@_]*):0@(s\.whatsapp\.net|lid|hosted|hosted\.lid)")


def drop_zero_device(text: str) -> str:
    """What AD_JID does to 'user:0@server' (Baileys' jidEncode leaves device 0 out)."""
    return _ZERO_DEVICE.sub(r"\1@\2", text) if _ZERO_DEVICE.fullmatch(text) else text


def canon(node: Node) -> Node:
    """The node up to what the wire loses: ':0' devices, and str vs bytes for leaf content."""
    content = node.content
    if isinstance(content, list):
        content = [canon(c) for c in content]
    elif isinstance(content, str):
        content = drop_zero_device(content).encode()
    attrs = {drop_zero_device(k): drop_zero_device(v) for k, v in node.attrs.items()}
    return Node(drop_zero_device(node.tag), attrs, content)


def baileys_decoded(reply: Json) -> Node:
    """The node from a successful oracle decode that read all the bytes."""
    assert reply["ok"], f"Baileys could not decode: {reply['error']}"
    assert reply["used"] == reply["size"], f"Baileys left {reply['size'] - reply['used']} bytes unread"
    return from_json(reply["node"])


def js_reorders_keys(node: Node) -> bool:
    """JS objects list integer-like keys first, so Baileys writes such attributes in another order."""
    if any(re.fullmatch(r"0|[1-9][0-9]{0,9}", k) and int(k) < 2**32 - 1 for k in node.attrs):
        return True
    return isinstance(node.content, list) and any(js_reorders_keys(c) for c in node.content)


def check_both_directions(oracle: Oracle, nodes: list[Node]) -> None:
    requests: list[Json] = []
    ours = [encode_node(n) for n in nodes]
    for node, payload in zip(nodes, ours, strict=True):
        requests.append({"op": "encode", "node": to_json(node), "decode": True})
        requests.append({"op": "decode", "hex": payload.hex()})
    replies = oracle.batch(requests)
    for i, node in enumerate(nodes):
        theirs_reply, decode_reply = replies[2 * i], replies[2 * i + 1]
        assert theirs_reply["ok"], theirs_reply
        theirs = bytes.fromhex(theirs_reply["hex"])
        # Baileys encodes -> we decode: same as Baileys' own decoder, and the original node.
        ours_of_theirs = decode_node(theirs)
        assert ours_of_theirs == baileys_decoded(theirs_reply["decoded"])
        assert canon(ours_of_theirs) == canon(node)
        # We encode -> Baileys decodes: same as our decoder, and the original node.
        ours_of_ours = decode_node(ours[i])
        assert baileys_decoded(decode_reply) == ours_of_ours
        assert canon(ours_of_ours) == canon(node)
        if not js_reorders_keys(node):
            assert ours[i] == theirs, f"encodings differ for {node}"


# -- corpus --------------------------------------------------------------------------------------

rng = random.Random(1234)


def rand(n: int) -> bytes:
    return rng.randbytes(n)


ME_PN = "15551234567:3@s.whatsapp.net"
ME_LID = "98765432109876:3@lid"

CORPUS: dict[str, Node] = {
    "pair-device": Node(
        "iq",
        {"from": "s.whatsapp.net", "type": "set", "id": "1700000000.123-1", "xmlns": "md"},
        [Node("pair-device", {}, [Node("ref", {}, base64.b64encode(rand(30))) for _ in range(6)])],
    ),
    "iq-result-to-server": Node("iq", {"to": "@s.whatsapp.net", "type": "result", "id": "1700000000.123-1"}),
    "pair-success": Node(
        "iq",
        {"from": "s.whatsapp.net", "type": "set", "id": "1700000000.123-2", "xmlns": "md"},
        [
            Node(
                "pair-success",
                {},
                [
                    Node("device-identity", {"key-index": "1"}, rand(180)),
                    Node("platform", {"name": "smba"}),
                    Node("device", {"jid": ME_PN, "lid": ME_LID}),
                    Node("biz", {"name": "Wasim Test"}),
                ],
            )
        ],
    ),
    "success": Node(
        "success",
        {
            "t": "1700000000",
            "props": "12",
            "abprops": "5",
            "location": "frc",
            "lid": "98765432109876@lid",
            "creation": "1600000000",
        },
    ),
    "usync-query": Node(
        "iq",
        {"to": "s.whatsapp.net", "type": "get", "xmlns": "usync", "id": "55033.19-4"},
        [
            Node(
                "usync",
                {"context": "message", "mode": "query", "sid": "55033.19-5", "last": "true", "index": "0"},
                [
                    Node("query", {}, [Node("devices", {"version": "2"}), Node("lid", {})]),
                    Node("list", {}, [Node("user", {"jid": "15551234567@s.whatsapp.net"})]),
                ],
            )
        ],
    ),
    "usync-result": Node(
        "iq",
        {"from": "s.whatsapp.net", "type": "result", "id": "55033.19-4"},
        [
            Node(
                "usync",
                {"sid": "55033.19-5", "index": "0", "last": "true"},
                [
                    Node("result", {}),
                    Node(
                        "list",
                        {},
                        [
                            Node(
                                "user",
                                {"jid": "15551234567@s.whatsapp.net"},
                                [
                                    Node(
                                        "devices",
                                        {},
                                        [
                                            Node(
                                                "device-list",
                                                {},
                                                [
                                                    Node("device", {"id": "0"}),
                                                    Node("device", {"id": "3", "key-index": "1"}),
                                                ],
                                            ),
                                            Node("key-index-list", {"ts": "1700000000"}, rand(40)),
                                        ],
                                    ),
                                    Node("lid", {"val": "98765432109876@lid"}),
                                ],
                            )
                        ],
                    ),
                ],
            )
        ],
    ),
    "message-enc": Node(
        "message",
        {
            "to": "15550001111@s.whatsapp.net",
            "type": "text",
            "id": "3EB0C767D8B1B4F2A1",
            "addressing_mode": "pn",
        },
        [
            Node(
                "participants",
                {},
                [
                    Node(
                        "to",
                        {"jid": "15550001111:2@s.whatsapp.net"},
                        [Node("enc", {"v": "2", "type": "pkmsg"}, rand(300))],
                    ),
                    Node(
                        "to",
                        {"jid": "15551234567:0@s.whatsapp.net"},
                        [Node("enc", {"v": "2", "type": "msg"}, rand(90))],
                    ),
                ],
            ),
            Node("device-identity", {}, rand(160)),
        ],
    ),
    "incoming-message-lid": Node(
        "message",
        {
            "from": "12345678901234@lid",
            "sender_pn": "15550001111@s.whatsapp.net",
            "t": "1700000001",
            "id": "ABC123",
        },
        [Node("enc", {"v": "2", "type": "skmsg"}, rand(64))],
    ),
    "receipt": Node(
        "receipt",
        {"id": "3EB0C767D8B1B4F2A1", "to": "15550001111@s.whatsapp.net", "type": "read", "t": "1700000002"},
        [Node("list", {}, [Node("item", {"id": "3EB0C767D8B1B4F2A2"})])],
    ),
    "ack": Node("ack", {"id": "3EB0C767D8B1B4F2A1", "class": "receipt", "from": ME_PN, "type": "read"}),
    "stream-error-conflict": Node("stream:error", {}, [Node("conflict", {"type": "replaced"})]),
    "stream-error-515": Node("stream:error", {"code": "515"}),
    "group-and-broadcast": Node(
        "notification", {"from": "120363041234567890@g.us", "to": "status@broadcast", "participant": ME_LID}
    ),
    "keys-upload": Node(
        "iq",
        {"id": "upload-1", "xmlns": "encrypt", "type": "set", "to": "s.whatsapp.net"},
        [
            Node("registration", {}, rand(4)),
            Node("type", {}, b"\x05"),
            Node("identity", {}, rand(32)),
            # 812 keys: the ~45 KB node Baileys uploads on first login; needs LIST_16.
            Node(
                "list",
                {},
                [
                    Node("key", {}, [Node("id", {}, i.to_bytes(3, "big")), Node("value", {}, rand(32))])
                    for i in range(1, 813)
                ],
            ),
            Node(
                "skey",
                {},
                [
                    Node("id", {}, b"\x00\x00\x01"),
                    Node("value", {}, rand(32)),
                    Node("signature", {}, rand(64)),
                ],
            ),
        ],
    ),
    "strings": Node(
        "x",
        {
            "odd": "12345",
            "even": "123456",
            "dots": "1.2-3",
            "nibble127": "9" * 127,
            "nibble128": "9" * 128,
            "hex": "ABCDEF0123",
            "hexodd": "ABC",
            "hex127": "F" * 127,
            "hex128": "F" * 128,
            "lowerhex": "abcdef01",
            "mixedhex": "abcDEF",
            "mixed": "abc-123",
            "pn-device": "15551234567:12@s.whatsapp.net",
            "pn-device0": "15551234567:0@s.whatsapp.net",
            "server-only": "@s.whatsapp.net",
            "lid": "x@lid",
            "lid-device": "x:5@lid",
            "hosted": "1555:99@hosted",
            "hosted-lid": "1555:255@hosted.lid",
            "no-user-device": ":7@lid",
            "group": "x@g.us",
            "status": "status@broadcast",
            "nested": "a@b@c",
            "nested-deep": "@".join("abcdefghijkl"),
            "empty": "",
            "token": "result",
            "double-token": "pair-device",
            "unicode": "héllo wörld 👋🏽 你好",
            "zero": "\0",
            "long": "z" * 300,
        },
    ),
    "text-unicode": Node("body", {}, "héllo wörld 👋🏽 — ✓ 你好"),
    "text-token": Node("type", {}, "result"),
    "text-number": Node("count", {}, "1234567"),
    "text-jid": Node("jid", {}, "15551234567:3@s.whatsapp.net"),
    "text-empty": Node("note", {}, ""),
    "text-long": Node("note", {}, "long text " * 30000),
    "binary-0": Node("enc", {}, b""),
    "binary-255": Node("enc", {}, rand(255)),
    "binary-256": Node("enc", {}, rand(256)),
    "binary-70000": Node("enc", {}, rand(70000)),
    "binary-max20": Node("enc", {}, rand((1 << 20) - 1)),
    "binary-2^20+5": Node("enc", {}, rand((1 << 20) + 5)),
    "empty-children": Node("list", {}, []),
    "255-children": Node("list", {}, [Node("item", {"n": str(i)}) for i in range(255)]),
    "256-children": Node("list", {}, [Node("item", {"n": str(i)}) for i in range(256)]),
    "300-attrs": Node("props", {f"key-{i}": f"value {i}" for i in range(300)}),
    "deep": Node("a", {}, [Node("b", {}, [Node("c", {}, [Node("d", {}, [Node("e", {}, [Node("f", {}, b"deep")])])])])]),
    "tag-is-jid": Node("15551234567@s.whatsapp.net", {"x": "y"}),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_round_trips_with_baileys(oracle: Oracle, name: str) -> None:
    check_both_directions(oracle, [CORPUS[name]])


def test_known_bytes() -> None:
    # Verified against Baileys' own encoder when wasim was first written.
    node = Node(
        "iq",
        {"to": "@s.whatsapp.net", "type": "set", "id": "abc.123-1", "xmlns": "md"},
        [Node("pair-device", {}, [Node("ref", {}, b"hello")])],
    )
    expected = "00f80a1911fa0003045a08fc096162632e3132332d3116fc026d64f801f802edeef801f802ed50fc0568656c6c6f"
    assert encode_node(node).hex() == expected
    assert decode_node(bytes.fromhex(expected)) == node


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("", "fc00"),
        ("iq", "19"),  # single-byte token 25
        ("pair-device", "edee"),  # dictionary 1, index 238
        ("123", "ff82123f"),  # nibbles, odd length: high bit set, padded with 15 ("\0")
        ("1.2-", "ff021b2a"),
        ("ABCDEF", "fb03abcdef"),
        ("abcdef", "fc06616263646566"),  # lowercase hex is a raw string
        ("1@s.whatsapp.net", "fa5503"),  # "1" and "s.whatsapp.net" are tokens
        ("@s.whatsapp.net", "fa0003"),
        ("123:2@lid", "f70102ff82123f"),  # domain 1 (lid), device 2, user nibble-packed
        ("1:0@s.whatsapp.net", "f7000055"),
        ("x:5@g.us", "fc08783a3540672e7573"),  # AD_JID has no g.us: raw (Baileys would say s.whatsapp.net)
    ],
)
def test_string_forms(text: str, encoded: str) -> None:
    payload = encode_node(Node("a", {"v": text}))
    # 00 flag, f8 03 a list of 3, fc 01 61 tag "a" (raw), 51 key "v" (token), then the value.
    assert payload.hex() == "00f803fc016151" + encoded
    assert decode_node(payload).attrs["v"] == drop_zero_device(text)


# Strings Baileys' own encoder mangles; we write them so they survive (raw strings).
BAILEYS_LOSSY = [
    "constructor",  # Baileys' TOKEN_MAP is a plain object: Object.prototype names encode as byte 0 = ""
    "toString",
    "__proto__",
    "hasOwnProperty",
    "a_1@s.whatsapp.net",  # jidDecode splits off "_1" as an agent and drops it
    "a_1:2@lid",
    "x:5@g.us",  # AD_JID has no domain type for g.us: decodes as @s.whatsapp.net
    "a:b@lid",  # non-numeric device -> 0 -> dropped
    "a:05@lid",  # "05" -> 5
    "a:1:2@lid",
    "u:256@s.whatsapp.net",  # device is written as one byte
    "a@",  # JID pair with an empty server: Baileys' decoder rejects its own output
    "@",
]


@pytest.mark.parametrize("text", BAILEYS_LOSSY)
def test_strings_baileys_would_mangle_survive_our_encoder(oracle: Oracle, text: str) -> None:
    node = Node("iq", {"v": text}, [Node("c", {}, text)])
    payload = encode_node(node)
    ours = decode_node(payload)
    assert ours.attrs["v"] == text
    assert [c.content_bytes() for c in ours.children()] == [text.encode()]
    [reply] = oracle.batch([{"op": "decode", "hex": payload.hex()}])
    assert baileys_decoded(reply) == ours


def test_text_with_very_many_at_signs(oracle: Oracle) -> None:
    # Baileys nests a JID per '@'; we write such text raw, and refuse to decode absurd nesting.
    text = "x@" * (binary.MAX_JID_NESTING + 1) + "y"
    node = Node("a", {"v": text})
    payload = encode_node(node)
    assert decode_node(payload) == node
    [ours_decoded, theirs] = oracle.batch(
        [{"op": "decode", "hex": payload.hex()}, {"op": "encode", "node": to_json(node), "decode": True}]
    )
    assert baileys_decoded(ours_decoded) == node
    assert baileys_decoded(theirs["decoded"]) == node
    with pytest.raises(BinaryError, match="JIDs nested deeper than"):
        decode_node(bytes.fromhex(theirs["hex"]))
    limit = Node("a", {"v": "x@" * binary.MAX_JID_NESTING + "y"})
    assert decode_node(encode_node(limit)) == limit
    assert encode_node(limit).count(binary.JID_PAIR) == binary.MAX_JID_NESTING


# -- hypothesis: random nodes, both directions ---------------------------------------------------

ALL_TOKENS = sorted({t for t in SINGLE_BYTE_TOKENS if t} | {t for table in DOUBLE_BYTE_TOKENS for t in table})
JS_PROTOTYPE_NAMES = {
    "constructor", "__defineGetter__", "__defineSetter__", "hasOwnProperty", "__lookupGetter__",
    "__lookupSetter__", "isPrototypeOf", "propertyIsEnumerable", "toString", "valueOf", "__proto__",
    "toLocaleString",
}  # fmt: skip
SERVERS = ["s.whatsapp.net", "lid", "hosted", "hosted.lid", "g.us", "broadcast", "newsletter", "c.us", "bot"]
AD_SERVERS = ["s.whatsapp.net", "lid", "hosted", "hosted.lid"]


def pick(items: list[str]) -> st.SearchStrategy[str]:
    # Like sampled_from, minus a repr of the whole token list in Hypothesis' output.
    return st.integers(0, len(items) - 1).map(lambda i: items[i])


free_text = st.text(st.characters(exclude_characters="@", exclude_categories=["Cs"]), max_size=24).filter(
    lambda s: s not in JS_PROTOTYPE_NAMES
)
jid_user = st.one_of(
    st.text("0123456789", max_size=20),
    st.text(st.characters(exclude_characters="@:_", exclude_categories=["Cs"]), max_size=10).filter(
        lambda s: s not in JS_PROTOTYPE_NAMES
    ),
    pick([t for t in ALL_TOKENS if not set(t) & set("@:_")]),
)
jids = st.one_of(
    st.builds(lambda u, s: f"{u}@{s}", jid_user, st.sampled_from(SERVERS)),
    st.builds(lambda u, d, s: f"{u}:{d}@{s}", jid_user, st.integers(0, 255), st.sampled_from(AD_SERVERS)),
)
strings = st.one_of(
    pick(ALL_TOKENS),
    free_text,
    st.text("0123456789.-", min_size=1, max_size=130),  # nibble-packed up to 127 chars
    st.text("0123456789ABCDEF", min_size=1, max_size=130),  # hex-packed up to 127 chars
    jids,
)
tags = strings.filter(bool)
attr_maps = st.dictionaries(strings, strings, max_size=4)
leaves = st.builds(Node, tags, attr_maps, st.one_of(st.none(), strings, st.binary(max_size=300), st.builds(list)))
nodes = st.recursive(
    leaves, lambda children: st.builds(Node, tags, attr_maps, st.lists(children, max_size=4)), max_leaves=12
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nodes, min_size=1, max_size=3))
def test_random_nodes_round_trip_with_baileys(oracle: Oracle, batch: list[Node]) -> None:
    check_both_directions(oracle, batch)


@settings(max_examples=200, deadline=None)
@given(nodes, st.text(max_size=40))
def test_our_encoding_is_lossless_for_any_text(node: Node, text: str) -> None:
    """Any text (lone surrogates aside) survives our encoder, except a ':0' device."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(BinaryError):
            encode_node(Node("t", {"v": text}))
        return
    wrapped = Node("t", {"v": text}, [node, Node("c", {}, text)])
    decoded = decode_node(encode_node(wrapped))
    assert decoded.attrs["v"] == drop_zero_device(text)
    assert canon(decoded) == canon(wrapped)


# -- compressed frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pair-success", "keys-upload", "strings"])
def test_compressed_frame(oracle: Oracle, name: str) -> None:
    node = CORPUS[name]
    plain = encode_node(node)
    compressed = b"\x02" + zlib.compress(plain[1:])
    assert decode_node(compressed) == decode_node(plain)
    [reply] = oracle.batch([{"op": "decode", "hex": compressed.hex()}])
    assert baileys_decoded(reply) == decode_node(compressed)


def test_compressed_frame_problems(oracle: Oracle) -> None:
    body = encode_node(CORPUS["success"])[1:]
    raw_deflate = zlib.compressobj(wbits=-15)
    deflated = raw_deflate.compress(body) + raw_deflate.flush()
    with pytest.raises(BinaryError, match="does not inflate"):
        decode_node(b"\x02" + deflated)  # no zlib header: Baileys (zlib.inflate) rejects it too
    [reply] = oracle.batch([{"op": "decode", "hex": ("02" + deflated.hex())}])
    assert not reply["ok"]
    with pytest.raises(BinaryError, match="truncated"):
        decode_node(b"\x02" + zlib.compress(body)[:-6])
    with pytest.raises(BinaryError, match="trailing"):
        decode_node(b"\x02" + zlib.compress(body) + b"junk")
    bomb = zlib.compress(b"\xf8" * (MAX_INFLATED + 1), 9)
    assert len(bomb) < 20_000
    with pytest.raises(BinaryError, match="inflates to more than"):
        decode_node(b"\x02" + bomb)
    # Exactly at the limit is allowed to inflate (then fails as a node: a list of 248s is no node).
    with pytest.raises(BinaryError, match=r"trailing|ends early|expected a list|invalid"):
        decode_node(b"\x02" + zlib.compress(b"\xf8" * MAX_INFLATED))


# -- bad input -----------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_binary_error(data: bytes) -> None:
    for payload in (data, b"\x00" + data, b"\x02" + data):
        try:
            assert isinstance(decode_node(payload), Node)
        except BinaryError:
            pass


# Byte values that make a mutated frame interesting: list and string tags, and small numbers.
_TAG_BYTES = [0, 1, 2, 3, 0x7F, 0x80, 0xFF, *range(236, 256)]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    node = draw(nodes)
    data = bytearray(encode_node(node))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(1, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        value = draw(st.one_of(st.sampled_from(_TAG_BYTES), st.integers(0, 255)))
        if kind == "set" and pos < len(data):
            data[pos] = value
        elif kind == "insert":
            data.insert(pos, value)
        elif kind == "delete" and pos < len(data):
            del data[pos]
        elif kind == "cut":
            del data[pos:]
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(mutated_frames(), min_size=1, max_size=3))
def test_mutated_frames_agree_with_baileys(oracle: Oracle, frames: list[bytes]) -> None:
    # Baileys reads BINARY_32 lengths as signed 32-bit ints; a negative one sends its reader backwards
    # (possibly for a very long time), so leave those out.
    assume(not any(re.search(rb"\xfe[\x80-\xff]", f) for f in frames))
    replies = oracle.batch([{"op": "decode", "hex": f.hex()} for f in frames])
    for frame, reply in zip(frames, replies, strict=True):
        try:
            ours: Node | None = decode_node(frame)
            error = ""
        except BinaryError as exc:
            ours, error = None, str(exc)
        baileys_read_all = reply["ok"] and reply["used"] == reply["size"]
        if ours is not None:
            assert baileys_read_all, f"we accept {frame.hex()}, Baileys does not: {reply}"
            assert from_json(reply["node"]) == ours
        elif baileys_read_all:
            # Only our deliberate strictness may make us reject what Baileys accepts.
            assert re.search("invalid UTF-8|nested deeper", error), f"{frame.hex()}: {error}"


def test_every_truncation_is_an_error() -> None:
    payload = encode_node(CORPUS["message-enc"])
    for end in range(1, len(payload)):
        with pytest.raises(BinaryError, match="data ends early"):
            decode_node(payload[:end])


def nested(depth: int) -> Node:
    node = Node("leaf", {})
    for _ in range(depth - 1):
        node = Node("n", {}, [node])
    return node


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty frame payload"),
        (b"\x00", "data ends early: 1 more byte needed at byte 0"),
        (b"\x00\xf8\x03\x19\x08", "data ends early"),
        (b"\x00\xfc\x05hello", "expected a list at byte 0, found tag 252"),
        (b"\x00\xf8\x00", "empty node"),
        (b"\x00\xf8\x01\x00", "node without a tag"),
        (b"\x00\xf8\x01\x19\x19", "1 trailing byte"),
        (b"\x00\xf8\x01\xf0", "invalid string tag 240"),
        (b"\x00\xf8\x01\xfc\x02\xff\xfe", "invalid UTF-8"),
        (b"\x00\xf8\x03\x19\xfc\x01\xc3\x19", "invalid UTF-8"),
        (b"\x00\xf8\x01\xff\x01\x1c", "invalid nibble digit"),
        (b"\x00\xf8\x01\xfd\x0f\xff\xff", "1048575 bytes needed"),
        (b"\x00\xf8\x02\x19\xfe\xff\xff\xff\xff", "4294967295 bytes needed"),
        (b"\x00\xf8\x01\xfa\x19\x00", "JID pair without a server"),
        (b"\x00\xf8\x01" + b"\xfa\x00" * 10_000 + b"\x03", "JIDs nested deeper"),
        (b"\x00\xf8\x02\x19\xf9\xff\xff", "data ends early"),
        (encode_node(nested(200)), "nested deeper than 64"),
    ],
)
def test_bad_input_messages(payload: bytes, message: str) -> None:
    with pytest.raises(BinaryError, match=re.escape(message)):
        decode_node(payload)


def test_nesting_limits_leave_room(oracle: Oracle) -> None:
    node = nested(binary.MAX_DEPTH + 1)  # the root is depth 0
    [reply] = oracle.batch([{"op": "decode", "hex": encode_node(node).hex()}])
    assert decode_node(encode_node(node)) == node == baileys_decoded(reply)
    # The deepest node holding the deepest JIDs still decodes within Python's default stack.
    worst = nested(binary.MAX_DEPTH + 1)
    leaf = worst
    while leaf.children():
        leaf = leaf.children()[0]
    leaf.attrs["v"] = leaf.content = "x@" * binary.MAX_JID_NESTING + "y"
    assert decode_node(encode_node(worst)) == worst
    with pytest.raises(BinaryError, match="nested deeper than 64"):
        decode_node(encode_node(nested(binary.MAX_DEPTH + 2)))


def test_rare_forms_decode_like_baileys(oracle: Oracle) -> None:
    # Baileys never sends FB_JID / INTEROP_JID, but its decoder reads them; so do we.
    frames = {
        "fb": b"\x00\xf8\x03\x19\x11\xf6\xfc\x041234\x00\x07\xfc\x04msgr",
        "fb-device0": b"\x00\xf8\x03\x19\x11\xf6\xfc\x041234\x00\x00\xfc\x04msgr",
        "interop": b"\x00\xf8\x03\x19\x11\xf5\xfc\x041234\x00\x02\x00\x09\xfc\x07interop",
        "interop-no-server": b"\x00\xf8\x03\x19\x11\xf5\xfc\x041234\x00\x02\x00\x09",
        "interop-in-list": b"\x00\xf8\x04\x19\x11\xf5\xfc\x0212\x00\x01\x00\x02\xf8\x01\xf8\x01\x19",
        "ad-unknown-domain": b"\x00\xf8\x03\x19\x11\xf7\x07\x02\xfc\x0212",
        # BINARY_20 lengths are 20 bits: the top nibble of the first length byte is ignored.
        "binary20-high-nibble": b"\x00\xf8\x02\x19\xfd\xf0\x00\x02ab",
        "binary20-string-high-nibble": b"\x00\xf8\x03\x19\x11\xfd\xa0\x00\x02ab",
    }
    replies = oracle.batch([{"op": "decode", "hex": f.hex()} for f in frames.values()])
    decoded = {name: decode_node(f) for name, f in frames.items()}
    for (name, ours), reply in zip(decoded.items(), replies, strict=True):
        assert baileys_decoded(reply) == ours, name
    assert decoded["fb"].attrs["to"] == "1234:7@msgr"
    assert decoded["fb-device0"].attrs["to"] == "1234:0@msgr"
    assert decoded["interop"].attrs["to"] == "9-1234:2@interop"
    assert decoded["interop-no-server"].attrs["to"] == "9-1234:2@interop"
    assert decoded["interop-in-list"].content == [Node("iq")]
    assert decoded["ad-unknown-domain"].attrs["to"] == "12:2@s.whatsapp.net"
    assert decoded["binary20-high-nibble"].content == b"ab"
    assert decoded["binary20-string-high-nibble"].attrs["to"] == "ab"


# -- encoder errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (Node(""), "non-empty tag"),
        (Node("a", {"k": 5}), "attribute 'k' of <a> must be a string"),  # type: ignore[dict-item]
        (Node("a", {}, 5), "content of <a> must be"),  # type: ignore[arg-type]
        (Node("a", {}, ["x"]), "a child must be a Node"),  # type: ignore[list-item]
        (Node("a", {"k": "\ud800"}), "not encodable as UTF-8"),
        (Node("a", {}, [Node("b")] * 65536), "too long to encode"),
    ],
)
def test_encoder_rejects_bad_nodes(node: Node, message: str) -> None:
    with pytest.raises(BinaryError, match=re.escape(message)):
        encode_node(node)


def test_none_attributes_are_left_out() -> None:
    node = Node("a", {"k": None, "j": "v"})  # type: ignore[dict-item]
    assert decode_node(encode_node(node)) == Node("a", {"j": "v"})


# -- tables --------------------------------------------------------------------------------------


def test_tokens_json_matches_baileys(oracle: Oracle) -> None:
    reply = oracle.request({"op": "tokens"})
    assert reply["ok"]
    committed = json.loads(TOKENS_JSON.read_text(encoding="utf-8"))
    for key in ("TAGS", "SINGLE_BYTE_TOKENS", "DOUBLE_BYTE_TOKENS"):
        assert committed[key] == reply[key], (
            f"tokens.json {key} differs from Baileys; regenerate with "
            "`node tests/testkit/node/dump-tokens.mjs src/wasim/protocol/tokens.json`"
        )
    assert SINGLE_BYTE_TOKENS == reply["SINGLE_BYTE_TOKENS"]
    assert DOUBLE_BYTE_TOKENS == reply["DOUBLE_BYTE_TOKENS"]
    for name, value in reply["TAGS"].items():
        assert getattr(binary, name) == value, name


@pytest.mark.e2e  # starts a process
def test_dump_tokens_script_reproduces_tokens_json(tmp_path: Path) -> None:
    out = tmp_path / "tokens.json"
    subprocess.run(["node", str(TEST_CLIENT / "dump-tokens.mjs"), str(out)], cwd=TEST_CLIENT, check=True)
    assert out.read_bytes() == TOKENS_JSON.read_bytes()


# -- Node helpers --------------------------------------------------------------------------------


def test_node_helpers() -> None:
    node = Node("iq", {"id": "1"}, [Node("a", {"n": "1"}), Node("b"), Node("a", {"n": "2"})])
    assert node.child("a") == Node("a", {"n": "1"})
    assert node.child("zzz") is None
    assert node.children("a") == [Node("a", {"n": "1"}), Node("a", {"n": "2"})]
    assert len(node.children()) == 3
    assert Node("x", {}, b"\x01").children() == []
    assert Node("x", {}, "ab").child("a") is None
    assert Node("x", {}, b"\x01\x02").content_bytes() == b"\x01\x02"
    assert Node("x", {}, "é").content_bytes() == "é".encode()
    assert Node("x").content_bytes() == b""
    assert Node("x", {}, []).content_bytes() == b""


def test_node_str() -> None:
    assert str(Node("iq", {"id": "1", "type": "get"})) == '<iq id="1" type="get"/>'
    assert str(Node("a", {}, [Node("b", {}, "hi")])) == "<a><b>hi</b></a>"
    assert str(Node("e", {}, b"\x01\xff")) == "<e>[2 bytes 01ff]</e>"
    long = str(Node("e", {}, bytes(range(100))))
    assert long.startswith("<e>[100 bytes 000102") and long.endswith("…]</e>") and len(long) < 100
    many = str(Node("list", {}, [Node("k")] * 812))
    assert many.count("<k/>") == 20 and "792 more" in many
    assert len(str(Node("t", {}, "x" * 5000))) < 300


def test_big_node_is_fast_enough() -> None:
    import time

    node = CORPUS["keys-upload"]
    start = time.perf_counter()
    for _ in range(10):
        assert decode_node(encode_node(node)) == node
    assert time.perf_counter() - start < 2.0  # ~45 KB, 812 keys; a few ms each in practice
