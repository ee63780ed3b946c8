"""`noosphere chain dev`, `stake`, `unstake`, `registry show`: the chain component.

    noosphere chain dev [--port 8545]            anvil + every contract, in the foreground
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import (
    ChainCommandError,
    CliState,
    deployment_option,
    deployment_path,
    emit,
    handled,
    json_option,
    parse_ether,
    record_dict,
    run,
    send_transaction,
    with_client,
    yes_option,
)

if TYPE_CHECKING:
    from chain.client import ChainClient

DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18

# ---------------------------------------------------------------- chain dev


@click.group("chain")
def chain_group() -> None:
    """Ethereum dev chain."""


@chain_group.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8545, show_default=True)
@click.option("--fund", multiple=True, metavar="ADDRESS", help="Also fund this address.")
@click.option(
    "--block-time",
    type=click.IntRange(0, 3600),
    default=1,
    show_default=True,
    help="Also mine an empty block every N seconds, so chain time passes while idle "
    "(challenge windows end); 0: mine only on transactions.",
)
@deployment_option
@click.pass_obj
def dev(
    state: CliState,
    host: str,
    port: int,
    fund: tuple[str, ...],
    block_time: int,
    deployment_file: Path | None,
) -> None:
    """Run anvil, deploy every contract, fund dev accounts; stop on SIGINT/SIGTERM."""
    out = deployment_path(state, deployment_file)
    handled(lambda: run(_dev(state, host, port, list(fund), block_time, out)))()


async def _dev(
    state: CliState, host: str, port: int, fund: list[str], block_time: int, out: Path
) -> None:
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
        anvil = await AnvilChain.start(host=host, port=port, block_time=block_time)
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
    if stop.is_set():
        click.echo(f"stopped: anvil at {anvil.url} (its chain lived in memory)", err=True)


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
