"""One assistant turn, set up the same way for `noosphere chat` and `noosphere ask`.

`Assistant.assemble(...)` takes the node's model and knowledge base (`agent.node.Node`
opens them), builds the tool registry (calculator, python, knowledge) and the router;
the chain tools are added
only when a question is first routed to one, because starting the embedded chain
(py-evm with the contracts deployed) takes seconds that most questions never need.

`Assistant.answer(...)` runs one turn:

    route (agent.routing)  ->  calculator / chain read: the tool's result is the answer
                           ->  python: the model writes code, the sandbox runs it
                           ->  chain write: only that tool, owner-confirmed
                           ->  tools / chat: retrieval first (agent.grounding), then
                               the agent loop with the few tools offered, or none
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.config import Config
from agent.errors import NoosphereError
from agent.grounding import Grounding, Retriever
from agent.home import NodeHome
from agent.identity import NodeIdentity
from agent.llm import ChatMessage, ChatResult, LLMCore, SamplingParams, ToolCall
from agent.loop import Agent, TurnEvent, TurnResult
from agent.pycode import CodeExamples, attempt_params, write_code
from agent.routing import Route, Router, load_examples
from agent.runtime.components import Knowledge
from chain.errors import ChainError
from tools import ToolContext, ToolRegistry, ToolResult, builtin_registry
from tools.knowledge import (
    PeerSearch,
    local_search,
    make_knowledge_tool,
)

if TYPE_CHECKING:
    from tools.ask_peer import AskPeer

log = logging.getLogger(__name__)

DEV_FUNDS_WEI = 100 * 10**18
IdentitySource = Callable[[], NodeIdentity | None]


@dataclass
class TurnReport:
    """A turn's result with how it was reached (for `ask --json` and the benchmark)."""

    result: TurnResult
    route: Route
    grounding: Grounding | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.result.answer,
            "route": self.route.kind,
            "offered": list(self.route.offered),
            "tool_scores": {k: round(v, 3) for k, v in self.route.scores.items()},
            "calls": [
                {"name": c.name, "arguments": c.arguments, **r.to_json()}
                for c, r in self.result.calls
            ],
            "sources": self.result.sources,
            "passages": [
                {"source": h.source, "origin": h.origin, "score": round(h.score, 3), "text": h.text}
                for h in (self.grounding.passages if self.grounding else ())
            ],
            "best_passage_score": (
                None
                if self.grounding is None or self.grounding.best_score is None
                else round(self.grounding.best_score, 3)
            ),
            "cancelled": self.result.cancelled,
            **_generation_json(self.result.generation),
            "timings": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


def _generation_json(generation: ChatResult | None) -> dict[str, Any]:
    """The model's part of a turn; a turn answered by a tool alone generated nothing."""
    if generation is None:
        return {"finish_reason": "tool", "prompt_tokens": 0, "completion_tokens": 0}
    return {
        "finish_reason": generation.finish_reason,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "trimmed": dataclasses.asdict(generation.trim) if generation.trim else None,
    }


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
        deployment_file = NodeHome(home).deployment_file
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


class Assistant:
    """The model, knowledge base, tools and router one user talks to. Create with
    `assemble` (or `agent.node.Node.assistant`)."""

    def __init__(
        self,
        *,
        cfg: Config,
        home: Path,
        core: LLMCore,
        knowledge: Knowledge,
        registry: ToolRegistry,
        identity: IdentitySource,
        stack: AsyncExitStack,
        params: SamplingParams,
        peers: PeerSearch | None,
    ) -> None:
        self.cfg, self.home, self.core, self.knowledge = cfg, home, core, knowledge
        self.registry, self._identity, self._stack = registry, identity, stack
        self.agent = Agent(core, registry, params=params)
        embedder = knowledge.embedder

        async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
            return (await embedder.embed(texts)).vectors

        self.router = Router(embed, threshold=cfg.assistant.tool_threshold)
        self.code_examples = CodeExamples(embed)
        self.retriever = Retriever(
            embedder, knowledge.index, threshold=cfg.assistant.retrieval_threshold, peers=peers
        )
        self.chain_names = [t.name for t in load_examples() if t.name.startswith("chain_")]
        self.chain_line = "chain: starts when a question needs it"
        self._chain_started = False

    @classmethod
    def assemble(
        cls,
        cfg: Config,
        home: Path,
        core: LLMCore,
        knowledge: Knowledge,
        *,
        identity: IdentitySource,
        stack: AsyncExitStack,
        params: SamplingParams | None = None,
        peers: PeerSearch | None = None,
        ask_peer: AskPeer | None = None,
    ) -> Assistant:
        """An assistant over components someone else opened and closes (`stack` holds
        what the assistant itself opens later: the chain). `ask_peer` (a node with Swarm
        and a key: `agent.node.Node.ask_peer`) adds the `ask_peer` tool."""
        registry = builtin_registry(deny=[home])
        search = local_search(knowledge.embedder, knowledge.index, peers=peers)
        registry.register(make_knowledge_tool(search))
        if ask_peer is not None:  # imported here: it brings aiohttp
            from tools.ask_peer import make_ask_peer_tool

            registry.register(make_ask_peer_tool(ask_peer))
        return cls(
            cfg=cfg, home=home, core=core, knowledge=knowledge, registry=registry,
            identity=identity, stack=stack,
            params=params or SamplingParams.from_config(cfg.model), peers=peers,
        )  # fmt: skip

    def tool_names(self) -> list[str]:
        """Every tool this assistant can use (chain tools whether started or not)."""
        names = [t.name for t in self.registry.list()]
        return names + [n for n in self.chain_names if n not in names]

    def tool_purposes(self) -> dict[str, str]:
        """Each tool with one line on what it does (for `/tools`)."""
        purposes = {t.name: t.description.splitlines()[0] for t in self.registry.list()}
        for example in load_examples():
            if example.name in self.chain_names and example.name not in purposes:
                purposes[example.name] = f"{example.purpose} (the chain starts on first use)"
        return purposes

    async def start_chain(self) -> str:
        """Open the chain and register its tools, once; a line saying where it is."""
        if not self._chain_started:
            self._chain_started = True
            try:
                tools, self.chain_line = await self._stack.enter_async_context(
                    open_chain_tools(self.cfg, self.home, self._identity())
                )
            except (NoosphereError, ChainError, OSError) as exc:
                self._chain_started = False  # a later question may try again
                self.chain_line = f"chain tools off: {exc}"
                tools = []
            for t in tools:
                self.registry.register(t)
        return self.chain_line

    async def answer(
        self,
        history: Sequence[ChatMessage],
        text: str,
        context: ToolContext,
        *,
        on_event: Callable[[TurnEvent], None] | None = None,
        network: bool = False,
        adapters: Mapping[str, float] | None = None,
    ) -> TurnReport:
        """One turn: route, retrieve where the model answers, run the loop.

        `adapters`: the LoRA selection every model call of the turn runs with
        (`LLMCore.stream_chat`; None: the core's default selection)."""
        timings: dict[str, float] = {}
        started = time.perf_counter()

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = (now - since) * 1000
            return now

        route = await self.router.route(text, self.tool_names())
        mark = lap("route_ms", started)
        if route.needs_chain:
            await self.start_chain()
            mark = lap("chain_start_ms", mark)
            needed = [route.call.name] if route.call else list(route.offered)
            if not all(name in self.registry for name in needed):
                return self._unavailable(route, text, on_event, timings, started)
        grounding = None
        if route.call is not None:
            result = await self.agent.run_turn(
                history, text, context, on_event=on_event, direct_call=route.call,
                adapters=adapters,
            )  # fmt: skip
        elif route.kind == "python":
            code = await write_code(self.core, text, self.code_examples, adapters=adapters)
            mark = lap("write_code_ms", mark)
            attempts = 0

            async def repair(call: ToolCall, outcome: ToolResult) -> ToolCall | None:
                nonlocal attempts
                attempts += 1
                problem = outcome.error or "it printed nothing"
                if outcome.output:
                    problem += "\n" + outcome.output
                failed = (str(call.arguments["code"]), problem)
                fixed = await write_code(
                    self.core, text, self.code_examples, error=failed,
                    params=attempt_params(attempts - 1), adapters=adapters,
                )  # fmt: skip
                return ToolCall("python", {"code": fixed})

            result = await self.agent.run_turn(
                history, text, context, on_event=on_event,
                direct_call=ToolCall("python", {"code": code}), repair=repair,
                adapters=adapters,
            )  # fmt: skip
        else:
            if route.kind != "chain_write":
                grounding = await self.retriever.retrieve(
                    text,  # never a network search on a remote peer's behalf
                    network=(network or self.cfg.assistant.network) and context.local_owner,
                )
                mark = lap("retrieve_ms", mark)
            grounded = grounding is not None and bool(grounding.passages)
            result = await self.agent.run_turn(
                history, text, context, on_event=on_event, offered=route.offered,
                grounding=grounding,
                first_tool=route.offered[0] if route.kind == "chain_write" else None,
                params=self.agent.params.with_(temperature=0.0) if grounded else None,
                adapters=adapters,
            )  # fmt: skip
        lap("turn_ms", mark)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        if result.generation is not None:
            timings["ttft_ms"] = result.generation.ttft_s * 1000
            timings["tokens_per_s"] = result.generation.tokens_per_s
        return TurnReport(result, route, grounding, timings)

    def _unavailable(
        self,
        route: Route,
        text: str,
        on_event: Callable[[TurnEvent], None] | None,
        timings: dict[str, float],
        started: float,
    ) -> TurnReport:
        answer = f"I cannot reach the chain for that: {self.chain_line}."
        if on_event is not None:
            on_event(TurnEvent("token", text=answer))
        result = TurnResult(
            answer=answer, messages=[ChatMessage("user", text), ChatMessage("assistant", answer)]
        )
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        return TurnReport(result, route, None, timings)
