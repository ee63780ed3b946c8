"""The node's A2A agent card (`GET /.well-known/agent-card.json`).

It tells another agent who this node is and what it can be asked: its skills, the
media types it reads and writes, and that calls need a bearer token. It is served
without a token, so it carries nothing secret: no token, no paths, no key.
"""

from __future__ import annotations

from typing import Any

from agent.api.backend import ApiBackend

A2A_PROTOCOL_VERSION = "0.3.0"

SKILLS = [
    {
        "id": "ask",
        "name": "Ask the assistant",
        "description": "Answers a question with the node's local model, its knowledge base "
        "(cited sources) and its read-only tools (exact arithmetic, chain reads).",
        "tags": ["question-answering", "retrieval", "tools"],
        "examples": ["What is Ethereum Swarm?", "How much is 48 times 52?"],
    },
    {
        "id": "search",
        "name": "Search knowledge",
        "description": "Semantic search over the documents this node has indexed, "
        "optionally its peers' too; hits carry their Swarm references.",
        "tags": ["search", "vector-database", "swarm"],
        "examples": ["how are chunks addressed?"],
    },
    {
        "id": "chat-completions",
        "name": "OpenAI-compatible chat",
        "description": "Chat completions on the node's model with JSON-schema-constrained "
        "output and tool calls, at /v1/chat/completions.",
        "tags": ["llm", "openai-compatible"],
        "examples": ["Reply in JSON with a name and an age."],
    },
]


def agent_card(backend: ApiBackend, url: str, version: str) -> dict[str, Any]:
    return {
        "protocolVersion": A2A_PROTOCOL_VERSION,
        "name": "Noosphere node",
        "description": "A Noosphere peer-to-peer LLM node: a local language model "
        f"({backend.model_name}) with a knowledge base on Ethereum Swarm.",
        "url": url,
        "version": version,
        "documentationUrl": f"{url}/openapi.json" if url else "",
        "provider": {"organization": "Noosphere", "url": url},
        "capabilities": {
            "streaming": True,
            "pushNotifications": False,
            "stateTransitionHistory": False,
        },
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "security": [{"bearer": []}],
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json", "text/event-stream"],
        "skills": SKILLS,
    }
