"""The `ask` path: one question, one streamed answer from the local model."""

from __future__ import annotations

import prompts
from agent.config import Config
from agent.llm import ChatMessage


def system_prompt(cfg: Config) -> str:
    return cfg.model.system_prompt or prompts.load("assistant")


def ask_messages(question: str, cfg: Config) -> list[ChatMessage]:
    """The conversation `noosphere ask` sends to the model."""
    return [ChatMessage("system", system_prompt(cfg)), ChatMessage("user", question)]
