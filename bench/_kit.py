"""What the benchmarks share. Importing it, as `python bench/NAME.py` does, puts the test kit
(`tests/testkit`) on the path; it also holds the hop probe, the small figures helpers, and what the
long runs (kill loop, soak) share: their progress lines and their working directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import aiohttp

from cortask.channels.whatsapp.flood import FloodPolicy
from cortask.channels.whatsapp.pipeline import ReplyPipeline as Pipeline

T = TypeVar("T")
# Flood control off (the per-sender limit of 30 messages a minute, the 50-message chat queue): a
# bench measures how fast the pipeline goes; with the limits on, most of a burst from one contact
# is recorded and deliberately left unanswered, and would count as lost.
NO_FLOOD_LIMITS = FloodPolicy(per_minute=10**9, open_per_hour=10**9, chat_queue=10**9)


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


@contextlib.asynccontextmanager
async def wasim_server(state: Path) -> AsyncIterator[dict[str, Any]]:
    """wasim in its own process on loopback, as the benches run it: yields its first line (the URLs
    and the root key) with its process id ("pid"), and stops it afterwards."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wasim", "serve", "--state", str(state), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        yield {**json.loads(await server.stdout.readline()), "pid": server.pid}
    finally:
        server.terminate()
        await server.wait()


class Control:
    """wasim's control API, as the benches call it."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(method, self.url + path, json=body) as resp:
            data = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"{path}: {data}")
            return data


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (utime + stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command's closing parenthesis: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class HopProbe:
    """Our added latency, measured inside: from the channel getting a message from the sidecar to
    its reply being handed back to the sidecar (access, journal, typing, the handler, the reply's
    record). A plain Node bot does the same in its own process in about no time, so this is what
    the architecture adds, free of the machine's noise that swamps a difference of two p99s.
    Install it before the channel is built: its parts bind the pipeline's methods then."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.hops: list[float] = []
        arrive, deliver = Pipeline.arrive, Pipeline._deliver

        async def timed_arrive(pipeline: Pipeline, raw: Any, upsert_type: str) -> None:
            self.arrived.setdefault(str((raw.get("key") or {}).get("id")), time.perf_counter())
            await arrive(pipeline, raw, upsert_type)

        async def timed_deliver(pipeline: Pipeline, reply: Any, remembered: bool = False) -> bool:
            start = self.arrived.pop(str(reply.in_reply_to), None)
            if start is not None:
                self.hops.append((time.perf_counter() - start) * 1000)
            return await deliver(pipeline, reply, remembered)

        Pipeline.arrive = timed_arrive  # type: ignore[method-assign]
        Pipeline._deliver = timed_deliver  # type: ignore[method-assign]
