"""Chat reports chain and Swarm failures as one line and keeps the session running.

The real chat (`run_chat`: model, knowledge base, Swarm, the REPL) with the person
at the keyboard scripted through `ChatIO`. The failures are real: a Bee node that has
gone away during `/ingest`, a chain RPC nobody listens on, a broken deployment file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.chat import ChatIO, run_chat
from agent.config import load_config
from agent.home import NodeHome
from agent.identity import create_identity
from chain.devchain import free_port
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

Step = str | Callable[[], Awaitable[None]]


@dataclass
class Person(ChatIO):
    """Types `script` line by line; a callable in it runs (e.g. breaks something) first."""

    script: list[Step] = field(default_factory=list)
    screen: io.StringIO = field(default_factory=io.StringIO)

    def __post_init__(self) -> None:
        self.out = self.screen

    async def ask(self, prompt: str) -> str | None:
        self.write(prompt)
        while self.script:
            step = self.script.pop(0)
            if isinstance(step, str):
                self.write(step + "\n")
                return step
            await step()
        return None


def deployment_json() -> str:
    address = "0x" + "11" * 20
    return json.dumps(
        {"chain_id": 31337, "registry": address, "dataset_factory": address,
         "market": address, "start_block": 0}
    )  # fmt: skip


def assert_one_line_errors(screen: str, *needles: str) -> None:
    assert "Traceback" not in screen
    errors = [line for line in screen.splitlines() if line.startswith("error: ")]
    for needle in needles:
        assert any(needle in line for line in errors), f"no one-line error with {needle!r}"
    assert screen.rstrip().endswith("bye")  # the session ran to /quit


async def test_swarm_failure_during_ingest_is_one_line(model_path: Path, tmp_path: Path) -> None:
    node = await DevNode.start("127.0.0.1", 0)
    async with await BeeClient.create(node.url) as bee:
        await bee.buy_stamp(10_000_000, 20)
    doc = tmp_path / "bees.md"
    doc.write_text("Honey bees live in hives and make honey from nectar.")
    cfg = load_config(None, env={}, overrides=[f"network.bee_url={node.url}"])

    async def bee_goes_away() -> None:
        await node.aclose()

    person = Person(script=[bee_goes_away, f"/ingest {doc}", "/help", "/quit"])
    try:
        await run_chat(cfg, tmp_path / "home", model_path, lambda: None, io=person)
    finally:
        await node.aclose()
    screen = person.screen.getvalue()
    assert_one_line_errors(screen, "Swarm")
    assert "/search TEXT" in screen.split("/ingest", 1)[1]  # /help still answered after it


async def test_chain_failures_are_one_line(model_path: Path, tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "home")
    home.create()
    node = create_identity(home.keystore_file, "correct horse battery", scrypt_n=1 << 10)
    rpc = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    cfg = load_config(
        None, env={}, overrides=[f"network.eth_rpc_url={rpc}", "network.request_timeout_s=3"]
    )

    async def unreachable() -> None:
        home.deployment_file.write_text(deployment_json())

    async def broken() -> None:
        home.deployment_file.write_text("{not json")

    person = Person(
        script=[
            unreachable, "/peers",  # ChainUnavailableError, under registry discovery
            "What is my balance?",  # routed to the chain, which cannot be reached
            broken, "/peers",  # DeploymentError
            "/help", "/quit",
        ]
    )  # fmt: skip
    await run_chat(cfg, home.root, model_path, lambda: node, io=person)
    screen = person.screen.getvalue()
    assert_one_line_errors(screen, rpc, "malformed deployment file")
    after_question = screen.split("What is my balance?", 1)[1].split("you> ", 1)[0]
    assert rpc in after_question or "ChainUnavailable" in after_question, after_question
