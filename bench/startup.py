"""Start-up times a person feels: `cortask --help`, and `cortask serve` from launch to ready
(its "Cortask is ready" line, the gateway answering). Median of several runs.

    .venv/bin/python bench/startup.py [--runs N] [--baseline SRC]

With `--baseline SRC` (the `src/` of another checkout, e.g. the commit before a change:
`git archive a7d28c4 src | tar -x -C /tmp/base`, then `--baseline /tmp/base/src`) the same
commands run from that code too, alternating with ours run by run, so a busy machine slows both
alike; the ratios (ours / baseline, lower is better) are the figures to compare. Both use this
checkout's installed sidecar (CORTASK_SIDECAR_DIR), so neither installs one.

Last line: one JSON object: help_s, gateway_ready_s (medians), with min and max; with a baseline
also baseline_help_s, baseline_gateway_ready_s and help_ratio, gateway_ratio.
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

SIDECAR_DIR = Path(__file__).resolve().parents[1] / "src" / "cortask" / "channels" / "whatsapp" / "sidecar"


def code_env(src: Path | None) -> dict[str, str]:
    """The environment that runs `cortask` from `src` (None: this checkout, as installed)."""
    env = {**os.environ, "CORTASK_SIDECAR_DIR": str(SIDECAR_DIR)}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    return env


def time_help(src: Path | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cortask", "--help"], check=True, capture_output=True, env=code_env(src))
    return time.perf_counter() - t0


def time_gateway(src: Path | None = None) -> float:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {**code_env(src), "CORTASK_HOME": home}
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
    parser.add_argument("--baseline", type=Path, help="the src/ directory of the code to compare against")
    args = parser.parse_args()
    baseline: Path | None = args.baseline
    if baseline is not None and not (baseline / "cortask" / "cli.py").is_file():
        parser.error(f"--baseline {baseline}: no cortask/cli.py there; give the src/ directory of a checkout")
    helps, gateways, base_helps, base_gateways = [], [], [], []
    for _ in range(args.runs):  # alternating, so load on a shared machine falls on both alike
        helps.append(time_help())
        if baseline is not None:
            base_helps.append(time_help(baseline))
    for _ in range(args.runs):
        gateways.append(time_gateway())
        if baseline is not None:
            base_gateways.append(time_gateway(baseline))
    result: dict[str, object] = {
        "runs": args.runs,
        "help_s": round(statistics.median(helps), 3),
        "help_min_max_s": [round(min(helps), 3), round(max(helps), 3)],
        "gateway_ready_s": round(statistics.median(gateways), 3),
        "gateway_min_max_s": [round(min(gateways), 3), round(max(gateways), 3)],
    }
    if baseline is not None:
        result |= {
            "baseline": str(baseline),
            "baseline_help_s": round(statistics.median(base_helps), 3),
            "baseline_gateway_ready_s": round(statistics.median(base_gateways), 3),
            "help_ratio": round(statistics.median(helps) / statistics.median(base_helps), 3),
            "gateway_ratio": round(statistics.median(gateways) / statistics.median(base_gateways), 3),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
