"""`noosphere chat`: the personal-assistant REPL over `agent.assistant`.

Each line is one assistant turn (routing, retrieval, tools, then a streamed answer);
lines starting with `/` are commands (`/help`). Arithmetic goes straight to the
calculator and chain reads straight to the chain, so exact answers never depend on
the model. Ctrl-C cancels the turn in progress and returns to the prompt; Ctrl-D,
`/quit` or SIGTERM leaves (SIGTERM cancels the turn in progress first). Destructive
tools (chain writes) ask at the prompt and run only on "y". Conversations are saved
as they go and can be resumed with `--resume ID`.

With no endpoints configured, Swarm is the embedded dev node and, when the node has a
key, the chain is py-evm in this process with the contracts deployed and the node's
account funded (started the first time a question needs it), so a new user can chat
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agent.assistant import Assistant, open_chain_tools
from agent.config import Config
from agent.conversations import ConversationStore
from agent.errors import NoosphereError
from agent.home import NodeHome
from agent.llm import ChatMessage
from agent.loop import TurnEvent
from agent.node import IdentitySource, Node
from agent.owner import discard_typeahead
from tools import ToolContext

__all__ = ["ChatIO", "ChatSession", "open_chain_tools", "run_chat"]

HELP = """commands:
  /tools           the tools the assistant can use
  /peers           peers known from network.peers and the registry
  /ingest PATH     add documents to the knowledge base
  /search TEXT     search the knowledge base
  /reset           start a new conversation
  /adapter         the LoRA adapters, * marking those this chat uses
  /adapter NAME[,NAME] [SCALE]   answer with these adapters (scale: each one's own)
  /adapter off|default           the base model alone | the node's default adapters
  /quit            leave (Ctrl-D works too; Ctrl-C cancels an answer)"""
# Failures the user can act on: printed as one line, and the session goes on.
REPORTED_ERRORS = (NoosphereError, OSError)  # the node translated the rest


def one_line(exc: BaseException) -> str:
    """An error as one terminal line: its type and message, whitespace folded."""
    text = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class ChatIO:
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def ask(self, prompt: str) -> str | None:
        """A line from the user, or None at the end of input."""
        self.write(prompt)
        line = await read_line(sys.stdin)
        return line.rstrip("\n") if line else None

    async def confirm(self, summary: str) -> bool:
        """Show exactly what a destructive tool would do; True only for "y" or "yes".

        Input typed before the question is discarded first (on a terminal), so only
        an answer typed after seeing it counts.
        """
        discard_typeahead(sys.stdin)
        answer = await self.ask(f"\n{summary}\nProceed? [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")


async def read_line(stream: TextIO) -> str:
    """`stream.readline()` in a daemon thread: a read still blocked when the chat ends
    (SIGTERM at the prompt) cannot hold the process open, as an executor thread would."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def settle(text: str) -> None:
        if not line.done():
            line.set_result(text)

    def read() -> None:
        try:
            text = stream.readline()
        except (OSError, ValueError):  # a closed or broken input: the end of it
            text = ""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, text)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await line


async def unless_stopped(stop: asyncio.Event, read: Awaitable[str | None]) -> str | None:
    """What `read` gives, or None as soon as `stop` is set."""
    reading = asyncio.ensure_future(read)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if stop.is_set():
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return None
    return reading.result()


class Repl:
    """The chat loop: a prompt, `/commands`, turns; Ctrl-C cancels the turn running.

    Subclasses answer lines (`_turn_for`), run commands (`_command`) and cancel the
    turn in progress (`_cancel_turn`, False when none runs)."""

    io: ChatIO

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def terminate() -> None:
            stop.set()
            self._cancel_turn()

        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        loop.add_signal_handler(signal.SIGTERM, terminate)
        try:
            while True:
                line = await unless_stopped(stop, self.io.ask("\nyou> "))
                if line is None or line.strip() == "/quit" or stop.is_set():
                    self.io.write("\nbye\n")
                    return
                if not line.strip():
                    continue
                try:
                    if line.startswith("/"):
                        await self._command(line.strip())
                    else:
                        await self._turn_for(line)
                except REPORTED_ERRORS as exc:  # one line; the session goes on
                    self.io.write(f"\nerror: {one_line(exc)}\n")
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    def _interrupt(self) -> None:
        if not self._cancel_turn():
            self.io.write("\n(Ctrl-C cancels an answer; /quit leaves)\nyou> ")

    def _cancel_turn(self) -> bool:
        raise NotImplementedError

    async def _turn_for(self, text: str) -> None:
        raise NotImplementedError

    async def _command(self, line: str) -> None:
        raise NotImplementedError


class ChatSession(Repl):
    def __init__(
        self,
        *,
        node: Node,
        assistant: Assistant,
        store: ConversationStore,
        io: ChatIO,
        conversation: int | None = None,
        history: list[ChatMessage] | None = None,
    ) -> None:
        self.node, self.assistant, self.store, self.io = node, assistant, store, io
        self.conversation = conversation
        self.history = history or []
        self._turn: asyncio.Task[Any] | None = None
        self.adapters: dict[str, float] | None = None  # LoRA selection; None: the defaults

    def _cancel_turn(self) -> bool:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
            return True
        return False

    async def _turn_for(self, text: str) -> None:
        context = ToolContext(local_owner=True, confirm=self.io.confirm)
        self.io.write("noosphere> ")
        self._turn = asyncio.create_task(
            self.node.ask(
                text,
                history=self.history,
                context=context,
                on_event=self._show,
                adapters=self.adapters,
            )
        )
        try:
            result = (await self._turn).result
        except asyncio.CancelledError:
            self.io.write("\n[cancelled]\n")
            return
        finally:
            self._turn = None
        self.io.write("\n")
        if self.conversation is None:
            self.conversation = await self.store.create(text)
        await self.store.append(self.conversation, result.messages)
        self.history += result.messages

    def _show(self, event: TurnEvent) -> None:
        if event.kind == "token":
            self.io.write(event.text)
        elif event.kind == "tool_call" and event.call is not None:
            args = json.dumps(event.call.arguments)[:200]
            self.io.write(f"\n[{event.call.name} {args}]\n")
        elif event.kind == "tool_result" and event.result is not None:
            shown = event.result.output if event.result.ok else f"error: {event.result.error}"
            self.io.write(f"[-> {shown[:500]}]\n")
        elif event.kind == "notice":
            self.io.write(f"[{event.text}]\n")

    async def _command(self, line: str) -> None:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        if name == "/help":
            self.io.write(HELP + "\n")
        elif name == "/tools":
            for tool_name, purpose in self.assistant.tool_purposes().items():
                self.io.write(f"  {tool_name}: {purpose}\n")
        elif name == "/reset":
            self.history, self.conversation = [], None
            self.io.write("new conversation\n")
        elif name == "/search" and arg:
            found = await self.node.search(arg, k=5)
            if not found.hits:
                self.io.write("no results (add documents with /ingest PATH)\n")
            for hit in found.hits:
                snippet = " ".join(hit.text.split())[:120]
                self.io.write(f"  {hit.score:.3f} {hit.source}#{hit.position}: {snippet}\n")
        elif name == "/ingest" and arg:
            try:
                report = await self.node.ingest_paths([Path(arg).expanduser()])
            except (OSError, ValueError) as exc:
                self.io.write(f"cannot ingest {arg}: {exc}\n")
                return
            self.io.write(
                f"{report.chunks_added} chunk(s) added from {report.files_seen} file(s)"
                f"{'; failed: ' + ', '.join(report.files_failed) if report.files_failed else ''}\n"
            )
        elif name == "/adapter":
            from agent.adapters import AdapterRegistry, adapter_command

            registry = AdapterRegistry(self.node.home.adapter_registry_file)
            shown, self.adapters = await adapter_command(
                arg, await self.node.core(), registry, self.adapters
            )
            self.io.write(shown)
        elif name == "/peers":
            directory = await self.node.peers(refresh=True)
            if not directory.peers:
                self.io.write("no peers known (set network.peers or register on chain)\n")
            for address, info in directory.peers.items():
                self.io.write(f"  0x{address.hex()}  {info.record.chunks} chunk(s)\n")
        else:
            self.io.write(f"unknown command or missing argument: {line} (/help)\n")


async def run_chat(
    cfg: Config,
    home: Path,
    model_path: Path,
    identity: IdentitySource,
    *,
    resume: int | None = None,
    io: ChatIO | None = None,
) -> None:
    io = io or ChatIO()
    io.write("starting: model, knowledge base")
    async with await Node.open(
        cfg, NodeHome(home), identity=identity, model_path=model_path, preload=("assistant",)
    ) as node:
        assistant = await node.assistant()
        store = await ConversationStore.open(node.data_dir / "conversations.sqlite")
        try:
            history = await store.load(resume) if resume is not None else []
            io.write(
                f"\nready. {assistant.chain_line}. tools: {', '.join(assistant.tool_names())}.\n"
                "Type a question, or /help.\n"
            )
            session = ChatSession(
                node=node, assistant=assistant, store=store, io=io, conversation=resume,
                history=history,
            )  # fmt: skip
            await session.run()
        finally:
            await store.aclose()
