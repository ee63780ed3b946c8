"""Routing before the model: code decides what it can decide exactly.

A small model cannot choose among a dozen tools, so each question is routed first,
in this order, and the model is given only the choice that is left:

1. Arithmetic (in words or symbols, `tools.wordmath`) -> a calculator call made by
   code; the answer is the calculator's, exact.
2. A request to run or write Python -> the `python` route: the model writes only the
   code (`agent.pycode`), the sandbox runs it. Code the user pasted in a ``` fence
   runs as written.
3. An explicit chain write ("stake 1 ETH", "post a job", "vote yes on ...") -> only
   that write tool is offered; it still asks the owner before sending.
4. A chain read code can recognise ("how many jobs...", "show job 3", "my stake",
   "balance of 0x...") -> that read, with its arguments extracted by code.
5. Otherwise the question is embedded and compared with each tool's description
   and example requests (`prompts/tool_examples.md`); the tools scoring at least
   `agent.tool_threshold` (at most `MAX_OFFERED`) are offered, or none, in which
   case the model just answers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

import prompts
from agent.llm import ToolCall
from tools.wordmath import parse_arithmetic

RouteKind = Literal["peer", "calculator", "python", "chain_read", "chain_write", "tools", "chat"]
EmbedTexts = Callable[[Sequence[str]], Awaitable[npt.NDArray[np.float32]]]

MAX_OFFERED = 2
DEFAULT_TOOL_THRESHOLD = 0.45

_ADDRESS = r"0x[0-9a-fA-F]{40}"
# "ask 0x... what is X?", "please ask node 0x...: ..." -> the ask_peer tool, before any
# other rule, so a question meant for a peer is never answered (or run) here.
_ASK_PEER = re.compile(
    rf"^\s*(?:please\s+)?ask\s+(?:the\s+)?(?:node|peer|agent)?\s*({_ADDRESS})\b[\s,:]*(.+)$",
    re.IGNORECASE | re.DOTALL,
)
_CODE_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
_PYTHON = re.compile(
    r"\b(?:python|script|program|code)\b.*\b(?:print|run|write|compute|calculate|"
    r"generate|sort|count|list|reverse|find|check)|"
    r"\b(?:use|using|in|with|write|run|execute)\b(?:\s+(?:a|some|the))?\s+(?:python|script)\b|"
    r"\bwrite (?:a |some )?(?:python )?(?:code|program|function)\b",
    re.IGNORECASE | re.DOTALL,
)
_STAKE_AMOUNT = re.compile(r"\bstake\s+(\d+(?:\.\d+)?)\s*(?:eth|ether)?\b", re.I)
_WRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bstake\s+(?:\d|[a-z]+\s+(?:eth|ether)\b)", re.I), "chain_stake"),
    (re.compile(r"^\s*(?:please\s+)?stake\b", re.I), "chain_stake"),
    (re.compile(r"\bpost\s+(?:a|an|the|new|my|one)?\s*(?:new\s+)?(?:training\s+)?job\b", re.I),
     "chain_post_job"),
    (re.compile(r"\bvote\s+(?:yes|no|for|against|on)\b", re.I), "chain_dataset_vote"),
]  # fmt: skip


@dataclass(frozen=True)
class ToolExamples:
    """One tool's routing text: what it is for and requests a user might type."""

    name: str
    purpose: str
    examples: tuple[str, ...]
    write: bool = False

    def texts(self) -> list[str]:
        return [self.purpose, *self.examples]


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    call: ToolCall | None = None  # made by code, without the model
    offered: tuple[str, ...] = ()  # tools the model may choose from (or respond)
    code: str | None = None  # python the user wrote themselves
    scores: dict[str, float] = field(default_factory=dict)  # tool similarity, best first

    @property
    def needs_chain(self) -> bool:
        names = [*self.offered, *([self.call.name] if self.call else [])]
        return any(name.startswith("chain_") for name in names)


def load_examples(text: str | None = None) -> list[ToolExamples]:
    """Parse `prompts/tool_examples.md`: `## name [(write)]`, a purpose line, `- ` requests."""
    source = text if text is not None else prompts.load("tool_examples")
    tools: list[ToolExamples] = []
    for section in re.split(r"^## ", source, flags=re.MULTILINE)[1:]:
        head, *lines = [line.strip() for line in section.strip().splitlines() if line.strip()]
        name, _, flag = head.partition(" ")
        purpose = next((line for line in lines if not line.startswith("- ")), "")
        examples = tuple(line[2:].strip() for line in lines if line.startswith("- "))
        tools.append(ToolExamples(name, purpose, examples, write=flag.strip() == "(write)"))
    return tools


def chain_read(text: str) -> ToolCall | None:
    """A chain read whose arguments code can take from the question, or None."""
    lowered = text.lower()
    address = re.search(_ADDRESS, text)
    if address and re.search(r"\b(?:dataset|dao)\b", lowered):
        return ToolCall("chain_dataset", {"dao": address.group(0)})
    if address and re.search(r"\b(?:peer|registered|registry|record)\b", lowered):
        return ToolCall("chain_peer", {"address": address.group(0)})
    if address and re.search(r"\b(?:balance|stake|staked|eth|ether|funds)\b", lowered):
        return ToolCall("chain_balance", {"address": address.group(0)})
    job = re.search(r"\bjob\s*(?:#|number\s+|no\.?\s*|id\s+)?(\d{1,20})\b", lowered)
    if job and not re.search(r"\bjobs\b", lowered):
        return ToolCall("chain_job", {"job_id": int(job.group(1))})
    if re.search(
        r"\bhow many (?:training )?jobs\b|\b(?:list|show|see)(?: me)?(?: all| the| open)*"
        r"(?: training)? jobs\b|\bjobs (?:are )?(?:there )?(?:in|on) the (?:training )?market\b|"
        r"\bnumber of (?:training )?jobs\b",
        lowered,
    ):
        return ToolCall("chain_jobs", {})
    if re.search(
        r"\bmy (?:own )?(?:stake|balance|account|eth|ether|funds|address)\b|"
        r"\bhow much (?:eth|ether) (?:do i|have i)\b|\b(?:latest|current) block\b|"
        r"\bblock (?:number|height)\b|\bchain id\b|\bhave i staked\b",
        lowered,
    ):
        return ToolCall("chain_status", {})
    return None


def asked_write(text: str) -> str | None:
    """The chain write the user explicitly asked for, or None."""
    for pattern, name in _WRITES:
        if pattern.search(text):
            return name
    return None


def wants_python(text: str) -> bool:
    return bool(_PYTHON.search(text))


class Router:
    """Routes questions; `embed` (the bundled embedder) scores tools for step 5."""

    def __init__(
        self,
        embed: EmbedTexts | None,
        *,
        threshold: float = DEFAULT_TOOL_THRESHOLD,
        examples: Sequence[ToolExamples] | None = None,
        max_offered: int = MAX_OFFERED,
    ) -> None:
        self.embed = embed
        self.threshold = threshold
        self.examples = list(examples) if examples is not None else load_examples()
        self.max_offered = max_offered
        self._vectors: list[tuple[str, npt.NDArray[np.float32]]] | None = None

    async def scores(self, text: str, candidates: Collection[str]) -> dict[str, float]:
        """Best cosine similarity of `text` to each candidate tool's lines, best first."""
        if self.embed is None:
            return {}
        if self._vectors is None:
            texts = [(t.name, line) for t in self.examples for line in t.texts()]
            vectors = await self.embed([line for _, line in texts])
            self._vectors = [(name, vectors[i]) for i, (name, _) in enumerate(texts)]
        query = (await self.embed([text]))[0]
        best: dict[str, float] = {}
        for name, vector in self._vectors:
            if name in candidates:
                best[name] = max(best.get(name, -1.0), float(np.dot(query, vector)))
        return dict(sorted(best.items(), key=lambda item: -item[1]))

    async def route(self, text: str, available: Collection[str]) -> Route:
        """Where `text` goes, given the names of the tools this node can offer."""
        asked = _ASK_PEER.match(text)
        if asked is not None and "ask_peer" in available:
            question = asked.group(2).strip()
            return Route(
                "peer", call=ToolCall("ask_peer", {"address": asked.group(1), "question": question})
            )
        expression = parse_arithmetic(text)
        if expression is not None and "calculator" in available:
            return Route("calculator", call=ToolCall("calculator", {"expression": expression}))
        if "python" in available:
            fenced = _CODE_FENCE.search(text)
            if fenced and fenced.group(1).strip():
                code = fenced.group(1).strip()
                return Route("python", call=ToolCall("python", {"code": code}), code=code)
            if wants_python(text):
                return Route("python")
        write = asked_write(text)
        if write is not None and write in available:
            amount = _STAKE_AMOUNT.search(text)
            if write == "chain_stake" and amount:  # the owner still confirms before it is sent
                call = ToolCall("chain_stake", {"amount_ether": amount.group(1)})
                return Route("chain_write", call=call, offered=(write,))
            return Route("chain_write", offered=(write,))
        read = chain_read(text)
        if read is not None and read.name in available:
            return Route("chain_read", call=read)
        writes = {t.name for t in self.examples if t.write}
        candidates = [name for name in available if name not in writes]
        scores = await self.scores(text, candidates)
        offered = tuple(n for n, s in scores.items() if s >= self.threshold)[: self.max_offered]
        return Route("tools" if offered else "chat", offered=offered, scores=scores)
