"""The owner's switches on the page (issue #14), in Debian's Chromium (Playwright) against
`cortask serve` and wasim as processes: talking to the agent in one's own chat (with a reply
mark), pausing answers, and how groups are answered. Each switch does what it says, seen where a
person sees it: the owner's own chat in wasim, a contact's phone, the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from testkit.gateway import bearer
from testkit.page import chromium, link_by_qr, save_shot, serve_on_wasim, sim_request

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
EVE = "+4915100000666"
MAL = "+4915100000777"
CLI = "+4915100000888"
OWN = "15550001111"  # wasim's default account


@pytest.fixture
def product(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    with serve_on_wasim(tmp_path) as found:
        yield found


def _texts(control: str, phone: str, chat_prefix: str | None = None) -> list[str]:
    inbox = sim_request(control, "GET", f"/inbox?contact=%2B{phone.lstrip('+')}")
    return [
        str(x["text"])
        for x in inbox["inbox"]  # type: ignore[index]
        if x["type"] == "message"
        and x.get("text")
        and (chat_prefix is None or x.get("chat", "").startswith(chat_prefix))
    ]


def _wait_texts(control: str, phone: str, count: int, chat_prefix: str | None = None) -> list[str]:
    deadline = time.monotonic() + 30
    while len(texts := _texts(control, phone, chat_prefix)) < count:
        assert time.monotonic() < deadline, texts
        time.sleep(0.2)
    return texts


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "cortask", *args], env={**os.environ, "CORTASK_HOME": str(home)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def test_approving_needs_cortask_running(tmp_path: Path) -> None:
    """Without a gateway the CLI acts in-process, where nothing could answer the held message: it
    says so rather than spending the code."""
    done = subprocess.run(
        [sys.executable, "-m", "cortask", "whatsapp", "approve", "K7Q2M9"],
        env={**os.environ, "CORTASK_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Approving answers their message, which needs Cortask running: start `cortask serve`" in done.stderr


def test_the_owners_switches(product: tuple[str, str, Path]) -> None:
    url, control, home = product
    sim_request(control, "POST", "/contacts", {"phone": ADA, "name": "Ada"})
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url)
        url = page.url
        link_by_qr(page, control, home)
        page.get_by_test_id("contact-phone").fill(ADA)
        page.get_by_test_id("contact-add").click()
        expect(page.locator(f'[data-testid="contacts-table"] [data-phone="{ADA}"]')).to_be_visible()

        # Off by default; switched on with a mark, the owner's own chat is answered, marked.
        page.locator("#options summary").click()
        self_chat = page.get_by_test_id("setting-self-chat")
        expect(self_chat).not_to_be_checked()
        self_chat.check()
        page.get_by_test_id("setting-self-chat-prefix").fill("🤖 ")
        page.get_by_test_id("prefix-save").click()
        expect(page.get_by_test_id("settings-error")).to_have_text("")
        deadline = time.monotonic() + 10
        while httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["settings"]["self_chat_prefix"] != "🤖 ":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        sim_request(control, "POST", "/send", {"from": "self", "chat": "+" + OWN, "text": "hello me"})
        assert _wait_texts(control, OWN, 1, OWN) == ["🤖 Echo: hello me"]
        # In the activity the owner's own chat is theirs, not a number that is not a trusted contact.
        own_chat = page.locator('[data-testid="activity-chat"] .chat-name', has_text="your own chat")
        expect(own_chat.locator("strong")).to_have_text("You", timeout=10_000)
        expect(page.get_by_test_id("activity-list")).not_to_contain_text("not a trusted contact")
        save_shot(page, "owner-own-chat")

        # Pause answers: Ada gets nothing; the owner's /status still answers, and says so.
        page.get_by_test_id("setting-answers-paused").check()
        expect(page.get_by_test_id("setting-answers-paused")).to_be_checked()
        time.sleep(0.5)
        sim_request(control, "POST", "/send", {"from": ADA, "text": "anyone?"})
        sim_request(control, "POST", "/send", {"from": "self", "chat": "+" + OWN, "text": "/status"})
        status = _wait_texts(control, OWN, 2, OWN)[-1]
        assert "Answers are paused" in status
        assert _texts(control, ADA) == []
        # /resume from WhatsApp: the page's switch follows after a reload.
        sim_request(control, "POST", "/send", {"from": "self", "chat": "+" + OWN, "text": "/resume"})
        assert _wait_texts(control, OWN, 3, OWN)[-1] == "Answering again."
        page.reload()
        page.locator("#options summary").click()
        expect(page.get_by_test_id("setting-answers-paused")).not_to_be_checked()
        sim_request(control, "POST", "/send", {"from": ADA, "text": "now?"})
        assert _wait_texts(control, ADA, 1) == ["Echo: now?"]

        # Groups: how they are answered, and where.
        page.get_by_test_id("setting-answer-groups").check()
        page.get_by_test_id("setting-group-mode").select_option("always")
        page.get_by_test_id("setting-groups-allowed").fill("120363025246125486@g.us")
        page.get_by_test_id("groups-save").click()
        deadline = time.monotonic() + 10
        while True:
            settings = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["settings"]
            if settings["groups_allowed"] == ["120363025246125486@g.us"]:
                break
            assert time.monotonic() < deadline, settings
            time.sleep(0.1)
        assert settings["group_mode"] == "always" and settings["answer_groups"] and settings["self_chat"]
        save_shot(page, "owner-switches")

        # Strangers: with "Ask me about strangers" on, a stranger's message waits on the page (live),
        # and Approve / Reject do what /approve and /reject do.
        for phone, name in ((EVE, "Eve"), (MAL, "Mal")):
            sim_request(control, "POST", "/contacts", {"phone": phone, "name": name})
        page.get_by_test_id("setting-approvals").check()
        expect(page.get_by_test_id("setting-approvals")).to_be_checked()
        time.sleep(0.5)
        sim_request(control, "POST", "/send", {"from": EVE, "text": "hello, it's Eve"})
        sim_request(control, "POST", "/send", {"from": MAL, "text": "cheap stuff"})
        card = page.get_by_test_id("approvals-card")
        expect(card).to_be_visible(timeout=20_000)
        eve = card.locator('[data-testid="approval"]', has_text=EVE)
        mal = card.locator('[data-testid="approval"]', has_text=MAL)
        expect(eve).to_contain_text("hello, it's Eve", timeout=20_000)
        expect(mal).to_contain_text("cheap stuff")
        save_shot(page, "owner-approvals")
        assert _texts(control, EVE) == [] and _texts(control, MAL) == []
        eve.get_by_test_id("approval-approve").click()
        expect(eve).to_have_count(0)
        assert _wait_texts(control, EVE, 1) == ["Echo: hello, it's Eve"]
        mal.get_by_test_id("approval-reject").click()
        expect(card).to_be_hidden()
        sim_request(control, "POST", "/send", {"from": MAL, "text": "hello??"})
        time.sleep(1.5)
        assert _texts(control, MAL) == []
        contacts = {
            c["phone"]: c["permission"] for c in httpx.get(url + "api/whatsapp/contacts", headers=bearer(home)).json()
        }
        assert contacts.get(EVE) == "write" and MAL not in contacts

        # The CLI acts through the running gateway: the same list and the same approval.
        sim_request(control, "POST", "/contacts", {"phone": CLI, "name": "Cleo"})
        sim_request(control, "POST", "/send", {"from": CLI, "text": "from the terminal?"})
        expect(card.locator('[data-testid="approval"]', has_text=CLI)).to_be_visible(timeout=20_000)
        listed = json.loads(_cli(home, "whatsapp", "approvals", "--json").stdout)
        assert [(a["phone"], a["first_line"]) for a in listed] == [(CLI, "from the terminal?")]
        done = _cli(home, "whatsapp", "approve", listed[0]["code"], "--read")
        assert done.stderr.startswith(f"Approved {CLI} (read).")  # words for a person go to stderr
        assert _wait_texts(control, CLI, 1) == ["You have read-only access."]
        expect(card).to_be_hidden()
        page.get_by_test_id("setting-groups-allowed").fill("not a group")
        page.get_by_test_id("groups-save").click()
        expect(page.get_by_test_id("settings-error")).to_contain_text("is not a group id")
