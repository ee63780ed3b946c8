"""Every `noosphere` command line in the README parses with the real click command tree.

Global options (`--home`, `--config`, `--set`, `-v`) belong before the subcommand;
a README line that puts them after it fails at once for the reader who copies it.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from agent.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
SHELL_OPERATORS = {"&", "&&", "|", "||", ";"}


def readme_commands(text: str) -> list[list[str]]:
    """The argv after `noosphere` of every command in the README's ```sh blocks."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token in SHELL_OPERATORS:
                    if words and Path(words[0]).name == "noosphere":
                        commands.append(words[1:])
                    words = []
                else:
                    words.append(token)
    return commands


def parse(argv: list[str]) -> list[str]:
    """Parse `argv` the way `noosphere` would, down to the leaf command; its path."""
    ctx = main.make_context("noosphere", list(argv))
    path = ["noosphere"]
    command: click.Command = main
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # Click 8.2 deprecates protected_args (9.0: in args)
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None
        assert name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        path.append(name)
        command = sub
    return path


COMMANDS = readme_commands(README.read_text())


def test_the_readme_has_commands_to_check() -> None:
    assert len(COMMANDS) >= 20
    assert ["swarm", "stamp", "buy", "10000000", "24"] in COMMANDS


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses(argv: list[str]) -> None:
    try:
        path = parse(argv)
    except click.exceptions.Exit:  # --help / --version: parsed fine
        return
    except click.UsageError as exc:
        pytest.fail(f"`noosphere {' '.join(argv)}` does not parse: {exc.format_message()}")
    assert len(path) > 1, f"`noosphere {' '.join(argv)}` names no command"


def test_the_checker_rejects_a_global_option_after_the_subcommand() -> None:
    with pytest.raises(click.UsageError, match=r"No such option.*--set"):
        parse(["search", "--network", "what do bees eat?", "--set", "network.peers=[]"])
