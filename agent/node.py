"""`Node`: one node's components, opened once, shared by every use, closed together.

    async with await Node.open(cfg, home, identity=read_key) as node:
        report = await node.search("who pays for storage?", k=5)
        turn = await node.ask("What is 2^64 - 1?")

The components and their lifetimes are `agent.runtime.wiring.Wiring`'s: each opens on
first use, under its own lock so that concurrent requests open it once (the language
model, the knowledge base, Swarm access, the inbox and peer directory, chain clients).
`Node` adds what the node does with them: the assistant (model, knowledge, tools,
router), embedding, local and network search, ingestion, asks (the owner's, and
agent-to-agent over Swarm) and serving peers. A one-shot CLI command therefore pays
only for what it touches, and `noosphere node` opens everything once and keeps it.

The node is where the packages' errors meet the user: `SwarmError`, `VectorDBError`
and `ChainError` leave `Node`'s methods as `ServiceError` with the component named
(`agent.runtime.errors.translated`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Config
from agent.errors import ConfigError
from agent.home import NodeHome
from agent.runtime.errors import translated
from agent.runtime.search import FoundChunk, SearchReport, merge
from agent.runtime.wiring import IdentitySource, Wiring

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from agent.assistant import Assistant, TurnReport
    from agent.llm import ChatMessage
    from agent.loop import TurnEvent
    from agent.runtime.serving import AskHandler, ServingInfo
    from swarm_vectordb.asks import PeerReply
    from swarm_vectordb.ingest import IngestReport
    from swarm_vectordb.network import ServeStats
    from tools import ToolContext

__all__ = ["IdentitySource", "Node"]

log = logging.getLogger(__name__)

DOCUMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")
DOCUMENTS_DIR = "documents"  # texts ingested through the API live here, under the data dir


class Node(Wiring):
    """The node's components and what a user or a peer can ask of them. Use `open`."""

    _assistant: Assistant | None = None  # built on first use, by `assistant`

    @classmethod
    async def open(
        cls,
        cfg: Config,
        home: NodeHome,
        *,
        identity: IdentitySource = lambda: None,
        model_path: Path | None = None,
        deployment_file: Path | None = None,
        preload: Sequence[str] = (),
    ) -> Node:
        """A node; `preload` names components to open now ("core", "knowledge", "swarm",
        "assistant"), the rest open on first use."""
        node = cls(
            cfg, home, identity=identity, model_path=model_path, deployment_file=deployment_file
        )
        try:
            for part in preload:
                await getattr(node, part)()
        except BaseException:
            await node.aclose()
            raise
        return node

    async def assistant(self) -> Assistant:
        """Model, knowledge, tools and router; network search opens Swarm on first use."""
        core = await self.core()
        knowledge = await self.knowledge()
        async with self._lock("assistant"):
            if self._assistant is None:
                from agent.assistant import Assistant

                self._assistant = Assistant.assemble(
                    self.cfg,
                    self.home.root,
                    core,
                    knowledge,
                    identity=self.identity,
                    stack=self._stack,
                    peers=self._search_peers,
                    ask_peer=self._ask_peer,
                )
            return self._assistant

    # ------------------------------------------------------------ what the node does

    async def embed(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Unit-norm embeddings of `texts` and the number of tokens they took."""
        knowledge = await self.knowledge()
        with translated("embedding"):
            result = await knowledge.embedder.embed(list(texts))
        tokens = await asyncio.to_thread(knowledge.chunker.count_tokens, texts)
        return result.vectors, tokens

    async def search(
        self,
        text: str,
        *,
        k: int,
        network: bool = False,
        fan_out: int | None = None,
        deadline_s: float | None = None,
    ) -> SearchReport:
        """Local search; with `network`, the known peers' answers too, merged."""
        knowledge = await self.knowledge()
        with translated("search"):
            query = (await knowledge.embedder.embed([text])).vectors[0]
            local = [
                FoundChunk(
                    "local", h.chunk.text, h.score, h.chunk.ref, h.chunk.source, h.chunk.position
                )
                for h in await asyncio.to_thread(knowledge.index.search, query, k)
            ]
        if not network:
            return SearchReport(text, local)
        found = await self._network_search(query, k, fan_out=fan_out, deadline_s=deadline_s)
        remote = [
            FoundChunk("0x" + p.hex(), h.text, h.score, h.ref, h.source, None)
            for p, h in found.hits
        ]
        directory = await self.peers()
        return SearchReport(text, merge([*local, *remote], k), found, len(directory.peers))

    async def _network_search(
        self,
        vector: npt.NDArray[np.float32],
        k: int,
        *,
        fan_out: int | None = None,
        deadline_s: float | None = None,
    ) -> Any:
        from agent.runtime.peering import ask_peers

        knowledge = await self.knowledge()
        swarm = await self.swarm()
        node = self.require_identity("a network search")
        inbox = await self.inbox()
        directory = await self.peers()
        with translated("network search"):
            return await ask_peers(
                self.cfg, swarm, node, inbox, directory, vector, knowledge.embedder.model_id,
                k, fan_out=fan_out, deadline_s=deadline_s,
            )  # fmt: skip

    async def _search_peers(self, vector: npt.NDArray[np.float32], k: int) -> list[Any]:
        """The assistant's network retrieval (its `PeerSearch`)."""
        from tools.knowledge import hits_from_network

        return hits_from_network(await self._network_search(vector, k))

    async def ingest_paths(
        self,
        paths: Sequence[Path],
        *,
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> IngestReport:
        """Chunk, store on Swarm, embed and index files and directories."""
        from swarm_vectordb.chunking import DocumentError

        knowledge = await self.knowledge()
        swarm = await self.swarm()
        try:
            with translated("ingest"):
                return await knowledge.ingestor(swarm).ingest(list(paths), on_progress=on_progress)
        except DocumentError as exc:
            raise ConfigError("paths", str(exc)) from None

    async def ingest_text(self, name: str, text: str) -> IngestReport:
        """Keep `text` as the document `name` under the data dir, and ingest it."""
        if not DOCUMENT_NAME.fullmatch(name) or name.strip(" .") != name.strip():
            raise ConfigError("name", "a document name is 1-128 letters, digits, . _ - or space")
        if not text.strip():
            raise ConfigError("text", "the document is empty")
        folder = self.data_dir / DOCUMENTS_DIR
        path = folder / name
        if path.suffix.lower() not in (".md", ".txt"):
            path = path.with_name(path.name + ".txt")

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text, encoding="utf-8")
            partial.replace(path)

        await asyncio.to_thread(write)
        return await self.ingest_paths([path])

    async def ask(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        context: ToolContext | None = None,
        on_event: Callable[[TurnEvent], None] | None = None,
        network: bool = False,
        adapters: Mapping[str, float] | None = None,
    ) -> TurnReport:
        """One assistant turn for the owner (or, with a peer's `context`, for a peer)."""
        from tools import ToolContext

        assistant = await self.assistant()
        with translated("ask"):
            return await assistant.answer(
                list(history),
                question,
                context or ToolContext(local_owner=True),
                on_event=on_event,
                network=network,
                adapters=adapters,
            )

    async def ask_peer(self, address: bytes, question: str) -> PeerReply:
        """Ask the node at `address` `question` over Swarm; its signed reply (the text
        is the peer's, untrusted: show it with `tools.ask_peer.show_reply`)."""
        with translated(f"asking 0x{address.hex()}"):
            return await self._ask_peer(address, question)

    async def _ask_peer(self, address: bytes, question: str) -> PeerReply:
        """`ask_peer` with the Swarm-side errors left as they are (the ask_peer tool
        reports `PeerAskError` to the model as a tool error)."""
        from swarm_vectordb.asks import ask_address

        swarm = await self.swarm()
        node = self.require_identity("asking a peer")
        inbox = await self.inbox()
        return await ask_address(
            bee=swarm.bee, batch=swarm.batch, node_key=node.private_key, inbox=inbox,
            address=address, text=question, deadline_s=self.cfg.network.ask_deadline_s,
            max_bytes=self.cfg.limits.max_message_bytes, directory=self._peers,
        )  # fmt: skip

    async def serve_peers(
        self,
        *,
        stop: asyncio.Event,
        republish_s: float,
        on_ready: Callable[[ServingInfo], None],
        register: bool = False,
        answer_ask: AskHandler | None = None,
    ) -> ServeStats:
        """Answer peers until `stop` is set, publishing the peer record every `republish_s`."""
        from agent.runtime.serving import serve_peers

        node = self.require_identity("serving peers")
        knowledge = await self.knowledge()
        swarm = await self.swarm()
        with translated("serving"):
            return await serve_peers(
                self.cfg, node, knowledge, swarm, stop=stop, republish_s=republish_s,
                on_ready=on_ready, register_with=self.deployment_file if register else None,
                answer_ask=answer_ask,
            )  # fmt: skip
