"""`noosphere` subcommands for the swarm component (registered by agent.cli)."""

from __future__ import annotations

import click


def register(main: click.Group) -> None:
    """Add this component's commands to the root `noosphere` group."""
