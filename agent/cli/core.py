"""The `noosphere` commands that run the node itself: init, id, ask, model, config."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent import identity
from agent.cli.common import CliState, handle_errors, read_password, run
from agent.config import Config, render_toml

if TYPE_CHECKING:
    from agent.api.client import NodeClient

# ---------------------------------------------------------------- identity


@click.command()
@click.pass_obj
@handle_errors
def init(state: CliState) -> None:
    """Create the node home, its config file and its key (never replaces a key)."""
    state.config  # noqa: B018 - validate the environment and flags before writing anything
    home = state.home
    home.create()
    if not home.config_file.exists():
        home.config_file.write_text(render_toml(Config(), comment_out=True))
        click.echo(f"wrote {home.config_file}", err=True)
    if home.keystore_file.exists():
        address = identity.keystore_address(home.keystore_file)
        click.echo(f"identity exists, keeping it: {address}", err=True)
        click.echo(address)
        return
    node = identity.create_identity(home.keystore_file, read_password(confirm=True))
    click.echo(f"created identity in {home.keystore_file}", err=True)
    click.echo(node.address)


@click.command("id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def show_id(state: CliState, as_json: bool) -> None:
    """Print the node's Ethereum address and public key (decrypts the key)."""
    node = identity.load_identity(state.home.keystore_file, read_password(confirm=False))
    if as_json:
        click.echo(json.dumps({"address": node.address, "public_key": node.public_key_hex}))
    else:
        click.echo(f"address     {node.address}")
        click.echo(f"public key  {node.public_key_hex}")


# ---------------------------------------------------------------- ask


@click.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--raw", is_flag=True, help="The bare model only: no tools, knowledge or routing.")
@click.option("--network", is_flag=True, help="Also search peers' knowledge for the answer.")
@click.option("--max-tokens", type=click.IntRange(1), help="Cap on generated tokens.")
@click.option("--temperature", type=click.FloatRange(0, 5), help="Sampling temperature.")
@click.option("--seed", type=click.IntRange(-1), help="Sampling seed (-1: random).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="GGUF file to use.")
@click.option(
    "--peer",
    metavar="ADDRESS",
    help="Ask the node with this address (0x...) over Swarm instead; its answer is its text.",
)
@click.pass_obj
@handle_errors
def ask(
    state: CliState,
    question: str,
    as_json: bool,
    raw: bool,
    network: bool,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    model_path: str | None,
    peer: str | None,
) -> None:
    """Ask QUESTION ('-' reads it from stdin): tools, knowledge and sources, as in chat.

    With --json the answer comes with the tool calls, sources and timings. A running
    node (`noosphere node`) answers when there is one and no sampling flag is given.
    """
    from agent.ask import AskRequest, ask_assistant, ask_raw, raw_json
    from agent.errors import ConfigError
    from agent.llm import SamplingParams
    from agent.models import resolve_model

    cfg = state.config
    if model_path:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=model_path))
    if question == "-":
        question = sys.stdin.read(cfg.limits.max_input_chars + 1)
    if not question.strip():
        raise ConfigError("question", "empty question")
    if len(question) > cfg.limits.max_input_chars:
        raise ConfigError(
            "limits.max_input_chars",
            f"question is longer than {cfg.limits.max_input_chars} characters",
        )
    if peer is not None:
        if raw or network or model_path:
            raise ConfigError("peer", "--peer asks another node: --raw, --network and --model "
                              "do not apply")  # fmt: skip
        _ask_peer(state, peer, question, as_json)
        return
    sampling = (max_tokens, temperature, seed, model_path)
    client = state.running_node() if not raw and all(x is None for x in sampling) else None
    if client is not None:
        _ask_through(client, question, network, as_json)
        return
    if not raw:
        state.refuse_beside_running_node("ask")
    choice = resolve_model(cfg.model, cfg.models_dir(state.home.root))
    params = SamplingParams.from_config(cfg.model)
    changes = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    params = params.with_(**{k: v for k, v in changes.items() if v is not None})
    request = AskRequest(question, choice.path, choice.name, params, as_json, network)
    if raw:
        result, load_s = run(ask_raw(cfg, request))
        if as_json:
            click.echo(json.dumps(raw_json(result, load_s, request)))
        elif result.trim:
            click.echo(f"note: {result.trim.describe()}", err=True)
        return

    def node_identity() -> identity.NodeIdentity | None:
        """The node key, read only when a question needs the chain or the network."""
        if not state.home.keystore_file.exists():
            return None
        return identity.load_identity(state.home.keystore_file, read_password(confirm=False))

    report = run(ask_assistant(cfg, state.home.root, request, identity=node_identity))
    if as_json:
        click.echo(json.dumps(report))


def _ask_through(client: NodeClient, question: str, network: bool, as_json: bool) -> None:
    """The running node's answer: streamed (tools on stderr), or its JSON report."""
    if as_json:
        click.echo(json.dumps(dict(client.ask(question, network=network), node=client.url)))
        return
    for event, data in client.ask_stream(question, network=network):
        if event == "token":
            sys.stdout.write(data.get("text", ""))
            sys.stdout.flush()
        elif event == "tool_call":
            args = json.dumps(data.get("arguments", {}))[:200]
            click.echo(f"[{data.get('name')} {args}]", err=True)
        elif event == "notice":
            click.echo(f"[{data.get('text', '')}]", err=True)
    sys.stdout.write("\n")


def _ask_peer(state: CliState, address: str, question: str, as_json: bool) -> None:
    """Another node's signed reply, through the running node or from this process."""
    from agent.errors import ConfigError
    from swarm_vectordb.asks import PeerReply
    from tools.ask_peer import show_reply

    digits = address[2:] if address[:2].lower() == "0x" else ""
    if len(digits) != 40 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError("peer", f"{address[:60]!r} is not an address (0x and 40 hex digits)")
    client = state.running_node()
    if client is not None:
        answer = client.peer_ask(address, question)
    else:
        answer = run(_ask_peer_here(state, bytes.fromhex(digits), question))
    if as_json:
        click.echo(json.dumps(answer))
        return
    reply = PeerReply(
        peer=bytes.fromhex(answer["peer"][2:]),
        text=answer["text"],
        latency_ms=answer["latency_ms"],
        ask_id=b"",
    )
    click.echo(show_reply(reply))


async def _ask_peer_here(state: CliState, address: bytes, question: str) -> dict[str, Any]:
    from agent.node import Node

    key = identity.load_identity(state.home.keystore_file, read_password(confirm=False))
    async with await Node.open(state.config, state.home, identity=lambda: key) as node:
        reply = await node.ask_peer(address, question)
    return {
        "peer": reply.peer_hex,
        "text": reply.text,
        "latency_ms": round(reply.latency_ms, 1),
        "untrusted": True,
    }


# ---------------------------------------------------------------- model


@click.group()
def model() -> None:
    """List, pull and quantize GGUF models."""


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handle_errors
def model_list(state: CliState, as_json: bool) -> None:
    """Show the models this node can run; * marks the active one."""
    from agent.errors import ModelNotFoundError
    from agent.models import available_models, resolve_model

    cfg = state.config
    models_dir = cfg.models_dir(state.home.root)
    try:
        active = resolve_model(cfg.model, models_dir).path
    except ModelNotFoundError as exc:
        active = None
        click.echo(f"warning: {exc}", err=True)
    rows = [
        {
            "active": m.path == active,
            "source": str(m.source),
            "name": m.name,
            "path": str(m.path),
            "size_mb": round(m.path.stat().st_size / 1e6, 1) if m.path.is_file() else None,
        }
        for m in available_models(cfg.model, models_dir)
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        size = f"{row['size_mb']} MB" if row["size_mb"] is not None else "missing"
        mark = "*" if row["active"] else " "
        click.echo(f"{mark} {row['source']:<8} {row['name']}  ({size})  {row['path']}")


@model.command("pull")
@click.argument("repo")
@click.argument("file")
@click.pass_obj
@handle_errors
def model_pull(state: CliState, repo: str, file: str) -> None:
    """Download FILE from Hugging Face repository REPO and make it the default."""
    from agent.models import pull_model

    pulled = pull_model(repo, file, state.config.models_dir(state.home.root))
    click.echo(f"pulled {repo}/{file} -> {pulled.path}", err=True)
    click.echo(pulled.path)


@model.command("quantize")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--type", "qtype", required=True, help="Target type, e.g. Q4_K_M, Q2_K, TQ2_0.")
@click.option("--threads", type=click.IntRange(0), default=0, help="0: one per core.")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
@handle_errors
def model_quantize(src: str, dst: str, qtype: str, threads: int, force: bool) -> None:
    """Requantize GGUF SRC into DST with llama.cpp's quantizer."""
    from tqdm import tqdm

    from agent.quantize import quantize

    bar = tqdm(desc=f"quantize {qtype.upper()}", unit="tensor", file=sys.stderr, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        out = run(
            quantize(
                Path(src), Path(dst), qtype, threads=threads, force=force, on_progress=progress
            )
        )
    finally:
        bar.close()
    size = out.stat().st_size / 1e6
    click.echo(f"wrote {out} ({size:.1f} MB); use it with --set model.path={out}", err=True)
    click.echo(str(out))


# ---------------------------------------------------------------- config


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--defaults", is_flag=True, help="Print every key with its default and docs.")
@click.pass_obj
@handle_errors
def config_show(state: CliState, defaults: bool) -> None:
    """Print the effective configuration (file + environment + flags) as TOML."""
    click.echo(render_toml(Config() if defaults else state.config), nl=False)
