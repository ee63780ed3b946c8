"""The Noosphere node: the only package that wires the others together.

| module        | owns                                                            |
|---------------|-----------------------------------------------------------------|
| `cli`         | the `noosphere` command (a package: one module per family)      |
| `node`        | `Node`: the node's components, opened once, closed together     |
| `runtime`     | the parts a `Node` is built from: Swarm, knowledge, peers       |
| `daemon`      | `noosphere node`: peers, the local API, side tasks, shutdown    |
| `api`         | the local HTTP API (OpenAI-compatible + the node's routes)      |
| `peer_asks`   | agent-to-agent asks: answering a peer, asking one               |
| `chat_remote` | `noosphere chat` through a running node                         |
| `config`      | the typed configuration, its layers and its documentation       |
| `home`        | the node home directory layout                                  |
| `identity`    | the node key: keystore v3 create/load, address, public key      |
| `llm`         | the LLM core: llama.cpp on one worker thread, streaming chat    |
| `adapter_files` | LoRA adapter names, scales, and checking a GGUF adapter file  |
| `adapters`    | the home's adapter registry, loading it, chat's `/adapter`      |
| `gguf_header` | a GGUF's metadata and tensor shapes from its header alone       |
| `models`      | which GGUF runs: configured, pulled, bundled; `model pull`      |
| `quantize`    | requantizing GGUFs with llama.cpp's quantizer                   |
| `ask`         | the one-question path behind `noosphere ask` (and `--raw`)      |
| `assistant`   | one assistant turn for chat and ask: route, retrieve, tools     |
| `routing`     | routing before the model: calculator, python, chain, few tools  |
| `grounding`   | retrieval first: passages over a threshold, trimmed, quoted     |
| `pycode`      | the model writes only code: nearest few-shot examples           |
| `loop`        | the agent loop: constrained tool choice, never an empty answer  |
| `chat`        | the `noosphere chat` REPL over the assistant                    |
| `conversations` | conversations in SQLite, resumable                            |
| `logs`        | log output: human lines, or JSON lines with `--log-json`        |
| `errors`      | the node's error tree (`NoosphereError`)                        |
"""

from agent.config import Config, load_config
from agent.errors import NoosphereError
from agent.llm import ChatMessage, ChatResult, LLMCore, SamplingParams

__all__ = [
    "ChatMessage",
    "ChatResult",
    "Config",
    "LLMCore",
    "NoosphereError",
    "SamplingParams",
    "load_config",
]
