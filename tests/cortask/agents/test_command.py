"""The command agent with real programs (this Python interpreter, /bin/sh): stdin, environment, exit, timeout."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cortask.agents import AgentError, CommandAgent, FailureKind, Session
from cortask.agents.command import command_argv, strip_one_newline

pytestmark = pytest.mark.e2e

if TYPE_CHECKING:
    from conftest import MakeSession

CHAT_VARIABLES = (
    "CORTASK_SESSION_ID",
    "CORTASK_WORKSPACE",
    "CORTASK_CHAT_JID",
    "CORTASK_SENDER_PHONE",
    "CORTASK_SENDER_NAME",
)


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(*pids: int, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {[pid for pid in pids if alive(pid)]}"
        await asyncio.sleep(0.02)


def pids_in(path: Path) -> list[int] | None:
    return [int(pid) for pid in path.read_text().split()] if path.exists() else None


async def read_pids(path: Path, within: float = 10.0) -> list[int]:
    deadline = time.monotonic() + within
    while (pids := pids_in(path)) is None:  # the command renames the file into place once written
        assert time.monotonic() < deadline, "the command never wrote its pids"
        await asyncio.sleep(0.02)
    return pids


# A command that starts a child, writes both pids to argv[1], then (unless argv[2] says "exit") sleeps;
# the child inherits stdout, so stdout stays open even when the parent exits.
SPAWNER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}\\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] != "exit":
    time.sleep(60)
"""


async def test_the_message_goes_to_stdin_and_the_chat_details_to_the_environment(session: Session) -> None:
    code = (
        "import json, os, sys\n"
        "text = sys.stdin.buffer.read().decode('utf-8')\n"
        f"print(json.dumps({{'text': text, **{{k: os.environ.get(k) for k in {CHAT_VARIABLES!r}}}}}))"
    )
    agent = CommandAgent(python(code))

    answer = json.loads(await agent.reply(session, "Grüße 👋\nsecond line"))

    assert answer == {
        "text": "Grüße 👋\nsecond line",
        "CORTASK_SESSION_ID": "whatsapp:4915123456789@s.whatsapp.net",
        "CORTASK_WORKSPACE": "default",
        "CORTASK_CHAT_JID": "4915123456789@s.whatsapp.net",
        "CORTASK_SENDER_PHONE": "+4915123456789",
        "CORTASK_SENDER_NAME": "Ada",
    }


async def test_unknown_sender_details_are_empty_and_the_given_environment_is_the_base(
    make_session: MakeSession,
) -> None:
    code = (
        "import os; print(repr(tuple(os.environ[k] for k in ('CORTASK_SENDER_PHONE', 'CORTASK_SENDER_NAME', 'MINE'))))"
    )
    environ = {"MINE": "kept", "CORTASK_SENDER_PHONE": "+1 stale", "PATH": os.environ.get("PATH", "")}
    agent = CommandAgent(python(code), environ=environ, pass_env=("MINE",))  # named: passed (issue #12)

    assert await agent.reply(make_session(phone=None, name=None), "hi") == repr(("", "", "kept"))


@pytest.mark.parametrize(
    ("printed", "reply"),
    [
        ("answer\n", "answer"),
        ("answer\n\n", "answer\n"),
        ("  indented answer\r\n", "  indented answer"),
        ("no newline", "no newline"),
        ("two\nlines\n", "two\nlines"),
    ],
)
async def test_stdout_is_the_reply_less_one_trailing_newline(session: Session, printed: str, reply: str) -> None:
    code = "import sys; sys.stdout.buffer.write(sys.argv[1].encode())"

    assert await CommandAgent(python(code, printed)).reply(session, "hi") == reply


async def test_a_string_command_is_split_into_words_and_run_without_a_shell(session: Session) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'import sys; print(sys.argv[1:])' '$HOME' '*' 'a b'"

    assert await CommandAgent(command).reply(session, "hi") == repr(["$HOME", "*", "a b"])


async def test_shell_true_runs_the_command_through_sh(session: Session) -> None:
    agent = CommandAgent('cat | tr a-z A-Z; printf " in %s" "$CORTASK_WORKSPACE"', shell=True)

    assert await agent.reply(session, "hello") == "HELLO in default"


async def test_a_large_message_is_piped_through_without_deadlock(session: Session) -> None:
    code = "import sys; data = sys.stdin.read(); print(len(data)); print('x' * len(data), file=sys.stderr)"

    assert await CommandAgent(python(code), timeout=10).reply(session, "y" * 1_000_000) == "1000000"


async def test_a_command_that_does_not_read_stdin_still_answers(session: Session) -> None:
    assert await CommandAgent(python("print('ok')")).reply(session, "z" * 1_000_000) == "ok"


async def test_a_non_zero_exit_is_an_error_with_the_code_and_the_first_line_of_stderr(session: Session) -> None:
    code = "import sys; print('partial'); print('\\nmodel not loaded\\nTraceback...', file=sys.stderr); sys.exit(3)"

    with pytest.raises(AgentError) as caught:
        await CommandAgent(python(code)).reply(session, "hi")

    error = caught.value
    assert error.kind is FailureKind.PROCESS
    assert error.provider == "command"
    assert "exited with code 3" in str(error)
    assert "stderr: model not loaded" in str(error)
    assert "Traceback" not in str(error)


async def test_a_command_killed_by_a_signal_says_which(session: Session) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"

    with pytest.raises(AgentError, match="killed by signal SIGTERM; it wrote nothing to stderr"):
        await CommandAgent(python(code)).reply(session, "hi")


@pytest.mark.parametrize("printed", ["", "\n", "  \n\t\n"])
async def test_empty_output_is_an_error(session: Session, printed: str) -> None:
    code = "import sys; sys.stdout.write(sys.argv[1]); print('nothing to say', file=sys.stderr)"

    with pytest.raises(AgentError) as caught:
        await CommandAgent(python(code, printed)).reply(session, "hi")

    assert caught.value.kind is FailureKind.PROCESS
    assert "printed no reply (exit code 0); stderr: nothing to say" in str(caught.value)


async def test_a_missing_program_is_an_error_not_an_oserror(session: Session, tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"\(agent\) could not be started \(No such file or directory\)"):
        await CommandAgent([str(tmp_path / "agent")]).reply(session, "hi")


@pytest.mark.parametrize("parent", ["sleeps", "exit"])
async def test_the_timeout_kills_the_command_and_its_children_promptly(
    session: Session, tmp_path: Path, parent: str
) -> None:
    pid_file = tmp_path / "pids"
    agent = CommandAgent(python(SPAWNER, str(pid_file), parent), timeout=1.5)

    started = time.monotonic()
    with pytest.raises(AgentError) as caught:
        await agent.reply(session, "hi")
    elapsed = time.monotonic() - started

    assert caught.value.kind is FailureKind.TIMEOUT
    assert "did not finish within 1.5 s and was stopped" in str(caught.value)
    assert elapsed < 3.5
    await wait_gone(*await read_pids(pid_file))


async def test_a_cancelled_reply_kills_the_command_and_its_children(session: Session, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    agent = CommandAgent(python(SPAWNER, str(pid_file), "sleeps"), timeout=60)
    task = asyncio.create_task(agent.reply(session, "hi"))
    pids = await read_pids(pid_file)
    assert all(alive(pid) for pid in pids)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_gone(*pids, within=2.0)


def test_command_argv() -> None:
    assert command_argv("python3 agent.py --name 'my bot'") == ["python3", "agent.py", "--name", "my bot"]
    assert command_argv(["python3", "agent.py"]) == ["python3", "agent.py"]
    assert command_argv("echo $HOME | cat", shell=True) == ["/bin/sh", "-c", "echo $HOME | cat"]
    assert command_argv(["echo", "a b"], shell=True) == ["/bin/sh", "-c", "echo 'a b'"]
    for empty in ("", "   ", []):
        with pytest.raises(ValueError, match="the command is empty"):
            command_argv(empty)
    with pytest.raises(ValueError, match="cannot be split"):
        command_argv("python3 'unclosed")


def test_strip_one_newline() -> None:
    assert strip_one_newline("a\n\n") == "a\n"
    assert strip_one_newline("a\r\n") == "a"
    assert strip_one_newline("a") == "a"


def test_repr_and_invalid_arguments() -> None:
    assert "agent.py" in repr(CommandAgent("python3 agent.py", timeout=5))
    with pytest.raises(ValueError, match="timeout"):
        CommandAgent("python3 agent.py", timeout=0)


async def test_the_program_gets_an_allow_list_and_only_the_variables_its_settings_name(
    make_session: MakeSession,
) -> None:
    # issue #12: never the service's whole environment (the gateway token, agent keys)
    from cortask.agents import AgentConfig, build_agent

    environ = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "CORTASK_TOKEN": "gateway-token-" + "g" * 40,
        "OPENAI_API_KEY": "sk-proj-not-for-the-command",
        "ANTHROPIC_API_KEY": "sk-ant-not-for-the-command",
        "TOOL_API_KEY": "sk-named-so-passed",
    }
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    agent = build_agent(AgentConfig("command", {"command": python(code), "env": ["TOOL_API_KEY"]}), environ)

    seen = json.loads(await agent.reply(make_session(), "hi"))

    assert seen["TOOL_API_KEY"] == "sk-named-so-passed" and seen["LANG"] == "C.UTF-8"
    assert not {"CORTASK_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & set(seen)
