"""The model writes only code: a few-shot prompt that yields a Python program.

`prompts/python_code.md` holds an instruction and a library of request/code pairs
(common idioms). The few closest to the request (bundled embedder) become a
conversation whose assistant turns are bare code, the closest last, so even the 135M
model continues the pattern with code for simple requests. `extract_code` removes what a model
adds anyway (a ``` fence, a sentence before or after it).

The 135M model often gets code wrong the first time, so the caller runs it and, when
it fails or prints nothing, asks again: first with the error shown, then sampling
(`attempt_params`) for different code; code already tried is never run again.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

import prompts
from agent.llm import ChatMessage, LLMCore, SamplingParams
from agent.routing import EmbedTexts

SHOTS = 8  # examples shown: a small model copies the closest pattern best
CODE_PARAMS = SamplingParams(temperature=0.0, max_tokens=200, repeat_penalty=1.0)
_FENCE = re.compile(r"```(?:python|py)?\s*\n?(.*?)(?:```|$)", re.DOTALL)


@dataclass(frozen=True)
class CodeExample:
    request: str
    code: str


def load_examples() -> tuple[str, list[CodeExample]]:
    """The instruction and the request/code pairs of `prompts/python_code.md`."""
    text = prompts.load("python_code")
    instruction, *pairs = re.split(r"^## request\s*$", text, flags=re.MULTILINE)
    examples = []
    for pair in pairs:
        asked, _, code = pair.partition("## code")
        examples.append(CodeExample(asked.strip(), code.strip()))
    return instruction.strip(), examples


class CodeExamples:
    """The few-shot examples closest to a request (all of them without an embedder)."""

    def __init__(self, embed: EmbedTexts | None, *, shots: int = SHOTS) -> None:
        self.embed = embed
        self.shots = shots
        self.instruction, self.examples = load_examples()
        self._vectors: npt.NDArray[np.float32] | None = None

    async def closest(self, request: str) -> list[CodeExample]:
        """The `shots` examples most similar to `request`, the most similar last."""
        if self.embed is None or len(self.examples) <= self.shots:
            return self.examples
        if self._vectors is None:
            self._vectors = await self.embed([e.request for e in self.examples])
        similarity = self._vectors @ (await self.embed([request]))[0]
        best = np.argsort(similarity)[-self.shots :]  # ascending: the closest comes last
        return [self.examples[i] for i in best.tolist()]


def code_messages(
    request: str,
    examples: Sequence[CodeExample],
    instruction: str,
    error: tuple[str, str] | None = None,
) -> list[ChatMessage]:
    """The few-shot conversation asking for code; `error` = (code, what went wrong)."""
    messages = [ChatMessage("system", instruction)]
    for example in examples:
        messages += [ChatMessage("user", example.request), ChatMessage("assistant", example.code)]
    if error is not None:
        code, problem = error
        messages += [
            ChatMessage("user", request),
            ChatMessage("assistant", code),
            ChatMessage("user", f"That failed: {problem[-400:]}\nWrite corrected code."),
        ]
    else:
        messages.append(ChatMessage("user", request))
    return messages


def extract_code(text: str) -> str:
    """The program in a model's reply: the fenced block, else the longest parsing prefix."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    lines = body.strip("\n").splitlines()
    # keep the longest run of leading lines that parses (drops a trailing explanation)
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).strip()
        try:
            ast.parse(candidate)
        except SyntaxError:
            continue
        return candidate
    return body.strip()


async def write_code(
    core: LLMCore,
    request: str,
    examples: CodeExamples,
    *,
    error: tuple[str, str] | None = None,
    params: SamplingParams = CODE_PARAMS,
    adapters: Mapping[str, float] | None = None,
) -> str:
    """Code for `request` (or a fix of `error`'s code), as the model writes it
    (with the LoRA `adapters` selected, as `LLMCore.stream_chat`)."""
    shots = await examples.closest(request)
    messages = code_messages(request, shots, examples.instruction, error)
    reply = await core.chat(messages, params=params, adapters=adapters)
    return extract_code(reply.text)


def attempt_params(attempt: int) -> SamplingParams:
    """Greedy first; later attempts sample (a different seed each), for other code."""
    if attempt == 0:
        return CODE_PARAMS
    return CODE_PARAMS.with_(temperature=0.8, seed=attempt)
