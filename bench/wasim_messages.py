"""wasim part 2 figures: how many messages a contact can push through wasim into Baileys
(decrypted `notify` events) per second, and the round trip contact -> Baileys -> contact for a
one-line echo done inside the Node test client.

    .venv/bin/python bench/wasim_messages.py [--burst N] [--echoes N]

Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import _kit  # noqa: F401  (puts tests/ on the path, for testkit)
from testkit.baileys import BaileysDriver, link_device

from wasim.server.app import Wasim

CONTACT = "+4915123456789"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def run(burst: int, echoes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Wasim(root / "state") as sim:
            client = await BaileysDriver(root / "auth").start()
            await link_device(sim, client)
            sim.add_contact(CONTACT, "Ada")
            mark = client.mark()
            await sim.messaging.send(CONTACT, "warm-up")  # session set-up is not part of the rate
            await client.wait("upsert", since=mark)

            mark = client.mark()
            started = time.perf_counter()
            ids = {await sim.messaging.send(CONTACT, f"burst {i}") for i in range(burst)}
            received: set[str] = set()

            def all_in(e: dict[str, object]) -> bool:
                received.update(m["key"]["id"] for m in e["messages"] if m["key"]["id"] in ids)  # type: ignore[index,union-attr]
                return len(received) == len(ids)

            await client.wait("upsert", all_in, since=mark, timeout=300)
            burst_s = time.perf_counter() - started

            await client.command("echo", enabled=True)
            rtts: list[float] = []
            for i in range(echoes):
                text = f"echo {i}"
                since = sim.events.last_seq
                t0 = time.perf_counter()
                await sim.messaging.send(CONTACT, text)
                await sim.events.wait_for(
                    "contact.received",
                    lambda e, t=text: e.data["contact"] == CONTACT[1:] and e.data["text"] == t,
                    since=since,
                )
                rtts.append((time.perf_counter() - t0) * 1000)
            await client.close()
    return {
        "burst": burst,
        "contact_to_baileys_msgs_per_s": round(burst / burst_s, 1),
        "echoes": echoes,
        "echo_round_trip_ms": {
            "p50": _pct(rtts, 0.5),
            "p99": _pct(rtts, 0.99),
            "mean": round(statistics.mean(rtts), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--echoes", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.burst, args.echoes))))


if __name__ == "__main__":
    main()
