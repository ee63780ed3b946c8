"""Peer text shown on a terminal: escape and control sequences are gone, the words stay."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_vectordb.peertext import printable

HOSTILE = {
    "clear the screen": "\x1b[2J\x1b[Hhello",
    "colours": "\x1b[1;31mhello\x1b[0m",
    "window title (OSC, BEL)": "\x1b]0;pwned\x07hello",
    "hyperlink (OSC 8, ST)": "\x1b]8;;https://evil.example\x1b\\hello\x1b]8;;\x1b\\",
    "8-bit CSI": "\x9b2Jhello",
    "8-bit OSC": "\x9d0;pwned\x9chello",
    "device control string": "\x1bPq#0;2;0;0;0\x1b\\hello",
    "keypad mode (two-character escape)": "\x1b=hello",
    "charset designation": "\x1b(0hello",
    "carriage return overwrite": "hello\r",
    "backspaces": "\x08\x08\x08hello",
    "bell and NUL": "\x07hel\x00lo",
    "right-to-left override": "\u202ehello\u202c",
    "bidi isolate": "\u2067hello\u2069",
    "unterminated CSI": "hello\x1b[",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_escape_sequences_and_controls_are_removed(text: str) -> None:
    shown = printable(text)
    assert "hello" in shown
    assert not any(unicodedata.category(c) == "Cc" for c in shown)
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    for payload in ("pwned", "evil", "#0;2"):
        assert payload not in shown


def test_ordinary_text_is_untouched() -> None:
    text = "Ωmega — naïve café: 3 < 4 & 5 > 2; tabs\tand\nnewlines stay, 日本語 too [1]."
    assert printable(text) == text


def test_newlines_and_tabs_can_be_removed_too() -> None:
    assert printable("a\tb\nc", keep="") == "abc"


@given(st.text())
def test_nothing_printable_ever_keeps_a_control_character(text: str) -> None:
    shown = printable(text, keep="")
    assert not any(unicodedata.category(c) == "Cc" for c in shown)
    assert printable(shown, keep="") == shown  # idempotent


def test_the_knowledge_tool_shows_peer_text_without_escapes() -> None:
    from tools.knowledge import KnowledgeHit, quote_hit

    hit = KnowledgeHit(
        "\x1b]0;pwned\x07bees \x1b[2Jmake honey", 0.9, "notes\x1b[31m.md", "0x" + "ab" * 20, "cd"
    )
    shown = quote_hit(hit)  # what chat prints after a tool call, and what the model reads
    assert "bees make honey" in shown
    assert 'source="notes.md"' in shown
    assert "\x1b" not in shown
    assert "pwned" not in shown
