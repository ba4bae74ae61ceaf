"""Talking to a gateway started as a process the way a user does: with the token it keeps in
`$CORTASK_HOME/gateway-token` (the CLI's way) or the URL it printed (the browser's way)."""

from __future__ import annotations

from pathlib import Path

from cortask.home import gateway_token_file


def gateway_token(home: Path) -> str:
    return gateway_token_file(home).read_text().strip()


def bearer(home: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway_token(home)}"}


def printed_url(line: str) -> str:
    """The `http://…/?token=…` address in the start-up line."""
    return next(word for word in line.split() if word.startswith("http") and "?token=" in word)
