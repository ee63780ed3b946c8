"""The API's OpenAPI 3.1 document, built here and served at `GET /openapi.json`.

Request bodies are described with the fields the handlers check; a test holds the
document and the server's routes to each other in both directions.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
PUBLIC: list[dict[str, list[str]]] = []  # an empty security requirement: no token


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def _op(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    stream: bool = False,
    public: bool = False,
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "success", "content": content},
            "default": {
                "description": "an error, in OpenAI's shape",
                "content": {"application/json": {"schema": ERROR}},
            },
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if public:
        op["security"] = PUBLIC
    return op


STRINGS = {"type": "array", "items": {"type": "string"}}
MESSAGE = _obj(
    {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": ["string", "array", "null"]},
        "tool_calls": {"type": "array"},
        "tool_call_id": {"type": "string"},
    },
    ("role",),
)
CHAT = _obj(
    {
        "model": {"type": "string", "description": "the base model or a loaded adapter"},
        "messages": {"type": "array", "items": MESSAGE, "minItems": 1},
        "stream": {"type": "boolean"},
        "stream_options": _obj({"include_usage": {"type": "boolean"}}),
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "stop": {"oneOf": [{"type": "string"}, {**STRINGS, "maxItems": 4}]},
        "seed": {"type": "integer"},
        "tools": {"type": "array"},
        "tool_choice": {"oneOf": [{"enum": ["auto", "none", "required"]}, {"type": "object"}]},
        "response_format": _obj(
            {"type": {"enum": ["text", "json_object", "json_schema"]}, "json_schema": {}},
            ("type",),
        ),
    },
    ("model", "messages"),
)
EMBED = _obj(
    {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"}, {**STRINGS, "minItems": 1, "maxItems": 2048}]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {"type": "integer"},
    },
    ("model", "input"),
)
SEARCH = _obj(
    {
        "query": {"type": "string"},
        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        "network": {"type": "boolean", "description": "also ask peers over Swarm"},
        "fan_out": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10_000,
            "description": "peers to ask; 0: all",
        },
        "deadline_s": {"type": "number", "minimum": 0.1, "maximum": 600},
    },
    ("query",),
)
INGEST = {
    "oneOf": [
        _obj({"paths": {**STRINGS, "description": "absolute paths on the node's machine"}},
             ("paths",)),
        _obj({"name": {"type": "string"}, "text": {"type": "string"}}, ("name", "text")),
    ]
}  # fmt: skip
ASK = _obj(
    {
        "question": {"type": "string"},
        "history": {
            "type": "array",
            "maxItems": 200,
            "items": _obj(
                {"role": {"enum": ["user", "assistant"]}, "content": {"type": "string"}},
                ("role", "content"),
            ),
            "description": "the conversation so far, oldest first",
        },
        "network": {"type": "boolean"},
        "model": {
            "type": "string",
            "description": "the base model alone, or an adapter; absent: the default adapters",
        },
        "stream": {
            "type": "boolean",
            "description": "server-sent events token/tool_call/tool_result/notice, then report",
        },
    },
    ("question",),
)

PEER_ASK = _obj(
    {
        "address": {
            "type": "string",
            "pattern": "^(0x)?[0-9a-fA-F]{40}$",
            "description": "the peer's address; in mixed case, a valid EIP-55 checksum",
        },
        "question": {"type": "string", "maxLength": 8192},
    },
    ("address", "question"),
)

PATHS: dict[str, dict[str, Any]] = {
    "/v1/models": {"get": _op("The base model, the loaded LoRA adapters and the embedder")},
    "/v1/chat/completions": {
        "post": _op("OpenAI-compatible chat completion", body=CHAT, stream=True)
    },
    "/v1/embeddings": {"post": _op("OpenAI-compatible embeddings", body=EMBED)},
    "/api/search": {"post": _op("Search the knowledge base (and peers)", body=SEARCH)},
    "/api/ingest": {"post": _op("Chunk, store on Swarm, embed and index", body=INGEST)},
    "/api/ask": {
        "post": _op("One assistant turn: tools, knowledge, sources", body=ASK, stream=True)
    },
    "/api/peer-ask": {
        "post": _op("Ask another node's assistant over Swarm; its signed reply", body=PEER_ASK)
    },
    "/api/status": {"get": _op("Model, adapters, index size, uptime, queue")},
    "/openapi.json": {"get": _op("This document", public=True)},
    "/.well-known/agent-card.json": {"get": _op("The node's A2A agent card", public=True)},
}


def openapi_document(version: str, url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Noosphere node API",
            "version": version,
            "description": "A Noosphere node's local API: OpenAI-compatible model routes and "
            "the node's own knowledge and assistant routes. Bearer token: <home>/api-token.",
        },
        "servers": [{"url": url}] if url else [],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _obj(
                    {
                        "error": _obj(
                            {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]},
                            },
                            ("message", "type", "param", "code"),
                        )
                    },
                    ("error",),
                )
            },
        },
    }
