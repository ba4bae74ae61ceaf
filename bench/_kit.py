"""Lets a benchmark, run as `python bench/NAME.py`, import the test kit (`tests/testkit`); and what
the long runs (kill loop, soak) share: their progress lines and their working directory."""

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

T = TypeVar("T")


def progress_to_stderr() -> Callable[[str], None]:
    """A `progress` callback: each line to stderr, stamped with the seconds since the run began."""
    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {line}", file=sys.stderr, flush=True)

    return progress


def run_in_workdir(run: Callable[[Path], Coroutine[Any, Any, T]], keep: Path | None) -> T:
    """`run(workdir)` in `keep` (created, and kept with its logs and state) or, when `keep` is
    None, in a temporary directory removed afterwards."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(keep))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run(Path(tmp)))
