"""Agent-to-agent asks, the agent's side: answering a peer, and asking one.

Answering (`PeerAnswerer`): the handler the node's inbox listener
(`swarm_vectordb.network.KnowledgeServer`, `answer_ask=`) calls for each `Ask`. It
runs one assistant turn for the peer with `ToolContext(local_owner=False,
confirm=None)`: read-only tools only. Python and chain writes are refused twice
over: a question the router sends to either is answered with a refusal before
anything runs (no code is written, no chain is started), and should the model or
the router pick one of them anyway, the tool itself refuses (both are
`local_only`; chain writes also need a confirmation nobody can give). The peer's
text is a question, never an instruction to this node, and the peer never makes
this node search the network on its behalf. The reply names its sources by file
name only (`public_answer`): the absolute paths the owner ingested from would tell
a stranger how this machine's files are laid out.

Asking is `agent.node.Node.ask_peer` (behind the `ask_peer` tool, `/api/peer-ask`
and `noosphere ask --peer ADDRESS`). The reply is the peer's untrusted text; show it
with `tools.ask_peer.show_reply` (terminal) or `quote_reply` (model), which mark it
as such.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING

from agent.routing import Route
from swarm_vectordb.peertext import printable
from tools import ToolContext

if TYPE_CHECKING:
    from agent.assistant import Assistant

__all__ = ["PeerAnswerer", "public_answer", "public_source", "refusal_for"]

log = logging.getLogger(__name__)

REFUSE_PYTHON = (
    "I do not run code for other nodes: the python tool runs only for this node's owner. "
    "Nothing was run."
)
REFUSE_CHAIN_WRITE = (
    "I do not write to the chain or send funds for other nodes: chain writes run only for "
    "this node's owner, after they confirm. Nothing was sent."
)


def refusal_for(route: Route) -> str | None:
    """The reply to a peer whose question was routed to a tool that acts, else None."""
    if route.kind == "python":
        return REFUSE_PYTHON
    if route.kind == "chain_write":
        return REFUSE_CHAIN_WRITE
    return None


def public_source(source: str) -> str:
    """What a peer may see of a source: a path's file name; a URL or a name as it is."""
    if "://" not in source and ("/" in source or "\\" in source):
        return PurePath(source.replace("\\", "/")).name or source.strip("/\\") or "(file)"
    return source


def public_answer(answer: str, sources: Iterable[str]) -> str:
    """`answer` with every source path in it (the `Sources:` line, or a path the model
    copied from a passage) cut to its file name; longest paths first, so that a path
    that extends another is never half replaced."""
    for source in sorted(set(sources), key=len, reverse=True):
        shown = public_source(source)
        if shown != source and len(source) > 1:
            answer = answer.replace(source, shown)
    return answer


class PeerAnswerer:
    """`answer_ask(sender, text)`: this node's assistant answering a remote peer."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    async def __call__(self, sender: bytes, text: str) -> str:
        who = "0x" + sender.hex()
        log.info("peer %s asks: %r", who, printable(text[:200], keep=""))
        route = await self.assistant.router.route(text, self.assistant.tool_names())
        refusal = refusal_for(route)
        if refusal is not None:
            log.info("refused %s's ask (routed to %s)", who, route.kind)
            return refusal
        context = ToolContext(local_owner=False, confirm=None)
        report = await self.assistant.answer([], text, context, network=False)
        for call, result in report.result.calls:
            if not result.ok:
                log.info("for %s, %s was refused or failed: %s", who, call.name, result.error)
        log.info("answered %s (%s route)", who, report.route.kind)
        sources = list(report.result.sources)
        if report.grounding is not None:
            sources += [hit.source for hit in report.grounding.passages]
        return public_answer(report.result.answer, sources)
