"""The environment a child process starts with: an allow-list, never the service's whole environment.

The service's environment holds the gateway token and agent keys; a child (the Node sidecar, a
command agent) gets only what a program needs to run -- `BASE` (the search path, the home, the
user, the temporary directory, the time zone) and the locale (``LANG``, ``LC_*``) -- plus the names
its caller lists explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["BASE", "child_environment"]

BASE = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE")


def child_environment(environ: Mapping[str, str], names: Iterable[str] = ()) -> dict[str, str]:
    """From `environ`: `BASE`, the locale, and each of `names` that is set."""
    wanted = set(BASE) | set(names)
    return {name: value for name, value in environ.items() if name in wanted or name.startswith("LC_")}
