"""The README documents the configuration the code actually has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from agent.config import iter_fields

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_table_matches_the_config_object() -> None:
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| `(.*?)` \| (.*?) \|$", README.read_text(), re.M)
    documented = {key: (default, doc) for key, default, doc in rows}
    expected = {
        key: ("[]" if isinstance(default, list) else json.dumps(default), doc)
        for key, default, doc in iter_fields()
    }
    assert documented == expected


def test_readme_quick_start_has_exactly_the_two_commands() -> None:
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, re.S)
    assert commands == [
        "./scripts/bootstrap && .venv/bin/noosphere demo",
        "./scripts/test",
    ]
    assert "./scripts/test" in (README.parent / ".ci" / "run").read_text()
