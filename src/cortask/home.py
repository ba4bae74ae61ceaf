"""Where Cortask keeps its state: ``$CORTASK_HOME``, by default ``~/.cortask``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["cortask_home", "gateway_token_file"]


def cortask_home(environ: Mapping[str, str] = os.environ) -> Path:
    home = environ.get("CORTASK_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cortask"


def gateway_token_file(home: Path) -> Path:
    """The gateway's token (0600): written by `cortask serve`, read by the CLI on the same machine."""
    return home / "gateway-token"
