"""Issue #16's promise: the wheel alone is the product. Built from this checkout, installed into a
fresh virtual environment outside it, with a new $CORTASK_HOME: doctor reports the missing
sidecar, `cortask sidecar install` installs it from the registry, and the installed Cortask links
to wasim (run from the checkout: the sandbox is not in the wheel) and answers a trusted contact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from testkit.paths import ROOT
from testkit.ports import free_port
from testkit.served import ADA, served

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SIDECAR_FILES = {"index.mjs", "protocol.mjs", "signal-sessions.mjs", "package.json", "package-lock.json", ".npmrc"}


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload,no-any-return]


def _build(dist: Path) -> tuple[Path, Path]:
    built = _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)])
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel, sdist = next(dist.glob("*.whl")), next(dist.glob("*.tar.gz"))
    in_wheel = {Path(n).name for n in zipfile.ZipFile(wheel).namelist() if "/whatsapp/sidecar/" in n}
    in_sdist = {Path(n).name for n in tarfile.open(sdist).getnames() if "/whatsapp/sidecar/" in n}
    assert in_wheel == SIDECAR_FILES and in_sdist == SIDECAR_FILES, (in_wheel, in_sdist)
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("wasim/")], "wasim is not the product"
    return wheel, sdist


def test_the_wheel_alone_installs_its_sidecar_links_and_answers(tmp_path: Path) -> None:
    wheel, _ = _build(tmp_path / "dist")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr[-3000:]
    cortask = [str(venv / "bin" / "cortask")]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORTASK_", "PYTHON", "VIRTUAL_ENV"))}
    env["CORTASK_HOME"] = str(home)
    # The installed package is the one outside the checkout, and it finds no sidecar anywhere.
    where = _run([str(venv / "bin" / "python"), "-c", "import cortask; print(cortask.__file__)"], cwd=outside, env=env)
    assert where.stdout.startswith(str(venv)), where

    doctor = _run([*cortask, "doctor", "--json"], cwd=outside, env=env)
    assert doctor.returncode == 1, doctor
    report = json.loads(doctor.stdout)
    sidecar = next(c for c in report["checks"] if c["name"] == "sidecar")
    assert report["ok"] is False and sidecar["level"] == "fail", report
    assert "not installed" in sidecar["detail"] and sidecar["fix"] == "run `cortask sidecar install`"

    install = _run([*cortask, "sidecar", "install"], cwd=outside, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    assert "npm ci:" in install.stderr and "verified that it starts" in install.stderr, install.stderr
    located = _run([*cortask, "sidecar", "where"], cwd=outside, env=env)
    assert Path(located.stdout.strip()).parent == home / "sidecar", located
    assert (Path(located.stdout.strip()) / "node_modules" / "baileys").is_dir()
    assert not (Path(located.stdout.strip()) / "node_modules" / "sharp").exists(), "no image library"
    doctor = json.loads(_run([*cortask, "doctor", "--json"], cwd=outside, env=env).stdout)
    assert next(c for c in doctor["checks"] if c["name"] == "sidecar")["level"] == "ok", doctor

    with served(cortask, env, tmp_path, outside) as live:
        live.link()
        live.wasim("send", "--from", ADA, "--text", "hello from Ada")
        assert live.wait_replies(ADA, 1) == ["Echo: hello from Ada"]

    # Without `cortask sidecar install`, the first command that needs the sidecar installs it.
    shutil.rmtree(home / "sidecar")
    port = str(free_port())
    serve = subprocess.Popen(
        [*cortask, "serve", "--port", port],
        cwd=outside,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None and "Cortask is ready" in serve.stdout.readline()
    finally:
        serve.terminate()
        _, said = serve.communicate(timeout=60)
    assert "installing it now (once)" in said and "verified that it starts" in said, said
    assert (Path(located.stdout.strip()) / "node_modules" / "baileys").is_dir()
