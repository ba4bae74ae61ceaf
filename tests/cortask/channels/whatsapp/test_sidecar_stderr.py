"""The sidecar's stderr is read in bounded chunks: one huge log line (Baileys logs whole stanzas)
neither stops the reader nor is held whole in memory. A real child process writes it."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from cortask.channels.whatsapp.sidecar import STDERR_KEEP, log_stderr

pytestmark = pytest.mark.e2e  # starts a process

# Eight megabytes on one line, then a pino record and a plain line, as the sidecar would log them.
CHILD = r"""
import json, sys
sys.stderr.write('{"level":30,"msg":"stanza","node":"' + "x" * (8 * 1024 * 1024) + '"}\n')
sys.stderr.write(json.dumps({"level": 50, "msg": "stream errored out"}) + "\n")
sys.stderr.write("plain text after it\n")
sys.stderr.write("no newline at the end")
sys.stderr.flush()
"""


async def test_a_multi_megabyte_log_line_does_not_stop_the_reader(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cortask.whatsapp.baileys")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, stderr=asyncio.subprocess.PIPE)
    assert child.stderr is not None
    await asyncio.wait_for(log_stderr(child.stderr), 30)
    assert await child.wait() == 0  # it never blocked on a full pipe
    messages = [r.getMessage() for r in caplog.records if r.name == "cortask.whatsapp.baileys"]
    assert len(messages) == 4
    assert "cut" in messages[0] and str(8 * 1024 * 1024 + 37) in messages[0]
    assert len(messages[0]) < STDERR_KEEP
    assert messages[1].startswith("stream errored out")
    assert [r.levelno for r in caplog.records if r.getMessage() == messages[1]] == [logging.WARNING]
    assert messages[2:] == ["plain text after it", "no newline at the end"]
