"""Flood control's limiter, driven by a fake clock: per-minute and open-access hourly windows,
one report per flood, bounded memory."""

from __future__ import annotations

import pytest

from cortask.channels.whatsapp import lifecycle
from cortask.channels.whatsapp.flood import PER_HOUR, PER_MINUTE, FloodPolicy, Refused, SenderLimiter

ADA, GRACE = "+4915123456789", "+447911123456"


def _admitted(limiter: SenderLimiter, sender: str, times: list[float], open_access: bool = False) -> int:
    return sum(limiter.admit(sender, t, open_access) is None for t in times)


def test_a_sender_gets_at_most_the_limit_per_minute_and_others_are_not_affected() -> None:
    limiter = SenderLimiter(FloodPolicy(per_minute=20))
    assert _admitted(limiter, ADA, [i * 0.3 for i in range(200)]) == 20  # 200 messages in a minute
    assert limiter.admit(GRACE, 59.0, False) is None


def test_the_window_slides_so_a_sender_who_slows_down_is_answered_again() -> None:
    limiter = SenderLimiter(FloodPolicy(per_minute=3))
    assert _admitted(limiter, ADA, [0.0, 1.0, 2.0, 3.0]) == 3
    assert limiter.admit(ADA, 59.9, False) is not None
    assert limiter.admit(ADA, 60.0, False) is None  # the message at 0.0 left the window
    assert limiter.admit(ADA, 60.5, False) is not None  # 1.0 and 2.0 are still in it


def test_the_refusal_is_reported_once_per_flood() -> None:
    limiter = SenderLimiter(FloodPolicy(per_minute=1))
    assert limiter.admit(ADA, 0.0, False) is None
    assert limiter.admit(ADA, 1.0, False) == Refused(PER_MINUTE, first=True)
    assert limiter.admit(ADA, 2.0, False) == Refused(PER_MINUTE, first=False)
    assert limiter.admit(ADA, 3.0, False) == Refused(PER_MINUTE, first=False)
    assert limiter.admit(ADA, 61.0, False) is None  # slowed down: the next flood is reported again
    assert limiter.admit(ADA, 62.0, False) == Refused(PER_MINUTE, first=True)


def test_refused_messages_do_not_count_so_a_flood_does_not_lock_the_sender_out_for_ever() -> None:
    limiter = SenderLimiter(FloodPolicy(per_minute=2))
    assert _admitted(limiter, ADA, [float(i) for i in range(100)]) == 4  # at 0, 1, then 60, 61


def test_strangers_on_an_open_channel_have_an_hourly_cap_of_agent_runs() -> None:
    limiter = SenderLimiter(FloodPolicy(per_minute=10, open_per_hour=25))
    minutes = [m * 60.0 + s for m in range(10) for s in range(10)]  # 10 a minute for 10 minutes
    assert _admitted(limiter, ADA, minutes, open_access=True) == 25
    assert limiter.admit(ADA, 700.0, True) == Refused(PER_HOUR, first=False)  # the same flood
    assert limiter.admit(ADA, 3600.0, True) is None  # an hour after the first
    # a trusted contact is not capped by the hour
    assert _admitted(limiter, GRACE, minutes, open_access=False) == 100


def test_many_senders_are_forgotten_once_quiet_for_an_hour() -> None:
    limiter = SenderLimiter(FloodPolicy())
    for i in range(SenderLimiter._SWEEP_AT + 1):
        limiter.admit(f"+1555{i:07d}", 0.0, True)
    limiter.admit(ADA, 3601.0, True)
    assert limiter.tracked() == 1


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FloodPolicy(per_minute=0)


def test_throttle_skips_over_the_limit_or_with_a_full_queue_and_queues_the_rest() -> None:
    assert lifecycle.throttle(None, 0, 5) == lifecycle.Enqueue()
    assert lifecycle.throttle(None, 4, 5) == lifecycle.Enqueue()
    full = lifecycle.throttle(None, 5, 5)
    assert isinstance(full, lifecycle.Skip) and full.reason == lifecycle.QUEUE_FULL
    over = lifecycle.throttle(Refused(PER_MINUTE, first=False), 0, 5)
    assert isinstance(over, lifecycle.Skip) and over.reason == PER_MINUTE
