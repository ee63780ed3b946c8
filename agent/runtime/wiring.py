"""`Wiring`: a node's components, each opened once on first use, closed together.

Each component opens under its own lock so that concurrent requests open it once:
the language model (`core`), the knowledge base (`knowledge`), Swarm access (`swarm`:
a Bee node or the embedded dev node), this node's inbox and the peer directory
(`peers`, refreshed under one deadline), and chain clients (`chain`, signing or
reading). The node key is read, and its password asked for, the first time a
component needs it. `status` says what is open without opening anything.

`agent.node.Node` is this wiring plus what the node does with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from agent.config import Config
from agent.errors import ConfigError, ServiceError
from agent.home import NodeHome
from agent.identity import NodeIdentity
from agent.runtime.components import (
    Knowledge,
    SwarmAccess,
    chain_url,
    connect_chain,
    open_knowledge,
    open_swarm,
)
from agent.runtime.errors import translated

if TYPE_CHECKING:
    from agent.llm import LLMCore
    from agent.models import ModelChoice
    from chain.client import ChainClient
    from swarm_vectordb.peers import Inbox, PeerDirectory

log = logging.getLogger(__name__)

IdentitySource = Callable[[], NodeIdentity | None]


class Wiring:
    """The components of one node and their lifetimes; `aclose` closes what was opened."""

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
        self._chains: dict[str, ChainClient] = {}
        self._closed = False

    async def aclose(self) -> None:
        """Close every component that was opened, the last opened first."""
        if not self._closed:
            self._closed = True
            await self._stack.aclose()

    async def __aenter__(self) -> Self:
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
        chain_url(self.cfg)  # a missing URL is said before any password prompt
        slot = "chain" if signer else "chain_reader"
        async with self._lock(slot):
            if slot not in self._chains:
                account = self.require_identity("the chain").account if signer else None
                client = await connect_chain(self.cfg, self.deployment_file, account)
                self._chains[slot] = await self._stack.enter_async_context(client)
            return self._chains[slot]

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
