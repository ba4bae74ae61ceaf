"""Batches are acknowledged only once every message in them is admitted, in arrival order, and a
message that cannot be handled at all does not hold up the ones after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.admission import Admitter, Batch


def msg(message_id: str) -> wire.WAMessage:
    return {"key": {"remoteJid": "4915123456789@s.whatsapp.net", "id": message_id, "fromMe": False}}


async def test_a_batch_is_acknowledged_only_after_all_of_it_is_admitted_in_order() -> None:
    admitted: list[str] = []
    acks: list[int] = []
    store_back = asyncio.Event()

    async def arrive(raw: wire.WAMessage, upsert_type: str) -> None:
        if raw["key"]["id"] == "B" and not store_back.is_set():
            await store_back.wait()  # the journal is failing: the pipeline retries until it works
        admitted.append(str(raw["key"]["id"]))

    def ack(seq: int) -> Callable[[], Awaitable[None]]:
        async def done() -> None:
            acks.append(seq)

        return done

    admitter = Admitter(arrive)
    admitter.submit(Batch((msg("A"), msg("B")), "notify", ack(1)))
    admitter.submit(Batch((msg("C"),), "notify", ack(2)))
    await asyncio.sleep(0.05)
    assert admitted == ["A"] and acks == [] and admitter.waiting == 2  # nothing acknowledged meanwhile
    store_back.set()
    await asyncio.sleep(0.05)
    assert admitted == ["A", "B", "C"] and acks == [1, 2] and admitter.waiting == 0
    await admitter.close()


async def test_a_message_that_cannot_be_handled_does_not_hold_up_the_rest() -> None:
    admitted: list[str] = []
    acks: list[int] = []

    async def arrive(raw: wire.WAMessage, upsert_type: str) -> None:
        if raw["key"]["id"] == "BAD":
            raise ValueError("not a message we understand")
        admitted.append(str(raw["key"]["id"]))

    async def done() -> None:
        acks.append(1)

    admitter = Admitter(arrive)
    admitter.submit(Batch((msg("BAD"), msg("GOOD")), "notify", done))
    await asyncio.sleep(0.05)
    assert admitted == ["GOOD"] and acks == [1]
    await admitter.close()
