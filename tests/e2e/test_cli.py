"""The installed `noosphere` command, run as a user would, in a fresh node home."""

from __future__ import annotations

import json
import stat
import tomllib

import pytest
from eth_account import Account

from tests.conftest import PASSWORD, Cli

pytestmark = pytest.mark.e2e


def test_init_id_init_id_keeps_one_identity(cli: Cli) -> None:
    first = cli("init")
    assert first.returncode == 0, first.stderr
    id1 = cli("id", "--json")
    assert id1.returncode == 0, id1.stderr
    again = cli("init")
    assert again.returncode == 0, again.stderr
    assert "keeping it" in again.stderr
    id2 = cli("id", "--json")
    one, two = json.loads(id1.stdout), json.loads(id2.stdout)
    assert one == two
    assert first.stdout.strip() == again.stdout.strip() == one["address"]

    keystore = cli.home / "keystore.json"
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.home.stat().st_mode) == 0o700
    document = json.loads(keystore.read_text())
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["kdfparams"]["n"] >= 1 << 18  # production cost
    assert Account.from_key(Account.decrypt(document, PASSWORD)).address == one["address"]
    plain = cli("id")
    assert one["address"] in plain.stdout
    assert one["public_key"] in plain.stdout


def test_wrong_or_missing_password(cli: Cli) -> None:
    assert cli("init").returncode == 0
    wrong = cli("id", env={"NOOSPHERE_PASSWORD": "definitely wrong"})
    assert wrong.returncode == 2
    assert "wrong password" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    missing = cli("id", env={"NOOSPHERE_PASSWORD": None})
    assert missing.returncode == 2
    assert "NOOSPHERE_PASSWORD" in missing.stderr


def test_id_before_init(cli: Cli) -> None:
    result = cli("id")
    assert result.returncode == 2
    assert "noosphere init" in result.stderr


def test_init_refuses_weak_password_and_writes_no_key(cli: Cli) -> None:
    result = cli("init", env={"NOOSPHERE_PASSWORD": "short"})
    assert result.returncode == 2
    assert "too short" in result.stderr
    assert not (cli.home / "keystore.json").exists()


def test_ask_json_with_bundled_model(cli: Cli) -> None:
    result = cli("ask", "--json", "--seed", "1", "Say hi")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["answer"].strip()
    assert out["completion_tokens"] > 0
    assert out["prompt_tokens"] > 0
    assert out["timings"]["ttft_ms"] > 0
    assert out["finish_reason"] in ("stop", "length")
    assert "bundled" in out["model"]


def test_ask_streams_plain_text_and_reads_stdin(cli: Cli) -> None:
    result = cli("ask", "--max-tokens", "8", "-", input="What is two plus two?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_ask_with_a_tiny_context_trims_and_says_so(cli: Cli) -> None:
    long_question = "Please summarise: " + "the quick brown fox jumps over the lazy dog " * 300
    result = cli("--set", "model.n_ctx=256", "ask", "--max-tokens", "8", long_question)
    assert result.returncode == 0, result.stderr
    assert "context window full" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["ask", "--model", "/nonexistent.gguf", "hi"], {}, "no such model file"),
        (["ask", ""], {}, "empty question"),
        (["--set", "model.n_ctx=abc", "ask", "hi"], {}, "model.n_ctx"),
        (["--set", "model.nope=1", "ask", "hi"], {}, "model.nope"),
        (["ask", "hi"], {"NOOSPHERE_MODEL_N_CTX": "huge"}, "model.n_ctx"),
        (["ask", "hi"], {"NOOSPHERE_MODEL_PATH": "/nope.gguf"}, "no such model file"),
        (["--set", "limits.max_input_chars=5", "ask", "a longer question"], {}, "max_input_chars"),
        (["model", "quantize", "/nope.gguf", "/tmp/x.gguf", "--type", "Q8_0"], {}, "not found"),
        (["model", "quantize", "/nope.gguf", "/tmp/x.gguf", "--type", "Q9"], {}, "Q9"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    cli: Cli, args: list[str], env: dict[str, str], words: str
) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_key_in_config_file(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text("[model]\ncontext = 5\n")
    result = cli("ask", "hi")
    assert result.returncode == 2
    assert "model.context" in result.stderr
    assert "config.toml" in result.stderr


def test_model_list_marks_the_bundled_default_active(cli: Cli) -> None:
    result = cli("model", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    active = [r for r in rows if r["active"]]
    assert len(active) == 1
    assert active[0]["source"] == "bundled"
    assert active[0]["size_mb"] > 50


def test_quantize_then_ask_with_the_result(
    cli: Cli, tmp_path_factory: pytest.TempPathFactory
) -> None:
    listed = json.loads(cli("model", "list", "--json").stdout)
    src = next(r["path"] for r in listed if r["source"] == "bundled")
    out = tmp_path_factory.mktemp("q") / "smol-q8.gguf"
    quant = cli("model", "quantize", src, str(out), "--type", "q8_0")
    assert quant.returncode == 0, quant.stderr
    assert quant.stdout.strip() == str(out)
    answer = cli("ask", "--json", "--model", str(out), "--max-tokens", "16", "Say hi")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["answer"].strip()
    again = cli("model", "quantize", src, str(out), "--type", "Q8_0")
    assert again.returncode == 2
    assert "--force" in again.stderr


def test_config_show_is_valid_toml_with_overrides(cli: Cli) -> None:
    result = cli(
        "--set",
        "model.n_ctx=1024",
        "config",
        "show",
        env={"NOOSPHERE_NETWORK_BEE_URL": "http://127.0.0.1:1633"},
    )
    assert result.returncode == 0, result.stderr
    parsed = tomllib.loads(result.stdout)
    assert parsed["model"]["n_ctx"] == 1024
    assert parsed["network"]["bee_url"] == "http://127.0.0.1:1633"
    defaults = cli("config", "show", "--defaults")
    assert "Context window in tokens." in defaults.stdout


def test_help_and_unknown_command(cli: Cli) -> None:
    assert cli("--help").returncode == 0
    bad = cli("frobnicate")
    assert bad.returncode == 2
    assert "No such command" in bad.stderr
