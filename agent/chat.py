"""`noosphere chat`: the personal-assistant REPL over the agent loop.

Each line is a turn of the agent loop (tools, then a streamed answer); lines starting
with `/` are commands (`/help`). A bare arithmetic expression goes straight to the
calculator, so exact answers never depend on the model. Ctrl-C cancels the turn in
progress and returns to the prompt; Ctrl-D or `/quit` leaves. Destructive tools (chain
writes) ask at the prompt and run only on "y". Conversations are saved as they go and
can be resumed with `--resume ID`.

With no endpoints configured, Swarm is the embedded dev node and, when the node has a
key, the chain is py-evm in this process with the contracts deployed and the node's
account funded, so a new user can chat at once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from agent.config import Config
from agent.conversations import ConversationStore
from agent.identity import NodeIdentity
from agent.llm import ChatMessage, LLMCore, SamplingParams, ToolCall
from agent.loop import Agent, TurnEvent
from agent.services import (
    Knowledge,
    SwarmAccess,
    ask_peers,
    known_peers,
    my_inbox,
    open_knowledge,
    open_swarm,
)
from tools import ToolContext, ToolError, ToolRegistry, builtin_registry
from tools.calculator import evaluate
from tools.knowledge import (
    KnowledgeHit,
    PeerSearch,
    hits_from_network,
    local_search,
    make_knowledge_tool,
)

HELP = """commands:
  /tools           the tools the assistant can use
  /peers           peers known from network.peers and the registry
  /ingest PATH     add documents to the knowledge base
  /search TEXT     search the knowledge base
  /reset           start a new conversation
  /quit            leave (Ctrl-D works too; Ctrl-C cancels an answer)"""
DEV_FUNDS_WEI = 100 * 10**18


@dataclass
class ChatIO:
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    async def ask(self, prompt: str) -> str | None:
        """A line from the user, or None at the end of input."""
        self.write(prompt)
        line = await asyncio.to_thread(sys.stdin.readline)
        return line.rstrip("\n") if line else None

    async def confirm(self, summary: str) -> bool:
        """Show exactly what a destructive tool would do; True only for "y" or "yes"."""
        answer = await self.ask(f"\n{summary}\nProceed? [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")


@asynccontextmanager
async def open_chain_tools(
    cfg: Config, home: Path, node: NodeIdentity | None
) -> AsyncIterator[tuple[list[Any], str]]:
    """The chain tools for this node and a line saying where the chain is."""
    if node is None:
        yield [], "chain tools off: no node key (run `noosphere init`)"
        return
    from chain.client import ChainClient, close_web3, make_web3
    from chain.deploy import Deployment, deploy_all
    from chain.devchain import EmbeddedChain
    from chain.transactor import Transactor
    from tools.chain_tool import make_chain_tools

    if cfg.network.eth_rpc_url:
        deployment_file = home / "deployment.json"
        if not deployment_file.is_file():
            yield [], f"chain tools off: {deployment_file} is missing"
            return
        client = await ChainClient.connect(
            cfg.network.eth_rpc_url, node.account, Deployment.load(deployment_file)
        )
        where = cfg.network.eth_rpc_url
    else:
        embedded = EmbeddedChain()
        await embedded.fund(node.address, DEV_FUNDS_WEI)
        transactor = await Transactor.create(
            make_web3(embedded.endpoint, timeout_s=60), node.account
        )
        try:
            deployment = await deploy_all(transactor)
        finally:
            await close_web3(transactor.w3)
        client = await ChainClient.connect(embedded.endpoint, node.account, deployment)
        where = "embedded py-evm chain (contracts deployed, 100 ETH for this node)"
    try:
        yield make_chain_tools(client), f"chain: {where}"
    finally:
        await client.aclose()


class ChatSession:
    def __init__(
        self,
        *,
        agent: Agent,
        store: ConversationStore,
        knowledge: Knowledge,
        swarm: SwarmAccess,
        cfg: Config,
        home: Path,
        node: NodeIdentity | None,
        io: ChatIO,
        conversation: int | None = None,
        history: list[ChatMessage] | None = None,
    ) -> None:
        self.agent, self.store, self.knowledge, self.swarm = agent, store, knowledge, swarm
        self.cfg, self.home, self.node, self.io = cfg, home, node, io
        self.conversation = conversation
        self.history = history or []
        self._turn: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            while True:
                line = await self.io.ask("\nyou> ")
                if line is None or line.strip() == "/quit":
                    self.io.write("\nbye\n")
                    return
                if not line.strip():
                    continue
                if line.startswith("/"):
                    await self._command(line.strip())
                else:
                    await self._turn_for(line)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _interrupt(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        else:
            self.io.write("\n(Ctrl-C cancels an answer; /quit leaves)\nyou> ")

    async def _turn_for(self, text: str) -> None:
        context = ToolContext(local_owner=True, confirm=self.io.confirm)
        direct = None
        try:
            evaluate(text)
            direct = ToolCall("calculator", {"expression": text})
        except (ToolError, ValueError, ArithmeticError, SyntaxError):
            pass
        self.io.write("noosphere> ")
        self._turn = asyncio.create_task(
            self.agent.run_turn(
                self.history, text, context, on_event=self._show, direct_call=direct
            )
        )
        try:
            result = await self._turn
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
            for t in self.agent.registry.list():
                self.io.write(f"  {t.name}: {t.description.splitlines()[0]}\n")
        elif name == "/reset":
            self.history, self.conversation = [], None
            self.io.write("new conversation\n")
        elif name == "/search" and arg:
            query = (await self.knowledge.embedder.embed([arg])).vectors[0]
            hits = self.knowledge.index.search(query, 5)
            if not hits:
                self.io.write("no results (add documents with /ingest PATH)\n")
            for hit in hits:
                snippet = " ".join(hit.chunk.text.split())[:120]
                self.io.write(
                    f"  {hit.score:.3f} {hit.chunk.source}#{hit.chunk.position}: {snippet}\n"
                )
        elif name == "/ingest" and arg:
            try:
                report = await self.knowledge.ingestor(self.swarm).ingest([Path(arg).expanduser()])
            except (OSError, ValueError) as exc:
                self.io.write(f"cannot ingest {arg}: {exc}\n")
                return
            self.io.write(
                f"{report.chunks_added} chunk(s) added from {report.files_seen} file(s)"
                f"{'; failed: ' + ', '.join(report.files_failed) if report.files_failed else ''}\n"
            )
        elif name == "/peers":
            me = bytes.fromhex(self.node.address[2:]) if self.node else b""
            directory = await known_peers(self.swarm, self.cfg, me, self.home / "deployment.json")
            if not directory.peers:
                self.io.write("no peers known (set network.peers or register on chain)\n")
            for address, info in directory.peers.items():
                self.io.write(f"  0x{address.hex()}  {info.record.chunks} chunk(s)\n")
        else:
            self.io.write(f"unknown command or missing argument: {line} (/help)\n")


async def _peer_search(
    cfg: Config, home: Path, node: NodeIdentity, knowledge: Knowledge, swarm: SwarmAccess
) -> PeerSearch:
    """The knowledge tool's network half: a signed query to the known peers."""
    me = bytes.fromhex(node.address[2:])
    inbox = await my_inbox(swarm, me)
    model = knowledge.embedder.model_id

    async def search_peers(vector: npt.NDArray[np.float32], k: int) -> list[KnowledgeHit]:
        directory = await known_peers(swarm, cfg, me, home / "deployment.json")
        result = await ask_peers(cfg, swarm, node, inbox, directory, vector, model, k)
        return hits_from_network(result)

    return search_peers


async def run_chat(
    cfg: Config,
    home: Path,
    model_path: Path,
    node: NodeIdentity | None,
    *,
    resume: int | None = None,
    io: ChatIO | None = None,
) -> None:
    io = io or ChatIO()
    data_dir = cfg.data_dir(home)
    async with AsyncExitStack() as stack:
        io.write("starting: model, knowledge base, Swarm")
        core = await stack.enter_async_context(await LLMCore.load(model_path, cfg.model))
        knowledge = await stack.enter_async_context(open_knowledge(cfg, data_dir))
        swarm = await stack.enter_async_context(open_swarm(cfg, data_dir))
        chain_tools, chain_line = await stack.enter_async_context(open_chain_tools(cfg, home, node))
        store = await ConversationStore.open(data_dir / "conversations.sqlite")
        stack.push_async_callback(store.aclose)
        registry: ToolRegistry = builtin_registry(deny=[home])
        peers = await _peer_search(cfg, home, node, knowledge, swarm) if node else None
        search = local_search(knowledge.embedder, knowledge.index, peers=peers)
        registry.register(make_knowledge_tool(search))
        for t in chain_tools:
            registry.register(t)
        agent = Agent(core, registry, params=SamplingParams.from_config(cfg.model))
        history = await store.load(resume) if resume is not None else []
        io.write(
            f"\nready. {chain_line}. tools: {', '.join(t.name for t in registry.list())}.\n"
            "Type a question, or /help.\n"
        )
        session = ChatSession(
            agent=agent, store=store, knowledge=knowledge, swarm=swarm, cfg=cfg, home=home,
            node=node, io=io, conversation=resume, history=history,
        )  # fmt: skip
        await session.run()
