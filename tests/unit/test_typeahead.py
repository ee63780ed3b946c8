"""A y/N question is answered only by what is typed after it appears.

A real pseudo-terminal: text typed ahead (a "y" meant for something else) sits in the
terminal's input queue; the question must discard it and read the next line.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import sys
from collections.abc import Iterator
from typing import TextIO

import pytest

from agent.chat import ChatIO
from agent.owner import discard_typeahead


@pytest.fixture
def terminal() -> Iterator[tuple[int, TextIO]]:
    """(master fd, the slave as a text stream): what we type, what the program reads."""
    master, slave = pty.openpty()
    reader = open(slave, encoding="utf-8", closefd=True)  # noqa: SIM115 - closed below
    try:
        yield master, reader
    finally:
        reader.close()
        os.close(master)


def test_typed_ahead_input_is_discarded(terminal: tuple[int, TextIO]) -> None:
    master, reader = terminal
    os.write(master, b"y\n")
    discard_typeahead(reader)
    os.write(master, b"n\n")
    assert reader.readline() == "n\n"


def test_without_the_flush_the_stale_answer_would_be_read(terminal: tuple[int, TextIO]) -> None:
    master, reader = terminal  # the control: shows the test above can fail
    os.write(master, b"y\n")
    os.write(master, b"n\n")
    assert reader.readline() == "y\n"


def test_not_a_terminal_is_left_alone() -> None:
    pipe = io.StringIO("y\n")
    discard_typeahead(pipe)
    assert pipe.readline() == "y\n"


class _Screen(io.StringIO):
    """The chat's output; the person types "n" only once the question is on screen."""

    def __init__(self, master: int) -> None:
        super().__init__()
        self.master = master

    def write(self, text: str) -> int:
        written = super().write(text)
        if "Proceed? [y/N]" in text:
            os.write(self.master, b"n\n")
        return written


@pytest.mark.asyncio
async def test_the_chat_question_ignores_a_y_typed_before_it(
    terminal: tuple[int, TextIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    master, reader = terminal
    monkeypatch.setattr(sys, "stdin", reader)
    os.write(master, b"y\n")  # typed while the model was still thinking
    chat = ChatIO(out=_Screen(master))
    confirmed = await asyncio.wait_for(chat.confirm("Send 100 ETH to 0xabc?"), timeout=10)
    assert confirmed is False
