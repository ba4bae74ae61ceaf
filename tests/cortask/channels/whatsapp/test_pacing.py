"""The send pacing policy: a burst goes out at once, then a steady rate with jitter."""

from __future__ import annotations

import pytest

from cortask.channels.whatsapp.pacing import PacingPolicy, TokenBucket


def test_a_burst_goes_at_once_then_sends_are_spread_at_the_rate() -> None:
    bucket = TokenBucket(PacingPolicy(rate_per_second=2.0, burst=3, jitter_seconds=0.0))
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # the fourth waits for one token (0.5 s), the fifth for two
    assert [bucket.reserve(0.0), bucket.reserve(0.0)] == [0.5, 1.0]


def test_the_bucket_refills_while_idle_but_never_beyond_the_burst() -> None:
    bucket = TokenBucket(PacingPolicy(rate_per_second=1.0, burst=2, jitter_seconds=0.0))
    bucket.reserve(0.0)
    bucket.reserve(0.0)
    assert bucket.reserve(100.0) == 0.0  # a long pause refills it ...
    assert bucket.reserve(100.0) == 0.0
    assert bucket.reserve(100.0) == 1.0  # ... to the burst, no more


def test_jitter_is_added_only_when_a_send_has_to_wait() -> None:
    bucket = TokenBucket(PacingPolicy(rate_per_second=1.0, burst=1, jitter_seconds=0.4), random=lambda: 0.5)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(1.0 + 0.2)


@pytest.mark.parametrize("bad", [{"rate_per_second": 0}, {"burst": 0}, {"jitter_seconds": -1}])
def test_nonsense_pacing_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="pacing needs"):
        PacingPolicy(**bad)  # type: ignore[arg-type]
