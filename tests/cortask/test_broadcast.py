"""The shared fan-out: every subscriber sees every value from when it subscribed, in order."""

from __future__ import annotations

import asyncio

from cortask.broadcast import Broadcast


async def collect(sub: object, n: int) -> list[int]:
    out: list[int] = []
    async for value in sub:  # type: ignore[attr-defined]
        out.append(value)
        if len(out) == n:
            break
    return out


async def test_each_subscriber_gets_every_value_published_after_it_subscribed() -> None:
    b: Broadcast[int] = Broadcast()
    b.publish(0)  # nobody listens yet: gone
    first, second = b.subscribe(), b.subscribe()
    for i in (1, 2, 3):
        b.publish(i)
    assert await collect(first, 3) == [1, 2, 3]
    assert await collect(second, 3) == [1, 2, 3]


async def test_replay_latest_gives_a_new_subscriber_the_current_value_first() -> None:
    b: Broadcast[str] = Broadcast(replay_latest=True)
    b.publish("connecting")
    b.publish("open")
    with b.subscribe() as sub:
        b.publish("closed")
        assert await collect(sub, 2) == ["open", "closed"]
    assert b.latest == "closed"


async def test_a_closed_subscription_stops_receiving_and_is_forgotten() -> None:
    b: Broadcast[int] = Broadcast()
    with b.subscribe():
        assert b.subscribers == 1
    assert b.subscribers == 0
    b.publish(1)  # no queue grows for a subscriber that left


async def test_end_finishes_every_loop_and_later_subscribers_end_at_once() -> None:
    b: Broadcast[int] = Broadcast()
    sub = b.subscribe()
    task = asyncio.create_task(collect(sub, 10))
    b.publish(7)
    await asyncio.sleep(0)
    b.end()
    assert await asyncio.wait_for(task, 1) == [7]
    assert await asyncio.wait_for(collect(b.subscribe(), 10), 1) == []
