"""Conversations persist in SQLite and resume in order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.conversations import ConversationNotFound, ConversationStore
from agent.llm import ChatMessage

pytestmark = pytest.mark.asyncio


async def test_create_append_resume_list(tmp_path: Path) -> None:
    path = tmp_path / "data" / "conversations.sqlite"
    store = await ConversationStore.open(path)
    first = await store.create("  What is   Swarm?  ")
    await store.append(
        first, [ChatMessage("user", "What is Swarm?"), ChatMessage("assistant", "A")]
    )
    await store.append(first, [ChatMessage("tool", "Result of calculator:\n2")])
    second = await store.create("x" * 500)
    await store.aclose()

    reopened = await ConversationStore.open(path)
    messages = await reopened.load(first)
    assert messages == [
        ChatMessage("user", "What is Swarm?"),
        ChatMessage("assistant", "A"),
        ChatMessage("tool", "Result of calculator:\n2"),
    ]
    listed = await reopened.list()
    assert [c.id for c in listed] == [second, first]  # most recently updated first
    assert listed[1].title == "What is Swarm?"
    assert listed[1].messages == 3
    assert len(listed[0].title) == 60
    await reopened.aclose()


async def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    store = await ConversationStore.open(tmp_path / "c.sqlite")
    conversation = await store.create("hi")
    await store.append(conversation, [ChatMessage("user", "hi")])
    with pytest.raises(ConversationNotFound):
        await store.load(999)
    with pytest.raises(ConversationNotFound):
        await store.append(999, [ChatMessage("user", "lost")])
    with pytest.raises(ValueError, match="role"):
        await store.append(conversation, [ChatMessage("admin", "x")])  # type: ignore[arg-type]
    hostile = "'); DROP TABLE messages; --" + "\x00" * 3 + "é" * 10_000
    await store.append(conversation, [ChatMessage("user", hostile)])
    assert (await store.load(conversation))[-1].content == hostile
    assert len(await store.load(conversation)) == 2
    await store.aclose()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
