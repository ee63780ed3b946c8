"""`noosphere status [--json]`: what this node home is and what it can reach, quickly.

It loads neither the model nor the embedder (no torch, llama.cpp or
sentence-transformers import). It reports, one part per line:

- the home, its config file and the address recorded in the keystore (no password);
- the node running for this home (`NodeClient.discover`): URL, pid, uptime, model,
  adapters, index size from its `/api/status`; else "no node running";
- the Swarm endpoint (`network.bee_url`, or the embedded dev node) and whether its
  `/health` answers within 2 s;
- the chain endpoint (`network.eth_rpc_url`): chain id and block number within 2 s,
  whether the deployment file is present, and with both, this address's
  TrainingMarket stake and its part in the last 20 jobs;
- peers configured in `network.peers` (a count; nobody is asked);
- the local index's directory and model when no node runs (the chunk count needs the
  index opened: the node or `search` does that);
- the adapters registered in this home (`agent.adapters.AdapterRegistry`).

A part that cannot be read or reached says so on its own line; the command exits 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import CliState, emit, handled, json_option, run
from agent.errors import NoosphereError

if TYPE_CHECKING:
    from agent.config import Config

__all__ = ["status"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0  # per endpoint request
CHAIN_READS_TIMEOUT_S = 10.0  # stake and jobs, all reads together
RECENT_JOBS = 20
INDEX_DIR = "index"  # agent.runtime.components opens <data>/index
INDEX_META = "index.json"  # swarm_vectordb.index.META_NAME
INDEX_WAL = "index.wal"  # swarm_vectordb.index.WAL_NAME


@click.command("status")
@json_option
@click.pass_obj
@handled
def status(state: CliState, as_json: bool) -> None:
    """Show the home, the running node, endpoints, stake, jobs, peers, index and adapters."""
    started = time.monotonic()
    report = run(collect(state))
    report["took_s"] = round(time.monotonic() - started, 3)
    emit(report, as_json, lambda: render(report))


# ---------------------------------------------------------------- collecting


async def collect(state: CliState) -> dict[str, Any]:
    """Every part of the report; the network checks run at the same time."""
    home = state.home
    report: dict[str, Any] = {
        "home": {
            "path": str(home.root),
            "exists": home.exists(),
            "config_file": str(state.config_file or home.config_file),
            "config_present": (state.config_file or home.config_file).is_file(),
        }
    }
    report["home"].update(_address(home.keystore_file))
    cfg: Config | None = None
    try:
        cfg = state.config
    except NoosphereError as exc:
        report["home"]["config_error"] = str(exc)
    node_task = asyncio.to_thread(_node, home.root)
    if cfg is None:
        report["node"] = await node_task
        return report
    address = report["home"].get("address")
    node, swarm, chain = await asyncio.gather(
        node_task,
        asyncio.to_thread(_swarm, cfg.network.bee_url),
        _chain(cfg, home.deployment_file, address),
    )
    report["node"] = node
    report["swarm"] = swarm
    report["chain"] = chain
    report["peers"] = {"configured": len(cfg.network.peers)}
    if not node["running"]:
        report["index"] = _index(cfg.data_dir(home.root) / INDEX_DIR)
    report["adapters"] = _adapters(home.adapter_registry_file)
    return report


def _address(keystore: Path) -> dict[str, Any]:
    if not keystore.exists():
        return {"address": None, "keystore": "none (run `noosphere init`)"}
    from agent.identity import keystore_address

    try:
        return {"address": keystore_address(keystore)}
    except NoosphereError as exc:
        return {"address": None, "keystore": f"unreadable: {exc}"}


def _node(home: Path) -> dict[str, Any]:
    from agent.api.client import NodeClient
    from agent.api.discovery import read_node_file
    from agent.api.errors import ApiError

    client = NodeClient.discover(home)
    if client is None:
        return {"running": False}
    out: dict[str, Any] = {"running": True, "url": client.url}
    found = read_node_file(home)
    if found is not None:
        out["pid"] = found.pid
    try:
        info = client.status(timeout=CHECK_TIMEOUT_S)
    except (ApiError, OSError) as exc:
        out["error"] = str(exc)
        return out
    for key in ("version", "uptime_s", "model", "adapters", "embedder", "index_size"):
        if key in info:
            out[key] = info[key]
    return out


def _get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    """One HTTP request (POST when `body`), CHECK_TIMEOUT_S, its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_S) as response:
        return json.loads(response.read(1 << 20))


def _unreachable(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _swarm(bee_url: str) -> dict[str, Any]:
    if not bee_url:
        return {"url": None, "embedded": True}
    out: dict[str, Any] = {"url": bee_url, "embedded": False}
    try:
        health = _get_json(bee_url.rstrip("/") + "/health")
    except (OSError, ValueError) as exc:
        out.update(reachable=False, error=_unreachable(exc))
        return out
    out["reachable"] = True
    if isinstance(health, dict):
        out.update({k: health[k] for k in ("status", "version") if k in health})
    return out


def _rpc(url: str, method: str) -> int:
    answer = _get_json(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
    if not isinstance(answer, dict) or not isinstance(answer.get("result"), str):
        raise ValueError(f"{method}: no result in {str(answer)[:200]}")
    return int(answer["result"], 16)


async def _chain(cfg: Config, deployment_file: Path, address: str | None) -> dict[str, Any]:
    url = cfg.network.eth_rpc_url
    if not url:
        return {"url": None}
    out: dict[str, Any] = {
        "url": url,
        "deployment_file": str(deployment_file),
        "deployment_present": deployment_file.is_file(),
    }
    try:
        out["chain_id"] = await asyncio.to_thread(_rpc, url, "eth_chainId")
        out["block"] = await asyncio.to_thread(_rpc, url, "eth_blockNumber")
    except (OSError, ValueError) as exc:
        out.update(reachable=False, error=_unreachable(exc))
        return out
    out["reachable"] = True
    if not out["deployment_present"]:
        return out
    if address is None:
        out["market"] = {"error": "no address: run `noosphere init`"}
        return out
    try:
        out["market"] = await asyncio.wait_for(
            _market(url, deployment_file, address), CHAIN_READS_TIMEOUT_S
        )
    except TimeoutError:
        out["market"] = {"error": f"no answer within {CHAIN_READS_TIMEOUT_S:g} s"}
    return out


async def _market(url: str, deployment_file: Path, address: str) -> dict[str, Any]:
    """This address's stake and its part (requester, trainer) in the last jobs."""
    from eth_account import Account

    from chain.client import ChainClient
    from chain.deploy import Deployment
    from chain.errors import ChainError

    try:
        deployment = Deployment.load(deployment_file)
        reader = Account.create()  # reads need no key; never signs
        async with await ChainClient.connect(
            url, reader, deployment, timeout_s=CHECK_TIMEOUT_S
        ) as client:
            market = client.market
            account = await market.account(address)
            count = await market.job_count()
            first = max(1, count - RECENT_JOBS + 1)
            recent = await market.jobs(offset=first - 1, limit=RECENT_JOBS)
    except ChainError as exc:
        return {"error": str(exc)}
    mine = address.lower()
    jobs = []
    for job in recent:
        roles = [
            role
            for role, who in (("requester", job.requester), ("trainer", job.trainer))
            if who is not None and who.lower() == mine
        ]
        if roles:
            jobs.append(
                {
                    "id": int(job.job_id),
                    "status": job.status.name.lower(),
                    "reward_wei": int(job.reward),
                    "roles": roles,
                }
            )
    return {
        "address": deployment.market,
        "staked_wei": int(account.staked),
        "locked_wei": int(account.locked),
        "validator": account.validator,
        "jobs_scanned": len(recent),
        "jobs_total": count,
        "jobs": jobs,
    }


def _index(directory: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"dir": str(directory)}
    meta = directory / INDEX_META
    if not meta.is_file():
        out["present"] = False
        return out
    out["present"] = True
    try:
        found = json.loads(meta.read_text(encoding="utf-8"))
        out["model_id"] = found.get("model_id")
        out["dim"] = found.get("dim")
    except (OSError, ValueError, AttributeError) as exc:
        out["error"] = f"{meta} is unreadable: {exc}"
    wal = directory / INDEX_WAL
    out["log_bytes"] = wal.stat().st_size if wal.is_file() else 0
    return out


def _adapters(registry_file: Path) -> dict[str, Any]:
    from agent.adapters import AdapterRegistry

    try:
        entries = AdapterRegistry(registry_file).entries()
    except NoosphereError as exc:
        return {"error": str(exc), "registered": []}
    return {
        "registered": [
            {"name": e.name, "scale": e.scale, "default": e.default, "path": e.path}
            for e in entries
        ]
    }


# ---------------------------------------------------------------- rendering


def render(report: dict[str, Any]) -> list[str]:
    """The report as `part: ...` lines."""
    home = report["home"]
    lines = [f"home:      {home['path']}" + ("" if home["exists"] else " (not created yet)")]
    config_note = "" if home["config_present"] else " (absent: defaults)"
    lines.append(f"config:    {home['config_file']}{config_note}")
    if "config_error" in home:
        lines.append(f"config:    error: {home['config_error']}")
    lines.append(f"address:   {home['address'] or home.get('keystore', 'none')}")
    lines.append("node:      " + _node_line(report["node"]))
    if "swarm" in report:
        lines.append("swarm:     " + _swarm_line(report["swarm"]))
        lines.extend(_chain_lines(report["chain"]))
        lines.append(f"peers:     {report['peers']['configured']} configured (network.peers)")
    if "index" in report:
        lines.append("index:     " + _index_line(report["index"]))
    if "adapters" in report:
        lines.append("adapters:  " + _adapters_line(report["adapters"]))
    return lines


def _node_line(node: dict[str, Any]) -> str:
    if not node["running"]:
        return "no node running"
    text = f"running at {node['url']}"
    if "pid" in node:
        text += f", pid {node['pid']}"
    if "error" in node:
        return text + f"; status unreadable: {node['error']}"
    if "uptime_s" in node:
        text += f", up {_duration(float(node['uptime_s']))}"
    text += f", model {node.get('model') or '-'}"
    adapters = node.get("adapters") or []
    text += f", adapters {', '.join(map(str, adapters)) if adapters else 'none'}"
    return text + f", {node.get('index_size', 0)} chunk(s) indexed"


def _swarm_line(swarm: dict[str, Any]) -> str:
    if swarm["embedded"]:
        return "embedded dev node (runs inside the node or command that needs it)"
    if not swarm["reachable"]:
        return f"{swarm['url']} unreachable: {swarm['error']}"
    details = ", ".join(f"{k} {swarm[k]}" for k in ("status", "version") if k in swarm)
    return f"{swarm['url']} reachable" + (f" ({details})" if details else "")


def _chain_lines(chain: dict[str, Any]) -> list[str]:
    if chain["url"] is None:
        return ["chain:     not configured (network.eth_rpc_url empty): no stake or jobs"]
    deployment = "present" if chain["deployment_present"] else "absent"
    if not chain["reachable"]:
        head = f"{chain['url']} unreachable: {chain['error']}"
    else:
        head = f"{chain['url']} reachable (chain {chain['chain_id']}, block {chain['block']})"
    lines = [f"chain:     {head}", f"deploy:    {chain['deployment_file']} ({deployment})"]
    market = chain.get("market")
    if market is None:
        return lines
    if "error" in market:
        return [*lines, f"stake:     unreadable: {market['error']}"]
    from chain.units import format_ether

    stake = (
        f"{format_ether(market['staked_wei'])} staked, {format_ether(market['locked_wei'])} locked"
    )
    lines.append(f"stake:     {stake}" + (", validator" if market["validator"] else ""))
    scanned = f"last {market['jobs_scanned']} of {market['jobs_total']} job(s)"
    if not market["jobs_total"]:
        lines.append("jobs:      none on the market yet")
    elif not market["jobs"]:
        lines.append(f"jobs:      none of the {scanned} are this address's")
    else:
        lines.append(f"jobs:      in the {scanned}:")
        for job in market["jobs"]:
            reward = format_ether(job["reward_wei"])
            roles = "+".join(job["roles"])
            lines.append(f"           #{job['id']} {job['status']}, {reward}, as {roles}")
    return lines


def _index_line(index: dict[str, Any]) -> str:
    if not index["present"]:
        return f"none yet at {index['dir']} (`noosphere ingest` builds it)"
    if "error" in index:
        return str(index["error"])
    return (
        f"{index['dir']} ({index['model_id']}, dim {index['dim']}, "
        f"{index['log_bytes']} byte log); chunk count: start the node or run search"
    )


def _adapters_line(adapters: dict[str, Any]) -> str:
    if "error" in adapters:
        return f"registry unreadable: {adapters['error']}"
    entries = adapters["registered"]
    if not entries:
        return "none registered"
    return ", ".join(
        f"{e['name']} (scale {e['scale']:g}{', default' if e['default'] else ''})" for e in entries
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
