"""Ethereum: contracts, compiled artifacts, async web3 client, deploy, dev chains.

Depends on nothing of ours. Modules, by what they own:

    contracts/         Solidity sources: AgentRegistry, DatasetDAO(+Factory),
                       TrainingMarket; contracts/test/ holds test-only contracts
    artifacts/         ABI + bytecode JSON, committed; what a running node loads
    compile.py         solc-js (npm `solc`, pinned in package.json) -> artifacts/;
                       `python -m chain.compile [--check]`
    artifacts.py       load artifacts with importlib.resources; bind contracts
    errors.py          the ChainError tree (drawn there)
    reverts.py         one ContractRevert subclass per Solidity custom error + decoder
    records.py         ids and units (JobId, Wei, SwarmRef), enums and frozen records
                       (TrainingJob, JobSpec, Dispute, PeerRecord, Proposal, RootEntry)
    merkle.py          the step-log Merkle tree and proofs `challenge` verifies
    transactor.py      the web3 boundary: sign with the node key, nonces, gas,
                       receipts, timeouts, error translation
    registry.py        AgentRegistry client
    datasets.py        DatasetDAOFactory and DatasetDAO clients (propose, vote, fork)
    market.py          TrainingMarket client (stake, jobs, disputes, withdrawals)
    deploy.py          deploy everything; the deployment JSON file
    event_records.py   one frozen record per Solidity event + `decode_event`
    events.py          EventPoller: events once N confirmations deep, exactly once
    client.py          ChainClient: one connection + account + every contract
    devchain.py        EmbeddedChain (py-evm in process) and AnvilChain (subprocess)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chain.client import ChainClient
    from chain.datasets import DatasetDAOClient, DatasetFactoryClient
    from chain.deploy import Deployment, deploy_all
    from chain.devchain import AnvilChain, EmbeddedChain, dev_account, find_anvil
    from chain.errors import (
        ArtifactError,
        ChainError,
        ChainUnavailableError,
        CompileError,
        ContractRevert,
        DeploymentError,
        DevChainError,
        TransactionError,
        TransactionFailedError,
    )
    from chain.event_records import ChainEvent, decode_event
    from chain.events import EventPoller
    from chain.market import MarketClient
    from chain.merkle import StepLogTree, verify_proof
    from chain.records import (
        Dispute,
        JobId,
        JobSpec,
        JobStatus,
        MarketParams,
        Outcome,
        PeerRecord,
        Proposal,
        ProposalId,
        RootEntry,
        StakeAccount,
        SwarmRef,
        TrainingJob,
        Wei,
        swarm_ref,
    )
    from chain.registry import RegistryClient
    from chain.transactor import Transactor

# Exports resolve on first use (PEP 562): `chain.records` or `chain.units` alone must not
# pull in web3 and eth-account (about two seconds of imports).
_EXPORTS: dict[str, str] = {  # exported name -> the module that defines it
    name: module
    for module, names in {
        "client": ("ChainClient",),
        "datasets": ("DatasetDAOClient", "DatasetFactoryClient"),
        "deploy": ("Deployment", "deploy_all"),
        "devchain": ("AnvilChain", "EmbeddedChain", "dev_account", "find_anvil"),
        "errors": (
            "ArtifactError",
            "ChainError",
            "ChainUnavailableError",
            "CompileError",
            "ContractRevert",
            "DeploymentError",
            "DevChainError",
            "TransactionError",
            "TransactionFailedError",
        ),
        "event_records": ("ChainEvent", "decode_event"),
        "events": ("EventPoller",),
        "market": ("MarketClient",),
        "merkle": ("StepLogTree", "verify_proof"),
        "records": (
            "Dispute",
            "JobId",
            "JobSpec",
            "JobStatus",
            "MarketParams",
            "Outcome",
            "PeerRecord",
            "Proposal",
            "ProposalId",
            "RootEntry",
            "StakeAccount",
            "SwarmRef",
            "TrainingJob",
            "Wei",
            "swarm_ref",
        ),
        "registry": ("RegistryClient",),
        "transactor": ("Transactor",),
    }.items()
    for name in names
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AnvilChain",
    "ArtifactError",
    "ChainClient",
    "ChainError",
    "ChainEvent",
    "ChainUnavailableError",
    "CompileError",
    "ContractRevert",
    "DatasetDAOClient",
    "DatasetFactoryClient",
    "Deployment",
    "DeploymentError",
    "DevChainError",
    "Dispute",
    "EmbeddedChain",
    "EventPoller",
    "JobId",
    "JobSpec",
    "JobStatus",
    "MarketClient",
    "MarketParams",
    "Outcome",
    "PeerRecord",
    "Proposal",
    "ProposalId",
    "RegistryClient",
    "RootEntry",
    "StakeAccount",
    "StepLogTree",
    "SwarmRef",
    "TrainingJob",
    "TransactionError",
    "TransactionFailedError",
    "Transactor",
    "Wei",
    "decode_event",
    "deploy_all",
    "dev_account",
    "find_anvil",
    "swarm_ref",
    "verify_proof",
]
