"""`noosphere chat` through a running node: the REPL here, every turn on the node.

The node already holds the model, the index and Swarm, so the chat starts at once.
Each line goes to the node's `/api/ask` with the conversation so far and the answer
streams back; Ctrl-C closes that request, which stops the node's turn. The
conversation is saved here, in the node home's store, as in the in-process chat.

What the node cannot do for a remote client: ask for a confirmation. Chain writes
and other destructive tools are therefore refused in this mode (the answer says so);
`noosphere --no-node chat` runs everything in this process instead.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.api.client import NodeClient
from agent.chat import ChatIO, Repl
from agent.conversations import ConversationStore
from agent.llm import ChatMessage

HELP = """commands (through the running node):
  /search TEXT     search the node's knowledge base
  /ingest PATH     add documents to it
  /reset           start a new conversation
  /quit            leave (Ctrl-D works too; Ctrl-C cancels an answer)
Chain writes and other actions that need your confirmation are refused here;
run `noosphere --no-node chat` for them."""


class RemoteTurnCancelled(Exception):
    """The owner cancelled the answer (Ctrl-C)."""


def _stream_turn(
    client: NodeClient,
    text: str,
    history: list[dict[str, str]],
    show: Callable[[str, dict[str, Any]], None],
    cancelled: threading.Event,
) -> dict[str, Any]:
    """Worker thread: one streamed turn; the report, or `RemoteTurnCancelled`."""
    events = client.ask_stream(text, history=history)
    try:
        for event, data in events:
            if cancelled.is_set():
                raise RemoteTurnCancelled
            if event == "report":
                return data
            show(event, data)
    finally:
        events.close()  # closes the connection: the node stops the turn
    raise RemoteTurnCancelled


class RemoteChat(Repl):
    def __init__(
        self,
        client: NodeClient,
        store: ConversationStore,
        io: ChatIO,
        conversation: int | None = None,
        history: list[ChatMessage] | None = None,
    ) -> None:
        self.client, self.store, self.io = client, store, io
        self.conversation = conversation
        self.history = history or []
        self._cancel: threading.Event | None = None

    def _cancel_turn(self) -> bool:
        if self._cancel is None:
            return False
        self._cancel.set()
        return True

    async def _turn_for(self, text: str) -> None:
        loop = asyncio.get_running_loop()

        def show(event: str, data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._show, event, data)

        history = [
            {"role": m.role, "content": m.content}
            for m in self.history
            if m.role in ("user", "assistant")
        ]
        self._cancel = threading.Event()
        self.io.write("noosphere> ")
        try:
            report = await asyncio.to_thread(
                _stream_turn, self.client, text, history, show, self._cancel
            )
        except RemoteTurnCancelled:
            self.io.write("\n[cancelled]\n")
            return
        finally:
            self._cancel = None
        await asyncio.sleep(0)  # let the last shown pieces print first
        self.io.write("\n")
        turn = [ChatMessage("user", text), ChatMessage("assistant", str(report.get("answer", "")))]
        if self.conversation is None:
            self.conversation = await self.store.create(text)
        await self.store.append(self.conversation, turn)
        self.history += turn

    def _show(self, event: str, data: dict[str, Any]) -> None:
        if event == "token":
            self.io.write(str(data.get("text", "")))
        elif event == "tool_call":
            args = json.dumps(data.get("arguments", {}))[:200]
            self.io.write(f"\n[{data.get('name')} {args}]\n")
        elif event == "tool_result":
            result = data.get("result") or {}
            shown = result.get("output") if result.get("ok") else f"error: {result.get('error')}"
            self.io.write(f"[-> {str(shown)[:500]}]\n")
        elif event == "notice":
            self.io.write(f"[{data.get('text', '')}]\n")

    async def _command(self, line: str) -> None:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name == "/help":
            self.io.write(HELP + "\n")
        elif name == "/reset":
            self.history, self.conversation = [], None
            self.io.write("new conversation\n")
        elif name == "/search" and arg:
            found = await asyncio.to_thread(self.client.search, arg, k=5)
            if not found["hits"]:
                self.io.write("no results (add documents with /ingest PATH)\n")
            for hit in found["hits"]:
                snippet = " ".join(str(hit["text"]).split())[:120]
                self.io.write(
                    f"  {hit['score']:.3f} {hit['source']}#{hit['position']}: {snippet}\n"
                )
        elif name == "/ingest" and arg:
            path = Path(arg).expanduser()
            if not path.exists():
                self.io.write(f"cannot ingest {arg}: no such file or directory\n")
                return
            report = await asyncio.to_thread(self.client.ingest_paths, [path])
            failed = report["files_failed"]
            self.io.write(
                f"{report['chunks_added']} chunk(s) added from {report['files_seen']} file(s)"
                f"{'; failed: ' + ', '.join(failed) if failed else ''}\n"
            )
        else:
            self.io.write(f"unknown command or missing argument: {line} (/help)\n")


async def run_remote_chat(
    client: NodeClient,
    data_dir: Path,
    *,
    resume: int | None = None,
    io: ChatIO | None = None,
) -> None:
    io = io or ChatIO()
    store = await ConversationStore.open(data_dir / "conversations.sqlite")
    try:
        history = await store.load(resume) if resume is not None else []
        status = await asyncio.to_thread(client.status)
        io.write(
            f"connected to the node at {client.url} ({status.get('model')}, "
            f"{status.get('index_size')} chunk(s)). Type a question, or /help.\n"
        )
        await RemoteChat(client, store, io, resume, history).run()
    finally:
        await store.aclose()
