"""The soak: the real service under a realistic day compressed into minutes, on wasim: 50 contacts
writing (2 messages a second together), a slow agent (a webhook answering after 0–3 s), the
sidecar killed with SIGKILL about every 90 s and wasim restarted about every 5 minutes.

    .venv/bin/python bench/soak.py [--minutes 20] [--rate 2] [--kill-every 90] [--restart-every 300]

Last line: one JSON object with minutes, sent, answered_once, answered_twice, lost, rss_start_mb,
rss_end_mb, rss_max_mb, db_mb, open_fds_start, open_fds_end (memory and open files of the service
process; "start" is after the warm-up, the first minute or fifth of the run). answered_twice and
lost must be 0 and answered_once must equal sent; the exit status says whether they were.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _kit  # (puts tests/ on the path, for testkit)
from testkit.soak import SoakPlan, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="how long the contacts write (default 20)")
    parser.add_argument("--rate", type=float, default=2.0, help="messages per second, all contacts together")
    parser.add_argument("--kill-every", type=float, default=90.0, help="seconds between sidecar kills, on average")
    parser.add_argument("--restart-every", type=float, default=300.0, help="seconds between wasim restarts, on average")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (logs, state)")
    args = parser.parse_args()
    plan = SoakPlan(
        minutes=args.minutes,
        rate=args.rate,
        sidecar_kill_every=args.kill_every,
        wasim_restart_every=args.restart_every,
        seed=args.seed,
    )
    progress = _kit.progress_to_stderr()

    async def run(workdir: Path) -> dict[str, object]:
        return (await run_soak(workdir, plan, progress)).as_dict()

    figures = _kit.run_in_workdir(run, args.keep)
    print(json.dumps(figures))
    ok = figures["answered_twice"] == figures["lost"] == 0 and figures["answered_once"] == figures["sent"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
