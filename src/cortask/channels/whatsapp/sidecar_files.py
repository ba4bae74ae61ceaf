"""Where the Node sidecar's files are, and whether an installed copy is the one this Cortask needs.

The sidecar's sources and lockfile ship inside the Python package (`sidecar/`). Its packages are
installed either there, in a checkout (`scripts/setup` runs `npm ci` in the source tree), or in
`$CORTASK_HOME/sidecar/<cortask version>/` (`cortask sidecar install`, or the first command that
needs it). One rule picks the sidecar that runs, in this order:

1. `CORTASK_SIDECAR_DIR`, when set (its packages must be installed);
2. the package's own `sidecar/`, when its `node_modules` exists (a checkout after scripts/setup);
3. `$CORTASK_HOME/sidecar/<version>/`, when its manifest says it holds exactly these sources and
   a verified install of this lockfile.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cortask.channels.whatsapp.errors import SidecarError
from cortask.home import cortask_home

PACKAGE_DIR = Path(__file__).resolve().parent / "sidecar"
MANIFEST = ".cortask-sidecar.json"
DISTRIBUTION = "cortask-whatsapp"
MIN_NODE_MAJOR = 20


def cortask_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree without an install
        return "0+source"


def source_files(directory: Path = PACKAGE_DIR) -> list[Path]:
    """What an install copies: the sidecar's modules, its manifest, lockfile and npm settings."""
    names = {"package.json", "package-lock.json", ".npmrc"}
    return sorted(p for p in directory.iterdir() if p.is_file() and (p.suffix == ".mjs" or p.name in names))


def sources_digest(directory: Path = PACKAGE_DIR) -> str:
    digest = hashlib.sha256()
    for path in source_files(directory):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def home_install_dir(home: Path) -> Path:
    return home / "sidecar" / cortask_version()


def read_manifest(directory: Path) -> dict[str, object] | None:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def home_install_current(directory: Path) -> bool:
    """The copy in `directory` was installed and verified from exactly this package's sources."""
    manifest = read_manifest(directory)
    return (
        manifest is not None
        and manifest.get("sources") == sources_digest()
        and (directory / "node_modules" / "baileys" / "package.json").is_file()
    )


def candidate_dirs(home: Path, environ: Mapping[str, str] = os.environ) -> list[tuple[str, Path]]:
    """The places the rule above looks, in its order, each with how it got there."""
    found: list[tuple[str, Path]] = []
    if environ.get("CORTASK_SIDECAR_DIR"):
        found.append(("CORTASK_SIDECAR_DIR", Path(environ["CORTASK_SIDECAR_DIR"])))
    if (PACKAGE_DIR / "node_modules").is_dir():
        found.append(("the source tree", PACKAGE_DIR))
    install = home_install_dir(home)
    if home_install_current(install):
        found.append(("$CORTASK_HOME", install))
    return found


# Finding the sidecar that runs, apart from running it: `cortask serve` checks it is installed
# before saying ready, without loading the sidecar protocol (issue #18).
class SidecarNotInstalled(SidecarError):
    pass


@dataclass(frozen=True, slots=True)
class SidecarInstall:
    directory: Path
    node: str
    baileys_version: str


def pinned_baileys_version(directory: Path = PACKAGE_DIR) -> str:
    return str(json.loads((directory / "package.json").read_text())["dependencies"]["baileys"])


def locate_sidecar(home: Path | None = None) -> SidecarInstall:
    """Find Node >= 20 and an installed sidecar whose Baileys matches the pinned version."""
    node = shutil.which("node")
    if node is None:
        raise SidecarNotInstalled(
            "Node.js is not installed: install Node 20 or newer (with npm), then run `cortask sidecar install`."
        )
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise SidecarNotInstalled(f"cannot run {node} --version ({exc}); install Node 20 or newer.") from exc
    if major < MIN_NODE_MAJOR:
        raise SidecarNotInstalled(f"Node {version} is too old: the sidecar needs Node {MIN_NODE_MAJOR} or newer.")
    pinned = pinned_baileys_version()
    # The rule (sidecar_files): CORTASK_SIDECAR_DIR, else the source tree once set up, else $CORTASK_HOME's.
    for _, directory in candidate_dirs(home if home is not None else cortask_home()):
        installed = directory / "node_modules" / "baileys" / "package.json"
        if installed.exists():
            found = json.loads(installed.read_text())["version"]
            if found != pinned:
                raise SidecarNotInstalled(
                    f"the sidecar in {directory} has Baileys {found}, but this version of Cortask needs {pinned}: "
                    "run `cortask sidecar install` (in a checkout: scripts/setup)."
                )
            return SidecarInstall(directory, node, found)
    raise SidecarNotInstalled(
        f"the WhatsApp sidecar is not installed (Baileys {pinned}): run `cortask sidecar install` "
        "(in a checkout: scripts/setup)."
    )
