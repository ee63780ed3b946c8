"""A chain write asked for in a chat turn runs only after the owner confirms.

The embedded py-evm chain with the real contracts, the real chain tools, the agent
loop; the confirmation callback stands in for the person at the prompt.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from agent.chat import ChatIO, open_chain_tools
from agent.config import Config, ModelConfig
from agent.identity import create_identity
from agent.llm import LLMCore, ToolCall
from agent.loop import Agent
from tools import ToolContext, ToolRegistry

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_stake_only_after_confirmation(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = create_identity(tmp_path / "keystore.json", "correct horse battery", scrypt_n=1 << 10)
    # The chat's own prompt; the person at it first types "n", then "y".
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\ny\n"))
    screen = io.StringIO()
    person = ChatIO(out=screen).confirm
    owner = ToolContext(local_owner=True, confirm=person)
    async with open_chain_tools(Config(), tmp_path, node) as (chain_tools, where):
        assert "embedded py-evm" in where
        registry = ToolRegistry(chain_tools)
        core = await LLMCore.load(model_path, ModelConfig(n_ctx=512))
        agent = Agent(core, registry)

        async def balance() -> str:
            status = await registry.call("chain_balance", {"address": node.address}, owner)
            assert status.ok, status.error
            return status.output

        stake = ToolCall("chain_stake", {"amount_ether": "1"})
        try:
            before = await balance()
            declined = await agent.run_turn([], "Stake 1 ETH.", owner, direct_call=stake)
            assert not declined.calls[0][1].ok
            assert "nothing was sent" in declined.calls[0][1].error
            assert await balance() == before  # untouched
            accepted = await agent.run_turn([], "Stake 1 ETH.", owner, direct_call=stake)
            assert accepted.calls[0][1].ok, accepted.calls[0][1].error
            after = await balance()
            assert after != before
            assert "staked 0 ETH" in before
            assert "staked 1 ETH" in after  # exactly the confirmed amount moved
            # a peer asking the same is refused without asking anyone
            peer = ToolContext(local_owner=False, confirm=person)
            refused = await agent.run_turn([], "Stake 1 ETH.", peer, direct_call=stake)
            assert not refused.calls[0][1].ok
            assert await balance() == after
        finally:
            await core.aclose()
    shown = screen.getvalue()
    assert shown.count("Proceed? [y/N]") == 2  # asked twice: declined, then confirmed
    assert "TrainingMarket.stake()" in shown
    assert "value 1 ETH (1000000000000000000 wei)" in shown  # exactly what would be sent
    assert node.address in shown
