"""wasim part 1 figures: time from a registration connect to the first QR, and from connect
to `open` for a linked client, both as real Baileys measures them (makeWASocket -> event).

    .venv/bin/python bench/wasim_link.py [--rounds N]

Last line: one JSON object with the figures (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

import _kit  # noqa: F401  (puts tests/ on the path, for testkit)
from testkit.baileys import BaileysDriver, link_device

from wasim.server.app import Wasim


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "min": round(ordered[0], 1),
        "max": round(ordered[-1], 1),
    }


async def run(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with Wasim(root / "state") as sim:
            qr_ms: list[float] = []
            driver = await BaileysDriver(root / "qr-auth").start()
            for i in range(rounds):
                driver.auth_dir = root / f"qr-auth-{i}"  # a fresh, unlinked identity each round
                mark = await driver.connect(sim.url, sim.root_public_key)
                qr_ms.append(float((await driver.wait("qr", since=mark))["ms"]))
                mark = driver.mark()
                await driver.command("end")
            await driver.close()

            linked = await BaileysDriver(root / "linked-auth").start()
            await link_device(sim, linked)
            open_ms: list[float] = []
            for _ in range(rounds):
                mark = await linked.connect(sim.url, sim.root_public_key)
                open_ms.append(float((await linked.wait_open(mark))["ms"]))
            await linked.close()
    return {
        "rounds": rounds,
        "connect_to_first_qr_ms": _summary(qr_ms),
        "connect_to_open_ms": _summary(open_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rounds))))


if __name__ == "__main__":
    main()
