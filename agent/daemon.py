"""`noosphere node`: the node as one long-running process.

It opens the knowledge base and Swarm, then, side by side until SIGINT/SIGTERM:

- answers peers over its Swarm inbox: knowledge queries, and agent-to-agent asks
  (`agent.peer_asks.PeerAnswerer`: read-only tools, python and chain writes refused);
- publishes its peer record (and, when asked, registers it on chain);
- serves the local HTTP API (`agent.api`) on 127.0.0.1 for the owner's clients;
- runs the training worker when the owner opted in (`trainer.opt_in`).

The model loads in the background once everything else is up, so a search answers
at once and the first question does not pay for the load twice. Shutdown goes in
the reverse order: the API stops taking requests, the peers' listener stops, the
worker stops at a step boundary, then the node closes its components.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.node import Node
from agent.runtime.errors import translated

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from agent.api.server import ApiServer
    from agent.assistant import TurnReport
    from agent.llm import ChatMessage, LLMCore
    from agent.loop import TurnEvent
    from agent.runtime.components import Knowledge
    from agent.runtime.search import SearchReport
    from agent.runtime.serving import ServingInfo
    from swarm_vectordb.asks import PeerReply
    from swarm_vectordb.network import ServeStats

log = logging.getLogger(__name__)

# A task the daemon runs beside the others (the training worker): it returns when
# `stop` is set.
SideTask = Callable[[asyncio.Event], Awaitable[None]]


class NodeBackend:
    """The HTTP API's view of the node (`agent.api.backend.ApiBackend`)."""

    def __init__(self, node: Node, knowledge: Knowledge) -> None:
        self.node, self.knowledge = node, knowledge

    @property
    def model_name(self) -> str:
        """The GGUF's file stem (`SmolLM2-135M-Instruct.Q4_1`): an id clients can type."""
        return self.node.model.path.stem

    @property
    def embedder_id(self) -> str:
        return self.knowledge.embedder.model_id

    def adapter_names(self) -> list[str]:
        return self.node.adapter_names()

    def adapter_scale(self, name: str) -> float:
        return self.node.adapter_scale(name)

    def index_size(self) -> int:
        return self.node.index_size()

    async def core(self) -> LLMCore:
        return await self.node.core()

    async def embed(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        return await self.node.embed(texts)

    async def search(
        self,
        text: str,
        *,
        k: int,
        network: bool,
        fan_out: int | None = None,
        deadline_s: float | None = None,
    ) -> SearchReport:
        return await self.node.search(
            text, k=k, network=network, fan_out=fan_out, deadline_s=deadline_s
        )

    async def ingest_paths(self, paths: list[Path]) -> dict[str, Any]:
        report = await self.node.ingest_paths(paths)
        return dict(dataclasses.asdict(report), chunks_in_index=len(self.knowledge.index))

    async def ingest_text(self, name: str, text: str) -> dict[str, Any]:
        report = await self.node.ingest_text(name, text)
        return dict(dataclasses.asdict(report), chunks_in_index=len(self.knowledge.index))

    async def ask(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        on_event: Callable[[TurnEvent], None] | None,
        network: bool,
        adapters: Mapping[str, float] | None,
    ) -> TurnReport:
        return await self.node.ask(
            question, history=history, on_event=on_event, network=network, adapters=adapters
        )

    async def ask_peer(self, address: bytes, question: str) -> PeerReply:
        return await self.node.ask_peer(address, question)


def training_worker(
    node: Node,
    *,
    threads: int,
    approve: Callable[[str], Awaitable[bool]],
    say: Callable[[str], None],
) -> SideTask:
    """The training worker as a side task: the node's chain client (its key), Swarm and
    base model; it claims jobs the node can run, trains, submits, defends and settles
    them until the node stops (at a step boundary). `approve` is asked before staking."""

    async def work(stop: asyncio.Event) -> None:
        from trainer.model import load_base_model
        from trainer.profile import pin_profile
        from trainer.worker import Worker, WorkerControl, WorkerSettings

        market = (await node.chain()).market
        swarm = await node.swarm()
        profile = pin_profile(threads)
        say(f"training worker: profile {profile.hash.hex()[:16]}..., {node.model.path.name}")
        base = await asyncio.to_thread(load_base_model, node.model.path)
        settings = WorkerSettings(
            model_path=node.model.path, state_dir=node.home.root / "trainer", max_jobs=None
        )
        worker = Worker(
            market, swarm.bee, swarm.batch, base, settings,
            control=WorkerControl(), approve=approve, say=say,
        )  # fmt: skip
        with translated("training worker"):
            await worker.run_until(stop)

    return work


@dataclass(frozen=True)
class DaemonSettings:
    api_port: int | None  # None: no HTTP API
    republish_s: float = 600.0
    register: bool = False
    answer_asks: bool = True
    preload_model: bool = True


@dataclass(frozen=True)
class NodeReady:
    serving: ServingInfo
    api_url: str | None
    side_tasks: tuple[str, ...]


@dataclass
class DaemonReport:
    peers: ServeStats | None = None
    side_task_errors: dict[str, str] = field(default_factory=dict)


async def run_node(
    node: Node,
    settings: DaemonSettings,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[NodeReady], None],
    side_tasks: Mapping[str, SideTask] | None = None,
) -> DaemonReport:
    """Run the node until `stop` is set; see the module docstring."""
    from agent.peer_asks import PeerAnswerer

    side_tasks = dict(side_tasks or {})
    knowledge = await node.knowledge()
    await node.swarm()
    report = DaemonReport()
    api: ApiServer | None = None
    ready_serving: asyncio.Future[ServingInfo] = asyncio.get_running_loop().create_future()

    async def answer_ask(sender: bytes, text: str) -> str:
        return await PeerAnswerer(await node.assistant())(sender, text)

    async def preload() -> None:
        try:
            await node.assistant()
            log.info("model loaded: %s", node.model.name)
        except Exception as exc:  # the API and asks report it when they need the model
            log.warning("loading the model failed: %s", exc)

    async def side(name: str, task: SideTask) -> None:
        try:
            await task(stop)
        except Exception as exc:
            log.error("%s stopped: %s", name, exc)
            report.side_task_errors[name] = str(exc)

    try:
        with translated("node"):
            async with asyncio.TaskGroup() as tasks:
                peers = tasks.create_task(
                    node.serve_peers(
                        stop=stop,
                        republish_s=settings.republish_s,
                        on_ready=ready_serving.set_result,
                        register=settings.register,
                        answer_ask=answer_ask if settings.answer_asks else None,
                    )
                )
                first: list[asyncio.Future[Any]] = [peers, ready_serving]
                await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
                if not ready_serving.done():  # serving ended before it was ready
                    report.peers = await peers
                    return report
                if settings.api_port is not None:
                    from agent.api.server import start_api
                    from agent.llm import SamplingParams

                    api = await start_api(
                        NodeBackend(node, knowledge),
                        node.home,
                        port=settings.api_port,
                        settings=node.cfg.api,
                        params=SamplingParams.from_config(node.cfg.model),
                    )
                for name, task in side_tasks.items():
                    tasks.create_task(side(name, task))
                if settings.preload_model:
                    tasks.create_task(preload())
                url = api.address.url if api else None
                on_ready(NodeReady(ready_serving.result(), url, tuple(side_tasks)))
                await stop.wait()
                if api is not None:
                    await api.aclose()
                report.peers = await peers
    finally:
        if api is not None:
            with contextlib.suppress(Exception):
                await api.aclose()
    return report
