"""The node's configuration: one typed object, every field documented with its default.

Layers, later ones winning::

    defaults (this module) < config.toml < NOOSPHERE_<SECTION>_<FIELD> env vars < CLI flags

`config.toml` lives in the node home. Environment variables name a field by section and
field in upper case: `NOOSPHERE_MODEL_N_CTX=8192`, `NOOSPHERE_NETWORK_BEE_URL=http://...`.
CLI flags use dotted keys: `--set model.n_ctx=8192`. An unknown key or a value of the
wrong type or out of range is a `ConfigError` naming the key and where it came from.

A few `NOOSPHERE_*` variables are not configuration fields and are left alone:
`NOOSPHERE_HOME` (node home), `NOOSPHERE_PASSWORD` (keystore password),
`NOOSPHERE_LOG_LEVEL`, and anything under `NOOSPHERE_TEST_` (the test suite's own).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from agent.errors import ConfigError

T = TypeVar("T")

ENV_PREFIX = "NOOSPHERE_"
RESERVED_ENV = frozenset({"HOME", "PASSWORD", "LOG_LEVEL"})
RESERVED_ENV_PREFIXES = ("TEST_",)


def setting(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[str] | None = None,
) -> Any:
    """A documented configuration field with optional bounds."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class NetworkConfig:
    bee_url: str = setting("", "Bee HTTP API URL. Empty: the embedded Swarm dev node.")
    eth_rpc_url: str = setting("", "Ethereum JSON-RPC URL. Empty: the embedded dev chain.")
    request_timeout_s: float = setting(
        30.0, "Timeout for every network request, in seconds.", minimum=0.1, maximum=3600
    )
    peers: list[str] = setting([], "Addresses (0x...) of peers to ask, besides the registry's.")
    query_deadline_s: float = setting(
        5.0, "How long a network search waits for answers.", minimum=0.1, maximum=600
    )
    fan_out: int = setting(0, "Peers asked per network search; 0 asks every known peer.", minimum=0)
    allow_peers: list[str] = setting(
        [], "When serving, answer only these addresses (0x...); empty answers anyone."
    )
    ask_deadline_s: float = setting(
        120.0, "How long `ask --peer` and the ask_peer tool wait for a reply.", minimum=1,
        maximum=3600,
    )  # fmt: skip


@dataclass(frozen=True)
class AdapterConfig:
    path: str = setting("", "Path of a LoRA adapter in GGUF format.")
    scale: float = setting(1.0, "Strength the adapter is applied with.", minimum=-10, maximum=10)


@dataclass(frozen=True)
class ModelConfig:
    path: str = setting("", "GGUF file to load. Empty: hf_repo/hf_file, else pulled, else bundled.")
    hf_repo: str = setting("", "Hugging Face repository of a model fetched by `model pull`.")
    hf_file: str = setting("", "GGUF file name inside hf_repo.")
    adapters: list[AdapterConfig] = setting([], "LoRA adapters applied on load, in order.")
    n_ctx: int = setting(4096, "Context window in tokens.", minimum=128, maximum=1 << 20)
    n_threads: int = setting(
        0, "CPU threads for generation; 0: half the logical cores (llama.cpp).", minimum=0
    )
    n_batch: int = setting(512, "Prompt tokens evaluated per batch.", minimum=1, maximum=1 << 16)
    prompt_cache: bool = setting(
        False,
        "Reuse the previous answer's evaluated prompt prefix: faster follow-ups in long "
        "conversations, but a greedy answer may then differ slightly from a fresh run's.",
    )
    n_gpu_layers: int = setting(0, "Layers offloaded to a GPU when one is present.", minimum=-1)
    max_tokens: int = setting(512, "Default cap on generated tokens per answer.", minimum=1)
    temperature: float = setting(0.3, "Sampling temperature; 0 is greedy.", minimum=0, maximum=5)
    top_p: float = setting(0.95, "Nucleus sampling threshold.", minimum=0, maximum=1)
    top_k: int = setting(40, "Sample among the k most likely tokens; 0 disables.", minimum=0)
    min_p: float = setting(
        0.05, "Drop tokens below this share of the top one.", minimum=0, maximum=1
    )
    repeat_penalty: float = setting(1.1, "Penalty on repeated tokens; 1 disables.", minimum=0)
    seed: int = setting(-1, "Sampling seed; -1 picks a fresh one per answer.", minimum=-1)
    system_prompt: str = setting("", "System prompt. Empty: the bundled assistant prompt.")


@dataclass(frozen=True)
class EmbedderConfig:
    model: str = setting(
        "all-MiniLM-L6-v2",
        "sentence-transformers model: the bundled all-MiniLM-L6-v2 or a local path.",
    )
    batch_size: int = setting(64, "Texts embedded per batch.", minimum=1, maximum=4096)
    device: str = setting("cpu", "Torch device for embedding.", choices=("cpu", "cuda", "mps"))


@dataclass(frozen=True)
class IndexConfig:
    chunk_tokens: int = setting(
        200, "Tokens per chunk (the embedder reads at most 256).", minimum=8, maximum=256
    )
    chunk_overlap: int = setting(
        40, "Tokens shared by neighbouring chunks.", minimum=0, maximum=100
    )
    hnsw_threshold: int = setting(
        50_000, "Chunks above which search switches from exact to HNSW.", minimum=1
    )

    def __post_init__(self) -> None:
        if self.chunk_overlap * 2 >= self.chunk_tokens:
            raise ConfigError("index.chunk_overlap", "must be less than half of index.chunk_tokens")


@dataclass(frozen=True)
class DataConfig:
    dir: str = setting("", "Where indexes and conversations live. Empty: <home>/data.")
    models_dir: str = setting("", "Where pulled and quantized models live. Empty: <home>/models.")


@dataclass(frozen=True)
class LimitsConfig:
    max_input_chars: int = setting(
        200_000, "Longest question or message accepted, in characters.", minimum=1
    )
    max_concurrent_requests: int = setting(
        8, "Requests from peers served at the same time.", minimum=1, maximum=1024
    )
    max_message_bytes: int = setting(
        1 << 20, "Largest peer message accepted, in bytes.", minimum=1024, maximum=1 << 26
    )
    answer_rate_per_s: float = setting(
        20.0, "Answers per second to all peers together when serving.", minimum=0.01
    )
    answer_burst: int = setting(
        40, "Answers that may go out at once before answer_rate_per_s applies.", minimum=1
    )
    answer_chunks_per_hour: int = setting(
        2000,
        "Postage budget for answers: Swarm chunks answering may stamp per hour; "
        "past it the node stops answering until the hour frees up.",
        minimum=1,
    )
    ask_rate_per_s: float = setting(
        0.5, "Peers' questions (agent-to-agent asks) answered per second, all peers together.",
        minimum=0.001,
    )  # fmt: skip
    ask_burst: int = setting(
        5, "Asks that may be answered at once before ask_rate_per_s.", minimum=1
    )
    ask_per_peer_rate_per_s: float = setting(
        0.1, "Asks answered per second for one peer.", minimum=0.001
    )
    ask_per_peer_burst: int = setting(
        3, "Asks one peer may have answered at once before its rate applies.", minimum=1
    )
    max_concurrent_asks: int = setting(
        2, "Peers' asks answered at the same time; more are dropped.", minimum=1, maximum=64
    )
    ask_answer_deadline_s: float = setting(
        60.0, "Longest time spent answering one peer's ask; then a short reply says so.",
        minimum=1, maximum=3600,
    )  # fmt: skip


@dataclass(frozen=True)
class AssistantConfig:
    retrieval_threshold: float = setting(
        0.5,
        "Passages whose cosine similarity to the question (bundled embedder) reaches this "
        "go into the prompt and are cited; one holding the question's rare words (BM25) "
        "needs only 0.2; below both nothing is added.",
        minimum=-1,
        maximum=1,
    )
    tool_threshold: float = setting(
        0.45,
        "Tools whose description or example requests reach this similarity to the question "
        "are offered to the model (at most two); below it the model answers without tools.",
        minimum=-1,
        maximum=1,
    )
    network: bool = setting(False, "Also search peers' knowledge for every question.")


@dataclass(frozen=True)
class ApiConfig:
    port: int = setting(
        7747, "TCP port of the node's local HTTP API; 0 picks a free one.", minimum=0, maximum=65535
    )
    max_body_bytes: int = setting(
        8 << 20, "Largest request body the API accepts, in bytes.", minimum=1024, maximum=1 << 30
    )
    max_waiting: int = setting(
        16, "Requests that may queue for the model; more get 429.", minimum=0, maximum=4096
    )
    allow_remote: bool = setting(
        False, "Let the API listen on a non-loopback address (the token travels in clear)."
    )


@dataclass(frozen=True)
class Config:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    data: DataConfig = field(default_factory=DataConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    api: ApiConfig = field(default_factory=ApiConfig)

    def data_dir(self, home: Path) -> Path:
        return Path(self.data.dir).expanduser() if self.data.dir else home / "data"

    def models_dir(self, home: Path) -> Path:
        return Path(self.data.models_dir).expanduser() if self.data.models_dir else home / "models"


SECTIONS: dict[str, type[Any]] = {
    "network": NetworkConfig,
    "model": ModelConfig,
    "embedder": EmbedderConfig,
    "index": IndexConfig,
    "data": DataConfig,
    "limits": LimitsConfig,
    "assistant": AssistantConfig,
    "api": ApiConfig,
}


# ---------------------------------------------------------------- loading


def load_config(
    config_file: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> Config:
    """Build the configuration from its layers; see the module docstring."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None and config_file.exists():
        layers.append((str(config_file), _read_toml(config_file)))
    if env is not None:
        layers.append(("environment", _env_layer(env)))
    if overrides:
        layers.append(("command line", _override_layer(overrides)))
    merged: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for section, values in layer.items():
            if section not in SECTIONS:
                raise ConfigError(section, f"unknown section (from {source})")
            if not isinstance(values, dict):
                raise ConfigError(section, f"must be a table (from {source})")
            for key, value in values.items():
                merged.setdefault(section, {})[key] = value
                sources[f"{section}.{key}"] = source
    return _build(Config, merged, "", sources)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in RESERVED_ENV or rest.startswith(RESERVED_ENV_PREFIXES):
            continue
        section = next((s for s in SECTIONS if rest.lower().startswith(s + "_")), None)
        if section is None:
            raise ConfigError(name, "unknown environment variable (no such config section)")
        key = rest[len(section) + 1 :].lower()
        layer.setdefault(section, {})[key] = _parse_text(f"{section}.{key}", raw, name)
    return layer


def _override_layer(overrides: Sequence[str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise ConfigError(item, "expected SECTION.KEY=VALUE")
        layer.setdefault(section, {})[key] = _parse_text(f"{section}.{key}", raw, "--set")
    return layer


def _parse_text(dotted: str, raw: str, source: str) -> Any:
    """Turn a textual value from env or CLI into the field's type (errors name the key)."""
    section, _, key = dotted.partition(".")
    cls = SECTIONS.get(section)
    if cls is None:
        raise ConfigError(dotted, f"unknown section (from {source})")
    hints = typing.get_type_hints(cls)
    if key not in hints:
        raise ConfigError(dotted, f"unknown key (from {source}); known: {', '.join(hints)}")
    kind = hints[key]
    if kind is str:
        return raw
    text = raw.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(dotted, f"expected a boolean, got {raw!r} (from {source})")
    try:
        if kind is int:
            return int(text, 0)
        if kind is float:
            return float(text)
        return tomllib.loads(f"v = {text}")["v"]
    except (ValueError, tomllib.TOMLDecodeError):
        expected = getattr(kind, "__name__", str(kind))
        raise ConfigError(dotted, f"expected {expected}, got {raw!r} (from {source})") from None


# ---------------------------------------------------------------- validation


def _build(cls: type[T], values: Mapping[str, Any], prefix: str, sources: dict[str, str]) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        source = _source_of(dotted, sources)
        if key not in known:
            raise ConfigError(dotted, f"unknown key (from {source}); known: {', '.join(known)}")
        kwargs[key] = _coerce(hints[key], value, known[key], dotted, source, sources)
    return cls(**kwargs)


def _source_of(dotted: str, sources: Mapping[str, str]) -> str:
    """Where a (possibly nested) key's value came from, for error messages."""
    parts = dotted.replace("[", ".[").split(".")
    while parts:
        found = sources.get(".".join(parts).replace(".[", "["))
        if found:
            return found
        parts.pop()
    return "input"


def _coerce(
    kind: Any,
    value: Any,
    spec: dataclasses.Field[Any],
    dotted: str,
    source: str,
    sources: dict[str, str],
) -> Any:
    def bad(problem: str) -> ConfigError:
        return ConfigError(dotted, f"{problem} (from {source})")

    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise bad(f"expected a table, got {type(value).__name__}")
        return _build(kind, value, dotted + ".", sources)  # type: ignore[arg-type]
    origin = typing.get_origin(kind)
    if origin is list:
        (item_kind,) = typing.get_args(kind)
        if not isinstance(value, list):
            raise bad(f"expected a list, got {type(value).__name__}")
        items = []
        for i, item in enumerate(value):
            if item_kind is str:
                if not isinstance(item, str):
                    raise bad(f"item {i}: expected a string, got {type(item).__name__}")
                if dotted in ("network.peers", "network.allow_peers") and not _is_address(item):
                    raise bad(f"item {i}: {item!r} is not a 0x-prefixed 20-byte hex address")
                items.append(item)
                continue
            if not isinstance(item, Mapping):
                raise bad(f"item {i}: expected a table, got {type(item).__name__}")
            items.append(_build(item_kind, item, f"{dotted}[{i}].", sources))
        return items
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"unsupported config type {kind!r}")  # not used by any field
    if kind is bool:
        if not isinstance(value, bool):
            raise bad(f"expected a boolean, got {type(value).__name__}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"expected an integer, got {type(value).__name__} {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"expected a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise bad(f"expected a finite number, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise bad(f"expected a string, got {type(value).__name__} {value!r}")
        if "\x00" in value:
            raise bad("NUL byte in string")
    meta = spec.metadata
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise bad(f"must be >= {meta['minimum']}, got {value!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise bad(f"must be <= {meta['maximum']}, got {value!r}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise bad(f"must be one of {', '.join(meta['choices'])}, got {value!r}")
    if dotted.endswith("_url") and value and not value.startswith(("http://", "https://")):
        raise bad(f"must be an http:// or https:// URL, got {value!r}")
    return value


def _is_address(text: str) -> bool:
    digits = text.removeprefix("0x")
    return text.startswith("0x") and len(digits) == 40 and all(c in HEX_DIGITS for c in digits)


HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


# ---------------------------------------------------------------- rendering


def iter_fields() -> Iterator[tuple[str, Any, str]]:
    """Yield (dotted key, default, doc) for every documented field."""
    for section, cls in SECTIONS.items():
        defaults = cls()
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", getattr(defaults, f.name), f.metadata["doc"]


def render_toml(config: Config, *, comment_out: bool = False) -> str:
    """The configuration as documented TOML; `comment_out` writes a template of defaults."""
    lines = ["# Noosphere node configuration. Every key is optional; shown with its default."]
    lead = "# " if comment_out else ""
    for section in SECTIONS:
        obj = getattr(config, section)
        tables: list[str] = []
        lines += ["", f"[{section}]"]
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            doc = f.metadata["doc"]
            if _is_table_list(hints[f.name]):
                tables.append(f"# {doc}")
                if not value:
                    tables += [
                        f"# [[{section}.{f.name}]]",
                        '# path = "adapter.gguf"',
                        "# scale = 1.0",
                    ]
                for item in value:
                    tables.append(f"{lead}[[{section}.{f.name}]]")
                    tables += [
                        f"{lead}{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(item).items()
                    ]
                continue
            lines.append(f"# {doc}")
            lines.append(f"{lead}{f.name} = {_toml_value(value)}")
        if tables:
            lines += ["", *tables]
    return "\n".join(lines) + "\n"


def _is_table_list(kind: Any) -> bool:
    """Is `kind` a list of dataclasses (rendered as [[arrays of tables]])?"""
    args = typing.get_args(kind)
    return typing.get_origin(kind) is list and bool(args) and dataclasses.is_dataclass(args[0])


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip()[len("v = ") :]
