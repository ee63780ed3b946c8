"""The demo on real Bee: finding the local real-Bee network's launcher, and its nodes.

`noosphere demo --real-bee` re-runs the demo under the repository's
``scripts/bee-localnet run --nodes 3 -- noosphere demo --bee-from-env ...``, which
builds Bee 2.8.1 once (cached), brings up anvil with Swarm's contracts and three full
Bee nodes in a network namespace of its own, and names each node and its usable
postage batch in ``NOOSPHERE_TEST_BEE_URL[_N]`` / ``NOOSPHERE_TEST_BEE_BATCH[_N]``.

- `localnet_launcher` checks what that needs (the script, its virtual environment, Go
  1.26, ``unshare`` and ``ip``, the right to make a network namespace) and raises
  `MissingTool` with one line naming what is missing and how to get it.
- `bee_nodes_from_env` reads the nodes the launcher started (`BadInput` when absent).
- `check_bee_nodes` asks each node for its version and checks its batch is usable.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.demo.errors import BadInput, MissingTool, StepFailed

__all__ = [
    "BEE_NODES",
    "RealBeeNode",
    "bee_nodes_from_env",
    "check_bee_nodes",
    "localnet_launcher",
]

BEE_NODES = 3  # one per demo node: a batch stamps only on the Bee node that owns it
GO_MINIMUM = (1, 26)  # Bee 2.8.x needs it
PROBE_TIMEOUT_S = 20.0
BEE_TIMEOUT_S = 30.0
URL_VAR, BATCH_VAR = "NOOSPHERE_TEST_BEE_URL", "NOOSPHERE_TEST_BEE_BATCH"


@dataclass(frozen=True)
class RealBeeNode:
    """One real Bee node's API URL and the postage batch usable on it (hex)."""

    url: str
    batch: str


def _suffix(index: int) -> str:
    return "" if index == 0 else f"_{index + 1}"


def bee_nodes_from_env(environ: Mapping[str, str]) -> list[RealBeeNode]:
    """The Bee nodes ``scripts/bee-localnet`` named; at least `BEE_NODES` of them."""
    nodes: list[RealBeeNode] = []
    while url := environ.get(URL_VAR + _suffix(len(nodes)), "").strip():
        name = BATCH_VAR + _suffix(len(nodes))
        batch = environ.get(name, "").strip().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", batch):
            raise BadInput(f"{url} is given without a usable batch: set {name} (64 hex digits)")
        nodes.append(RealBeeNode(url, batch.lower()))
    if len(nodes) < BEE_NODES:
        raise BadInput(
            f"--bee-from-env needs {BEE_NODES} Bee nodes in {URL_VAR}, {URL_VAR}_2, "
            f"{URL_VAR}_3 (found {len(nodes)}): use `noosphere demo --real-bee`, which "
            "starts them"
        )
    return nodes


async def check_bee_nodes(nodes: Sequence[RealBeeNode]) -> str:
    """Each node answers and its batch is usable there; the nodes' Bee version."""
    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.errors import SwarmError
    from swarm_vectordb.bee.records import BatchId

    versions: set[str] = set()
    for node in nodes:
        try:
            async with BeeClient(node.url, timeout=BEE_TIMEOUT_S) as bee:
                versions.add((await bee.health()).version.split("-", 1)[0])
                stamp = await bee.get_stamp(BatchId(bytes.fromhex(node.batch)))
        except SwarmError as exc:
            raise StepFailed(f"Bee node {node.url}: {exc}") from exc
        if not stamp.usable:
            raise StepFailed(f"batch {node.batch[:12]}... is not usable on {node.url}")
    return ", ".join(sorted(versions))


# ------------------------------------------------------------------ the launcher


def repository_root() -> Path:
    """The checkout this package runs from (installed editable by scripts/bootstrap)."""
    return Path(__file__).resolve().parents[2]


def localnet_launcher(root: Path | None = None) -> Path:
    """``scripts/bee-localnet`` of this checkout, once everything it needs is here."""
    root = root or repository_root()
    script = root / "scripts" / "bee-localnet"
    if not script.is_file():
        raise MissingTool(
            f"--real-bee needs scripts/bee-localnet from a clone of the repository "
            f"(not found at {script}): clone it and install with ./scripts/bootstrap"
        )
    if not (root / ".venv" / "bin" / "python").is_file():
        raise MissingTool(
            f"--real-bee runs scripts/bee-localnet with {root}/.venv, which is missing: "
            "run ./scripts/bootstrap in the clone"
        )
    _check_go()
    for tool, package in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            raise MissingTool(f"--real-bee needs `{tool}` on PATH: install {package}")
    _check_namespaces()
    return script


def _check_go() -> None:
    go = shutil.which("go")
    how = "install Go 1.26 or newer from https://go.dev/dl and put `go` on PATH"
    if go is None:
        raise MissingTool(f"--real-bee builds Bee 2.8.1 with Go, which is not on PATH: {how}")
    try:
        done = subprocess.run(
            [go, "env", "GOVERSION"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise MissingTool(f"--real-bee cannot run {go} ({exc}): {how}") from exc
    found = re.match(r"go(\d+)\.(\d+)", done.stdout.strip())
    if found is None or (int(found[1]), int(found[2])) < GO_MINIMUM:
        version = done.stdout.strip() or "an unknown version"
        raise MissingTool(f"--real-bee needs Go 1.26 or newer to build Bee, found {version}: {how}")


def _check_namespaces() -> None:
    """The right to make a network namespace (as scripts/bee-localnet will)."""
    probe = ["unshare", "--net"]
    if os.geteuid() != 0:
        probe.append("--map-root-user")
    try:
        done = subprocess.run(
            [*probe, "--", "true"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError) as exc:
        done = subprocess.CompletedProcess(probe, 1, "", str(exc))
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["refused"])[-1]
        raise MissingTool(
            f"--real-bee runs Bee in a private network namespace, and `{' '.join(probe)}` "
            f"failed ({reason}): run as root or enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1)"
        )
