"""`noosphere tools ...` in-process: click's CliRunner on a group holding the `tools` group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from agent.cli import tools as cli_tools
from agent.cli.common import CliState
from agent.home import NodeHome

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    group = click.Group("noosphere")
    group.add_command(cli_tools.tools_group)
    state = CliState(home=NodeHome(tmp_path / "home"))

    def call(*args: str) -> Result:
        return CliRunner().invoke(group, list(args), obj=state, catch_exceptions=False)

    return call


def test_list_text_and_json(invoke: Invoke) -> None:
    text = invoke("tools", "list")
    assert text.exit_code == 0
    assert "calculator(expression)  [read-only]" in text.output
    assert "python(code)  [local-only]" in text.output
    listed = invoke("tools", "list", "--json")
    assert listed.exit_code == 0
    names = [t["name"] for t in json.loads(listed.output)["tools"]]
    assert names == ["calculator", "python"]


def test_call_calculator(invoke: Invoke) -> None:
    result = invoke("tools", "call", "calculator", '{"expression": "123456789 * 987654321"}')
    assert result.exit_code == 0
    assert result.output == "121932631112635269\n"
    as_json = invoke("tools", "call", "calculator", '{"expression": "0.1 + 0.2"}', "--json")
    assert as_json.exit_code == 0
    body = json.loads(as_json.output)
    assert body["ok"] is True
    assert body["output"] == "0.3"
    assert body["error"] == ""


def test_call_python(invoke: Invoke) -> None:
    result = invoke("tools", "call", "python", '{"code": "print(6 * 7)"}', "--json")
    assert result.exit_code == 0
    body = json.loads(result.output)
    assert body["ok"] is True
    assert body["output"] == "42\n"


def test_tool_failure_exits_1(invoke: Invoke) -> None:
    result = invoke("tools", "call", "calculator", '{"expression": "1/0"}', "--json")
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["ok"] is False
    assert body["error"] == "division by zero"
    bad_args = invoke("tools", "call", "calculator", '{"expr": "1"}')
    assert bad_args.exit_code == 1
    assert "unknown argument(s) expr" in bad_args.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "{}"), "unknown tool 'nope' (available: calculator, python)"),
        (("calculator", "{not json"), "arguments are not valid JSON"),
        (("calculator", "[1, 2]"), "arguments must be a JSON object"),
    ],
)
def test_bad_input_exits_2(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    result = invoke("tools", "call", *args)
    assert result.exit_code == 2
    assert message in result.output
