"""Configuration layers, validation and documentation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import AdapterConfig, Config, iter_fields, load_config, render_toml
from agent.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_layer(tmp_path: Path) -> None:
    assert load_config(tmp_path / "missing.toml", env={}) == Config()


def test_layers_apply_in_order_file_env_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nn_ctx = 1024\ntemperature = 0.5\nmax_tokens = 64\n")
    env = {"NOOSPHERE_MODEL_N_CTX": "2048", "NOOSPHERE_MODEL_TEMPERATURE": "0.25"}
    cfg = load_config(path, env=env, overrides=["model.n_ctx=512"])
    assert cfg.model.max_tokens == 64  # file only
    assert cfg.model.temperature == 0.25  # env beats file
    assert cfg.model.n_ctx == 512  # flag beats env


def test_network_endpoints_from_env(tmp_path: Path) -> None:
    cfg = load_config(None, env={"NOOSPHERE_NETWORK_BEE_URL": "http://127.0.0.1:1633"})
    assert cfg.network.bee_url == "http://127.0.0.1:1633"
    assert cfg.network.eth_rpc_url == ""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[model]\nn_ctxx = 1\n", "model.n_ctxx"),
        ("[modle]\nn_ctx = 1\n", "modle"),
        ("[[model.adapters]]\npath = 'a.gguf'\nweight = 2\n", "model.adapters[0].weight"),
        ("toplevel = 1\n", "toplevel"),
    ],
)
def test_unknown_key_in_file_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == key
    assert "unknown" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[model]\nn_ctx = "big"\n', "model.n_ctx", "expected an integer"),
        ("[model]\nn_ctx = 1.5\n", "model.n_ctx", "expected an integer"),
        ("[model]\nn_ctx = true\n", "model.n_ctx", "expected an integer"),
        ('[model]\ntemperature = "hot"\n', "model.temperature", "expected a number"),
        ("[model]\npath = 3\n", "model.path", "expected a string"),
        ("[model]\nadapters = 3\n", "model.adapters", "expected a list"),
        ("[model]\nadapters = [3]\n", "model.adapters", "expected a table"),
        ("model = 3\n", "model", "table"),
        ("[model]\ntemperature = nan\n", "model.temperature", "finite"),
    ],
)
def test_wrong_type_in_file_is_named(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert info.value.key == key
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ("model.n_ctx=10", "model.n_ctx", ">= 128"),
        ("model.temperature=-1", "model.temperature", ">= 0"),
        ("model.top_p=1.5", "model.top_p", "<= 1"),
        ("embedder.device=tpu", "embedder.device", "one of"),
        ("network.bee_url=ftp://x", "network.bee_url", "http"),
        ("model.n_ctx=abc", "model.n_ctx", "expected int"),
        ("model.path=a\x00b", "model.path", "NUL"),
    ],
)
def test_bad_values_from_flags_are_named(override: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides=[override])
    assert info.value.key == key
    assert words in str(info.value)
    assert "command line" in str(info.value) or "--set" in str(info.value)


def test_cross_field_rule_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides=["index.chunk_tokens=64", "index.chunk_overlap=40"])
    assert info.value.key == "index.chunk_overlap"
    assert "half" in str(info.value)


@pytest.mark.parametrize("bad", ["nodot=1", "model.n_ctx", "=3", "model.=3"])
def test_malformed_flag(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"SECTION\.KEY=VALUE"):
        load_config(None, env={}, overrides=[bad])


def test_environment_unknown_and_reserved_names() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"NOOSPHERE_MODEL_BOGUS": "1"})
    assert info.value.key == "model.bogus"
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"NOOSPHERE_NOSUCH_THING": "1"})
    assert info.value.key == "NOOSPHERE_NOSUCH_THING"
    reserved = {
        "NOOSPHERE_HOME": "/x",
        "NOOSPHERE_PASSWORD": "p",
        "NOOSPHERE_LOG_LEVEL": "debug",
        "NOOSPHERE_TEST_BEE_URL": "http://x",
        "OTHER": "ignored",
    }
    assert load_config(None, env=reserved) == Config()


def test_environment_typed_values() -> None:
    cfg = load_config(
        None,
        env={
            "NOOSPHERE_MODEL_N_CTX": "0x800",
            "NOOSPHERE_MODEL_ADAPTERS": '[{path = "a.gguf", scale = 0.5}]',
            "NOOSPHERE_LIMITS_MAX_INPUT_CHARS": " 100 ",
        },
    )
    assert cfg.model.n_ctx == 2048
    assert cfg.model.adapters == [AdapterConfig(path="a.gguf", scale=0.5)]
    assert cfg.limits.max_input_chars == 100
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"NOOSPHERE_MODEL_ADAPTERS": "[{path = "})
    assert info.value.key == "model.adapters"


def test_peer_addresses_are_checked() -> None:
    good = "0x" + "ab" * 20
    cfg = load_config(None, env={"NOOSPHERE_NETWORK_PEERS": f'["{good}"]'})
    assert cfg.network.peers == [good]
    for bad in ['["0x1234"]', '["ab" ]', "[3]", '"0xabc"']:
        with pytest.raises(ConfigError) as info:
            load_config(None, env={"NOOSPHERE_NETWORK_PEERS": bad})
        assert info.value.key == "network.peers"


def test_adapters_from_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[model.adapters]]\npath = "a.gguf"\n[[model.adapters]]\npath = "b.gguf"\nscale = 0.25\n',
    )
    cfg = load_config(path, env={})
    assert cfg.model.adapters == [AdapterConfig("a.gguf", 1.0), AdapterConfig("b.gguf", 0.25)]


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[model\nn_ctx = 1")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == str(path)
    assert "TOML" in str(info.value)


def test_rendered_defaults_document_every_field_and_round_trip(tmp_path: Path) -> None:
    text = render_toml(Config())
    for dotted, _default, doc in iter_fields():
        assert doc in text, dotted
        assert doc.strip(), f"{dotted} has no documentation"
    assert load_config(write(tmp_path, text), env={}) == Config()
    template = render_toml(Config(), comment_out=True)
    assert tomllib.loads(template) == {section: {} for section in tomllib.loads(text)}


def test_rendered_custom_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        env={},
        overrides=[
            "model.n_ctx=1024",
            'model.adapters=[{path="x.gguf", scale=2.0}]',
            "network.bee_url=http://localhost:1633",
            f'network.peers=["0x{"cd" * 20}"]',
        ],
    )
    assert load_config(write(tmp_path, render_toml(cfg)), env={}) == cfg


@given(key=st.text(max_size=30), value=st.text(max_size=30))
def test_arbitrary_flags_give_config_errors_or_a_config(key: str, value: str) -> None:
    try:
        cfg = load_config(None, env={}, overrides=[f"{key}={value}"])
    except ConfigError:
        return
    assert isinstance(cfg, Config)
