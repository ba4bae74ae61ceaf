"""An agent that is a local program: the message on its stdin, its stdout the reply.

The program's environment is an allow-list (`cortask.childenv`: PATH, HOME, the locale...) plus the
variables its ``env`` setting names -- never the service's whole environment, which holds the gateway
token and agent keys. The chat's details are added:
``CORTASK_SESSION_ID``, ``CORTASK_WORKSPACE``, ``CORTASK_CHAT_JID``, ``CORTASK_SENDER_PHONE`` and
``CORTASK_SENDER_NAME`` (empty when unknown). The message is written to stdin as UTF-8, without a
trailing newline. The reply is stdout decoded as UTF-8 with one trailing newline removed.

The command is an argv list, or a string split like a shell would split words (`shlex.split`) but run
without a shell: no variables, globs or pipes unless ``shell=True`` asks for ``/bin/sh -c``. The program
runs in a new session, so its process group can be killed whole: when the timeout passes, or when the
reply is cancelled, the program and every child it started are killed with SIGKILL. A non-zero exit
status, a signal, or a reply with nothing but whitespace in it is an `AgentError` quoting the exit code
and the first line of stderr. POSIX only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from cortask.agents.base import Agent, AgentError, FailureKind, Session, fail, short
from cortask.agents.bounds import MAX_REPLY_BYTES, cut_reply, read_bounded
from cortask.childenv import child_environment
from cortask.redact import mask_text

log = logging.getLogger("cortask.agents")

DEFAULT_TIMEOUT = 60.0


def command_argv(command: str | Sequence[str], *, shell: bool = False) -> list[str]:
    """The argv that runs `command`: split like shell words, or handed to ``/bin/sh -c`` when `shell`."""
    if isinstance(command, str):
        if shell:
            argv = ["/bin/sh", "-c", command] if command.strip() else []
        else:
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"the command {command!r} cannot be split into words: {exc}") from None
    else:
        argv = [str(arg) for arg in command]
        if shell and argv:
            argv = ["/bin/sh", "-c", shlex.join(argv)]
    if not argv or not argv[0]:
        raise ValueError("the command is empty: set it to the program to run, e.g. 'python3 my_agent.py'")
    return argv


def strip_one_newline(text: str) -> str:
    """`text` without one trailing newline (``\\n`` or ``\\r\\n``): what ``print`` added, and no more."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class CommandAgent(Agent):
    provider = "command"

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cwd: str | Path | None = None,
        shell: bool = False,
        environ: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        """`environ` holds the allow-listed variables and `pass_env` (the service's own by default)."""
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.argv = command_argv(command, shell=shell)
        self.timeout = float(timeout)
        self.cwd = Path(cwd) if cwd is not None else None
        self.shell = shell
        self._environ = environ
        self.pass_env = tuple(pass_env)
        self._name = Path(self.argv[0]).name if not shell else "/bin/sh -c"
        self.max_reply_bytes = max_reply_bytes  # stdout read; beyond it the reply is cut, the program stopped

    def __repr__(self) -> str:
        return f"CommandAgent(argv={mask_text(repr(self.argv))}, timeout={self.timeout:g}, cwd={self.cwd!r})"

    def environment(self, session: Session) -> dict[str, str]:
        """The program's environment for a message in `session`."""
        env = child_environment(os.environ if self._environ is None else self._environ, self.pass_env)
        env.update(
            CORTASK_SESSION_ID=session.session_id,
            CORTASK_WORKSPACE=session.workspace,
            CORTASK_CHAT_JID=session.chat_jid,
            CORTASK_SENDER_PHONE=session.sender_phone or "",
            CORTASK_SENDER_NAME=session.sender_name or "",
        )
        return env

    async def reply(self, session: Session, text: str) -> str:
        log.debug("command agent (%s) answering in %s", self._name, session.session_id)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.environment(session),
                cwd=self.cwd,
                start_new_session=True,  # its own process group, so a timeout can kill its children too
            )
        except OSError as exc:
            raise self._fail(
                f"could not be started ({exc.strerror or exc}); check the command and its working directory",
                session,
            ) from None
        finished = False
        try:
            async with asyncio.timeout(self.timeout):
                stdout, over, stderr = await self._talk(process, text)
            finished = True
        except TimeoutError:
            raise self._fail(
                f"did not finish within {self.timeout:g} s and was stopped; make it faster or raise its timeout",
                session,
                kind=FailureKind.TIMEOUT,
            ) from None
        finally:
            if not finished:  # timed out or cancelled: nothing of it may outlive the reply
                await _kill_group(process)
        if over:
            log.warning("command agent (%s) printed more than %d bytes; the reply was cut", self._name, len(stdout))
            return cut_reply(stdout, self.max_reply_bytes)
        code = process.returncode
        said = mask_text(short(stderr.decode("utf-8", errors="replace")))
        stderr_part = f"; stderr: {said}" if said else "; it wrote nothing to stderr"
        if code != 0:
            how = (
                f"was killed by signal {_signal_name(-code)}"
                if code is not None and code < 0
                else f"exited with code {code}"
            )
            raise self._fail(f"failed: it {how}{stderr_part}", session)
        answer = strip_one_newline(stdout.decode("utf-8", errors="replace"))
        if not answer.strip():
            raise self._fail(f"printed no reply (exit code 0){stderr_part}", session)
        return answer

    async def _talk(self, process: asyncio.subprocess.Process, text: str) -> tuple[bytes, bool, bytes]:
        """Write the message, read stdout up to the bound and stderr up to 64 KiB (the rest of
        stderr is read and dropped); a program that prints more than the bound is stopped."""
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        stdin, stdout, stderr = process.stdin, process.stdout, process.stderr

        async def feed() -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.write(text.encode("utf-8"))
                await stdin.drain()
                stdin.close()

        async def out() -> tuple[bytes, bool]:
            data, over = await read_bounded(stdout, self.max_reply_bytes)
            if over:
                # It may print forever: stop it, then drop what is left in the pipe (asyncio sees
                # the process end only once its pipes reach their end).
                _signal_group(process)
                while await stdout.read(64 * 1024):
                    pass
            return data, over

        async def err() -> bytes:
            kept, more = await read_bounded(stderr, 64 * 1024)
            while more and await stderr.read(64 * 1024):
                pass
            return kept

        (data, over), said, _ = await asyncio.gather(out(), err(), feed())
        await process.wait()
        return data, over, said

    def _fail(self, sentence: str, session: Session, *, kind: FailureKind = FailureKind.PROCESS) -> AgentError:
        return fail(f"The command agent ({self._name}) {sentence}.", provider=self.provider, kind=kind, session=session)


def _signal_group(process: asyncio.subprocess.Process) -> None:
    try:
        # The group id is the program's pid (a new session); it lives on while any child is in it.
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    _signal_group(process)
    # Reap it, shielded: a cancelled reply must still not leave a zombie or an open pipe behind.
    await asyncio.shield(process.wait())


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
