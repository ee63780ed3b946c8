"""The built-in tools, assembled into a fresh registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tools.calculator import make_calculator
from tools.python_sandbox import SandboxLimits, make_python_tool
from tools.registry import ToolRegistry


def builtin_registry(
    *, deny: Sequence[Path] = (), sandbox: SandboxLimits | None = None
) -> ToolRegistry:
    """calculator and python; `deny` (the node home) is off limits to the python tool."""
    return ToolRegistry([make_calculator(), make_python_tool(deny=deny, limits=sandbox)])
