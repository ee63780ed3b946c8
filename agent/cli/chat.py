"""`noosphere chat`: the personal-assistant REPL (see agent.chat)."""

from __future__ import annotations

import click

from agent.cli.common import CliState, handle_errors, read_password, run


@click.command()
@click.option("--resume", type=click.IntRange(1), help="Continue conversation ID.")
@click.option("--list", "list_only", is_flag=True, help="List saved conversations.")
@click.pass_obj
@handle_errors
def chat(state: CliState, resume: int | None, list_only: bool) -> None:
    """Chat with the assistant: tools, knowledge, chain; /help inside for commands.

    With a node running (`noosphere node`) the turns run on it; `--no-node` runs
    everything in this process (needed for chain writes, which ask you first).
    """
    from agent.chat import run_chat
    from agent.conversations import ConversationStore
    from agent.identity import load_identity
    from agent.models import resolve_model

    cfg = state.config
    data_dir = cfg.data_dir(state.home.root)
    if list_only:

        async def show() -> None:
            store = await ConversationStore.open(data_dir / "conversations.sqlite")
            try:
                for c in await store.list():
                    click.echo(f"{c.id:>5}  {c.messages:>4} msg  {c.title}")
            finally:
                await store.aclose()

        run(show())
        return
    client = state.running_node()
    if client is not None:
        from agent.chat_remote import run_remote_chat

        run(run_remote_chat(client, data_dir, resume=resume))
        return
    state.refuse_beside_running_node("chat")
    choice = resolve_model(cfg.model, cfg.models_dir(state.home.root))
    node = None
    if state.home.keystore_file.exists():
        node = load_identity(state.home.keystore_file, read_password(confirm=False))
    # the key is read up front (the password prompt comes before the model loads)
    run(run_chat(cfg, state.home.root, choice.path, lambda: node, resume=resume))
