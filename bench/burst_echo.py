"""How many echo replies survive when a contact writes in a burst (issue #4).

A Baileys echo bot (the Node test client) answers every text; the contact writes `--seq`
messages one at a time, then `--burst` at once. With `--unserialized` the bot uses Baileys rc14's
own session locking: a reply and the decryption of the contact's next message then overwrite each
other's Signal session update, and the contact gets replies it cannot decrypt (a reused message
counter), asks for retries, and Baileys re-fetches its key bundle for each. By default the bot
serializes session updates as the product sidecar does (sidecar/signal-sessions.mjs).

    .venv/bin/python bench/burst_echo.py [--burst N] [--seq N] [--lid] [--unserialized]

Last line: one JSON object: sent, replies, lost, failed_decrypts, key_fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from wasim.server.app import Wasim
from wasim.testing.baileys import BaileysDriver, link_device

CONTACT = "+4915123456789"


async def run(burst: int, seq: int, lid: bool, serialized: bool = True) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Wasim(root / "state") as sim:
            bot = await BaileysDriver(root / "auth").start()
            await link_device(sim, bot, serializeSessions=serialized)
            sim.add_contact(CONTACT, "Ada")
            await bot.command("echo", enabled=True)
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
                "serialized": serialized,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--seq", type=int, default=3)
    parser.add_argument("--lid", action="store_true", help="LID-addressed messages")
    parser.add_argument("--unserialized", action="store_true", help="Baileys' own session locking (the bug)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.burst, args.seq, args.lid, not args.unserialized))))


if __name__ == "__main__":
    main()
