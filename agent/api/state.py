"""What every request handler reaches through `request.app[STATE]`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from agent.api.backend import ApiBackend
from agent.api.gate import ModelGate
from agent.config import ApiConfig
from agent.llm import SamplingParams


@dataclass
class ApiState:
    backend: ApiBackend
    settings: ApiConfig
    params: SamplingParams  # sampling defaults for requests that do not set them
    model_gate: ModelGate  # chat completions and asks: the language model
    embed_gate: ModelGate  # embeddings, search and ingest: the embedder
    version: str
    started: float  # time.monotonic() at start, for uptime
    url: str = ""  # set once the server listens


STATE = web.AppKey("noosphere_api_state", ApiState)
