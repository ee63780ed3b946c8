"""The `noosphere` command.

Every command is a thin shell over the library: parse flags, load the node home
and configuration, run one coroutine with `asyncio.run`, print. Errors the user
can act on (`NoosphereError`) print one line and exit with their status (2 for
bad input, configuration or password; 1 for run-time failures); Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from agent import (
    cli_chain,
    cli_chat,
    cli_knowledge,
    cli_swarm,
    cli_tools,
    cli_train,
    cli_trainer,
    identity,
)
from agent.config import Config, load_config, render_toml
from agent.errors import IdentityError, NoosphereError
from agent.home import NodeHome
from agent.owner import take_env_password

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class CliState:
    home: NodeHome
    overrides: list[str] = field(default_factory=list)
    config_file: Path | None = None
    _config: Config | None = None
    env_password: str | None = field(default=None, repr=False)  # NOOSPHERE_PASSWORD, taken

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(
                self.config_file or self.home.config_file, env=os.environ, overrides=self.overrides
            )
        return self._config


def handle_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Turn NoosphereError into `error: ...` and its exit status; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except NoosphereError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            sys.exit(130)

    return wrapper


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def read_password(*, confirm: bool) -> str:
    """The keystore password: NOOSPHERE_PASSWORD, else a prompt on a terminal.

    The variable leaves the environment as soon as it is read, so no child process
    inherits it: the root command takes it before any subcommand runs and keeps the
    value in its `CliState` (see `agent.owner`).
    """
    env = take_env_password()
    if env is None:
        ctx = click.get_current_context(silent=True)
        state = ctx.find_object(CliState) if ctx is not None else None
        env = state.env_password if state is not None else None
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise IdentityError("no password: set NOOSPHERE_PASSWORD or run in a terminal")
    value: str = click.prompt(
        "Keystore password", hide_input=True, confirmation_prompt=confirm, err=True
    )
    return value


# ---------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Node home (default ~/.noosphere).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Config file.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key."
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for llama.cpp's own).")
@click.version_option(package_name="noosphere")
@click.pass_context
def main(
    ctx: click.Context,
    home: str | None,
    config_file: str | None,
    overrides: tuple[str, ...],
    verbose: int,
) -> None:
    """Noosphere: a peer-to-peer LLM node on Ethereum and Swarm."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    level_name = os.environ.get("NOOSPHERE_LOG_LEVEL")
    if level_name and not verbose:
        level = logging.getLevelName(level_name.upper())
        if not isinstance(level, int):
            raise click.BadParameter(
                f"unknown log level {level_name!r}", param_hint="NOOSPHERE_LOG_LEVEL"
            )
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("llama_cpp").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    ctx.obj = CliState(
        home=NodeHome.locate(home, os.environ),
        overrides=list(overrides),
        config_file=Path(config_file) if config_file else None,
        env_password=take_env_password(),  # out of the environment before anything runs
    )


# ---------------------------------------------------------------- identity


@main.command()
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


@main.command("id")
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


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming.")
@click.option("--raw", is_flag=True, help="The bare model only: no tools, knowledge or routing.")
@click.option("--network", is_flag=True, help="Also search peers' knowledge for the answer.")
@click.option("--max-tokens", type=click.IntRange(1), help="Cap on generated tokens.")
@click.option("--temperature", type=click.FloatRange(0, 5), help="Sampling temperature.")
@click.option("--seed", type=click.IntRange(-1), help="Sampling seed (-1: random).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="GGUF file to use.")
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
) -> None:
    """Ask QUESTION ('-' reads it from stdin): tools, knowledge and sources, as in chat.

    With --json the answer comes with the tool calls, sources and timings.
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


# ---------------------------------------------------------------- model


@main.group()
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


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--defaults", is_flag=True, help="Print every key with its default and docs.")
@click.pass_obj
@handle_errors
def config_show(state: CliState, defaults: bool) -> None:
    """Print the effective configuration (file + environment + flags) as TOML."""
    click.echo(render_toml(Config() if defaults else state.config), nl=False)


# ---------------------------------------------------------------- components

cli_swarm.register(main)
cli_chain.register(main)
cli_knowledge.register(main)
cli_tools.register(main)
cli_chat.register(main)
cli_trainer.register(main)  # after cli_chain: adds `dataset build`
cli_train.register(main)  # verify, train worker|validator, adapter fetch

if __name__ == "__main__":
    main()
