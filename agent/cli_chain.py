"""`noosphere` subcommands for the chain component (registered by agent.cli).

    noosphere chain dev [--port 8545]            anvil + every contract, in the foreground
    noosphere dataset create|propose|vote|execute|fork|join|show
    noosphere job post|list|show
    noosphere stake AMOUNT | unstake AMOUNT      amounts in ether ("0.5")
    noosphere registry show [ADDRESS]

Commands talk to `network.eth_rpc_url` and find the contracts in the deployment file
(`--deployment`, default `<home>/deployment.json`, which `chain dev` writes). Commands
that send a transaction sign with the node key and ask for confirmation first; `--yes`
skips the question, and without a terminal they refuse unless given `--yes`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from agent.errors import ConfigError, NoosphereError
from agent.owner import discard_typeahead

if TYPE_CHECKING:
    from agent.cli import CliState
    from chain.client import ChainClient
    from chain.records import SwarmRef, Wei

T = TypeVar("T")
DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18


class ChainCommandError(NoosphereError):
    """A chain error, reported to the user as one line."""


def register(main: click.Group) -> None:
    """Add this component's commands to the root `noosphere` group."""
    from agent.cli_market import dataset, job

    for command in (chain_group, dataset, job, stake, unstake, registry):
        main.add_command(command)


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


def with_client(
    state: CliState,
    deployment_file: Path | None,
    work: Callable[[ChainClient], Awaitable[T]],
    *,
    signer: bool,
) -> T:
    """Load key and deployment, connect, run `work`, close; ChainError -> one line."""
    from eth_account import Account

    from agent import identity
    from agent.cli import read_password, run
    from chain.client import ChainClient
    from chain.deploy import Deployment
    from chain.errors import ChainError

    url = state.config.network.eth_rpc_url
    if not url:
        raise ConfigError(
            "network.eth_rpc_url",
            "empty: start `noosphere chain dev` and pass "
            "--set network.eth_rpc_url=http://127.0.0.1:8545, or set a node's URL",
        )
    if signer:
        account = identity.load_identity(
            state.home.keystore_file, read_password(confirm=False)
        ).account
    else:
        account = Account.create()  # reads need no key; never used to sign
    timeout_s = state.config.network.request_timeout_s

    async def go() -> T:
        try:
            deployment = Deployment.load(deployment_path(state, deployment_file))
            async with await ChainClient.connect(
                url, account, deployment, timeout_s=timeout_s
            ) as client:
                return await work(client)
        except ChainError as exc:
            raise ChainCommandError(str(exc)) from exc

    return run(go())


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
    from agent.cli import handle_errors

    return handle_errors(fn)


# ---------------------------------------------------------------- chain dev


@click.group("chain")
def chain_group() -> None:
    """Ethereum dev chain."""


@chain_group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8545, show_default=True)
@click.option("--fund", multiple=True, metavar="ADDRESS", help="Also fund this address.")
@deployment_option
@click.pass_obj
def dev(
    state: CliState, host: str, port: int, fund: tuple[str, ...], deployment_file: Path | None
) -> None:
    """Run anvil, deploy every contract, fund dev accounts; stop on SIGINT/SIGTERM."""
    from agent.cli import run

    out = deployment_path(state, deployment_file)
    handled(lambda: run(_dev(state, host, port, list(fund), out)))()


async def _dev(state: CliState, host: str, port: int, fund: list[str], out: Path) -> None:
    from agent import identity
    from chain.client import close_web3, make_web3
    from chain.deploy import deploy_all
    from chain.devchain import AnvilChain, dev_account
    from chain.errors import ChainError
    from chain.transactor import Transactor

    if state.home.keystore_file.exists():
        fund.append(identity.keystore_address(state.home.keystore_file))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        anvil = await AnvilChain.start(host=host, port=port)
    except ChainError as exc:
        raise ChainCommandError(str(exc)) from exc
    try:
        accounts = [dev_account(i) for i in range(DEV_ACCOUNTS)]
        for address in [a.address for a in accounts] + fund:
            await anvil.fund(address, DEV_BALANCE_WEI)
        w3 = make_web3(anvil.url, timeout_s=30)
        try:
            deployer = await Transactor.create(w3, accounts[0])
            deployment = await deploy_all(deployer, out=out)
        finally:
            await close_web3(w3)
        click.echo(
            json.dumps(
                {
                    "rpc_url": anvil.url,
                    "deployment_file": str(out),
                    "deployment": dataclasses.asdict(deployment),
                    "funded": fund,
                    "dev_accounts": [
                        {"address": a.address, "private_key": "0x" + a.key.hex()} for a in accounts
                    ],
                }
            )
        )
        click.echo(f"anvil at {anvil.url}; Ctrl-C to stop", err=True)
        waiter = asyncio.ensure_future(anvil.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
        await asyncio.gather(waiter, stopper, return_exceptions=True)  # nothing left running
    except ChainError as exc:
        raise ChainCommandError(str(exc)) from exc
    finally:
        await anvil.aclose()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


# ---------------------------------------------------------------- stake


@click.command()
@click.argument("amount")
@yes_option
@deployment_option
@click.pass_obj
def stake(state: CliState, amount: str, assume_yes: bool, deployment_file: Path | None) -> None:
    """Stake AMOUNT ether in the training market (as trainer or validator)."""
    from chain.units import format_ether

    async def work(client: ChainClient) -> None:
        await client.market.stake(wei)
        account = await client.market.account(client.tx.address)
        click.echo(f"staked {format_ether(wei)}; total {format_ether(account.staked)}")

    wei = parse_ether(amount)
    action = f"stake {format_ether(wei)} ({wei} wei)"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@click.command()
@click.argument("amount")
@yes_option
@deployment_option
@click.pass_obj
def unstake(state: CliState, amount: str, assume_yes: bool, deployment_file: Path | None) -> None:
    """Unstake AMOUNT ether of free stake and withdraw everything owed."""
    from chain.units import format_ether

    async def work(client: ChainClient) -> None:
        await client.market.unstake(wei)
        owed = await client.market.pending_withdrawal(client.tx.address)
        await client.market.withdraw()
        click.echo(f"unstaked {format_ether(wei)}; withdrew {format_ether(owed)}")

    wei = parse_ether(amount)
    action = f"unstake {format_ether(wei)} ({wei} wei)"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


def send_transaction(
    state: CliState,
    deployment_file: Path | None,
    assume_yes: bool,
    action: str,
    work: Callable[[ChainClient], Awaitable[None]],
) -> None:
    confirm(assume_yes, action)
    with_client(state, deployment_file, work, signer=True)


# ---------------------------------------------------------------- registry


@click.group()
def registry() -> None:
    """The on-chain peer registry."""


@registry.command("show")
@click.argument("address", required=False)
@json_option
@deployment_option
@click.pass_obj
def registry_show(
    state: CliState, address: str | None, as_json: bool, deployment_file: Path | None
) -> None:
    """One peer's record, or every registered peer."""

    async def work(client: ChainClient) -> list[dict[str, Any]]:
        peers = [await client.registry.peer(address)] if address else await client.registry.peers()
        return [record_dict(p) for p in peers]

    def show() -> None:
        peers = with_client(state, deployment_file, work, signer=False)
        emit(
            peers,
            as_json,
            lambda: [
                f"{p['account']}  inbox {p['inbox']}  caps {p['capabilities']}" for p in peers
            ],
        )

    handled(show)()
