"""What every `noosphere` command module shares.

The node state the root group builds (`CliState`), error handling
(`handle_errors`, `handled`), the password prompt, running one coroutine, and the
chain plumbing several command families use: the deployment/--yes/--json
options, ether and Swarm-reference parsing, the owner's confirmation, a connected
chain client, and JSON-or-lines output. No command is defined here.

Errors the user can act on (`NoosphereError`) print one line and exit with their
status (2 for bad input, configuration or password; 1 for run-time failures);
Ctrl-C exits 130.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from agent.config import Config, load_config
from agent.errors import ConfigError, IdentityError, NoosphereError
from agent.home import NodeHome
from agent.owner import discard_typeahead, take_env_password

if TYPE_CHECKING:
    from agent.api.client import NodeClient
    from agent.node import Node
    from agent.runtime.components import SwarmAccess
    from chain.client import ChainClient
    from chain.records import SwarmRef, Wei

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class CliState:
    home: NodeHome
    overrides: list[str] = field(default_factory=list)
    config_file: Path | None = None
    _config: Config | None = None
    env_password: str | None = field(default=None, repr=False)  # NOOSPHERE_PASSWORD, taken
    use_node: bool = True  # False with --no-node
    _home_use: Any = field(default=None, repr=False)  # SharedUse while working in-process

    def running_node(self) -> NodeClient | None:
        """A client of the node running for this home, when this command may use it.

        Not with `--no-node`, nor when this command was given its own configuration
        (`--config`, `--set`): the running node would not honour it.
        """
        if not self.use_node or self.overrides or self.config_file is not None:
            return None
        from agent.api.client import NodeClient

        return NodeClient.discover(self.home.root)

    def refuse_beside_running_node(self, what: str) -> None:
        """Stop `what` in this process when a node runs for this home anyway (it was
        not used: `--no-node`, `--config`, `--set`): the node owns the index."""
        from agent.api.client import NodeClient
        from agent.api.discovery import SharedUse, lock_holder

        found = NodeClient.discover(self.home.root)
        if found is not None:
            self._refuse(what, f" ({found.url})")
        if not self.home.root.is_dir() or self._home_use is not None:
            return
        # A headless node (no API, so no node.json) is found by its lock; holding the lock
        # shared keeps a node from starting while this command works on the index.
        try:
            self._home_use = SharedUse.acquire(self.home.root)
        except OSError as exc:
            problem = f"cannot lock {self.home.root}/node.lock: {exc.strerror}"
            raise ConfigError("node", problem) from None
        if self._home_use is None:
            pid = lock_holder(self.home.root)
            self._refuse(what, f" (pid {pid})" if pid is not None else "")

    def _refuse(self, what: str, where: str) -> NoReturn:
        raise ConfigError(
            "node",
            f"a node is running for {self.home.root}{where} and owns its index; "
            f"{what} through it (without --no-node, --config or --set), or stop it first",
        )

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


class ChainCommandError(NoosphereError):
    """A chain error, reported to the user as one line."""


class TrainCommandError(NoosphereError):
    """A training-market error, reported as one line."""


# ---------------------------------------------------------------- plumbing

deployment_option = click.option(
    "--deployment",
    "deployment_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Deployment JSON (default: <home>/deployment.json).",
)
yes_option = click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def parse_ether(text: str) -> Wei:
    """A positive amount of ether, exactly (`chain.units`); bad text is a usage error."""
    from chain.units import AmountError
    from chain.units import parse_ether as parse

    try:
        return parse(text)
    except AmountError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_ref(text: str) -> SwarmRef:
    from chain.records import swarm_ref

    try:
        return swarm_ref(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc} (64 hex digits)") from exc


def confirm(assume_yes: bool, action: str) -> None:
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise ChainCommandError(f"refusing to {action} without a terminal: pass --yes")
    discard_typeahead(sys.stdin)  # only what is typed after the question answers it
    click.confirm(f"{action}?", abort=True, err=True)


def deployment_path(state: CliState, explicit: Path | None) -> Path:
    return state.home.deployment(explicit)


def with_node(
    state: CliState,
    deployment_file: Path | None,
    work: Callable[[Node], Awaitable[T]],
    *,
    signer: bool,
) -> T:
    """Open this home's `Node` (the key read first when `signer`), run `work`, close;
    a ChainError from `work` -> one line."""
    from agent import identity
    from agent.node import Node
    from chain.errors import ChainError

    key = None
    if signer:
        key = identity.load_identity(state.home.keystore_file, read_password(confirm=False))

    async def go() -> T:
        try:
            async with await Node.open(
                state.config,
                state.home,
                identity=lambda: key,
                deployment_file=deployment_path(state, deployment_file),
            ) as node:
                return await work(node)
        except ChainError as exc:
            raise ChainCommandError(str(exc)) from exc

    return run(go())


def with_client(
    state: CliState,
    deployment_file: Path | None,
    work: Callable[[ChainClient], Awaitable[T]],
    *,
    signer: bool,
) -> T:
    """`with_node` for work that needs only the chain client (a reader unless `signer`)."""

    async def on_node(node: Node) -> T:
        return await work(await node.chain(signer=signer))

    return with_chain_node(state, deployment_file, on_node, signer=signer)


def with_client_and_swarm(
    state: CliState,
    deployment_file: Path | None,
    work: Callable[[ChainClient, SwarmAccess], Awaitable[T]],
    *,
    signer: bool,
) -> T:
    """`with_client` for work that also reads or writes Swarm: both from the one node."""

    async def on_node(node: Node) -> T:
        return await work(await node.chain(signer=signer), await node.swarm())

    return with_chain_node(state, deployment_file, on_node, signer=signer)


def with_chain_node(
    state: CliState,
    deployment_file: Path | None,
    work: Callable[[Node], Awaitable[T]],
    *,
    signer: bool,
) -> T:
    """`with_node` for work on the chain: a missing chain URL is said before any
    password prompt."""
    from agent.runtime.components import chain_url

    chain_url(state.config)
    return with_node(state, deployment_file, work, signer=signer)


def emit(value: Any, as_json: bool, lines: Callable[[], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(value, default=_jsonable))
    else:
        for line in lines():
            click.echo(line)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def record_dict(record: Any) -> dict[str, Any]:
    out = dataclasses.asdict(record)
    return {k: _jsonable(v) if isinstance(v, bytes) else v for k, v in out.items()}


def handled(fn: Callable[..., None]) -> Callable[..., None]:
    return handle_errors(fn)


def send_transaction(
    state: CliState,
    deployment_file: Path | None,
    assume_yes: bool,
    action: str,
    work: Callable[[ChainClient], Awaitable[None]],
) -> None:
    confirm(assume_yes, action)
    with_client(state, deployment_file, work, signer=True)


def model_path(state: CliState) -> Path:
    """The GGUF this node runs (config, then the models directory)."""
    from agent.models import resolve_model

    cfg = state.config
    return resolve_model(cfg.model, cfg.models_dir(state.home.root)).path


def exit_without_collecting() -> None:
    """For a command that is done and about to exit: skip the interpreter's last garbage
    collection over the hundreds of thousands of objects torch and the models loaded
    (seconds on a busy machine, between the last line printed and the exit)."""
    import gc

    gc.freeze()
