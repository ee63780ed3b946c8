"""The Noosphere node: the only package that wires the others together.

| module        | owns                                                            |
|---------------|-----------------------------------------------------------------|
| `cli`         | the `noosphere` command                                         |
| `config`      | the typed configuration, its layers and its documentation       |
| `home`        | the node home directory layout                                  |
| `identity`    | the node key: keystore v3 create/load, address, public key      |
| `llm`         | the LLM core: llama.cpp on one worker thread, streaming chat    |
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
| `services`    | wiring: Swarm access, the knowledge base, search, serving       |
| `cli_*`       | the component command groups (swarm, chain, market, knowledge, tools) |
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
