"""`cortask service`: the unit systemd accepts (`systemd-analyze verify`, Debian's systemd), and a
machine without systemd told so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.paths import ROOT

CORTASK = [sys.executable, "-m", "cortask"]


def _systemd_analyze() -> str | None:
    """Debian's systemd-analyze, installed when missing and possible; None (after saying why) otherwise."""
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if os.getuid() != 0 or shutil.which("apt-get") is None:
        print("systemd-analyze is missing and cannot be installed here (needs root and apt-get)")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "systemd"], capture_output=True, env=env, timeout=900)
    if done.returncode != 0:
        print(f"could not install Debian's systemd: {done.stderr.decode(errors='replace')[-500:]}")
        return None
    return shutil.which("systemd-analyze")


@pytest.mark.e2e
def test_systemd_accepts_the_generated_unit(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    if analyze is None:
        pytest.skip("systemd-analyze is not available (the reason is printed above)")
    home = tmp_path / "cortask home"  # a space: the unit must quote it
    env = {**os.environ, "CORTASK_HOME": str(home)}
    unit = subprocess.run([*CORTASK, "service", "unit"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert unit.returncode == 0, unit.stderr
    text = unit.stdout
    for line in ("Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only"):
        assert line in text.splitlines()
    assert f'ReadWritePaths="{home}"' in text and f'Environment="CORTASK_HOME={home}"' in text
    assert f"ExecStart={sys.executable} -m cortask --log-format json serve" in text
    path = tmp_path / "cortask.service"
    path.write_text(text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify = subprocess.run(
        [analyze, "--user", "verify", str(path)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify exits 0 even for an unknown value (it only warns), so nothing may be said about our unit.
    said = [line for line in (verify.stdout + verify.stderr).splitlines() if "cortask.service" in line]
    assert verify.returncode == 0 and said == [], verify.stdout + verify.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("Restart=on-failure", "Restart=sometimes"))
    complaint = subprocess.run(
        [analyze, "--user", "verify", str(broken)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "sometimes" in complaint.stderr  # the check above would see a wrong unit


@pytest.mark.e2e
@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="this machine runs systemd")
def test_install_without_systemd_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([*CORTASK, "service", "install"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "systemd is not running on this machine" in done.stderr and "cortask service unit" in done.stderr
    assert not (tmp_path / "config" / "systemd").exists()
