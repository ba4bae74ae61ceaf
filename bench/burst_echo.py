"""How many echo replies survive when a contact writes in a burst: a reproduction of the Signal
session race in Baileys rc14 that loses replies (see the closing note of session 1).

A plain Baileys echo bot (the Node test client) answers every text; the contact writes `--seq`
messages one at a time, then `--burst` at once. Sequential traffic loses nothing; during a burst
Baileys re-fetches the contact's key bundle for nearly every reply (its session for the contact
went missing) and the contact cannot decrypt many replies.

    .venv/bin/python bench/burst_echo.py [--burst N] [--seq N] [--lid]

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


async def run(burst: int, seq: int, lid: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Wasim(root / "state") as sim:
            bot = await BaileysDriver(root / "auth").start()
            await link_device(sim, bot)
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
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--seq", type=int, default=3)
    parser.add_argument("--lid", action="store_true", help="LID-addressed messages")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.burst, args.seq, args.lid))))


if __name__ == "__main__":
    main()
