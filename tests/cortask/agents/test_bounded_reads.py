"""Reads from agents are bounded (issue #13): a program that prints megabytes (or forever), a
webhook body that is huge or a decompression bomb, a model that runs to its token limit. Over the
bound the reply is cut with a note, and Cortask goes on. Real processes and a real local server."""

from __future__ import annotations

import resource
import sys
import zlib
from typing import Any

import pytest
from aiohttp import web
from conftest import LocalServer, Recorded

from cortask.agents import AnthropicAgent, CommandAgent, OpenAICompatAgent, Session, WebhookAgent
from cortask.agents.bounds import MAX_REPLY_BYTES, cut_reply, read_bounded, reply_prefix_from_json

CUT = "[The answer was cut here:"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture
def session() -> Session:
    return Session(session_id="s1", workspace="default", chat_jid="4915123456789@s.whatsapp.net")


# -- pure parts --------------------------------------------------------------------------------------


def test_a_cut_reply_says_so_and_never_ends_inside_a_character() -> None:
    cut = cut_reply("日本語".encode() * 10, 10)
    assert cut.startswith("日本語") and not cut.startswith("日本語日")  # 10 bytes: three characters, one dropped
    assert CUT in cut and "10 bytes" in cut
    assert "1 MB" in cut_reply(b"x" * (MAX_REPLY_BYTES + 1))


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b'{"reply": "hello \\"world\\" and more', 'hello "world" and more'),
        (b'{"reply": "caf\\u00e9 ol\\u00', "café ol"),
        (b'{"id": 1, "text": "line\\nnext\\', "line\nnext"),
        (b'{"reply": "complete"}', "complete"),
        (b'{"other": "no reply here', None),
    ],
)
def test_the_start_of_a_reply_is_read_from_a_json_body_cut_short(body: bytes, start: str | None) -> None:
    assert reply_prefix_from_json(body) == start


# -- the command agent -------------------------------------------------------------------------------


@pytest.mark.e2e  # starts processes
@pytest.mark.parametrize(
    "program",
    [
        "import sys; sys.stdout.write('word ' * 2_000_000)",  # ten megabytes, then it exits
        "import sys\nwhile True: sys.stdout.write('forever ' * 1000)",  # never stops printing
    ],
)
async def test_a_program_that_prints_megabytes_gives_a_cut_reply(program: str, session: Session) -> None:
    agent = CommandAgent([sys.executable, "-c", program], timeout=30)
    before = _rss_mb()
    reply = await agent.reply(session, "tell me")
    assert CUT in reply and "1 MB" in reply
    assert MAX_REPLY_BYTES - 16 <= len(reply.split("\n\n[")[0].encode()) <= MAX_REPLY_BYTES
    assert _rss_mb() - before < 50  # read no further than the bound
    # and the agent still answers the next message
    assert await CommandAgent([sys.executable, "-c", "print('ok')"]).reply(session, "again") == "ok"


@pytest.mark.e2e
async def test_a_program_that_floods_stderr_still_answers(session: Session) -> None:
    program = "import sys; sys.stderr.write('noise ' * 3_000_000); print('the answer')"
    assert await CommandAgent([sys.executable, "-c", program], timeout=30).reply(session, "hi") == "the answer"


# -- the webhook -------------------------------------------------------------------------------------


def _gzip_bomb(megabytes: int) -> bytes:
    """{"reply": "aaaa…"} of `megabytes` MB, gzip-compressed to a few hundred kilobytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [packer.compress(b'{"reply": "')]
    block = b"a" * (1024 * 1024)
    chunks += [packer.compress(block) for _ in range(megabytes)]
    chunks.append(packer.compress(b'"}'))
    chunks.append(packer.flush())
    return b"".join(chunks)


@pytest.mark.parametrize("compressed", [False, True])
async def test_a_huge_webhook_body_gives_a_cut_reply(compressed: bool, server: LocalServer, session: Session) -> None:
    megabytes = 512 if compressed else 8
    body = _gzip_bomb(megabytes) if compressed else b'{"reply": "' + b"a" * (megabytes << 20) + b'"}'
    if compressed:
        assert len(body) < 2 << 20  # a bomb: small on the wire, half a gigabyte unpacked

    async def answer(_: Recorded) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", **({"Content-Encoding": "gzip"} if compressed else {})}
        return web.Response(body=body, headers=headers)

    server.route("/hook", answer)
    agent = WebhookAgent(f"{server.url}/hook", timeout=30)
    before = _rss_mb()
    reply = await agent.reply(session, "hi")
    assert reply.startswith("aaaa") and CUT in reply
    assert len(reply) < MAX_REPLY_BYTES + 200
    assert _rss_mb() - before < 100  # never unpacked whole
    server.respond("/hook", {"reply": "small again"})
    assert await agent.reply(session, "and now?") == "small again"


# -- models ------------------------------------------------------------------------------------------


async def test_an_openai_answer_cut_at_max_tokens_says_so(server: LocalServer, session: Session) -> None:
    completion: dict[str, Any] = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "It is"}}],
    }  # fmt: skip
    server.respond("/v1/chat/completions", completion)
    agent = OpenAICompatAgent(model="m", api_key="k", base_url=f"{server.url}/v1", max_retries=0)
    try:
        reply = await agent.reply(session, "long story?")
    finally:
        await agent.aclose()
    assert reply.startswith("It is") and CUT in reply and "4096 tokens" in reply
    assert server.requests[0].json["max_tokens"] == 4096  # a default bound is always asked


async def test_an_anthropic_answer_cut_at_max_tokens_says_so(server: LocalServer, session: Session) -> None:
    message = {
        "id": "m1", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "Once upon"}], "stop_reason": "max_tokens", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1024},
    }  # fmt: skip
    server.respond("/v1/messages", message)
    agent = AnthropicAgent(model="c", api_key="k", base_url=server.url, max_retries=0)
    try:
        reply = await agent.reply(session, "a story")
    finally:
        await agent.aclose()
    assert reply.startswith("Once upon") and CUT in reply and "1024 tokens" in reply


async def test_read_bounded_stops_at_the_bound() -> None:
    class Stream:
        def __init__(self) -> None:
            self.served = 0

        async def read(self, n: int = -1) -> bytes:
            self.served += n
            return b"x" * n

    stream = Stream()
    data, more = await read_bounded(stream, 1000, chunk=300)
    assert (len(data), more) == (1000, True) and stream.served == 1001
