"""Where Cortask keeps its state: ``$CORTASK_HOME``, by default ``~/.cortask``.

Everything we create there is the owner's alone: directories 0700, files 0600, and a file or
directory found with a looser mode (an older version, a copy, a umask) is tightened when opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cortask_home", "gateway_token_file", "private_dir", "private_file"]


def cortask_home(environ: Mapping[str, str] = os.environ) -> Path:
    home = environ.get("CORTASK_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cortask"


def gateway_token_file(home: Path) -> Path:
    """The gateway's token (0600): written by `cortask serve`, read by the CLI on the same machine."""
    return home / "gateway-token"


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner can enter (created when missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask, and an old one may be looser
    return path


def private_file(path: Path) -> Path:
    """`path` as a file only its owner can read (created empty when missing), its directory private too."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
