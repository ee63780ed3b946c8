"""Prompt templates, shipped as package data.

| file           | used for                                        |
|----------------|-------------------------------------------------|
| assistant.md   | the system prompt of `ask`                      |
| agent.md       | the system prompt of the agent loop (tools)     |

`load(name)` returns a template's text; templates are plain text with `{name}`
placeholders filled by `str.format` where a caller needs them.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["load"]


def load(name: str) -> str:
    """The text of the prompt template `name` (e.g. "assistant")."""
    if not name.isidentifier():
        raise ValueError(f"bad prompt name {name!r}")
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8").strip()
