"""The kill loop, long: the real service killed with SIGKILL (alternately the whole service and
only its sidecar, chosen at random) at random moments while three contacts keep writing, on wasim.

    .venv/bin/python bench/kill_loop.py [--cycles 500] [--seed 1]

Last line: one JSON object with cycles, sent, answered_once, answered_twice, lost, rescans (and
how many kills of each kind, whether the auth directory still loads, sidecars left running after
the service stopped, seconds). answered_twice, lost, rescans and leftover_sidecars must be 0 and
answered_once must equal sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _kit  # (puts tests/ on the path, for testkit)
from testkit.kill_loop import run_kill_loop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (logs, state)")
    args = parser.parse_args()
    progress = _kit.progress_to_stderr()

    async def run(workdir: Path) -> dict[str, object]:
        result = await run_kill_loop(workdir, args.cycles, seed=args.seed, progress=progress)
        return result.as_dict()

    figures = _kit.run_in_workdir(run, args.keep)
    print(json.dumps(figures))
    ok = figures["answered_twice"] == figures["lost"] == figures["rescans"] == figures["leftover_sidecars"] == 0
    return 0 if ok and figures["answered_once"] == figures["sent"] and figures["auth_loads"] else 1


if __name__ == "__main__":
    sys.exit(main())
