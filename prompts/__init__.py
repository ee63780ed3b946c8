"""Prompt templates, shipped as package data.

| file               | used for                                              |
|--------------------|-------------------------------------------------------|
| assistant.md       | the system prompt of `ask --raw`                      |
| agent.md           | the system prompt of the agent loop (tools)           |
| grounded.md        | a question with the passages retrieved for it         |
| tool_failed.md     | the note after a failed tool call: answer without tools |
| tool_examples.md   | each tool's purpose and example requests (routing)    |
| python_code.md     | few-shot requests and bare code for the python route  |

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
