"""Issue #18: the real sidecar runs with the heap settings that keep it small while idle (1 MB
young-generation semi-spaces, no cap on the old generation, so a backlog never crashes it, and
glibc's malloc with fixed thresholds and two heaps shared by its threads), and still says hello.
How much memory that saves is a benchmark figure (bench/pipeline.py, bench/scale.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.sidecar import Sidecar, locate_sidecar


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def cmdline_of(pid: int) -> list[str]:
    return [arg for arg in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if arg]


@pytest.mark.e2e  # starts the real Node sidecar
async def test_the_sidecar_runs_with_small_young_generation_no_heap_cap_and_two_malloc_heaps(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "whatsapp-auth")
    sidecar = Sidecar(locate_sidecar(), store, log_level="warn")
    try:
        await sidecar.start()
        assert sidecar.pid is not None and sidecar.hello is not None
        argv = cmdline_of(sidecar.pid)
        environ = environ_of(sidecar.pid)
    finally:
        await sidecar.stop()
        store.close()

    assert "--max-semi-space-size=1" in argv
    assert not [arg for arg in argv if arg.startswith("--max-old-space-size")]
    assert environ.get("MALLOC_ARENA_MAX") == "2"
    assert environ.get("MALLOC_MMAP_THRESHOLD_") == environ.get("MALLOC_TRIM_THRESHOLD_") == "131072"
    assert argv[-1].endswith("index.mjs")  # Node's flags come before the script, or they would be its arguments
