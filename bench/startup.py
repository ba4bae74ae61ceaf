"""Start-up times a person feels: `cortask --help`, and `cortask serve` from launch to ready
(its "Cortask is ready" line, the gateway answering). Median of several runs.

    .venv/bin/python bench/startup.py [--runs N] [--baseline SRC]

With `--baseline SRC` (the `src/` of another checkout, e.g. the commit before a change:
`git archive a7d28c4 src | tar -x -C /tmp/base`, then `--baseline /tmp/base/src`) the same
commands run from that code too, alternating with ours run by run, so a busy machine slows both
alike; the ratios (ours / baseline, lower is better) are the figures to compare. Both use this
checkout's installed sidecar (CORTASK_SIDECAR_DIR), so neither installs one.

Last line: one JSON object: help_s, gateway_ready_s (medians), with min and max, and help_cpu_s,
gateway_cpu_s (the CPU time each takes to answer, steadier than the clock on a busy machine); with
a baseline also baseline_* for each and the ratios help_ratio, help_cpu_ratio, gateway_ratio,
gateway_cpu_ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def cpu_help(src: Path | None = None) -> float:
    """The CPU time (user + system) `cortask --help` takes: less swayed by other work than the clock."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "cortask", "--help"], check=True, capture_output=True, env=code_env(src))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_of(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_gateway(src: Path | None = None) -> tuple[float, float]:
    """Seconds from launch to the ready line, and the CPU time the process used to get there."""
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
        cpu = cpu_of(proc.pid)
        assert "ready" in line, line
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
        auth = bearer(Path(home))  # the token file, as the CLI reads it
        assert httpx.get(f"http://127.0.0.1:{port}/api/whatsapp/status", headers=auth).status_code == 200
        proc.terminate()
        proc.wait(20)
        return ready, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="the src/ directory of the code to compare against")
    args = parser.parse_args()
    baseline: Path | None = args.baseline
    if baseline is not None and not (baseline / "cortask" / "cli.py").is_file():
        parser.error(f"--baseline {baseline}: no cortask/cli.py there; give the src/ directory of a checkout")
    helps, gateways, base_helps, base_gateways = [], [], [], []
    cpus, base_cpus = [], []
    for _ in range(args.runs):  # alternating, so load on a shared machine falls on both alike
        helps.append(time_help())
        cpus.append(cpu_help())
        if baseline is not None:
            base_helps.append(time_help(baseline))
            base_cpus.append(cpu_help(baseline))
    gateway_cpus, base_gateway_cpus = [], []
    for _ in range(args.runs):
        ready, cpu = time_gateway()
        gateways.append(ready)
        gateway_cpus.append(cpu)
        if baseline is not None:
            ready, cpu = time_gateway(baseline)
            base_gateways.append(ready)
            base_gateway_cpus.append(cpu)
    result: dict[str, object] = {
        "runs": args.runs,
        "help_s": round(statistics.median(helps), 3),
        "help_min_max_s": [round(min(helps), 3), round(max(helps), 3)],
        "help_cpu_s": round(statistics.median(cpus), 3),
        "gateway_ready_s": round(statistics.median(gateways), 3),
        "gateway_min_max_s": [round(min(gateways), 3), round(max(gateways), 3)],
        "gateway_cpu_s": round(statistics.median(gateway_cpus), 3),
    }
    if baseline is not None:
        result |= {
            "baseline": str(baseline),
            "baseline_help_s": round(statistics.median(base_helps), 3),
            "baseline_help_cpu_s": round(statistics.median(base_cpus), 3),
            "baseline_gateway_ready_s": round(statistics.median(base_gateways), 3),
            "baseline_gateway_cpu_s": round(statistics.median(base_gateway_cpus), 3),
            "help_ratio": round(statistics.median(helps) / statistics.median(base_helps), 3),
            "help_cpu_ratio": round(statistics.median(cpus) / statistics.median(base_cpus), 3),
            "gateway_ratio": round(statistics.median(gateways) / statistics.median(base_gateways), 3),
            "gateway_cpu_ratio": round(statistics.median(gateway_cpus) / statistics.median(base_gateway_cpus), 3),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
