"""`Node`: one node's components, opened once, shared by every use, closed together.

    async with await Node.open(cfg, home, identity=read_key) as node:
        report = await node.search("who pays for storage?", k=5)
        turn = await node.ask("What is 2^64 - 1?")

Each component opens on first use, under its own lock so that concurrent requests
open it once: the language model (`core`), the knowledge base (`knowledge`), Swarm
access (`swarm`: a Bee node or the embedded dev node), this node's inbox and the peer
directory (`peers`, refreshed under one deadline), and the assistant (model,
knowledge, tools, router). A one-shot CLI command therefore pays only for what it
touches, and `noosphere node` opens everything once and keeps it.

The node is where the packages' errors meet the user: `SwarmError`, `VectorDBError`
and `ChainError` leave `Node`'s methods as `ServiceError` with the component named.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agent.config import Config
from agent.errors import ConfigError, NoosphereError, ServiceError
from agent.home import NodeHome
from agent.identity import NodeIdentity
from agent.runtime.components import Knowledge, SwarmAccess, open_knowledge, open_swarm
from agent.runtime.search import FoundChunk, SearchReport, merge

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from agent.assistant import Assistant, TurnReport
    from agent.llm import ChatMessage, LLMCore
    from agent.loop import TurnEvent
    from agent.models import ModelChoice
    from agent.runtime.serving import AskHandler, ServingInfo
    from chain.client import ChainClient
    from swarm_vectordb.asks import PeerReply
    from swarm_vectordb.ingest import IngestReport
    from swarm_vectordb.network import ServeStats
    from swarm_vectordb.peers import Inbox, PeerDirectory
    from tools import ToolContext

log = logging.getLogger(__name__)

IdentitySource = Callable[[], NodeIdentity | None]
DOCUMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")
DOCUMENTS_DIR = "documents"  # texts ingested through the API live here, under the data dir


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Errors of the packages below the agent, as `ServiceError` naming `what` failed."""
    from chain.errors import ChainError
    from swarm_vectordb.bee.errors import SwarmError
    from swarm_vectordb.errors import PeerAskError, VectorDBError

    try:
        yield
    except BaseExceptionGroup as group:  # from a TaskGroup: report the first failure
        first = first_error(group)
        if not isinstance(first, Exception):
            raise
        with translated(what):
            raise first from None
    except NoosphereError:
        raise
    except SwarmError as exc:
        raise ServiceError(f"{what}: Swarm: {exc}") from None
    except PeerAskError as exc:
        raise ServiceError(f"{what}: {exc}") from None
    except VectorDBError as exc:
        raise ServiceError(f"{what}: knowledge base: {exc}") from None
    except ChainError as exc:
        raise ServiceError(f"{what}: chain: {exc}") from None


def chain_url(cfg: Config) -> str:
    """`network.eth_rpc_url`, or a `ConfigError` saying how to get a chain."""
    if not cfg.network.eth_rpc_url:
        raise ConfigError(
            "network.eth_rpc_url",
            "empty: start `noosphere chain dev` and pass "
            "--set network.eth_rpc_url=http://127.0.0.1:8545, or set a node's URL",
        )
    return cfg.network.eth_rpc_url


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of a (nested) exception group."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first


class Node:
    """The node's components and what a user or a peer can ask of them. Use `open`."""

    def __init__(
        self,
        cfg: Config,
        home: NodeHome,
        *,
        identity: IdentitySource,
        model_path: Path | None,
        deployment_file: Path | None,
    ) -> None:
        self.cfg, self.home = cfg, home
        self.data_dir = cfg.data_dir(home.root)
        self.deployment_file = home.deployment(deployment_file)
        self._identity_source = identity
        self._identity: NodeIdentity | None = None
        self._identity_read = False
        self._model_path = model_path
        self._choice: ModelChoice | None = None
        self._stack = AsyncExitStack()
        self._locks: dict[str, asyncio.Lock] = {}
        self._core: LLMCore | None = None
        self._knowledge: Knowledge | None = None
        self._swarm: SwarmAccess | None = None
        self._inbox: Inbox | None = None
        self._peers: PeerDirectory | None = None
        self._assistant: Assistant | None = None
        self._chains: dict[str, ChainClient] = {}
        self._closed = False

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

    async def aclose(self) -> None:
        """Close every component that was opened, the last opened first."""
        if not self._closed:
            self._closed = True
            await self._stack.aclose()

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _lock(self, name: str) -> asyncio.Lock:
        if self._closed:
            raise ServiceError("the node is shut down")
        return self._locks.setdefault(name, asyncio.Lock())

    # ------------------------------------------------------------ identity and model

    def identity(self) -> NodeIdentity | None:
        """The node key, read (and its password asked for) the first time it is needed."""
        if not self._identity_read:
            self._identity = self._identity_source()
            self._identity_read = True
        return self._identity

    def require_identity(self, why: str) -> NodeIdentity:
        node = self.identity()
        if node is None:
            raise ConfigError("keystore", f"{why} needs a node key: run `noosphere init`")
        return node

    @property
    def model(self) -> ModelChoice:
        """The GGUF this node runs (resolved once: configured path, HF file, pulled, bundled)."""
        if self._choice is None:
            from agent.models import ModelChoice, ModelSource, resolve_model

            if self._model_path is not None:
                path = self._model_path
                self._choice = ModelChoice(ModelSource.PATH, path, path.name)
            else:
                self._choice = resolve_model(self.cfg.model, self.cfg.models_dir(self.home.root))
        return self._choice

    # ------------------------------------------------------------ components

    async def core(self) -> LLMCore:
        """The language model, loaded once."""
        async with self._lock("core"):
            if self._core is None:
                from agent.adapters import AdapterRegistry, load_registered
                from agent.llm import LLMCore

                path = self.model.path
                core = await self._stack.enter_async_context(
                    await LLMCore.load(path, self.cfg.model)
                )
                await load_registered(core, AdapterRegistry(self.home.adapter_registry_file))
                self._core = core
            return self._core

    def adapter_names(self) -> list[str]:
        """The LoRA adapters loaded into the model (none before it is loaded)."""
        return [] if self._core is None else [a.name for a in self._core.adapters]

    def adapter_scale(self, name: str) -> float:
        """The scale adapter `name` runs with when a request names it without one."""
        for adapter in self._core.adapters if self._core is not None else ():
            if adapter.name == name:
                return adapter.scale
        raise ConfigError("model", f"no adapter named {name!r} is loaded")

    def index_size(self) -> int:
        """Chunks in the local index (0 before the knowledge base is open)."""
        return 0 if self._knowledge is None else len(self._knowledge.index)

    async def knowledge(self) -> Knowledge:
        """Embedder, index and chunker."""
        async with self._lock("knowledge"):
            if self._knowledge is None:
                self._knowledge = await self._stack.enter_async_context(
                    open_knowledge(self.cfg, self.data_dir)
                )
            return self._knowledge

    async def swarm(self) -> SwarmAccess:
        """A Bee client with a usable postage batch (the embedded dev node by default)."""
        async with self._lock("swarm"):
            if self._swarm is None:
                self._swarm = await self._stack.enter_async_context(
                    open_swarm(self.cfg, self.data_dir)
                )
            return self._swarm

    async def inbox(self) -> Inbox:
        """This node's GSOC inbox (derived from its key and its Bee node's overlay)."""
        swarm = await self.swarm()
        node = self.require_identity("an inbox")
        async with self._lock("inbox"):
            if self._inbox is None:
                from agent.runtime.peering import my_inbox

                with translated("inbox"):
                    self._inbox = await my_inbox(swarm, bytes.fromhex(node.address[2:]))
            return self._inbox

    async def peers(self, *, refresh: bool = False) -> PeerDirectory:
        """Known peers' verified records; read once, again with `refresh`."""
        swarm = await self.swarm()
        node = self.require_identity("finding peers")
        async with self._lock("peers"):
            if self._peers is None or refresh:
                from agent.runtime.peering import known_peers

                with translated("peer directory"):
                    self._peers = await known_peers(
                        swarm, self.cfg, bytes.fromhex(node.address[2:]), self.deployment_file
                    )
            return self._peers

    async def chain(self, *, signer: bool = True) -> ChainClient:
        """A client of `network.eth_rpc_url` with the contracts of the deployment file:
        signing with the node key, or (`signer=False`) a reader that needs no key.
        Writes through it are the caller's to confirm."""
        url = chain_url(self.cfg)
        slot = "chain" if signer else "chain_reader"
        async with self._lock(slot):
            if slot not in self._chains:
                from eth_account import Account

                from chain.client import ChainClient
                from chain.deploy import Deployment
                from chain.errors import ChainError

                account = self.require_identity("the chain").account if signer else None
                try:
                    deployment = Deployment.load(self.deployment_file)
                    client = await ChainClient.connect(
                        url,
                        account or Account.create(),  # a reader's key never signs
                        deployment,
                        timeout_s=self.cfg.network.request_timeout_s,
                    )
                except ChainError as exc:  # its message names the endpoint or the file
                    raise ServiceError(str(exc)) from None
                self._chains[slot] = await self._stack.enter_async_context(client)
            return self._chains[slot]

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

    def status(self) -> dict[str, Any]:
        """What is open, without opening anything."""
        out: dict[str, Any] = {"home": str(self.home.root), "data_dir": str(self.data_dir)}
        if self._choice is not None:
            out["model"] = self._choice.name
        if self._core is not None:
            out["model_loaded"] = True
        if self._knowledge is not None:
            out["embedder"] = self._knowledge.embedder.model_id
            out["chunks"] = len(self._knowledge.index)
        if self._swarm is not None:
            out["bee_url"] = self._swarm.url
            out["embedded_swarm"] = self._swarm.embedded is not None
        if self._identity is not None:
            out["address"] = self._identity.address
        if self._peers is not None:
            out["peers"] = len(self._peers.peers)
        return out
