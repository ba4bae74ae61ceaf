"""The CLI's own log: `--log-format json` writes one JSON object a line (masked like the text
format), and the log rotates instead of growing for months."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.paths import ROOT

from cortask.cli import _private_log_handler
from cortask.redact import JsonFormatter


@pytest.mark.e2e
def test_log_format_json_writes_json_lines(tmp_path: Path) -> None:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "cortask", "--log-format", "json", "whatsapp", "logout"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "home" / "cli.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries and {"time", "level", "logger", "pid", "message"} <= set(entries[0])
    assert any(e["logger"] == "cortask.whatsapp" and "not linked" in e["message"] for e in entries), entries
    wrong = subprocess.run(
        [sys.executable, "-m", "cortask", "--log-format", "xml", "whatsapp", "status"],
        env=env, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert wrong.returncode == 2 and "use text or json" in wrong.stderr


def test_json_lines_are_masked() -> None:
    record = logging.LogRecord(
        "cortask.agents", logging.WARNING, __file__, 1, "calling %s", ("https://bob:hunter2@example.org/v1",), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and "hunter2" not in entry["message"] and "example.org" in entry["message"]


def test_cli_log_rotates_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "cli.log"
    handler = _private_log_handler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        line = "x" * 999
        for _ in range(2_100):  # just over the 2 MB the log may reach
            handler.emit(logging.LogRecord("cortask", logging.INFO, __file__, 1, line, None, None))
    finally:
        handler.close()
    rotated = path.with_name("cli.log.1")
    assert rotated.exists() and path.stat().st_size < 2_000_000 and rotated.stat().st_size <= 2_000_000
    assert path.stat().st_mode & 0o777 == 0o600 and rotated.stat().st_mode & 0o777 == 0o600
    assert not path.with_name("cli.log.2").exists()  # one old copy: the log's size is bounded
