"""Start-up times a person feels: `cortask --help`, and `cortask serve` from launch to ready
(its "Cortask is ready" line, the gateway answering). Median of several runs.

    .venv/bin/python bench/startup.py [--runs N]

Last line: one JSON object: help_s, gateway_ready_s (medians), with min and max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _kit  # noqa: F401  (puts tests/ on the path, for testkit)
import httpx
from testkit.gateway import bearer
from testkit.ports import free_port


def time_help() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cortask", "--help"], check=True, capture_output=True)
    return time.perf_counter() - t0


def time_gateway() -> float:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {**os.environ, "CORTASK_HOME": home}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cortask", "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = time.perf_counter() - t0
        assert "ready" in line, line
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
        auth = bearer(Path(home))  # the token file, as the CLI reads it
        assert httpx.get(f"http://127.0.0.1:{port}/api/whatsapp/status", headers=auth).status_code == 200
        proc.terminate()
        proc.wait(20)
        return ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    helps = [time_help() for _ in range(args.runs)]
    gateways = [time_gateway() for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "help_s": round(statistics.median(helps), 3),
                "help_min_max_s": [round(min(helps), 3), round(max(helps), 3)],
                "gateway_ready_s": round(statistics.median(gateways), 3),
                "gateway_min_max_s": [round(min(gateways), 3), round(max(gateways), 3)],
            }
        )
    )


if __name__ == "__main__":
    main()
