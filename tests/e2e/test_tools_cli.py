"""`noosphere tools` through the installed command."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.e2e


def test_list_and_call_tools(cli: Cli) -> None:
    listed = cli("tools", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert {"calculator", "python"} <= names

    product = cli(
        "tools", "call", "calculator", '{"expression": "123456789 * 987654321"}', "--json"
    )
    assert product.returncode == 0, product.stderr
    result = json.loads(product.stdout)
    assert result["ok"] is True
    assert "121932631112635269" in result["output"]
    assert result["error"] in (None, "")

    code = cli("tools", "call", "python", '{"code": "print(sum(range(10)))"}', "--json")
    assert code.returncode == 0, code.stderr
    assert json.loads(code.stdout)["output"].strip() == "45"


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (["tools", "call", "calculator", "{not json"], 2, "JSON"),
        (["tools", "call", "calculator", "[1, 2]"], 2, "object"),
        (["tools", "call", "nosuchtool", "{}"], 2, "nosuchtool"),
        (["tools", "call", "calculator", '{"expression": "__import__(\\"os\\")"}'], 1, ""),
        (["tools", "call", "calculator", '{"expr": "1+1"}'], 1, "expression"),
    ],
)
def test_bad_calls(cli: Cli, args: list[str], status: int, words: str) -> None:
    result = cli(*args, "--json") if status == 1 else cli(*args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    if status == 1:
        payload = json.loads(result.stdout)
        assert payload["ok"] is False
        assert words in payload["error"]
    else:
        assert words in result.stderr
