"""WhatsApp's binary XML ("WABinary"): nodes <-> frame payloads, sans-I/O.

A node is a tag, string attributes and content (nothing, a string, bytes, or child nodes). A frame
payload is one flag byte (bit 0x02: the rest is zlib-compressed) followed by the node.

`encode_node` writes every string in the most compact form Baileys would use (dictionary token,
packed digits or hex, JID forms, else raw UTF-8) so our frames look like the real server's, but it
falls back to a raw string wherever Baileys' own encoder would lose information (e.g. `a_1@x`,
`x:5@g.us`, `a@`). Bytes content is always written as raw binary: Baileys reads keys and ciphertexts
only from binary-tagged content.

`decode_node` accepts everything Baileys' decoder accepts and raises `BinaryError` (a ValueError)
for anything malformed, and nothing else, so a server can close the connection with the reason.
It is stricter than Baileys in three ways: trailing bytes after the node, invalid UTF-8 and absurd
nesting are errors instead of being ignored or crashing.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

# -- tables (dumped from Baileys by tests/testkit/node/dump-tokens.mjs; a test keeps them in sync) -------

_TABLES: dict[str, Any] = json.loads(
    resources.files("wasim.protocol").joinpath("tokens.json").read_text(encoding="utf-8")
)
SINGLE_BYTE_TOKENS: list[str] = _TABLES["SINGLE_BYTE_TOKENS"]
DOUBLE_BYTE_TOKENS: list[list[str]] = _TABLES["DOUBLE_BYTE_TOKENS"]

LIST_EMPTY = 0
DICTIONARY_0 = 236  # DICTIONARY_n: the next byte indexes DOUBLE_BYTE_TOKENS[n]
DICTIONARY_1 = 237
DICTIONARY_2 = 238
DICTIONARY_3 = 239
INTEROP_JID = 245
FB_JID = 246
AD_JID = 247
LIST_8 = 248
LIST_16 = 249
JID_PAIR = 250
HEX_8 = 251
BINARY_8 = 252
BINARY_20 = 253
BINARY_32 = 254
NIBBLE_8 = 255
PACKED_MAX = 127

FLAG_COMPRESSED = 0x02
MAX_DEPTH = 64  # real stanzas nest < 10 deep; this only stops hostile input from exhausting the stack
# A JID's server may itself be a JID (`a@b@c` nests, in Baileys too); bound that recursion as well.
# The encoder writes text with more '@'s than this as a raw string, so its output always decodes.
MAX_JID_NESTING = 32
MAX_INFLATED = 8 * 1024 * 1024
_BINARY_TAGS = (BINARY_8, BINARY_20, BINARY_32)  # raw bytes, after a 1-, 3- or 4-byte length
_JID_TAGS = (JID_PAIR, AD_JID, FB_JID, INTEROP_JID)

# Each token's encoded form. Doubles are added after singles so that, like Baileys' TOKEN_MAP, a
# word present in both tables (none today) would use the double form.
_TOKEN_BYTES: dict[str, bytes] = {tok: bytes((i,)) for i, tok in enumerate(SINGLE_BYTE_TOKENS) if tok}
_TOKEN_BYTES.update(
    (tok, bytes((DICTIONARY_0 + d, i))) for d, table in enumerate(DOUBLE_BYTE_TOKENS) for i, tok in enumerate(table)
)

# Packed alphabets: a character's nibble is its index; nibble 15 is the padding "\0".
_NIBBLE_ALPHABET = "0123456789-."
_HEX_ALPHABET = "0123456789ABCDEF"  # uppercase only: Baileys writes lowercase hex as a raw string
_NIBBLE_VALUE = {c: i for i, c in enumerate(_NIBBLE_ALPHABET)}
_HEX_VALUE = {c: i for i, c in enumerate(_HEX_ALPHABET)}
_NIBBLE_RE = re.compile(rf"[0-9.\-]{{1,{PACKED_MAX}}}")
_HEX_RE = re.compile(rf"[0-9A-F]{{1,{PACKED_MAX}}}")
# The two characters of every possible packed byte, so decoding needs no per-nibble work; "?"
# marks the nibbles 12-14, which are invalid in a nibble-packed string.
_NIBBLE_PAIRS = [(_NIBBLE_ALPHABET + "???\0")[b >> 4] + (_NIBBLE_ALPHABET + "???\0")[b & 15] for b in range(256)]
_HEX_PAIRS = [_HEX_ALPHABET[b >> 4] + _HEX_ALPHABET[b & 15] for b in range(256)]

# AD_JID's domain type byte <-> JID server.
_DOMAIN_TYPES = {"s.whatsapp.net": 0, "lid": 1, "hosted": 128, "hosted.lid": 129}
_DOMAIN_SERVERS = {v: k for k, v in _DOMAIN_TYPES.items()}
_DEVICE_RE = re.compile(r"0|[1-9][0-9]{0,2}")  # canonical decimal only, so "05" is not rewritten as "5"


class BinaryError(ValueError):
    """Bytes that are not a well-formed binary node (or a node that cannot be encoded)."""


Content = None | str | bytes | list["Node"]


@dataclass(slots=True)
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    content: Content = None

    def child(self, tag: str) -> Node | None:
        """The first child with this tag, if the content is a list of children."""
        if isinstance(self.content, list):
            for node in self.content:
                if node.tag == tag:
                    return node
        return None

    def children(self, tag: str | None = None) -> list[Node]:
        """The children (with this tag, if given); [] when the content is not a list."""
        if not isinstance(self.content, list):
            return []
        return [node for node in self.content if tag is None or node.tag == tag]

    def content_bytes(self) -> bytes:
        """Bytes content as is, string content as UTF-8 (the decoder may yield either); else b""."""
        if isinstance(self.content, bytes | bytearray):
            return bytes(self.content)
        if isinstance(self.content, str):
            return self.content.encode("utf-8")
        return b""

    def __str__(self) -> str:
        return _render(self)


_RENDER_BYTES = 32
_RENDER_TEXT = 200
_RENDER_CHILDREN = 20


def _render(node: Node) -> str:
    """One line, so it fits a log record; long text, binary and child lists are cut short."""
    attrs = "".join(f' {k}="{v}"' for k, v in node.attrs.items())
    content = node.content
    if content is None:
        return f"<{node.tag}{attrs}/>"
    if isinstance(content, list):
        shown = [_render(c) for c in content[:_RENDER_CHILDREN]]
        if len(content) > _RENDER_CHILDREN:
            shown.append(f"…({len(content) - _RENDER_CHILDREN} more)")
        inner = "".join(shown)
    elif isinstance(content, bytes | bytearray):
        more = "…" if len(content) > _RENDER_BYTES else ""
        inner = f"[{len(content)} bytes {bytes(content[:_RENDER_BYTES]).hex()}{more}]"
    else:
        inner = content if len(content) <= _RENDER_TEXT else content[:_RENDER_TEXT] + "…"
    return f"<{node.tag}{attrs}>{inner}</{node.tag}>"


# -- encoding ----------------------------------------------------------------------------------


def encode_node(node: Node) -> bytes:
    """The frame payload for `node`: flag byte 0x00 (uncompressed), then the node."""
    out = bytearray(b"\x00")
    _write_node(out, node)
    return bytes(out)


def _write_node(out: bytearray, node: Node) -> None:
    if not isinstance(node, Node):
        raise BinaryError(f"a child must be a Node, not {type(node).__name__}")
    if not node.tag:
        raise BinaryError("a node needs a non-empty tag")
    # Like Baileys, attributes set to None are left out.
    attrs = [(k, v) for k, v in node.attrs.items() if v is not None]
    content = node.content
    _write_list_start(out, 1 + 2 * len(attrs) + (content is not None))
    _write_string(out, node.tag)
    for key, value in attrs:
        if not isinstance(value, str) or not isinstance(key, str):
            kind = type(value).__name__
            raise BinaryError(f"attribute {key!r} of <{node.tag}> must be a string, not {kind}")
        _write_string(out, key)
        _write_string(out, value)
    if content is None:
        return
    if isinstance(content, list):
        _write_list_start(out, len(content))
        for child in content:
            _write_node(out, child)
    elif isinstance(content, bytes | bytearray | memoryview):
        _write_binary(out, bytes(content))
    elif isinstance(content, str):
        _write_string(out, content)
    else:
        kind = type(content).__name__
        raise BinaryError(f"content of <{node.tag}> must be str, bytes or a list of nodes, not {kind}")


def _write_list_start(out: bytearray, size: int) -> None:
    if size == 0:
        out.append(LIST_EMPTY)
    elif size < 256:
        out += bytes((LIST_8, size))
    elif size < 65536:
        out.append(LIST_16)
        out += size.to_bytes(2, "big")
    else:
        raise BinaryError(f"a list of {size} items is too long to encode (max 65535)")


def _write_binary(out: bytearray, data: bytes) -> None:
    size = len(data)
    if size < 256:
        out += bytes((BINARY_8, size))
    elif size < 1 << 20:
        out.append(BINARY_20)
        out += size.to_bytes(3, "big")
    elif size < 1 << 32:
        out.append(BINARY_32)
        out += size.to_bytes(4, "big")
    else:
        raise BinaryError(f"{size} bytes are too many for one binary field")
    out += data


def _write_packed(out: bytearray, text: str, tag: int, values: dict[str, int]) -> None:
    nibbles = [values[c] for c in text]
    odd = len(nibbles) % 2
    if odd:
        nibbles.append(15)
    out += bytes((tag, len(nibbles) // 2 | (0x80 if odd else 0)))
    out += bytes((hi << 4) | lo for hi, lo in zip(nibbles[::2], nibbles[1::2], strict=True))


def _write_string(out: bytearray, text: str) -> None:
    if text:
        token = _TOKEN_BYTES.get(text)
        if token is not None:
            out += token
            return
        if _NIBBLE_RE.fullmatch(text):
            _write_packed(out, text, NIBBLE_8, _NIBBLE_VALUE)
            return
        if _HEX_RE.fullmatch(text):
            _write_packed(out, text, HEX_8, _HEX_VALUE)
            return
        if "@" in text and text.count("@") <= MAX_JID_NESTING and _write_jid(out, text):
            return
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise BinaryError(f"string {text[:40]!r} is not encodable as UTF-8") from exc
    _write_binary(out, raw)


def _write_jid(out: bytearray, jid: str) -> bool:
    """Write `jid` in a JID form if that decodes back to the same text (or drops only ':0', as
    Baileys does on purpose); False means: write it as a raw string instead."""
    user, _, server = jid.partition("@")
    if not server:
        return False  # Baileys' decoder rejects a JID_PAIR with an empty server
    if ":" in user:
        user, _, device = user.partition(":")
        domain = _DOMAIN_TYPES.get(server)
        # AD_JID has no room for other servers, an agent suffix ("_1") or a device above 255.
        if domain is None or "_" in user or not _DEVICE_RE.fullmatch(device) or int(device) > 255:
            return False
        out += bytes((AD_JID, domain, int(device)))
        _write_string(out, user)
        return True
    out.append(JID_PAIR)
    if user:
        _write_string(out, user)
    else:
        out.append(LIST_EMPTY)
    _write_string(out, server)
    return True


# -- decoding ----------------------------------------------------------------------------------


def decode_node(payload: bytes | bytearray | memoryview) -> Node:
    """Decode a frame payload (flag byte first). Raises BinaryError, and only that, if malformed."""
    payload = bytes(payload)
    if not payload:
        raise BinaryError("empty frame payload (no flag byte)")
    data = _inflate(payload[1:]) if payload[0] & FLAG_COMPRESSED else payload[1:]
    reader = _Reader(data)
    node = reader.node(0)
    if reader.pos != len(data):
        raise BinaryError(f"{len(data) - reader.pos} trailing byte(s) after the node (at byte {reader.pos})")
    return node


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()  # zlib header expected, as Node's zlib.inflate does
    try:
        out = inflater.decompress(data, MAX_INFLATED + 1)
    except zlib.error as exc:
        raise BinaryError(f"compressed frame does not inflate: {exc}") from exc
    if len(out) > MAX_INFLATED:
        raise BinaryError(f"compressed frame inflates to more than {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise BinaryError("compressed frame is truncated (zlib stream does not end)")
    if inflater.unused_data:
        raise BinaryError(f"{len(inflater.unused_data)} trailing byte(s) after the zlib stream")
    return out


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise BinaryError(f"data ends early: 1 more byte needed at byte {pos}")
        self.pos = pos + 1
        return self.data[pos]

    def take(self, n: int) -> bytes:
        pos = self.pos
        if pos + n > len(self.data):
            raise BinaryError(f"data ends early: {n} bytes needed at byte {pos}, {len(self.data) - pos} left")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def list_size(self, tag: int) -> int:
        if tag == LIST_EMPTY:
            return 0
        if tag == LIST_8:
            return self.byte()
        if tag == LIST_16:
            return self.uint(2)
        raise BinaryError(f"expected a list at byte {self.pos - 1}, found tag {tag}")

    def node(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise BinaryError(f"nodes nested deeper than {MAX_DEPTH}")
        start = self.pos
        size = self.list_size(self.byte())
        if size == 0:
            raise BinaryError(f"empty node (list size 0) at byte {start}")
        tag = self.string(self.byte(), 0)
        if not tag:
            raise BinaryError(f"node without a tag at byte {start}")
        attrs: dict[str, str] = {}
        for _ in range((size - 1) // 2):
            key = self.string(self.byte(), 0)
            attrs[key] = self.string(self.byte(), 0)
        if size % 2:
            return Node(tag, attrs)
        first = self.byte()
        content: Content
        if first in (LIST_EMPTY, LIST_8, LIST_16):
            content = [self.node(depth + 1) for _ in range(self.list_size(first))]
        elif first in _BINARY_TAGS:
            content = self.take(self.binary_length(first))
        else:
            content = self.string(first, 0)
        return Node(tag, attrs, content)

    def utf8(self, n: int) -> str:
        start = self.pos
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BinaryError(f"invalid UTF-8 in the string at byte {start}: {exc.reason}") from exc

    def binary_length(self, tag: int) -> int:
        """The length after a BINARY_8/20/32 tag: 1 byte, 3 bytes (20 bits used) or 4 bytes."""
        if tag == BINARY_8:
            return self.byte()
        if tag == BINARY_20:
            return self.uint(3) & 0x0FFFFF
        return self.uint(4)

    def string(self, tag: int, nesting: int) -> str:
        """A string in any of its encodings: a token, raw UTF-8, packed digits, or a JID."""
        if 0 < tag <= DICTIONARY_3:
            return self.token(tag)
        if tag == LIST_EMPTY:
            return ""
        if tag in _BINARY_TAGS:
            return self.utf8(self.binary_length(tag))
        if tag == NIBBLE_8:
            return self.packed(_NIBBLE_PAIRS, "nibble")
        if tag == HEX_8:
            return self.packed(_HEX_PAIRS, "hex")
        if tag in _JID_TAGS:
            if nesting >= MAX_JID_NESTING:
                raise BinaryError(f"JIDs nested deeper than {MAX_JID_NESTING} at byte {self.pos - 1}")
            return self.jid(tag, nesting + 1)
        raise BinaryError(f"invalid string tag {tag} at byte {self.pos - 1}")

    def token(self, tag: int) -> str:
        """A dictionary string: one byte indexes SINGLE_BYTE_TOKENS, DICTIONARY_n + a byte the n-th table."""
        if tag < DICTIONARY_0:
            if tag >= len(SINGLE_BYTE_TOKENS):
                raise BinaryError(f"unknown single-byte token {tag} at byte {self.pos - 1}")
            return SINGLE_BYTE_TOKENS[tag]
        table = tag - DICTIONARY_0
        index = self.byte()
        if table >= len(DOUBLE_BYTE_TOKENS) or index >= len(DOUBLE_BYTE_TOKENS[table]):
            raise BinaryError(f"unknown double-byte token {table}/{index} at byte {self.pos - 2}")
        return DOUBLE_BYTE_TOKENS[table][index]

    def jid(self, tag: int, nesting: int) -> str:
        start = self.pos - 1
        if tag == JID_PAIR:
            user = self.string(self.byte(), nesting)
            server = self.string(self.byte(), nesting)
            if not server:
                raise BinaryError(f"JID pair without a server at byte {start}")
            return f"{user}@{server}"
        if tag == AD_JID:
            domain = self.byte()
            device = self.byte()
            user = self.string(self.byte(), nesting)
            # Unknown domain types mean the default server, and device 0 is not written (as Baileys).
            server = _DOMAIN_SERVERS.get(domain, "s.whatsapp.net")
            return f"{user}:{device}@{server}" if device else f"{user}@{server}"
        user = self.string(self.byte(), nesting)
        device = self.uint(2)
        if tag == FB_JID:
            return f"{user}:{device}@{self.string(self.byte(), nesting)}"
        integrator = self.uint(2)
        # INTEROP_JID's server is optional: Baileys tries to read one and backs off if that fails.
        server = "interop"
        before = self.pos
        try:
            server = self.string(self.byte(), nesting)
        except BinaryError:
            self.pos = before
        return f"{integrator}-{user}:{device}@{server}"

    def packed(self, pairs: list[str], kind: str) -> str:
        start = self.pos
        head = self.byte()
        text = "".join(pairs[b] for b in self.take(head & 0x7F))
        if "?" in text:
            raise BinaryError(f"invalid {kind} digit in the packed string at byte {start}")
        # The high bit marks an odd length: the last (padding) character is not part of the string.
        return text[:-1] if head & 0x80 else text
