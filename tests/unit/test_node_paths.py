"""Where the node looks for things: the deployment file, and the stamp it needs to upload."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.cli.common import CliState, deployment_path
from agent.config import load_config
from agent.errors import ServiceError
from agent.home import NodeHome
from agent.runtime.components import open_swarm
from chain.devchain import free_port
from swarm_vectordb.bee.devnode import DevNode
from tests.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]
CODE = ("agent", "tools", "chain", "swarm_vectordb", "trainer")


def test_the_deployment_file_name_is_spelled_in_one_place() -> None:
    spelled = [
        str(path.relative_to(ROOT))
        for package in CODE
        for path in sorted((ROOT / package).rglob("*.py"))
        if re.search(r"[\"']deployment\.json[\"']", path.read_text())
    ]
    assert spelled == ["agent/home.py"]


def test_the_deployment_file_stays_in_the_home_when_data_dir_moves(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "home")
    elsewhere = tmp_path / "disk" / "noosphere-data"
    state = CliState(home=home, overrides=[f"data.dir={elsewhere}"])
    assert state.config.data_dir(home.root) == elsewhere
    assert home.deployment_file == home.root / "deployment.json"
    assert deployment_path(state, None) == home.deployment_file
    assert deployment_path(state, tmp_path / "other.json") == tmp_path / "other.json"


@pytest.mark.e2e
def test_search_with_data_dir_set_discovers_peers_through_the_home_deployment(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("init").returncode == 0
    data = tmp_path / "elsewhere" / "data"
    rpc = f"http://127.0.0.1:{free_port()}"  # nothing listens: discovery must say so
    address = "0x" + "11" * 20
    (cli.home / "deployment.json").write_text(
        json.dumps({"chain_id": 31337, "registry": address, "dataset_factory": address,
                    "market": address, "start_block": 0})
    )  # fmt: skip
    args = ["--set", f"data.dir={data}", "--set", f"network.eth_rpc_url={rpc}"]
    result = cli(*args, "search", "--network", "bees")
    assert result.returncode == 1
    assert f"registry discovery on {rpc}" in result.stderr  # it read <home>/deployment.json
    assert "Traceback" not in result.stderr


@pytest.mark.integration
@pytest.mark.asyncio
async def test_no_usable_stamp_names_the_command_that_buys_one(tmp_path: Path) -> None:
    node = await DevNode.start("127.0.0.1", 0)  # a Bee-compatible node with no batch yet
    cfg = load_config(None, env={}, overrides=[f"network.bee_url={node.url}"])
    try:
        with pytest.raises(ServiceError, match="no usable postage batch") as caught:
            async with open_swarm(cfg, tmp_path):
                pass
    finally:
        await node.aclose()
    assert "noosphere swarm stamp buy AMOUNT DEPTH" in str(caught.value)
