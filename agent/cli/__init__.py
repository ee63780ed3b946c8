"""The `noosphere` command: the root group and its entry point (`agent.cli:main`).

Every command is a thin shell over the library: parse flags, load the node home
and configuration, run one coroutine with `asyncio.run`, print. Errors the user
can act on (`NoosphereError`) print one line and exit with their status (2 for
bad input, configuration or password; 1 for run-time failures); Ctrl-C exits 130.

Modules (their imports form a DAG: this package imports the command modules,
each command module imports `common` and nothing else of the CLI; the layering
test checks it):

- `common`: CliState, error handling, password, chain plumbing shared by families.
- `core`: init, id, ask, model list|pull|quantize, config show.
- `chain`: chain dev, stake, unstake, registry show.
- `dataset`: dataset create|propose|vote|execute|fork|join|show|build.
- `market`: job post|list|show|draw|vote|resolve (the requester's side).
- `train`: verify, train worker|validator, adapter fetch.
- `knowledge`: ingest, search (through a running node when there is one).
- `node`: node (alias serve), the long-running node.
- `demo`: the network in one command.
- `adapter`: adapter list|add|remove (beside `train`'s adapter fetch).
- `swarm`: swarm dev, swarm stamp list|buy.
- `tools`: tools list|call.
- `chat`: the assistant REPL.
- `status`: status, what this home is and what it reaches (no model loaded).

Module-level imports stay light (click, stdlib, `common`); libraries that take
time to import (torch, llama.cpp, web3, sentence-transformers) load inside the
command that needs them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from agent.cli import (
    adapter,
    chain,
    chat,
    core,
    dataset,
    demo,
    knowledge,
    market,
    node,
    status,
    swarm,
    tools,
    train,
)
from agent.cli.common import CliState
from agent.home import NodeHome
from agent.logs import configure as configure_logging
from agent.owner import take_env_password

__all__ = ["main"]

# ---------------------------------------------------------------- root


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Node home (default ~/.noosphere).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Config file.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key."
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for llama.cpp's own).")
@click.option(
    "--no-node",
    is_flag=True,
    help="Work in this process even when a node runs for this home.",
)
@click.option(
    "--log-json", is_flag=True, help="Log one JSON object per line on stderr (agent.logs)."
)
@click.version_option(package_name="noosphere")
@click.pass_context
def main(
    ctx: click.Context,
    home: str | None,
    config_file: str | None,
    overrides: tuple[str, ...],
    verbose: int,
    no_node: bool,
    log_json: bool,
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
    configure_logging(level, json_lines=log_json, stream=sys.stderr)
    logging.getLogger("llama_cpp").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    ctx.obj = CliState(
        home=NodeHome.locate(home, os.environ),
        overrides=list(overrides),
        config_file=Path(config_file) if config_file else None,
        env_password=take_env_password(),  # out of the environment before anything runs
        use_node=not no_node,
    )


for _command in (
    core.init,
    core.show_id,
    core.ask,
    core.model,
    core.config_group,
    swarm.swarm,
    chain.chain_group,
    chain.stake,
    chain.unstake,
    chain.registry,
    dataset.dataset,
    market.job,
    knowledge.ingest,
    knowledge.search,
    node.node_command,
    tools.tools_group,
    chat.chat,
    train.verify,
    train.train,
    train.adapter,
    status.status,
):
    main.add_command(_command)
main.add_command(node.node_command, name="serve")  # the same node, headless
adapter.register(train.adapter)
demo.register(main)

if __name__ == "__main__":
    main()
