"""The metrics as the channel feeds them, read back with Prometheus' own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from cortask.metrics import Metrics


def _values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_activity_moves_the_counters_and_times_replies_per_chat_in_order() -> None:
    m = Metrics(states=["unlinked", "open", "reconnecting"])
    feed = [
        {"kind": "received", "chat": "a", "message_id": "1", "at": 100.0},
        {"kind": "received", "chat": "a", "message_id": "2", "at": 101.0},
        {"kind": "received", "chat": "b", "message_id": "3", "at": 102.0},
        {"kind": "skipped", "chat": "b", "message_id": "3", "at": 102.5, "reason": "too_old"},
        {"kind": "replied", "chat": "a", "message_id": "r1", "at": 100.4},
        {"kind": "queued", "chat": "a", "message_id": "r2", "at": 101.5},
        {"kind": "replied", "chat": "a", "message_id": "r2", "at": 107.0},
        {"kind": "ignored", "chat": "c", "message_id": "4", "at": 103.0, "reason": "not_allowed"},
        {"kind": "duplicate", "chat": "a", "message_id": "1", "at": 104.0},
    ]
    for entry in feed:
        m.on_activity(entry)
    m.state("open")
    m.reconnect("restart_required")
    m.agent_run(0.3, ok=True)
    m.agent_run(2.0, ok=False)
    v = _values(m)
    assert v[("cortask_whatsapp_messages_received_total", ())] == 3
    assert v[("cortask_whatsapp_messages_sent_total", ())] == 2
    assert v[("cortask_whatsapp_messages_ignored_total", (("reason", "not_allowed"),))] == 1
    for outcome, count in {"sent": 2, "deferred": 1, "skipped": 1, "duplicate": 1}.items():
        assert v[("cortask_whatsapp_replies_total", (("outcome", outcome),))] == count
    # 0.4 s for message 1, 6 s for message 2 (deferred, then sent); the skipped one is not waited for
    assert v[("cortask_whatsapp_reply_latency_seconds_count", ())] == 2
    assert abs(v[("cortask_whatsapp_reply_latency_seconds_sum", ())] - 6.4) < 1e-9
    assert v[("cortask_whatsapp_reply_latency_seconds_bucket", (("le", "0.5"),))] == 1
    assert v[("cortask_whatsapp_connection_state", (("cortask_whatsapp_connection_state", "open"),))] == 1
    assert v[("cortask_whatsapp_connection_state", (("cortask_whatsapp_connection_state", "unlinked"),))] == 0
    assert v[("cortask_whatsapp_reconnects_total", (("reason", "restart_required"),))] == 1
    assert v[("cortask_agent_latency_seconds_count", (("outcome", "error"),))] == 1
    assert v[("cortask_agent_latency_seconds_count", (("outcome", "ok"),))] == 1


def test_two_metrics_never_share_counts() -> None:
    one, two = Metrics(states=["open"]), Metrics(states=["open"])
    one.on_activity({"kind": "received", "chat": "a", "message_id": "1", "at": 1.0})
    assert _values(one)[("cortask_whatsapp_messages_received_total", ())] == 1
    assert _values(two)[("cortask_whatsapp_messages_received_total", ())] == 0


def test_a_reply_in_parts_is_timed_to_its_last_part_and_an_apology_counts_as_the_reply() -> None:
    m = Metrics(states=["open"])
    feed = [
        {"kind": "received", "chat": "a", "message_id": "1", "at": 100.0},
        {"kind": "received", "chat": "a", "message_id": "2", "at": 100.5},
        {"kind": "received", "chat": "a", "message_id": "3", "at": 101.0},
        # message 1's reply in three parts: only the last ends the wait (3 s)
        {"kind": "replied", "chat": "a", "message_id": "r1a", "at": 101.0, "part": 0, "parts": 3},
        {"kind": "replied", "chat": "a", "message_id": "r1b", "at": 102.0, "part": 1, "parts": 3},
        {"kind": "replied", "chat": "a", "message_id": "r1c", "at": 103.0, "part": 2, "parts": 3},
        # the agent failed on message 2: the apology is its reply (3.5 s)
        {"kind": "failed", "chat": "a", "message_id": "r2", "at": 104.0, "agent_error": "boom"},
        # so message 3's reply is timed from message 3's arrival (4 s), not message 2's
        {"kind": "replied", "chat": "a", "message_id": "r3", "at": 105.0},
    ]
    for entry in feed:
        m.on_activity(entry)
    v = _values(m)
    assert v[("cortask_whatsapp_reply_latency_seconds_count", ())] == 3
    assert abs(v[("cortask_whatsapp_reply_latency_seconds_sum", ())] - (3.0 + 3.5 + 4.0)) < 1e-9
    assert v[("cortask_whatsapp_reply_latency_seconds_bucket", (("le", "2.0"),))] == 0
    assert v[("cortask_whatsapp_messages_sent_total", ())] == 4  # every part is a message sent
