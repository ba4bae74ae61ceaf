"""Installing the sidecar into `$CORTASK_HOME/sidecar/<version>/`: the sources the Python package
carries, then `npm ci` from their lockfile (pinned Baileys, every package checked against the
lockfile's integrity hashes by npm), then a check that the result starts and says what it must.

Done in a staging directory and moved into place only once verified, so an interrupted or failed
install never leaves a copy that the locating rule (`sidecar_files`) would pick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.sidecar import MIN_NODE_MAJOR, SidecarNotInstalled, pinned_baileys_version
from cortask.channels.whatsapp.sidecar_files import (
    MANIFEST,
    PACKAGE_DIR,
    cortask_version,
    home_install_dir,
    source_files,
    sources_digest,
)
from cortask.childenv import child_environment

NPM_TIMEOUT_S = 900
_FETCHED = re.compile(r"\bhttp fetch GET \d+ \S+\.tgz")

# npm's own settings may pass through (a registry mirror, a proxy, a cache); nothing else does.
NPM_VARIABLES = (
    "NPM_CONFIG_REGISTRY",
    "NPM_CONFIG_CACHE",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "NODE_EXTRA_CA_CERTS",
)


@dataclass(frozen=True, slots=True)
class Installed:
    directory: Path
    baileys: str
    packages: int
    seconds: float


def packages_to_install(directory: Path = PACKAGE_DIR) -> int:
    """How many packages `npm ci` installs from the lockfile, without the omitted peer and optional ones."""
    lock = json.loads((directory / "package-lock.json").read_text())
    return sum(
        1
        for path, meta in lock.get("packages", {}).items()
        if path and not (meta.get("peer") or meta.get("optional") or meta.get("dev") or meta.get("devOptional"))
    )


def install_sidecar(home: Path, progress: Callable[[int, int, str], None] = lambda *_: None) -> Installed:
    """Install (or reinstall) the sidecar for this Cortask into `home`; `progress(done, total, line)`
    is called as npm fetches packages. Raises SidecarNotInstalled with what to do."""
    started = time.monotonic()
    node, npm = _tools()
    target = home_install_dir(home)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        for path in source_files():
            shutil.copy2(path, staging / path.name)
        total = packages_to_install(staging)
        progress(0, total, f"npm ci: {total} packages from the lockfile")
        _npm_ci(npm, staging, total, progress)
        baileys = verify_sidecar(node, staging)
        (staging / MANIFEST).write_text(
            json.dumps({"cortask": cortask_version(), "sources": sources_digest(), "baileys": baileys}) + "\n"
        )
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Installed(target, baileys, total, time.monotonic() - started)


def verify_sidecar(node: str, directory: Path) -> str:
    """The sidecar in `directory` starts and says hello with our protocol and the pinned Baileys."""
    pinned = pinned_baileys_version(directory)
    try:
        done = subprocess.run(
            [node, str(directory / "index.mjs")],
            cwd=directory,
            stdin=subprocess.DEVNULL,  # end of input: it says hello, then leaves
            capture_output=True,
            timeout=60,
            env={**child_environment(os.environ, ()), "CORTASK_SIDECAR_SPILL_DIR": str(directory)},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SidecarNotInstalled(
            f"the installed sidecar did not start ({exc}); run `cortask sidecar install`."
        ) from exc
    first = done.stdout.splitlines()[0] if done.stdout else b""
    try:
        hello = wire.parse(first)
    except wire.WireError:
        hello = None
    if not isinstance(hello, wire.Hello):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SidecarNotInstalled(
            f"the installed sidecar did not start (exit {done.returncode}: {' / '.join(tail) or 'no output'}); "
            "run `cortask sidecar install` again."
        )
    if hello.protocol != wire.PROTOCOL or hello.baileys != pinned:
        raise SidecarNotInstalled(
            f"the installed sidecar says protocol {hello.protocol} and Baileys {hello.baileys}, "
            f"but this Cortask needs {wire.PROTOCOL} and {pinned}: run `cortask sidecar install` again."
        )
    return hello.baileys


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "Node.js" if node is None else "npm"
        raise SidecarNotInstalled(
            f"{missing} is not installed: install Node {MIN_NODE_MAJOR} or newer with npm "
            "(e.g. `sudo apt-get install nodejs npm`), then run `cortask sidecar install`."
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < MIN_NODE_MAJOR:
        raise SidecarNotInstalled(f"Node {version} is too old: install Node {MIN_NODE_MAJOR} or newer.")
    return node, npm


def _npm_ci(npm: str, directory: Path, total: int, progress: Callable[[int, int, str], None]) -> None:
    argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=http"]
    env = child_environment(os.environ, NPM_VARIABLES)
    proc = subprocess.Popen(
        argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    fetched, tail = 0, list[str]()
    deadline = time.monotonic() + NPM_TIMEOUT_S
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        tail = [*tail[-9:], line]
        if _FETCHED.search(line):
            fetched += 1
            progress(min(fetched, total), total, line)
        if time.monotonic() > deadline:
            proc.kill()
    code = proc.wait()
    if code != 0:
        errors = [t for t in tail if " ERR! " in t or "error" in t.lower()] or tail
        raise SidecarNotInstalled(
            f"`npm ci` failed in {directory} (exit {code}): {' / '.join(errors[-3:])}. Check that the npm "
            "registry is reachable (or set NPM_CONFIG_REGISTRY), then run `cortask sidecar install` again."
        )
    progress(total, total, "npm ci: done")


def _replace(staging: Path, target: Path) -> None:
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
