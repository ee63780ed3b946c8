"""Deploy every contract and record where they live (`deployment.json`).

The deployment file is the one thing a node needs, besides an RPC URL, to find the
contracts: chain id, addresses, and the block the deployment started at (the lower
bound for event queries).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from chain.artifacts import contract_factory
from chain.errors import DeploymentError, TransactionError
from chain.records import MarketParams
from chain.transactor import Transactor

log = logging.getLogger(__name__)

DEFAULT_FORK_JOIN_WINDOW_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    registry: ChecksumAddress  # AgentRegistry
    dataset_factory: ChecksumAddress  # DatasetDAOFactory
    market: ChecksumAddress  # TrainingMarket
    start_block: int  # first block of the deployment; event queries start here

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, *, chain_id: int | None = None) -> Deployment:
        """Read a deployment; with `chain_id`, refuse one made for another chain."""
        try:
            raw = json.loads(path.read_text())
            deployment = cls(
                chain_id=int(raw["chain_id"]),
                registry=to_checksum_address(raw["registry"]),
                dataset_factory=to_checksum_address(raw["dataset_factory"]),
                market=to_checksum_address(raw["market"]),
                start_block=int(raw["start_block"]),
            )
        except FileNotFoundError as exc:
            raise DeploymentError(f"no deployment file at {path}") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise DeploymentError(f"malformed deployment file {path}: {exc}") from exc
        if chain_id is not None and deployment.chain_id != chain_id:
            raise DeploymentError(
                f"{path} is for chain {deployment.chain_id}, the RPC serves chain {chain_id}"
            )
        return deployment


async def deploy_contract(transactor: Transactor, name: str, *args: object) -> ChecksumAddress:
    factory = contract_factory(transactor.w3, name)
    receipt = await transactor.transact(factory.constructor(*args))
    address = receipt["contractAddress"]
    if address is None:
        raise TransactionError(f"deploying {name} created no contract")
    log.info("deployed %s at %s (gas %d)", name, address, receipt["gasUsed"])
    return ChecksumAddress(address)


async def deploy_all(
    transactor: Transactor,
    params: MarketParams | None = None,
    *,
    fork_join_window_s: int = DEFAULT_FORK_JOIN_WINDOW_S,
    out: Path | None = None,
) -> Deployment:
    """Deploy AgentRegistry, DatasetDAOFactory and TrainingMarket; save to `out`."""
    start_block = await transactor.rpc(transactor.w3.eth.block_number)
    deployment = Deployment(
        chain_id=transactor.chain_id,
        registry=await deploy_contract(transactor, "AgentRegistry"),
        dataset_factory=await deploy_contract(transactor, "DatasetDAOFactory", fork_join_window_s),
        market=await deploy_contract(
            transactor, "TrainingMarket", (params or MarketParams()).as_abi()
        ),
        start_block=start_block,
    )
    if out is not None:
        deployment.save(out)
    return deployment
