"""The channel's pipeline against an in-process Node Baileys echo bot, side by side on one wasim.

(a) ours: contact -> wasim -> Baileys in the sidecar -> Python channel (filter, access, typing)
    -> echo handler -> sidecar -> wasim -> contact.
(b) node: contact -> wasim -> a plain Baileys echo bot in one Node process -> wasim -> contact
    (the architecture of the original TypeScript adapter).
wasim runs in its own process for both; the contact is driven through its control API, and a
reply counts when wasim has decrypted it at the contact. Also: generate_qr() to the first QR,
and the idle memory of the Python process plus the sidecar.

Ours runs as the service runs it (inbound journal and outbox in SQLite), except that reply pacing
(the product's human-like token bucket, 1 reply/s after a burst of 5) and flood control (the
per-sender limit of 30 messages a minute and the 50-message chat queue, `FloodPolicy`) are off:
this measures how fast the pipeline can go, not the pace we choose to keep (with them on, most of
a 300-message burst is recorded and deliberately left unanswered).

    .venv/bin/python bench/pipeline.py [--burst N] [--sequential N] [--runs N]

Each of the `--runs` (default 3) measures ours and then node on a fresh wasim, side by side; the
figures reported are the medians over the runs, and `runs` lists each run's own figures.

Last line: one JSON object (ours_msgs_per_s, node_msgs_per_s, ratio, ours_p99_ms, node_p99_ms,
added_p99_ms, ours_hop_p50_ms, ours_hop_p99_ms, qr_s, idle_rss_mb (= idle_rss_sidecar_mb +
idle_rss_python_mb, the latter this bench's own process, which runs the channel), runs,
ours_burst_cpu_s and node_burst_cpu_s (the CPU seconds each process used during the burst: on a
machine with fewer cores than busy processes, throughput follows the total), ...). added_p99_ms is the
difference of two end-to-end p99s, taken minutes apart, so a shared machine's noise dominates it;
ours_hop_* times our extra hop directly (see HopProbe).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _kit import NO_FLOOD_LIMITS, HopProbe, cpu_seconds, pct, rss_mb, wasim_server
from _kit import Control as WasimControl  # (also puts tests/ on the path, for testkit)
from testkit.baileys import BaileysDriver

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import TrustedContact
from cortask.store import AsyncStore
from cortask.store_journal import StoreJournal

CONTACT = "+4915123456789"


class Control(WasimControl):
    async def last_seq(self) -> int:
        return int((await self.call("GET", "/events?since=999999999"))["last"])

    async def replies(self, since: int, want: int, timeout: float = 30) -> tuple[int, list[dict[str, Any]]]:
        """Wait until `want` texts from the account reached the contact after event `since`
        (or `timeout` passed: then fewer are returned, and the caller counts the loss)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            data = await self.call("GET", f"/events?since={since}&kind=contact.received&wait=2")
            since = max([since] + [e["seq"] for e in data["events"]])
            got += [e for e in data["events"] if e["contact"] == CONTACT[1:] and e.get("text")]
        return since, got


async def measure(
    control: Control, burst: int, sequential: int, cpu_of: dict[str, int], probe: HopProbe | None = None
) -> dict[str, Any]:
    """Sequential round trips, then the burst; `cpu_of` names the processes whose CPU time the
    burst used is reported (name -> pid)."""
    rtts = []
    lost = 0
    for i in range(sequential):
        since = await control.last_seq()
        t0 = time.perf_counter()
        await control.call("POST", "/send", {"from": CONTACT, "text": f"ping {i}"})
        _, got = await control.replies(since, 1, timeout=10)
        if got:
            rtts.append((time.perf_counter() - t0) * 1000)
        else:
            lost += 1
    hops = list(probe.hops) if probe else [0.0]  # one at a time: no queueing behind other messages
    since = await control.last_seq()
    cpu0 = {name: cpu_seconds(pid) for name, pid in cpu_of.items()}
    t0 = time.perf_counter()
    await control.call("POST", "/send", {"from": CONTACT, "text": "burst", "count": burst})
    _, got = await control.replies(since, burst)
    cpu = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in cpu_of.items()}
    last = max((e["at"] for e in got), default=time.time())
    elapsed = last - (time.time() - (time.perf_counter() - t0))
    return {
        "msgs_per_s": round(len(got) / elapsed, 1),
        "p50_ms": pct(rtts, 0.5),
        "p99_ms": pct(rtts, 0.99),
        "lost": lost + burst - len(got),
        "hop_p50_ms": pct(hops, 0.5),
        "hop_p99_ms": pct(hops, 0.99),
        "burst_cpu_s": cpu,
    }


async def echo(message: InboundText) -> str:
    return message.text


async def run(burst: int, sequential: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with wasim_server(root / "wasim") as info:
            async with aiohttp.ClientSession() as session:
                control = Control(session, info["control_url"])
                await control.call("POST", "/contacts", {"phone": CONTACT, "name": "Ada"})

                # (a) ours
                config = WhatsAppConfig(
                    auth_dir=root / "auth",
                    sandbox=Sandbox(info["url"], info["root_public_key"]),
                    trusted_contacts=(TrustedContact.parse(CONTACT, "write"),),
                    sidecar_log_level="warn",
                    pacing=None,
                    flood=NO_FLOOD_LIMITS,
                )
                store = await AsyncStore.open(root / "cortask.db")
                probe = PROBE  # hooked before the channel: its parts bind the pipeline's methods when built
                channel = WhatsAppChannel(config, echo, ledger=StoreJournal(store))
                await channel.warm_up()  # as the service does once the channel is added
                t0 = time.perf_counter()
                qrs = channel.generate_qr()
                qr = await anext(qrs)
                qr_s = time.perf_counter() - t0
                await control.call("POST", "/scan", {"qr": qr.data})
                async for status in channel.subscribe():
                    if status.state is ConnectionState.OPEN:
                        break
                await asyncio.sleep(3)  # let start-up work settle before reading idle memory
                assert channel.sidecar_pid is not None
                sidecar_rss = rss_mb(channel.sidecar_pid)  # the breakdown: Node and Baileys, the rest is Python
                idle_rss = sidecar_rss + rss_mb(os.getpid())
                ours_cpu = {"python": os.getpid(), "sidecar": channel.sidecar_pid, "wasim": info["pid"]}
                ours = await measure(control, burst, sequential, ours_cpu, probe)
                await channel.stop()  # unlink, so (b) is the account's only device
                await channel.close()
                await store.aclose()

                # (b) the in-process Node echo bot
                bot = await BaileysDriver(root / "bot-auth").start()
                mark = await bot.connect(info["url"], info["root_public_key"])
                qr_event = await bot.wait("qr", since=mark)
                await control.call("POST", "/scan", {"qr": qr_event["qr"]})
                await bot.wait_close(mark)
                mark = await bot.connect(info["url"], info["root_public_key"])
                await bot.wait_open(mark)
                await bot.command("echo", enabled=True)
                assert bot.pid is not None
                node = await measure(control, burst, sequential, {"node": bot.pid, "wasim": info["pid"]})
                await bot.close()
    return {
        "burst": burst,
        "pacing": "off",
        "sequential": sequential,
        "ours_msgs_per_s": ours["msgs_per_s"],
        "node_msgs_per_s": node["msgs_per_s"],
        "ratio": round(ours["msgs_per_s"] / node["msgs_per_s"], 3),
        "ours_p50_ms": ours["p50_ms"],
        "node_p50_ms": node["p50_ms"],
        "ours_p99_ms": ours["p99_ms"],
        "node_p99_ms": node["p99_ms"],
        "added_p99_ms": round(ours["p99_ms"] - node["p99_ms"], 2),
        "ours_hop_p50_ms": ours["hop_p50_ms"],
        "ours_hop_p99_ms": ours["hop_p99_ms"],
        "ours_lost": ours["lost"],
        "node_lost": node["lost"],
        "qr_s": round(qr_s, 3),
        "idle_rss_mb": round(idle_rss, 1),
        "idle_rss_sidecar_mb": round(sidecar_rss, 1),
        "idle_rss_python_mb": round(idle_rss - sidecar_rss, 1),
        "ours_burst_cpu_s": ours["burst_cpu_s"],
        "node_burst_cpu_s": node["burst_cpu_s"],
    }


PROBE = HopProbe()  # hooks the pipeline once; each run's hops are its own (see `runs`)


async def runs(burst: int, sequential: int, count: int) -> dict[str, Any]:
    each = []
    for n in range(count):
        PROBE.arrived.clear()
        PROBE.hops.clear()
        found = await run(burst, sequential)
        print(json.dumps({"run": n + 1, **found}), flush=True)
        each.append(found)

    def median(key: str, value: Any) -> Any:
        if isinstance(value, dict):  # CPU seconds by process: the median of each
            return {name: round(statistics.median(r[key][name] for r in each), 3) for name in value}
        return round(statistics.median(r[key] for r in each), 3) if isinstance(value, float | int) else value

    medians: dict[str, Any] = {key: median(key, value) for key, value in each[0].items()}
    return {**medians, "runs": count, "ratios": [r["ratio"] for r in each], "each": each}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--sequential", type=int, default=300)  # p99 of 100 would be nearly the maximum
    parser.add_argument("--runs", type=int, default=3, help="runs side by side; the medians are reported")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(json.dumps(asyncio.run(runs(args.burst, args.sequential, args.runs))))


if __name__ == "__main__":
    main()
