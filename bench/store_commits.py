"""The store's commit path alone, under a burst: one writer thread that commits every write on its
own (a ThreadPoolExecutor, as before issue #18) against `GroupCommit` (writes waiting at the same
moment share one commit), side by side on the same disk, through the channel's `StoreJournal`.

N chats each get one message: all are admitted at once (as a burst arrives), then each chat plans
its reply and marks it sent, concurrently: the three journal writes of every answered message.
Both sides use synchronous=FULL, so every commit waits for the disk.

    .venv/bin/python bench/store_commits.py [--messages N] [--runs N]

Last line: one JSON object (plain_s, grouped_s, speedup, plain_commits, grouped_commits; medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cortask.channels.whatsapp.inbound import InboundText
from cortask.store import AsyncStore
from cortask.store_journal import StoreJournal

ME = "4915100000000@s.whatsapp.net"


def message(n: int) -> InboundText:
    chat = f"49151{n:08d}@s.whatsapp.net"
    return InboundText(
        chat_jid=chat, message_id=f"M{n}", sender_jid=chat, sender_phone=f"+49151{n:08d}", sender_lid=None,
        push_name=None, text="hi", timestamp=int(time.time()), is_group=False, offline=False,
    )  # fmt: skip


async def one(grouped: bool, messages: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await AsyncStore.open(Path(tmp) / "cortask.db")
        # The writer as it was: one thread, every write its own transaction and fsync.
        plain = AsyncStore(store.sync, ThreadPoolExecutor(max_workers=1))
        commits = 0

        def count(statement: str) -> None:
            nonlocal commits
            commits += statement.strip().upper() == "COMMIT"

        store.sync._conn.set_trace_callback(count)  # type: ignore[union-attr]
        journal = StoreJournal(store if grouped else plain)
        items = [message(n) for n in range(messages)]

        async def answer(item: InboundText) -> None:
            planned = await journal.plan_reply(ME, item, "echo: hi", "R" + item.message_id)
            await journal.mark_sent(planned)

        t0 = time.perf_counter()
        await asyncio.gather(*(journal.admit(ME, item) for item in items))
        await asyncio.gather(*(answer(item) for item in items))
        elapsed = time.perf_counter() - t0
        await store.aclose()
        return elapsed, commits


async def main(messages: int, runs: int) -> dict[str, object]:
    plain, grouped = [], []
    for _ in range(runs):
        plain.append(await one(False, messages))
        grouped.append(await one(True, messages))
    plain_s = statistics.median(p[0] for p in plain)
    grouped_s = statistics.median(g[0] for g in grouped)
    return {
        "messages": messages,
        "runs": runs,
        "plain_s": round(plain_s, 3),
        "grouped_s": round(grouped_s, 3),
        "speedup": round(plain_s / grouped_s, 2),
        "plain_commits": statistics.median(p[1] for p in plain),
        "grouped_commits": statistics.median(g[1] for g in grouped),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.messages, args.runs))))
