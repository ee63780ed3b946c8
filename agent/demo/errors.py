"""The demo's errors, under the node's tree::

NoosphereError
└── DemoError             the demo cannot run or was stopped
    ├── MissingTool       a program the demo needs (anvil) is not installed (exit 2)
    └── StepFailed        a step's command failed, timed out or printed nothing usable
"""

from __future__ import annotations

from agent.errors import NoosphereError

__all__ = ["BadInput", "DemoError", "MissingTool", "StepFailed"]


class DemoError(NoosphereError):
    """The demo could not complete."""


class BadInput(DemoError):
    """An option the demo cannot use; the message says which and why."""

    exit_status = 2


class MissingTool(DemoError):
    """A program the demo needs is missing; the message says how to install it."""

    exit_status = 2


class StepFailed(DemoError):
    """One step of the scenario failed; the message names the command and its output."""
