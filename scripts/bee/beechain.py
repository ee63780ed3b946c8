"""Swarm's storage-incentive contracts on a private chain, as Bee expects them.

The creation bytecode and ABIs come from the Go module Bee itself is built
against (``go-storage-incentives-abi``, its "testnet" set, which Bee uses for
any chain id it does not know). ``deploy_swarm_contracts`` deploys the five
contracts from the chain's first unlocked account, grants the roles the
contracts check (the price oracle may set the postage price; redistribution
may withdraw from postage, update the price and slash stakes), and sets a
postage price, so a node can buy a batch at once.

Synchronous web3: this runs once, in a script, before anything else.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.types import TxParams, TxReceipt

log = logging.getLogger(__name__)

CONTRACT_NAMES = ("BzzToken", "PostageStamp", "PriceOracle", "Staking", "Redistribution")
TOKEN_SUPPLY = 10**9 * 10**16  # a billion sBZZ (16 decimals), minted to the deployer
MINIMUM_BUCKET_DEPTH = 16
POSTAGE_PRICE = 24_000  # PLUR per chunk per block, what bee-factory's chains used
RPC_TIMEOUT_S = 10.0
RECEIPT_TIMEOUT_S = 60.0


class ChainSetupError(RuntimeError):
    """The contracts could not be read or deployed."""


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@dataclass(frozen=True)
class SwarmContracts:
    """Where the contracts landed: what Bee's contract flags take."""

    bzz_token: str
    postage_stamp: str
    postage_start_block: int
    price_oracle: str
    staking: str
    redistribution: str
    network_id: int

    def bee_flags(self) -> list[str]:
        return [
            f"--network-id={self.network_id}",
            f"--bzz-token-address={self.bzz_token}",
            f"--postage-stamp-address={self.postage_stamp}",
            f"--postage-stamp-start-block={self.postage_start_block}",
            f"--price-oracle-address={self.price_oracle}",
            f"--staking-address={self.staking}",
            f"--redistribution-address={self.redistribution}",
        ]


def read_artifacts(source: Path) -> dict[str, Artifact]:
    """ABIs and creation bytecode of the five contracts, from the Go module's source."""
    text = source.read_text()
    artifacts: dict[str, Artifact] = {}
    for name in CONTRACT_NAMES:
        abi = re.search(rf"Testnet{name}ABI\s*=\s*`(.*?)`", text, re.S)
        code = re.search(rf'Testnet{name}Bin\s*=\s*"(0x[0-9a-fA-F]+)"', text)
        if abi is None or code is None:
            raise ChainSetupError(f"{source}: no ABI or bytecode for {name}")
        artifacts[name] = Artifact(name, json.loads(abi.group(1)), code.group(1))
    return artifacts


class _Deployer:
    def __init__(self, web3: Web3) -> None:
        self.web3 = web3
        self.account = web3.eth.accounts[0]

    def _wait(self, tx_hash: HexBytes, what: str) -> TxReceipt:
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        if receipt["status"] != 1:
            raise ChainSetupError(f"{what}: transaction reverted")
        return receipt

    def deploy(self, artifact: Artifact, *args: Any) -> tuple[Contract, int]:
        factory = self.web3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = factory.constructor(*args).transact({"from": self.account})
        receipt = self._wait(tx_hash, f"deploy {artifact.name}")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainSetupError(f"deploy {artifact.name}: no contract address")
        log.info("deployed %s at %s (block %d)", artifact.name, address, receipt["blockNumber"])
        return self.web3.eth.contract(address=address, abi=artifact.abi), receipt["blockNumber"]

    def call(self, contract: Contract, function: str, *args: Any) -> TxReceipt:
        tx_hash = getattr(contract.functions, function)(*args).transact({"from": self.account})
        return self._wait(tx_hash, f"{function} on {contract.address}")

    def send(self, params: TxParams) -> TxReceipt:
        return self._wait(self.web3.eth.send_transaction(params), "transfer")


def connect(rpc_url: str) -> Web3:
    """A web3 client for the local chain that never goes through a proxy."""
    provider = HTTPProvider(
        rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S, "proxies": {"http": "", "https": ""}}
    )
    return Web3(provider)


def deploy_swarm_contracts(web3: Web3, source: Path, network_id: int) -> SwarmContracts:
    """Deploy, wire and price the storage-incentive contracts (see the module docstring)."""
    artifacts = read_artifacts(source)
    chain = _Deployer(web3)
    token, _ = chain.deploy(artifacts["BzzToken"], "Swarm test token", "sBZZ", TOKEN_SUPPLY)
    postage, postage_block = chain.deploy(
        artifacts["PostageStamp"], token.address, MINIMUM_BUCKET_DEPTH
    )
    oracle, _ = chain.deploy(artifacts["PriceOracle"], postage.address)
    staking, _ = chain.deploy(artifacts["Staking"], token.address, network_id, oracle.address)
    redistribution, _ = chain.deploy(
        artifacts["Redistribution"], staking.address, postage.address, oracle.address
    )
    grants = [
        (postage, "PRICE_ORACLE_ROLE", oracle.address),
        (postage, "REDISTRIBUTOR_ROLE", redistribution.address),
        (oracle, "PRICE_UPDATER_ROLE", redistribution.address),
        (staking, "REDISTRIBUTOR_ROLE", redistribution.address),
    ]
    for contract, role, grantee in grants:
        chain.call(contract, "grantRole", getattr(contract.functions, role)().call(), grantee)
    chain.call(oracle, "setPrice", POSTAGE_PRICE)
    price = postage.functions.lastPrice().call()
    if price <= 0:
        raise ChainSetupError(f"postage price is {price} after setPrice({POSTAGE_PRICE})")
    log.info("roles granted, postage price %d PLUR/chunk/block", price)
    return SwarmContracts(
        bzz_token=token.address,
        postage_stamp=postage.address,
        postage_start_block=postage_block,
        price_oracle=oracle.address,
        staking=staking.address,
        redistribution=redistribution.address,
        network_id=network_id,
    )


def fund(web3: Web3, contracts: SwarmContracts, source: Path, address: str, bzz: int) -> None:
    """Send 100 ETH and ``bzz`` PLUR from the deployer to ``address``."""
    chain = _Deployer(web3)
    target = Web3.to_checksum_address(address)
    chain.send({"from": chain.account, "to": target, "value": Web3.to_wei(100, "ether")})
    token = web3.eth.contract(
        address=Web3.to_checksum_address(contracts.bzz_token),
        abi=read_artifacts(source)["BzzToken"].abi,
    )
    chain.call(token, "transfer", target, bzz)
