"""`python -m wasim …`: serve the sandbox, and drive a running one through its control API."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from wasim.server.app import Wasim
from wasim.server.control import start_control


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wasim", description="An offline WhatsApp Web server for Baileys.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run wasim until interrupted")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    s.add_argument("--port", type=int, default=0, help="WebSocket port (0: any free port)")
    s.add_argument("--control-port", type=int, default=0, help="control API port (0: any free port)")
    s.add_argument("--state", type=Path, default=None, help="state directory (default: in memory only)")
    s.add_argument("--phone", default="15550001111", help="the simulated phone's own number")
    s.add_argument("-v", "--verbose", action="count", default=0, help="-v: info, -vv: every node")

    def control(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument("--control", required=True, help="control URL printed by 'wasim serve'")
        return c

    c = control("scan", "the simulated phone scans a QR code")
    c.add_argument("qr", help="the QR string the client produced")
    c.add_argument("--phone", default=None, help="link to this account (default: the phone's own)")
    c = control("pair", "the simulated phone types a linking code (Link with phone number instead)")
    c.add_argument("code", help="the eight-character code the client shows, e.g. ABCD-EFGH")
    c.add_argument("--phone", default=None, help="the phone of this account types it (default: the phone's own)")
    control("devices", "list accounts and their linked devices")
    c = control("fault", "inject a fault into logged-in connections")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--code", type=int, help="end with <stream:error code=N>")
    g.add_argument("--failure", type=int, metavar="N", help="end with <failure reason=N>")
    g.add_argument("--downgrade", action="store_true", help="<ib><downgrade_webclient/></ib> (411)")
    g.add_argument("--close", action="store_true", help="close the WebSocket")
    g.add_argument("--drop", action="store_true", help="silently stop answering (no close)")
    g.add_argument("--refuse", type=float, metavar="SECONDS", help="refuse new connections for a while")
    c.add_argument("--phone", default=None, help="only this account's connections")

    c = sub.add_parser("contact", help="manage simulated contacts")
    csub = c.add_subparsers(dest="contact_command", required=True)
    add = csub.add_parser("add", help="add a simulated contact")
    add.add_argument("--control", required=True, help="control URL printed by 'wasim serve'")
    add.add_argument("phone", help="E.164 number, e.g. +4915123456789")
    add.add_argument("--name", required=True, help="the push name others see")
    add.add_argument("--lid", default=None, help="its LID user (digits); random when omitted")
    add.add_argument(
        "--address",
        default=None,
        help="the address WhatsApp knows it by when not the dialled number, e.g. 5215512345678 for +525512345678",
    )
    lst = csub.add_parser("list", help="list contacts")
    lst.add_argument("--control", required=True, help="control URL printed by 'wasim serve'")

    c = sub.add_parser("group", help="manage simulated groups")
    gsub = c.add_subparsers(dest="group_command", required=True)
    create = gsub.add_parser("create", help="create a group of the account and some contacts")
    create.add_argument("--control", required=True, help="control URL printed by 'wasim serve'")
    create.add_argument("subject", help="the group's name")
    create.add_argument("--member", action="append", required=True, help="a contact phone (repeat)")

    c = control("send", "a contact sends a message to the account (prints its id)")
    c.add_argument("--from", dest="sender", required=True, help="contact phone, or 'self' for the account's phone")
    c.add_argument("--text", default="", help="text, caption or name")
    c.add_argument(
        "--kind",
        default="text",
        help="text|extended_text|image|video|audio|document|sticker|location|contact|reaction|poll|revoke",
    )
    c.add_argument("--to", default=None, help="the account (default: the phone's own)")
    c.add_argument("--lid-addressed", action="store_true", help="address the message by LID")
    c.add_argument(
        "--withhold-phone", action="store_true", help="with --lid-addressed: leave out the sender's phone number"
    )
    c.add_argument("--status", action="store_true", help="post a status update (status@broadcast)")
    c.add_argument("--chat", default=None, help="with --from self: the chat the phone wrote in")
    c.add_argument("--group", default=None, help="send to this group")
    c.add_argument("--count", type=int, default=1, help="send it this many times (a burst)")

    c = control("inbox", "what a contact received: texts, chatstates and receipts, in order")
    c.add_argument("--contact", required=True, help="contact phone")

    c = control("redeliver", "deliver a message again with the same id")
    c.add_argument("--id", required=True, help="message id printed by 'wasim send'")
    return p


async def _serve(args: argparse.Namespace) -> int:
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sim = Wasim(args.state, host=args.host, port=args.port, default_phone=args.phone)
    await sim.start()
    runner, control_url = await start_control(sim, args.host, args.control_port)
    print(
        json.dumps({"url": sim.url, "root_public_key": sim.root_public_key, "control_url": control_url}),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await sim.stop()
    return 0


async def _call(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    try:
        async with aiohttp.ClientSession() as session:
            async with session.request(method, base.rstrip("/") + path, json=body) as resp:
                return resp.status, await resp.json()
    except aiohttp.ClientError as exc:
        raise SystemExit(f"wasim: cannot reach the control API at {base}: {exc}") from exc


# A control-API request: method, path and JSON body (None for a GET).
_Request = tuple[str, str, dict[str, Any] | None]


def _contact_request(args: argparse.Namespace) -> _Request:
    if args.contact_command == "add":
        return "POST", "/contacts", {"phone": args.phone, "name": args.name, "lid": args.lid, "address": args.address}
    return "GET", "/contacts", None


def _send_request(args: argparse.Namespace) -> _Request:
    message = {
        "from": args.sender,
        "text": args.text,
        "kind": args.kind,
        "to": args.to,
        "lid_addressed": args.lid_addressed,
        "withhold_phone": args.withhold_phone,
        "status": args.status,
        "chat": args.chat,
        "group": args.group,
        "count": args.count,
    }
    return "POST", "/send", message


def _fault_request(args: argparse.Namespace) -> _Request:
    # The flags are a required mutually exclusive group: exactly one of them is set.
    body: dict[str, Any] = {"phone": args.phone}
    if args.code is not None:
        body |= {"kind": "stream_error", "code": args.code}
    elif args.failure is not None:
        body |= {"kind": "failure", "code": args.failure}
    elif args.refuse is not None:
        body |= {"kind": "refuse", "seconds": args.refuse}
    else:
        body["kind"] = "downgrade" if args.downgrade else "close" if args.close else "drop"
    return "POST", "/fault", body


# Every command but `serve`, as the request it makes.
_REQUESTS: dict[str, Callable[[argparse.Namespace], _Request]] = {
    "scan": lambda args: ("POST", "/scan", {"qr": args.qr, "phone": args.phone}),
    "pair": lambda args: ("POST", "/pair", {"code": args.code, "phone": args.phone}),
    "devices": lambda _: ("GET", "/devices", None),
    "contact": _contact_request,
    "group": lambda args: ("POST", "/groups", {"subject": args.subject, "members": args.member}),
    "send": _send_request,
    "inbox": lambda args: ("GET", f"/inbox?contact={quote(args.contact)}", None),
    "redeliver": lambda args: ("POST", "/redeliver", {"id": args.id}),
    "fault": _fault_request,
}


async def _client(args: argparse.Namespace) -> int:
    method, path, body = _REQUESTS[args.command](args)
    status, data = await _call(args.control, method, path, body)
    if status >= 400:
        print(f"wasim: {data.get('error', data)}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    runner = _serve if args.command == "serve" else _client
    return asyncio.run(runner(args))
