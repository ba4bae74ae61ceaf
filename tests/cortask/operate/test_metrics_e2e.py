"""`/metrics` on a running gateway: behind the token, in Prometheus' format (read with the client
library's own parser), and its counters move by exactly what flowed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from testkit.gateway import bearer
from testkit.paths import ROOT
from testkit.served import ADA, served

pytestmark = pytest.mark.e2e


def _samples(url: str, home: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(f"{url}/metrics", headers=bearer(home), timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_metrics_need_the_token_and_count_what_flows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "CORTASK_HOME": str(home)}
    with served([sys.executable, "-m", "cortask"], env, tmp_path, ROOT) as live:
        assert httpx.get(f"{live.url}/metrics", timeout=10).status_code == 401
        wrong = httpx.get(f"{live.url}/metrics", headers={"Authorization": "Bearer " + "x" * 43}, timeout=10)
        assert wrong.status_code == 401
        live.link()
        before = _samples(live.url, home)
        assert before[("cortask_whatsapp_connection_state", (("cortask_whatsapp_connection_state", "open"),))] == 1
        assert before.get(("cortask_whatsapp_messages_received_total", ()), 0) == 0

        for n in range(3):
            live.wasim("send", "--from", ADA, "--text", f"message {n}")
        live.wait_replies(ADA, 3)
        live.wasim("contact", "add", "+447700900123", "--name", "Stranger")  # on WhatsApp, not trusted here
        live.wasim("send", "--from", "+447700900123", "--text", "a stranger")
        ignored = ("cortask_whatsapp_messages_ignored_total", (("reason", "not_allowed"),))
        deadline = time.monotonic() + 30
        while (after := _samples(live.url, home)).get(ignored, 0) - before.get(ignored, 0) < 1:
            assert time.monotonic() < deadline, "the stranger's message was not counted as ignored"
            time.sleep(0.3)

        def moved(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0) - before.get(key, 0)

        assert moved("cortask_whatsapp_messages_received_total") == 3
        assert moved("cortask_whatsapp_messages_sent_total") == 3
        assert moved("cortask_whatsapp_replies_total", outcome="sent") == 3
        assert moved("cortask_whatsapp_reply_latency_seconds_count") == 3
        assert moved("cortask_agent_latency_seconds_count", outcome="ok") == 3
        assert moved("cortask_agent_latency_seconds_count", outcome="error") == 0
        assert after[("cortask_whatsapp_queued_messages", ())] == 0
        assert after[("cortask_whatsapp_outbox_pending", ())] == 0
        assert after[("cortask_whatsapp_outbox_oldest_age_seconds", ())] == 0
        # the 515 restart WhatsApp asks for after a scan
        assert ("cortask_whatsapp_reconnects_total", (("reason", "restart_required"),)) in after
