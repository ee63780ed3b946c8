"""Compiled contracts shipped inside the package (`chain/artifacts/*.json`).

Loaded with importlib.resources, so a running node needs no compiler; `chain.compile`
regenerates them and a test keeps them equal to a fresh compile.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from web3 import AsyncWeb3
from web3.contract import AsyncContract

from chain.errors import ArtifactError

CONTRACT_NAMES = ("AgentRegistry", "DatasetDAO", "DatasetDAOFactory", "TrainingMarket")


@dataclass(frozen=True)
class Artifact:
    """One contract's ABI and creation bytecode."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    compiler_version: str

    def abi_list(self) -> list[dict[str, Any]]:
        return list(self.abi)


@functools.cache
def load_artifact(name: str) -> Artifact:
    """The artifact of contract `name` (e.g. "TrainingMarket")."""
    resource = resources.files("chain") / "artifacts" / f"{name}.json"
    try:
        raw = json.loads(resource.read_text())
        return Artifact(
            name=raw["contractName"],
            abi=tuple(raw["abi"]),
            bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
            compiler_version=raw["compiler"]["version"],
        )
    except FileNotFoundError as exc:
        raise ArtifactError(f"no artifact for {name}: run `python -m chain.compile`") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"malformed artifact for {name}: {exc}") from exc


def contract_at(w3: AsyncWeb3[Any], name: str, address: str) -> AsyncContract:
    """An AsyncContract for the deployed contract `name` at `address`."""
    return w3.eth.contract(
        address=w3.to_checksum_address(address), abi=load_artifact(name).abi_list()
    )


def contract_factory(w3: AsyncWeb3[Any], name: str) -> type[AsyncContract]:
    """An AsyncContract class able to deploy contract `name`."""
    artifact = load_artifact(name)
    return w3.eth.contract(abi=artifact.abi_list(), bytecode=artifact.bytecode)
