"""Conversations on disk: SQLite under the data directory, resumable by id.

One row per message, in order; a conversation's title is its first user message
(shortened). SQLite runs in WAL mode with synchronous=NORMAL, so a crash loses at
most the last transaction. All calls run on a worker thread (sqlite3 blocks).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from agent.errors import NoosphereError
from agent.llm import ChatMessage, Role

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
"""
ROLES = frozenset(get_args(Role))
TITLE_CHARS = 60


class ConversationNotFound(NoosphereError):
    exit_status = 2


@dataclass(frozen=True)
class ConversationInfo:
    id: int
    title: str
    updated: float
    messages: int


class ConversationStore:
    """Create with `await ConversationStore.open(path)`; close with `aclose()`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> ConversationStore:
        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(SCHEMA)
            return db

        return cls(await asyncio.to_thread(connect))

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._db.close)

    async def create(self, first_message: str) -> int:
        title = " ".join(first_message.split())[:TITLE_CHARS] or "(untitled)"
        now = time.time()
        row = await self._run(
            "INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
            (title, now, now),
        )
        return row

    async def append(self, conversation: int, messages: Sequence[ChatMessage]) -> None:
        """Add `messages` after the conversation's last one, in one transaction."""
        if any(m.role not in ROLES for m in messages):
            raise ValueError("unknown message role")

        def write() -> None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if (
                    db.execute(
                        "SELECT 1 FROM conversations WHERE id = ?", (conversation,)
                    ).fetchone()
                    is None
                ):
                    raise ConversationNotFound(f"no conversation {conversation}")
                (last,) = db.execute(
                    "SELECT COALESCE(MAX(seq), -1) FROM messages WHERE conversation = ?",
                    (conversation,),
                ).fetchone()
                db.executemany(
                    "INSERT INTO messages (conversation, seq, role, content) VALUES (?, ?, ?, ?)",
                    [
                        (conversation, last + 1 + i, m.role, m.content)
                        for i, m in enumerate(messages)
                    ],
                )
                db.execute(
                    "UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation)
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        async with self._lock:
            await asyncio.to_thread(write)

    async def load(self, conversation: int) -> list[ChatMessage]:
        def read() -> list[ChatMessage]:
            if (
                self._db.execute(
                    "SELECT 1 FROM conversations WHERE id = ?", (conversation,)
                ).fetchone()
                is None
            ):
                raise ConversationNotFound(f"no conversation {conversation}")
            rows = self._db.execute(
                "SELECT role, content FROM messages WHERE conversation = ? ORDER BY seq",
                (conversation,),
            ).fetchall()
            return [ChatMessage(role, content) for role, content in rows]

        async with self._lock:
            return await asyncio.to_thread(read)

    async def list(self, limit: int = 50) -> list[ConversationInfo]:
        def read() -> list[ConversationInfo]:
            rows = self._db.execute(
                "SELECT c.id, c.title, c.updated, COUNT(m.seq) FROM conversations c "
                "LEFT JOIN messages m ON m.conversation = c.id "
                "GROUP BY c.id ORDER BY c.updated DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [ConversationInfo(*row) for row in rows]

        async with self._lock:
            return await asyncio.to_thread(read)

    async def _run(self, sql: str, params: tuple[object, ...]) -> int:
        def execute() -> int:
            cursor = self._db.execute(sql, params)
            return int(cursor.lastrowid or 0)

        async with self._lock:
            return await asyncio.to_thread(execute)
