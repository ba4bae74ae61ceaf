"""How many echo replies survive when a contact writes in a burst (issue #4).

A Baileys echo bot (the Node test client; with `--ours`, our channel through the sidecar, without
pacing or flood limits) answers every text; the contact writes `--seq` messages one at a time, then `--burst` at
once. With `--unserialized` the bot uses Baileys rc14's
own session locking: a reply and the decryption of the contact's next message then overwrite each
other's Signal session update, and the contact gets replies it cannot decrypt (a reused message
counter), asks for retries, and Baileys re-fetches its key bundle for each. By default the bot
serializes session updates as the product sidecar does (sidecar/signal-sessions.mjs).

    .venv/bin/python bench/burst_echo.py [--burst N] [--seq N] [--lid] [--unserialized | --ours]

Last line: one JSON object: sent, replies, lost, failed_decrypts, key_fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import _kit  # (also puts tests/ on the path, for testkit)
from testkit.baileys import BaileysDriver, link_device

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import TrustedContact
from wasim.server.app import Wasim

CONTACT = "+4915123456789"


async def echo(message: InboundText) -> str:
    return message.text


async def start_ours(sim: Wasim, root: Path) -> WhatsAppChannel:
    config = WhatsAppConfig(
        auth_dir=root / "auth",
        sandbox=Sandbox(sim.url, sim.root_public_key),
        trusted_contacts=(TrustedContact.parse(CONTACT, "write"),),
        sidecar_log_level="warn",
        pacing=None,  # replies as fast as they come, so they overlap the burst's decryption
        flood=_kit.NO_FLOOD_LIMITS,  # every message answered: a skipped one is not a lost one
    )
    channel = WhatsAppChannel(config, echo)
    async for qr in channel.generate_qr():
        await sim.phone.scan(qr.data)
        break
    async for status in channel.subscribe():
        if status.state is ConnectionState.OPEN:
            break
    return channel


async def run(burst: int, seq: int, lid: bool, serialized: bool = True, ours: bool = False) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Wasim(root / "state") as sim:
            if ours:
                bot: BaileysDriver | WhatsAppChannel = await start_ours(sim, root)
            else:
                bot = await BaileysDriver(root / "auth").start()
                await link_device(sim, bot, serializeSessions=serialized)
                await bot.command("echo", enabled=True)
            sim.add_contact(CONTACT, "Ada")
            for i in range(seq):
                since = sim.events.last_seq
                await sim.messaging.send(CONTACT, f"seq {i}", lid_addressed=lid)
                await sim.events.wait_for("contact.received", lambda e: e.data["contact"] == CONTACT[1:], since=since)
            for i in range(burst):
                await sim.messaging.send(CONTACT, f"burst {i}", lid_addressed=lid)

            def replies() -> int:
                return sum(1 for x in sim.inbox(CONTACT) if x["type"] == "message")

            for _ in range(200):  # up to 20 s for the last replies
                if replies() >= seq + burst:
                    break
                await asyncio.sleep(0.1)
            got = replies()
            await bot.close()
            return {
                "sent": seq + burst,
                "replies": got,
                "lost": seq + burst - got,
                "failed_decrypts": len(sim.events.since(0, "decrypt.failed")),
                "key_fetches": len(sim.events.since(0, "keys.fetched")),
                "bot": "ours" if ours else "node",
                "serialized": serialized,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--seq", type=int, default=3)
    parser.add_argument("--lid", action="store_true", help="LID-addressed messages")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--unserialized", action="store_true", help="Baileys' own session locking (the bug)")
    which.add_argument("--ours", action="store_true", help="our channel and sidecar instead of the Node echo bot")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.burst, args.seq, args.lid, not args.unserialized, args.ours))))


if __name__ == "__main__":
    main()
