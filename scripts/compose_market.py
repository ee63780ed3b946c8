"""One-shot step of docker-compose.yml: Noosphere's contracts on the compose chain, funded nodes.

    python scripts/compose_market.py --rpc URL --home DIR [--home DIR ...] [--share FILE]

Deploys AgentRegistry, DatasetDAOFactory and TrainingMarket (default market
parameters) from a throwaway dev key, unless the first home's deployment file
already names a market with code on this chain; writes the deployment file into
every home (``<home>/deployment.json``, where ``noosphere`` looks by default) and
to ``--share`` for other services; tops up each home's account (its keystore must
exist: run ``noosphere init`` first) to 100 ETH with ``anvil_setBalance``. For the
compose dev chain (anvil) only: never point it at a real network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from agent.identity import keystore_address
from chain.client import close_web3, make_web3
from chain.deploy import Deployment, deploy_all
from chain.devchain import dev_account
from chain.transactor import Transactor

log = logging.getLogger("compose-market")

BALANCE_WEI = 100 * 10**18
WAIT_S = 120.0


async def _rpc(w3: AsyncWeb3[Any], method: str, params: list[object]) -> object:
    response = await w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in response:
        raise SystemExit(f"{method}: {response['error']}")
    return response["result"]


async def _top_up(w3: AsyncWeb3[Any], address: str) -> None:
    balance = int(str(await _rpc(w3, "eth_getBalance", [address, "latest"])), 16)
    if balance < BALANCE_WEI:
        await _rpc(w3, "anvil_setBalance", [address, hex(BALANCE_WEI)])
        log.info("funded %s", address)


async def _deployed(w3: AsyncWeb3[Any], path: Path) -> Deployment | None:
    """The deployment in `path` if its market has code on this chain."""
    if not path.exists():
        return None
    deployment = Deployment.load(path)
    code = str(await _rpc(w3, "eth_getCode", [deployment.market, "latest"]))
    return deployment if code not in ("0x", "") else None


async def main(rpc: str, homes: list[Path], share: Path | None) -> None:
    w3 = make_web3(rpc, timeout_s=30)
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    if int(str(await _rpc(w3, "eth_blockNumber", [])), 16) > 0:
                        break
                except OSError:
                    pass
                await asyncio.sleep(1)
        target = homes[0] / "deployment.json"
        deployment = await _deployed(w3, target)
        if deployment is None:
            deployer = dev_account(0)
            await _top_up(w3, deployer.address)
            transactor = await Transactor.create(w3, deployer)
            deployment = await deploy_all(transactor, out=target)
            log.info("deployed the market at %s", deployment.market)
        else:
            log.info("the market at %s is already deployed", deployment.market)
        for home in homes[1:]:
            shutil.copyfile(target, home / "deployment.json")
        if share is not None:
            share.write_text(json.dumps(json.loads(target.read_text()), indent=2) + "\n")
        for home in homes:
            await _top_up(w3, keystore_address(home / "keystore.json"))
    finally:
        await close_web3(w3)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="compose-market: %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc", required=True, help="the compose chain's JSON-RPC URL")
    parser.add_argument("--home", action="append", type=Path, required=True, help="a node home")
    parser.add_argument("--share", type=Path, help="also write the deployment file here")
    args = parser.parse_args()
    asyncio.run(main(args.rpc, args.home, args.share))
