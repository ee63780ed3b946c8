"""`noosphere demo`: the peer-to-peer network on one machine, every role its own process.

Modules:

- `scenario`: the story (`Scenario`): dev node and chain, three nodes, network search,
  a peer ask, a Dataset DAO and its fork, a training job trained, verified and paid,
  and the assistant answering with the trained adapter. `FACT` is what it learns.
- `processes`: running the installed `noosphere` command (`Supervisor`): one-shot
  commands, long-running `Service`s, each child in its own process group, all stopped
  on close.
- `realbee`: `--real-bee`: finding and checking ``scripts/bee-localnet`` (`localnet_launcher`),
  reading the real Bee nodes it started (`bee_nodes_from_env`) and checking their batches.
- `runner`: one run (`run_demo`): the work directory, SIGINT/SIGTERM, cleanup.
- `summary`: step records, payments from the chain, the closing table and its JSON.
- `chainrpc`: the few JSON-RPC calls the demo makes itself (balances, the dev clock).
- `errors`: `DemoError` and its subclasses, under `NoosphereError`.
- `corpus/`: the documents the peers serve (`swarm/`, `market/`), the training set
  stating an invented fact (`training/`) and the fork's additions (`fork/`).
"""

from __future__ import annotations

from agent.demo.errors import BadInput, DemoError, MissingTool, StepFailed
from agent.demo.realbee import BEE_NODES, RealBeeNode, bee_nodes_from_env, localnet_launcher
from agent.demo.runner import Interrupted, check_workdir, prepare_workdir, run_demo
from agent.demo.scenario import FACT, DemoOptions, Scenario
from agent.demo.summary import Summary

__all__ = [
    "BEE_NODES",
    "FACT",
    "BadInput",
    "DemoError",
    "DemoOptions",
    "Interrupted",
    "MissingTool",
    "RealBeeNode",
    "Scenario",
    "StepFailed",
    "Summary",
    "bee_nodes_from_env",
    "check_workdir",
    "localnet_launcher",
    "prepare_workdir",
    "run_demo",
]
