"""Small builders for the stanzas wasim sends, so handlers read like the stanzas in docs/wasim.md."""

from __future__ import annotations

import itertools
import secrets
import time

from wasim.protocol.binary import Node

SERVER_JID = "s.whatsapp.net"
_counter = itertools.count(1)


def new_id() -> str:
    return f"wasim.{next(_counter)}-{secrets.token_hex(3)}"


def now_s() -> str:
    return str(int(time.time()))


def iq_result(request: Node, content: list[Node] | None = None) -> Node:
    attrs = {"type": "result", "id": request.attrs.get("id", ""), "from": SERVER_JID, "t": now_s()}
    return Node("iq", attrs, content)


def iq_error(request: Node, code: int, text: str) -> Node:
    attrs = {"type": "error", "id": request.attrs.get("id", ""), "from": SERVER_JID}
    return Node("iq", attrs, [Node("error", {"code": str(code), "text": text})])


def stream_error(code: int | None, conflict: str | None = None, child: str | None = None) -> Node:
    attrs = {} if code is None else {"code": str(code)}
    children: list[Node] = []
    if conflict:
        children.append(Node("conflict", {"type": conflict}))
    elif child:
        children.append(Node(child, {}))
    return Node("stream:error", attrs, children or None)


def failure(reason: int) -> Node:
    return Node("failure", {"reason": str(reason), "location": "wasim"})
