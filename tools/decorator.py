"""`@tool`: turn a typed, documented async function into a `Tool`.

The JSON Schema comes from the type hints (str, int, float, bool, list[...],
Literal[...], `X | None`, defaults make a field optional) and the docstring: the
first paragraph is the description, an `Args:` section describes each argument.
A parameter annotated `ToolContext` receives the caller's context and is not part
of the schema. Arguments are validated against the schema before the body runs;
the body returns `str` or a `ToolResult` and raises `ToolError` for failures the
caller caused. Anything else it raises becomes an error result naming the
exception (never a traceback).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from tools.base import JsonObject, Refusal, ToolAnnotations, ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

MAX_STRING_CHARS = 100_000  # longest string argument accepted, in characters
MAX_ARRAY_ITEMS = 10_000  # longest list argument accepted

ToolBody = Callable[..., Awaitable[str | ToolResult]]


def _schema_for(hint: Any, where: str) -> JsonObject:
    origin = get_origin(hint)
    if hint is str:
        return {"type": "string", "maxLength": MAX_STRING_CHARS}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if origin is Literal:
        values = list(get_args(hint))
        return {"enum": values}
    if origin is list:
        (item,) = get_args(hint) or (str,)
        return {"type": "array", "items": _schema_for(item, where), "maxItems": MAX_ARRAY_ITEMS}
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        if len(members) == 1 and len(get_args(hint)) == 2:
            return {"anyOf": [_schema_for(members[0], where), {"type": "null"}]}
    raise TypeError(f"{where}: unsupported type {hint!r} in a tool signature")


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {argument: description}) from a Google-style docstring."""
    text = inspect.cleandoc(doc or "")
    paragraphs = text.split("\n\n")
    description = " ".join(paragraphs[0].split()) if text else ""
    args: dict[str, str] = {}
    current: str | None = None
    in_args = False
    for line in text.splitlines():
        if line.strip() in ("Args:", "Arguments:"):
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line[0].isspace():
            break  # the next section (Returns:, Raises:, ...)
        match = _ARG_LINE.match(line)
        if match and (current is None or len(line) - len(line.lstrip()) <= 4):
            current = match.group(1)
            args[current] = match.group(2).strip()
        elif current is not None and line.strip():
            args[current] = f"{args[current]} {line.strip()}"
    return description, args


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def validate(schema: JsonObject, value: Any, where: str) -> str | None:
    """None if `value` fits the (subset of JSON Schema we generate), else why not."""
    if "anyOf" in schema:
        problems = [validate(s, value, where) for s in schema["anyOf"]]
        return None if any(p is None for p in problems) else problems[0]
    if "enum" in schema:
        allowed = schema["enum"]
        if any(value == a and type(value) is type(a) for a in allowed):
            return None
        return f"{where} must be one of {json.dumps(allowed)}, got {value!r}"[:300]
    kind = schema.get("type")
    if kind == "null":
        return None if value is None else f"{where} must be null"
    if kind == "string":
        if not isinstance(value, str):
            return f"{where} must be a string, got {_type_name(value)}"
        if len(value) > schema.get("maxLength", MAX_STRING_CHARS):
            return f"{where} is too long ({len(value)} characters, at most {MAX_STRING_CHARS})"
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{where} must be a boolean"
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{where} must be an integer, got {_type_name(value)}"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{where} must be a number, got {_type_name(value)}"
    if kind == "array":
        if not isinstance(value, list):
            return f"{where} must be an array, got {_type_name(value)}"
        if len(value) > schema.get("maxItems", MAX_ARRAY_ITEMS):
            return f"{where} has too many items ({len(value)})"
        for i, item in enumerate(value):
            problem = validate(schema["items"], item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    raise AssertionError(f"schema kind {kind!r} not generated by this module")


@dataclass(frozen=True)
class FunctionTool:
    """A `Tool` backed by one async function; built by `@tool`."""

    name: str
    description: str
    input_schema: JsonObject
    annotations: ToolAnnotations
    body: ToolBody
    context_param: str | None  # the parameter that receives the ToolContext, if any

    def check_arguments(self, arguments: Any) -> str | None:
        if not isinstance(arguments, Mapping):
            return f"arguments must be a JSON object, got {_type_name(arguments)}"
        props: JsonObject = self.input_schema["properties"]
        unknown = sorted(str(k) for k in arguments if k not in props)
        if unknown:
            return f"unknown argument(s) {', '.join(unknown)}; expected: {', '.join(props)}"
        missing = [k for k in self.input_schema["required"] if k not in arguments]
        if missing:
            return f"missing required argument(s): {', '.join(missing)}"
        for key, value in arguments.items():
            problem = validate(props[key], value, f"argument {key!r}")
            if problem:
                return problem
        return None

    async def __call__(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        problem = self.check_arguments(arguments)
        if problem:
            return ToolResult.failure(problem)
        summary = f"{self.name}({json.dumps(dict(arguments), default=str)[:500]})"
        refusal = await Refusal(self.annotations).check(self.name, summary, context)
        if refusal:
            return ToolResult.failure(refusal)
        kwargs = dict(arguments)
        if self.context_param:
            kwargs[self.context_param] = context
        try:
            outcome = await self.body(**kwargs)
        except ToolError as exc:
            return ToolResult.failure(str(exc))
        except Exception as exc:
            log.warning("tool %s failed unexpectedly", self.name, exc_info=True)
            return ToolResult.failure(f"{self.name} failed: {type(exc).__name__}: {exc}")
        return outcome if isinstance(outcome, ToolResult) else ToolResult.success(outcome)


def tool(
    *,
    name: str | None = None,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    local_only: bool = False,
    title: str | None = None,
) -> Callable[[ToolBody], FunctionTool]:
    """Decorator: build a `FunctionTool` from an async function's hints and docstring."""
    annotations = ToolAnnotations(
        read_only=read_only,
        destructive=destructive,
        idempotent=idempotent,
        open_world=open_world,
        local_only=local_only,
        title=title,
    )

    def build(fn: ToolBody) -> FunctionTool:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{fn.__qualname__}: a tool must be an async function")
        hints = typing.get_type_hints(fn)
        description, arg_docs = parse_docstring(fn.__doc__)
        properties: JsonObject = {}
        required: list[str] = []
        context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            hint = hints.get(param.name)
            if hint is ToolContext:
                context_param = param.name
                continue
            if hint is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{fn.__qualname__}: parameter {param.name!r} needs a type hint")
            prop = _schema_for(hint, f"{fn.__qualname__}({param.name})")
            if param.name in arg_docs:
                prop["description"] = arg_docs[param.name]
            if param.default is param.empty:
                required.append(param.name)
            else:
                prop["default"] = param.default
            properties[param.name] = prop
        schema: JsonObject = {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
        return FunctionTool(
            name=name or fn.__name__,
            description=description,
            input_schema=schema,
            annotations=annotations,
            body=fn,
            context_param=context_param,
        )

    return build
