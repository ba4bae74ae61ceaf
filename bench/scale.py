"""Flat as chats grow: many contacts and a big group at once, then the idle service.

The channel runs in this process as bench/pipeline.py runs it (the sidecar with real Baileys, the
inbound journal and outbox in SQLite, an echo handler), on wasim in its own process on loopback,
with reply pacing off (the product's human-like token bucket would stretch 3,000 replies over
an hour); flood limits stay at their defaults, which a few messages a minute per contact is
well inside. Trusted: `--contacts` contacts (1,000). Each writes `--messages` texts (3) at
random moments within `--minute` seconds (60), and in one group of `--group` members (256: the
account and 255 of the contacts; groups on, every message answered) `--posters` of them (10)
post `--messages` texts each in the same minute.

Figures: every reply counted in the contacts' inboxes on wasim (answered once, twice, lost;
group replies at every member); our hop p50/p99 over all messages (bench/_kit.py's HopProbe:
sidecar -> Python -> sidecar, including any wait behind other chats); the RSS of Python plus the
sidecar before the traffic, at its peak and after it (once every chat is idle, its worker
released and the pipeline's idle release has run), with the channel's live tasks before and
after; then the CPU the service (Python plus sidecar, utime+stime from /proc) uses over `--idle`
seconds (60) with nothing happening, in % of one core.

"Python" is this process: the channel and the bench. The bench's own data (the plan of 3,000
messages and the replies it expects, about 1.2 MB of objects) is built before "before" is read,
so that "after" minus "before" is the service's growth, not the bench's; what the bench gathers
during the run (the hops, the inboxes it reads back) stays in it and is small (under 0.2 MB).

    .venv/bin/python bench/scale.py [--contacts 1000] [--messages 3] [--group 256] [--posters 10]
                                    [--minute 60] [--idle 60] [--drain-limit 600] [--seed 1]

Last line: one JSON object (sent, answered_once, answered_twice, lost, group_members_missing,
drain_s, hop_p50_ms, hop_p99_ms, rss_before_mb, rss_peak_mb, rss_after_mb, rss_python_mb and
rss_sidecar_mb as [before, after], tasks_before, tasks_after, idle_cpu_pct, ...). Replies not in
by `--drain-limit` seconds after the traffic count as lost (group_members_missing: group replies
missing at a member); the exit status says whether none was lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _kit import Control, HopProbe, cpu_seconds, pct, rss_mb, wasim_server  # (also puts tests/ on the path)

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.groups import GroupRule
from cortask.channels.whatsapp.idle import IDLE_RELEASE_S
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import TrustedContact
from cortask.store import AsyncStore
from cortask.store_journal import StoreJournal


def phone(i: int) -> str:
    return f"+49151{20_000_000 + i:08d}"  # German mobiles: valid numbers, one per contact


async def echo(message: InboundText) -> str:
    return message.text


def service_rss(channel: WhatsAppChannel) -> float:
    return sum(split_rss(channel))


def split_rss(channel: WhatsAppChannel) -> tuple[float, float]:
    """RSS of this process (the channel, and the bench's own small bookkeeping) and the sidecar."""
    assert channel.sidecar_pid is not None
    return rss_mb(os.getpid()), rss_mb(channel.sidecar_pid)


async def sample_peak(channel: WhatsAppChannel, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], service_rss(channel))
        await asyncio.sleep(0.5)


async def traffic(control: Control, plan: list[tuple[float, dict[str, Any]]]) -> float:
    """Send each message at its moment (as wasim's contacts); returns when the last was sent."""
    t0 = time.monotonic()
    pending: set[asyncio.Task[Any]] = set()
    limit = asyncio.Semaphore(16)

    async def send(body: dict[str, Any]) -> None:
        async with limit:
            await control.call("POST", "/send", body)

    for at, body in plan:
        delay = t0 + at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(body))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return time.monotonic() - t0


async def wait_replies(control: Control, since: int, expected: set[str], limit: float, quiet: float = 30) -> None:
    """Until every expected reply text reached a contact after event `since` (or nothing new
    came for `quiet` s, or `limit` s passed: what has not arrived then counts as lost)."""
    seen: set[str] = set()
    last_news = time.monotonic()
    deadline = last_news + limit
    while not expected <= seen and time.monotonic() - last_news < quiet and time.monotonic() < deadline:
        data = await control.call("GET", f"/events?since={since}&kind=contact.received&wait=2")
        since = max([since] + [e["seq"] for e in data["events"]])
        new = {str(e.get("text")) for e in data["events"]} & expected - seen
        if new:
            seen |= new
            last_news = time.monotonic()


async def count(
    control: Control,
    contacts: list[str],
    dm: dict[str, list[str]],
    group_jid: str,
    group_texts: list[str],
    members: list[str],
) -> dict[str, int]:
    """What the contacts' phones show: each expected reply once, twice (or more), or not at all."""
    once = twice = lost = missing = 0
    for number in contacts:
        inbox = (await control.call("GET", f"/inbox?contact={number}"))["inbox"]
        shown = collections.Counter((x.get("chat"), x.get("text")) for x in inbox if x["type"] == "message")
        chat = f"{number[1:]}@s.whatsapp.net"
        for text in dm.get(number, []):
            n = shown[(chat, text)]
            once, twice, lost = once + (n == 1), twice + (n > 1), lost + (n == 0)
        if number in members:
            missing += sum(1 for text in group_texts if shown[(group_jid, text)] == 0)
    # A group reply counts once: as the message its poster sees (every member's copy is checked
    # by `missing`).
    return {"answered_once": once, "answered_twice": twice, "lost": lost, "group_members_missing": missing}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    contacts = [phone(i) for i in range(args.contacts)]
    members = contacts[: args.group - 1]
    posters = members[: args.posters]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        async with wasim_server(root / "wasim") as info:
            print(f"wasim: {info['control_url']}", file=sys.stderr, flush=True)
            async with aiohttp.ClientSession() as session:
                control = Control(session, info["control_url"])
                t0 = time.perf_counter()
                people = [{"phone": p, "name": f"Contact {i}"} for i, p in enumerate(contacts)]
                await control.call("POST", "/contacts/bulk", {"contacts": people})
                contacts_s = time.perf_counter() - t0
                config = WhatsAppConfig(
                    auth_dir=root / "auth",
                    sandbox=Sandbox(info["url"], info["root_public_key"]),
                    trusted_contacts=tuple(TrustedContact.parse(p, "write") for p in contacts),
                    answer_groups=True,
                    group_rule=GroupRule(mode="always"),
                    sidecar_log_level="warn",
                    pacing=None,
                )
                store = await AsyncStore.open(root / "cortask.db")
                probe = HopProbe()  # before the channel: its parts bind the pipeline's methods when built
                channel = WhatsAppChannel(config, echo, ledger=StoreJournal(store))
                await channel.warm_up()
                qr = await anext(channel.generate_qr())
                await control.call("POST", "/scan", {"qr": qr.data})
                async for status in channel.subscribe():
                    if status.state is ConnectionState.OPEN:
                        break
                group = await control.call("POST", "/groups", {"subject": "Everyone", "members": members})
                plan: list[tuple[float, dict[str, Any]]] = []
                dm: dict[str, list[str]] = {}
                for number in contacts:
                    for j in range(args.messages):
                        text = f"hello {number} {j}"
                        dm.setdefault(number, []).append(text)
                        plan.append((rng.uniform(0, args.minute), {"from": number, "text": text}))
                group_texts = [f"group {number} {j}" for number in posters for j in range(args.messages)]
                for text in group_texts:
                    body = {"from": text.split()[1], "text": text, "group": "Everyone"}
                    plan.append((rng.uniform(0, args.minute), body))
                plan.sort(key=lambda item: item[0])
                expected = {text for texts in dm.values() for text in texts} | set(group_texts)
                await asyncio.sleep(3)  # let start-up work settle before reading memory
                gc.collect()
                before_py, before_node = split_rss(channel)
                rss_before = before_py + before_node
                tasks_before = len(asyncio.all_tasks())

                peak = [rss_before]
                sampler = asyncio.create_task(sample_peak(channel, peak))
                since = int((await control.call("GET", "/events?since=999999999"))["last"])
                t_start = time.monotonic()
                send_s = await traffic(control, plan)
                await wait_replies(control, since, expected, args.drain_limit)
                drain_s = time.monotonic() - t_start
                sampler.cancel()
                figures = await count(control, contacts, dm, group["jid"], group_texts, members)

                # Idle: every chat's worker released, nothing left running per chat.
                pipeline = channel._pipeline  # the bench looks inside, as the probe does
                async with asyncio.timeout(args.drain_limit):
                    while pipeline.busy_chats:  # noqa: ASYNC110  (a count, with no event to wait on)
                        await asyncio.sleep(0.2)
                await asyncio.sleep(IDLE_RELEASE_S + 1)  # the pipeline gives memory back once quiet
                gc.collect()
                after_py, after_node = split_rss(channel)
                rss_after = after_py + after_node
                tasks_after = len(asyncio.all_tasks())

                assert channel.sidecar_pid is not None
                pids = (os.getpid(), channel.sidecar_pid)
                cpu0, w0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
                await asyncio.sleep(args.idle)
                cpu1, w1 = sum(cpu_seconds(p) for p in pids), time.monotonic()
                await channel.close()
    sent = len(plan)
    return {
        "contacts": args.contacts,
        "messages_each": args.messages,
        "group_members": args.group,
        "posters": args.posters,
        "pacing": "off",
        "sent": sent,
        **figures,
        "send_s": round(send_s, 1),
        "drain_s": round(drain_s, 1),
        "replies_per_s": round((figures["answered_once"] + figures["answered_twice"]) / drain_s, 1),
        "hop_p50_ms": pct(probe.hops, 0.5),
        "hop_p99_ms": pct(probe.hops, 0.99),
        "hops": len(probe.hops),
        "wasim_contacts_s": round(contacts_s, 2),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(peak[0], 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_python_mb": [round(before_py, 1), round(after_py, 1)],  # before, after
        "rss_sidecar_mb": [round(before_node, 1), round(after_node, 1)],
        "tasks_before": tasks_before,
        "tasks_after": tasks_after,
        "idle_s": args.idle,
        "idle_cpu_pct": round(100 * (cpu1 - cpu0) / (w1 - w0), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000, help="trusted contacts who write (default 1000)")
    parser.add_argument("--messages", type=int, default=3, help="texts each contact (and poster) writes")
    parser.add_argument("--group", type=int, default=256, help="members of the group, the account included")
    parser.add_argument("--posters", type=int, default=10, help="members who post in the group")
    parser.add_argument("--minute", type=float, default=60.0, help="seconds the traffic is spread over")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of nothing happening for idle CPU")
    parser.add_argument("--drain-limit", type=float, default=600.0, help="seconds to wait for the replies")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.posters < args.group <= args.contacts + 1:
        parser.error("need 1 <= --posters < --group <= --contacts + 1")
    figures = asyncio.run(run(args))
    print(json.dumps(figures))
    ok = figures["answered_twice"] == figures["lost"] == figures["group_members_missing"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
