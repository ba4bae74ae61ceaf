"""The reply pipeline's I/O around the lifecycle, against a stand-in for the sidecar link (our own
boundary) and the in-memory journal: what it sends, in which order, and what it does when the
connection is down. The real sidecar and Baileys: test_channel_messages.py and test_pipeline.py."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path
from typing import Any, TypeVar

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.activity import ActivityLog
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.journal import MemoryJournal
from cortask.channels.whatsapp.pipeline import ReplyPipeline

R = TypeVar("R")
ADA = "4915123456789@s.whatsapp.net"


class FakeLink:
    def __init__(self) -> None:
        self.sent: list[wire.Command[Any]] = []

    async def request(self, command: wire.Command[R], timeout: float = 60.0) -> R:
        self.sent.append(command)
        return None  # type: ignore[return-value]  # the pipeline does not read send results

    async def notify(self, command: wire.Command[Any]) -> None:
        self.sent.append(command)


def message(message_id: str, text: str = "hi", at: float | None = None) -> wire.WAMessage:
    return {
        "key": {"remoteJid": ADA, "id": message_id, "fromMe": False},
        "message": {"conversation": text},
        "messageTimestamp": int(at if at is not None else time.time()),
    }


def make(tmp_path: Path, connected: list[bool]) -> tuple[ReplyPipeline, FakeLink, ActivityLog, MemoryJournal]:
    config = WhatsAppConfig(auth_dir=tmp_path, open_to_everyone=True, pacing=None)
    link, activity, journal = FakeLink(), ActivityLog(), MemoryJournal()

    async def echo(item: InboundText) -> str:
        return f"echo: {item.text}"

    pipeline = ReplyPipeline(
        config, journal, link, activity,
        connected=lambda: connected[0], account=lambda: "me", auth_store=lambda: None,
        on_traffic=lambda inbound: None, handler=echo,
    )  # fmt: skip
    return pipeline, link, activity, journal


async def idle(pipeline: ReplyPipeline) -> None:
    """Until every chat's work is done, its last reply recorded as sent included."""
    async with asyncio.timeout(5):
        while pipeline.busy_chats:  # noqa: ASYNC110  (a count, with no event to wait on)
            await asyncio.sleep(0.01)


def shape(commands: list[wire.Command[Any]]) -> list[str]:
    return [
        f"presence:{c.type}" if isinstance(c, wire.Presence) else f"send:{c.text}" if isinstance(c, wire.SendText)
        else c.TAG
        for c in commands
    ]  # fmt: skip


async def test_a_message_is_read_typed_at_answered_and_typing_cleared_in_that_order(tmp_path: Path) -> None:
    pipeline, link, activity, journal = make(tmp_path, [True])
    await pipeline.arrive(message("M1"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    await idle(pipeline)  # the worker clears typing after the send; the reply is recorded as sent
    assert shape(link.sent) == ["read", "presence:composing", "send:echo: hi", "presence:paused"]
    assert await journal.unfinished("me") == ([], [])
    await pipeline.close()


async def test_typing_is_not_cleared_between_queued_messages_of_a_chat_only_after_the_last(tmp_path: Path) -> None:
    # Each reply clears "typing" on the phone and the next message shows it again; a "paused"
    # in between would only be one more stanza per message in a burst (issue #18).
    pipeline, link, activity, _ = make(tmp_path, [True])
    for n in (1, 2, 3):
        await pipeline.arrive(message(f"M{n}", f"hi {n}"), "notify")
    await activity.wait(lambda e: sum(x["kind"] == "replied" for x in activity.entries) == 3, timeout=5)
    await asyncio.sleep(0)  # the worker clears typing after the last send
    sends = [s for s in shape(link.sent) if s != "read"]
    assert sends == [
        "presence:composing", "send:echo: hi 1",
        "presence:composing", "send:echo: hi 2",
        "presence:composing", "send:echo: hi 3", "presence:paused",
    ]  # fmt: skip
    await pipeline.close()


async def test_a_redelivered_message_is_answered_once(tmp_path: Path) -> None:
    pipeline, link, activity, _ = make(tmp_path, [True])
    await pipeline.arrive(message("M1"), "notify")
    await pipeline.arrive(message("M1"), "notify")  # while the first is in flight
    await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    await pipeline.arrive(message("M1"), "notify")  # after it was answered
    await pipeline.close()
    assert [e["kind"] for e in activity.entries] == ["received", "duplicate", "replied", "duplicate"]
    assert shape(link.sent).count("send:echo: hi") == 1


async def test_a_reply_that_cannot_go_out_waits_and_keeps_its_id(tmp_path: Path) -> None:
    connected = [False]
    pipeline, _, activity, journal = make(tmp_path, connected)
    await pipeline.arrive(message("M1"), "notify")
    queued = await activity.wait(lambda e: e["kind"] == "queued", timeout=5)
    [unsent] = (await journal.unfinished("me"))[1]
    assert unsent.message_id == queued["message_id"]
    connected[0] = True
    pipeline.request_resume()
    replied = await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    assert replied["message_id"] == unsent.message_id
    await idle(pipeline)  # recorded as sent just after it went out
    assert await journal.unfinished("me") == ([], [])
    await pipeline.close()


async def test_a_message_older_than_a_day_is_recorded_and_not_answered(tmp_path: Path) -> None:
    pipeline, link, activity, journal = make(tmp_path, [True])
    await pipeline.arrive(message("M1", at=time.time() - 25 * 3600), "append")
    assert [(e["kind"], e.get("reason")) for e in activity.entries] == [("received", None), ("skipped", "too_old")]
    assert link.sent == [] and await journal.unfinished("me") == ([], [])


class SlowToRecordSent(MemoryJournal):
    """A journal whose "sent" records wait until `release` is set, as behind a slow disk flush."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.events: list[str] = []
        self.planned: collections.defaultdict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)

    async def plan_parts(self, account: str, item: InboundText, *args: Any, **kwargs: Any) -> Any:
        self.events.append(f"planned:{item.message_id}")
        self.planned[item.message_id].set()
        return await super().plan_parts(account, item, *args, **kwargs)

    async def mark_sent(self, reply: Any) -> None:
        await self.release.wait()
        self.events.append(f"recorded:{reply.in_reply_to}")
        await super().mark_sent(reply)


def make_slow(tmp_path: Path) -> tuple[ReplyPipeline, FakeLink, ActivityLog, SlowToRecordSent]:
    pipeline, link, activity, _ = make(tmp_path, [True])
    journal = SlowToRecordSent()
    pipeline._journal = journal  # the same pipeline, on the slow journal
    return pipeline, link, activity, journal


async def test_a_chat_goes_on_with_its_next_message_while_the_last_reply_is_recorded_but_sends_after_it(
    tmp_path: Path,
) -> None:
    # Issue #18: the next message's reply is planned while the last one's "sent" is still being
    # written (one commit can hold both), yet it is not sent before that record is on disk, so a
    # crash can leave at most a chat's last reply sent and unrecorded, as before.
    pipeline, link, activity, journal = make_slow(tmp_path)
    await pipeline.arrive(message("M1", "one"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    await pipeline.arrive(message("M2", "two"), "notify")
    await asyncio.wait_for(journal.planned["M2"].wait(), 5)
    assert journal.events == ["planned:M1", "planned:M2"]  # M1 not recorded yet, M2 planned all the same
    assert shape(link.sent).count("send:echo: two") == 0  # ...but not sent before M1 is recorded
    journal.release.set()
    await activity.wait(lambda e: sum(x["kind"] == "replied" for x in activity.entries) == 2, timeout=5)
    await idle(pipeline)
    assert journal.events == ["planned:M1", "planned:M2", "recorded:M1", "recorded:M2"]
    assert [s for s in shape(link.sent) if s.startswith("send")] == ["send:echo: one", "send:echo: two"]
    assert await journal.unfinished("me") == ([], [])
    await pipeline.close()


async def test_a_reply_being_recorded_is_neither_answered_again_on_redelivery_nor_resent_by_a_resume(
    tmp_path: Path,
) -> None:
    pipeline, link, activity, journal = make_slow(tmp_path)
    await pipeline.arrive(message("M1"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    assert pipeline.busy_chats == 1  # its reply is still being recorded
    await pipeline.arrive(message("M1"), "notify")  # WhatsApp delivers it again right now
    pipeline.request_resume()  # and a reconnect looks for what was left unsent
    await asyncio.sleep(0.1)
    journal.release.set()
    await idle(pipeline)
    assert shape(link.sent).count("send:echo: hi") == 1
    assert [e["kind"] for e in activity.entries] == ["received", "replied", "duplicate"]
    await pipeline.close()


async def test_closing_waits_for_a_sent_reply_to_be_recorded(tmp_path: Path) -> None:
    pipeline, _, activity, journal = make_slow(tmp_path)
    await pipeline.arrive(message("M1"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied", timeout=5)
    asyncio.get_running_loop().call_later(0.2, journal.release.set)
    await pipeline.close()
    assert await journal.unfinished("me") == ([], [])  # not sent again after the restart
