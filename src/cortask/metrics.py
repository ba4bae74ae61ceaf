"""What an operator watches, in Prometheus' terms (the official client library).

One `Metrics` per channel, on its own registry (two services in one process never mix counts).
The channel feeds it from what already flows: each activity entry (`on_activity`), each status
(`state`), each reconnect decision; the service times the agent; the gateway reads the queue and
outbox gauges when scraped and serves `render()` at `/metrics`, behind its token.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Seconds: a reply is paced and typed like a person's (a second or more); an LLM takes seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
# What became of a message to answer, by the activity kind that says so.
_OUTCOMES = {
    "replied": "sent",
    "queued": "deferred",
    "refused": "refused",
    "skipped": "skipped",
    "duplicate": "duplicate",
}
_PENDING_PER_CHAT = 200  # arrivals remembered per chat for the latency (flood control keeps fewer queued)


class Metrics:
    def __init__(self, states: Iterable[str]) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "cortask_whatsapp_messages_received", "Messages that passed access control and were journaled", registry=r
        )
        self.sent = Counter("cortask_whatsapp_messages_sent", "Messages sent (replies)", registry=r)
        self.ignored = Counter(
            "cortask_whatsapp_messages_ignored", "Messages not for the agent, by reason", ["reason"], registry=r
        )
        self.replies = Counter(
            "cortask_whatsapp_replies",
            "What became of each reply or message to answer: sent, deferred (sent after reconnecting), "
            "refused (by WhatsApp), skipped (too old, flood, no longer allowed), duplicate",
            ["outcome"],
            registry=r,
        )
        self.reply_latency = Histogram(
            "cortask_whatsapp_reply_latency_seconds",
            "From a message's arrival to the last part of its reply (or of the apology, when the "
            "agent failed) going out (per chat, in order)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.agent_latency = Histogram(
            "cortask_agent_latency_seconds", "How long the agent took, by outcome (ok, error)", ["outcome"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.reconnects = Counter(
            "cortask_whatsapp_reconnects", "Lost connections that were reconnected, by reason", ["reason"], registry=r
        )
        self.connection = Enum(
            "cortask_whatsapp_connection_state", "The WhatsApp connection's state", states=list(states), registry=r
        )
        self.busy_chats = Gauge("cortask_whatsapp_busy_chats", "Chats with messages being answered", registry=r)
        self.queued = Gauge("cortask_whatsapp_queued_messages", "Messages waiting in chat queues", registry=r)
        self.outbox_pending = Gauge(
            "cortask_whatsapp_outbox_pending", "Replies recorded but not sent yet (the outbox)", registry=r
        )
        self.outbox_age = Gauge(
            "cortask_whatsapp_outbox_oldest_age_seconds",
            "Age of the oldest reply not sent yet (0 when none)",
            registry=r,
        )
        self._arrivals: dict[str, deque[tuple[str | None, float]]] = {}

    def state(self, value: str) -> None:
        self.connection.state(value)

    def reconnect(self, reason: str) -> None:
        self.reconnects.labels(reason).inc()

    def agent_run(self, seconds: float, ok: bool) -> None:
        self.agent_latency.labels("ok" if ok else "error").observe(seconds)

    def on_activity(self, entry: Mapping[str, Any]) -> None:
        kind, chat, at = entry.get("kind"), str(entry.get("chat")), float(entry.get("at") or 0)
        if kind == "received":
            self.received.inc()
            self._arrivals.setdefault(chat, deque(maxlen=_PENDING_PER_CHAT)).append((entry.get("message_id"), at))
        elif kind == "ignored":
            self.ignored.labels(str(entry.get("reason") or "other")).inc()
        if kind in _OUTCOMES:
            self.replies.labels(_OUTCOMES[kind]).inc()
        if kind == "replied":
            self.sent.inc()
        if kind in ("replied", "failed") and _last_part(entry):
            arrivals = self._arrivals.get(chat)
            if arrivals:
                self.reply_latency.observe(max(0.0, at - arrivals.popleft()[1]))
        elif kind == "skipped":
            self._forget(chat, entry.get("message_id"))
        if chat in self._arrivals and not self._arrivals[chat]:
            del self._arrivals[chat]

    def _forget(self, chat: str, message_id: object) -> None:
        """A message answered by nothing (skipped) is not waiting for a reply any more."""
        arrivals = self._arrivals.get(chat)
        if arrivals:
            kept = [a for a in arrivals if a[0] != message_id]
            arrivals.clear()
            arrivals.extend(kept)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _last_part(entry: Mapping[str, Any]) -> bool:
    """Whether a sent entry ends its reply: a reply in one part, or the last of a long one's parts
    (an earlier part leaves the message waiting for the rest)."""
    part, parts = entry.get("part"), entry.get("parts")
    return not (isinstance(part, int) and isinstance(parts, int)) or part >= parts - 1
