"""The status's storage part, described: how big the database is and how far back it goes. Pure."""

from __future__ import annotations

from datetime import datetime

from cortask.app.models import Storage

__all__ = ["describe_storage", "human_bytes"]


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _age(oldest: datetime, now: datetime) -> str:
    days = (now - oldest).total_seconds() / 86400
    if days < 1:
        return "from today"
    whole = int(days)
    return f"{whole} day{'s' if whole != 1 else ''} old"


def describe_storage(size: int, oldest: datetime | None, retention_days: float, now: datetime) -> Storage:
    kept = f"records older than {retention_days:g} days are pruned, except pending ones and each chat's last turns"
    if oldest is None:
        sentence = f"Database {human_bytes(size)}, no messages kept yet; {kept}."
    else:
        sentence = f"Database {human_bytes(size)}; the oldest record kept is {_age(oldest, now)}; {kept}."
    return Storage(
        database_bytes=size,
        oldest_record_at=oldest.timestamp() if oldest is not None else None,
        retention_days=retention_days,
        sentence=sentence,
    )
