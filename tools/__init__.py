"""Tools the agent can call: the contract, a registry and the built-in tools.

Modules:

- `tools.base`: the contract. `Tool` (protocol: name, description, JSON input
  schema, MCP annotations, async call), `ToolContext` (who asks: the local
  owner or a remote peer; how to confirm destructive actions), `ToolResult`
  (ok, output, error, data) and `ToolError` (a failure the caller caused).
- `tools.decorator`: `@tool(...)` builds a `FunctionTool` from an async
  function's type hints and docstring, and validates arguments before the call.
- `tools.registry`: `ToolRegistry`, an object (never a global) that lists tools
  in MCP's `tools/list` shape and calls them without ever raising for bad input.
- `tools.calculator`: exact arithmetic by walking the syntax tree.
- `tools.python_sandbox`: the `python` tool, code run in a bubblewrap sandbox
  (Linux only; never for a remote peer); `tools.sandbox_isolation` builds that
  sandbox (namespaces, uid 65534, no network, only /usr, the interpreter and a
  tmpfs work dir) and refuses when it cannot; `tools.sandbox_launcher` runs inside
  it first (rlimits, an audit hook as defence in depth); `tools.sandbox_teardown`
  kills the sandbox's pid namespace when a call stops early.
- `tools.builtin`: `builtin_registry()`, the built-in tools in a new registry.
- `tools.chain_tool`: `make_chain_tools(client)`, chain reads (balances, jobs,
  dataset DAOs, registry records) and owner-confirmed writes (stake, post a job,
  vote on a dataset proposal); writes never run for a remote peer.
- `tools.knowledge`: `make_knowledge_tool(search)`, semantic search whose hits come
  back quoted with their sources, peer text wrapped as untrusted data;
  `local_search(embedder, index)` backs it with the local vector index.
- `tools.ask_peer`: `make_ask_peer_tool(ask)`, a question to another node's agent
  over Swarm; the reply is quoted as untrusted data; never runs for a remote peer.

Calling a tool never raises for anything the caller got wrong; failures come
back as `ToolResult(ok=False, error=...)`, an observation the model can act on.
`tools.chain_tool` (web3), `tools.knowledge` (numpy and the vector database) and
`tools.ask_peer` (the Bee client) are imported from their modules, not here, so
`import tools` stays light. Depends on `chain` and `swarm_vectordb` (through those
three modules only), never on `agent`.
"""

from tools.base import (
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolError,
    ToolResult,
    mcp_descriptor,
)
from tools.builtin import builtin_registry
from tools.calculator import evaluate, make_calculator
from tools.decorator import FunctionTool, tool
from tools.python_sandbox import SandboxLimits, make_python_tool, run_sandboxed
from tools.registry import ToolRegistry

__all__ = [
    "FunctionTool",
    "SandboxLimits",
    "Tool",
    "ToolAnnotations",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "builtin_registry",
    "evaluate",
    "make_calculator",
    "make_python_tool",
    "mcp_descriptor",
    "run_sandboxed",
    "tool",
]
