"""The owner's WhatsApp commands (issue #14), parsed: every command, its arguments, and a sentence
that says what to type for each mistake."""

from __future__ import annotations

import pytest

from cortask.app.commands import HELP, Command, Problem, agent_text, contacts_text, parse, status_text
from cortask.app.models import Agent, Contact
from cortask.app.status import stored_status  # noqa: F401  (the real Status model is built below)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/help", Command("help")),
        ("/HELP", Command("help")),
        ("  /status ", Command("status")),
        ("/status@cortask", Command("status")),
        ("/pause", Command("pause")),
        ("/resume", Command("resume")),
        ("/contacts", Command("contacts")),
        ("/agent", Command("agent")),
        ("/reset", Command("reset")),
        ("/allow +4915123456789", Command("allow", number="+4915123456789", permission="write")),
        (
            "/allow +49 151 2345-6789 admin Ada Lovelace",
            Command("allow", number="+49 151 2345-6789", permission="admin", name_arg="Ada Lovelace"),
        ),
        ("/allow 0151 234 read", Command("allow", number="0151 234", permission="read")),
        ("/allow +4915123456789 Ada", Command("allow", number="+4915123456789", permission="write", name_arg="Ada")),
        ("/deny +49 (151) 23456789", Command("deny", number="+49 (151) 23456789")),
        ("/approve k7q2", Command("approve", code="K7Q2", permission="write")),
        ("/approve K7Q2 read", Command("approve", code="K7Q2", permission="read")),
        ("/reject K7Q2", Command("reject", code="K7Q2")),
    ],
)
def test_commands(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "sentence", "with_help"),
    [
        ("/frobnicate", "There is no command /frobnicate.", True),
        ("/", "That is not a command.", True),
        ("/allow", "/allow needs a phone number. Send /allow +49 151 23456789 write Ada", False),
        ("/allow Ada", "/allow needs a phone number.", False),
        ("/deny", "/deny needs a phone number. Send /deny +49 151 23456789.", False),
        ("/deny +491 please", "/deny takes only a number.", False),
        ("/approve", "/approve needs the code from the notice.", False),
        ("/approve K7Q2 admin", "/approve takes the code and, optionally, read or write.", False),
        ("/reject", "/reject needs the code from the notice.", False),
        ("/reject K7Q2 now", "/reject takes only the code.", False),
        ("/pause now", "/pause takes nothing after it: send just /pause.", False),
    ],
)
def test_mistakes_say_what_to_type(text: str, sentence: str, with_help: bool) -> None:
    problem = parse(text)
    assert isinstance(problem, Problem)
    assert problem.sentence.startswith(sentence)
    assert problem.help is with_help


def test_help_names_every_command() -> None:
    for name in (
        "help",
        "status",
        "pause",
        "resume",
        "contacts",
        "allow",
        "deny",
        "agent",
        "reset",
        "approve",
        "reject",
    ):
        assert f"/{name}" in HELP


def test_answers() -> None:
    agent = Agent(
        provider="openai", settings={"model": "llama3.2", "api_key": "********"}, active="openai", override=False
    )
    assert agent_text(agent) == "Agent: openai, model llama3.2.\nSettings: api_key=********, model=llama3.2."
    assert contacts_text([]).startswith("No trusted contacts yet.")
    ada = Contact(phone="+4915123456789", name="Ada", permission="write", written="+49 151 23456789")
    assert contacts_text([ada]) == "Trusted contacts (1):\nAda +49 151 23456789: write"


def test_status_text_says_link_last_message_paused_and_agent() -> None:
    from cortask.app.models import Status

    status = Status.model_validate(
        {
            "state": "open", "label": "Connected", "tone": "ok", "sentence": "Answering messages.", "action": None,
            "actions": [], "running": True, "linked": True, "account": "15550001111:3@s.whatsapp.net",
            "enabled": True, "paused": False, "sandbox": True, "in_use_by": None, "last_inbound_at": 1000.0,
            "terminal": False, "needs_relink": False,
        }
    )  # fmt: skip
    agent = Agent(provider="echo", settings={}, active="echo", override=False)
    text = status_text(status, answers_paused=True, agent=agent, now=1125.0)
    assert text.splitlines() == [
        "WhatsApp: Connected. Answering messages.",
        "Linked as 15550001111.",
        "Last message: 2 min ago.",
        "Answers are paused: only commands are answered (/resume to answer again).",
        "Agent: echo.",
    ]
