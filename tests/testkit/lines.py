"""Reading a process's first lines without hanging when it prints fewer than expected."""

from __future__ import annotations

import threading
from typing import IO


def first_lines(stream: IO[str], count: int, timeout: float = 60) -> list[str]:
    """Up to `count` lines, as many as arrive within `timeout` seconds (a short list says the
    process printed less, rather than a test that waits forever)."""
    got: list[str] = []

    def read() -> None:
        for _ in range(count):
            line = stream.readline()
            if not line:
                return
            got.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return list(got)
