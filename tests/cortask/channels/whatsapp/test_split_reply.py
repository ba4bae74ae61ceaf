"""Long replies in parts: where they are cut, in every script, and never inside a character."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from cortask.channels.whatsapp.parts import split_reply, utf16_length


def graphemes(text: str) -> list[str]:
    return [g for g in regex.findall(r"\X", text) if not g.isspace()]


@pytest.mark.parametrize(
    ("text", "limit", "parts"),
    [
        ("short", 100, ["short"]),
        ("  kept as it is \n", 100, ["  kept as it is \n"]),
        # paragraphs first, packed greedily
        ("One.\n\nTwo.\n\nThree.", 11, ["One.\n\nTwo.", "Three."]),
        ("First paragraph.\n  \nSecond one.", 20, ["First paragraph.", "Second one."]),
        # a paragraph too long: between its sentences
        ("Hi there. How are you? Fine!\n\nBye.", 20, ["Hi there.", "How are you? Fine!", "Bye."]),
        ("He said “stop.” Then left.", 16, ["He said “stop.”", "Then left."]),
        # a sentence too long: between words
        ("a b c d e f g h", 7, ["a b c d", "e f g h"]),
        # a word too long: between characters
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
        # Chinese and Japanese sentences end without a space
        ("你好。今天很好。我们走吧！", 8, ["你好。今天很好。", "我们走吧！"]),
        ("こんにちは。元気ですか？", 7, ["こんにちは。", "元気ですか？"]),
        # Arabic and Russian, cut between sentences
        ("مرحبا بك. كيف حالك؟ أنا بخير.", 12, ["مرحبا بك.", "كيف حالك؟", "أنا بخير."]),
        ("Привет. Как дела? Хорошо.", 10, ["Привет.", "Как дела?", "Хорошо."]),
        # emoji count two (UTF-16) and are never cut: skin tone, family (ZWJ), flag
        ("👍🏽👍🏽👍🏽", 8, ["👍🏽👍🏽", "👍🏽"]),
        ("👨‍👩‍👧‍👦👨‍👩‍👧‍👦", 11, ["👨‍👩‍👧‍👦", "👨‍👩‍👧‍👦"]),
        ("🇩🇪🇫🇷🇯🇵", 4, ["🇩🇪", "🇫🇷", "🇯🇵"]),
        # a letter with combining accents, and Devanagari conjuncts, stay whole
        ("e\u0301" * 5, 4, ["e\u0301e\u0301", "e\u0301e\u0301", "e\u0301"]),
        ("क्षत्रिय", 3, ["क्ष", "त्रि", "य"]),
    ],
)
def test_where_a_reply_is_cut(text: str, limit: int, parts: list[str]) -> None:
    assert split_reply(text, limit) == parts


def test_whatsapp_counts_as_javascript_does() -> None:
    assert utf16_length("abc") == 3
    assert utf16_length("👍") == 2
    assert utf16_length("👍🏽") == 4
    assert utf16_length("中") == 1


def test_a_reply_of_a_megabyte_goes_out_in_parts_of_at_most_the_limit_in_order() -> None:
    paragraph = "This is one sentence of a long answer. " * 40 + "\n\n"
    text = paragraph * 700  # about 1.1 million characters
    parts = split_reply(text, 65_536)
    assert 17 <= len(parts) <= 20
    assert all(utf16_length(p) <= 65_536 for p in parts)
    assert all(p.endswith("answer.") for p in parts)  # cut between paragraphs
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        split_reply("hi", 0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", " ", "\n", ".", "。", "\u00e9", "e\u0301", "\u0301", "👍", "🏽", "\u200d", "🇩", "中"]),
        max_size=200,
    ).map("".join),
    st.integers(min_value=4, max_value=60),
)
def test_nothing_is_lost_reordered_or_cut_inside_a_character(text: str, limit: int) -> None:
    parts = split_reply(text, limit)
    assert [g for p in parts for g in graphemes(p)] == graphemes(text)
    for part in parts:
        assert utf16_length(part) <= limit or len(graphemes(part)) == 1
        assert part == text or not part[-1].isspace()
