"""The one-shot setup steps of docker-compose.yml, the same as scripts/bee-localnet's.

    python scripts/bee/compose_setup.py deploy --rpc URL --source FILE
    python scripts/bee/compose_setup.py bootnode --bee URL --out FILE
    python scripts/bee/compose_setup.py fund --rpc URL --source FILE --bee URL [--bee URL ...]

``deploy`` deploys Swarm's contracts on a fresh anvil (``beechain``) and checks
they landed at the addresses docker-compose.yml gives Bee: a fresh anvil's first
account deploying with nonces 0..4 always gets those. ``bootnode`` waits for the
bootnode's API and writes its libp2p address for the other nodes to read.
``fund`` gives each node ETH and sBZZ, buys it a batch and waits until the batch
is usable and a direct upload goes through.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import beechain
from beenode import BeeApi, wait_for

log = logging.getLogger("compose-setup")

NETWORK_ID = 7077
# where a fresh anvil's first account puts the five contracts (nonces 0..4)
EXPECTED = {
    "bzz_token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "postage_stamp": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "price_oracle": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "staking": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "redistribution": "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
}
NODE_BZZ = 10**7 * 10**16
BATCH_AMOUNT = 500_000_000
BATCH_DEPTH = 20
TIMEOUT_S = 300.0


def _deploy(args: argparse.Namespace) -> None:
    web3 = beechain.connect(args.rpc)
    wait_for("the chain", lambda: web3.is_connected() and web3.eth.block_number > 0, 120)
    deployer = web3.eth.accounts[0]
    code = web3.eth.get_code(web3.to_checksum_address(EXPECTED["bzz_token"]))
    if len(code) > 0:
        log.info("contracts already deployed on this chain; nothing to do")
        return
    if web3.eth.get_transaction_count(deployer) != 0:
        raise SystemExit("the deployer account has sent transactions: start from a fresh anvil")
    contracts = beechain.deploy_swarm_contracts(web3, Path(args.source), NETWORK_ID)
    for name, expected in EXPECTED.items():
        if getattr(contracts, name) != expected:
            raise SystemExit(f"{name} landed at {getattr(contracts, name)}, not {expected}")
    log.info("contracts deployed where docker-compose.yml expects them")


def _bootnode(args: argparse.Namespace) -> None:
    api = BeeApi("bootnode", args.bee[0])
    api.wait_for_addresses(TIMEOUT_S)
    underlay = api.underlay()
    Path(args.out).write_text(underlay + "\n")
    log.info("bootnode at %s", underlay)


def _fund(args: argparse.Namespace) -> None:
    web3 = beechain.connect(args.rpc)
    contracts = beechain.SwarmContracts(postage_start_block=1, network_id=NETWORK_ID, **EXPECTED)
    nodes = [BeeApi(f"bee{n + 1}", url) for n, url in enumerate(args.bee)]
    for node in nodes:
        ethereum = node.wait_for_addresses(TIMEOUT_S)
        if web3.eth.get_balance(web3.to_checksum_address(ethereum)) == 0:
            beechain.fund(web3, contracts, Path(args.source), ethereum, NODE_BZZ)
            log.info("%s: funded %s", node.name, ethereum)
    for node in nodes:
        node.wait_ready(TIMEOUT_S, peers=len(nodes))  # the others + the bootnode
        stamps = node.get("/stamps").get("stamps") or []
        batch = next((s["batchID"] for s in stamps if s.get("usable")), None)
        if batch is None:
            batch = node.buy_batch(BATCH_AMOUNT, BATCH_DEPTH)
            node.wait_usable(batch, TIMEOUT_S)
        node.wait_upload_works(batch, TIMEOUT_S)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="compose-setup: %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["deploy", "bootnode", "fund"])
    parser.add_argument("--rpc", help="the chain's JSON-RPC URL")
    parser.add_argument("--source", help="abi_testnet.go of go-storage-incentives-abi")
    parser.add_argument("--bee", action="append", default=[], help="a Bee API URL")
    parser.add_argument("--out", help="where `bootnode` writes the bootnode's address")
    args = parser.parse_args()
    {"deploy": _deploy, "bootnode": _bootnode, "fund": _fund}[args.step](args)


if __name__ == "__main__":
    main()
