"""Routing before the model: what code decides, and what the model is offered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from agent.llm import ToolCall
from agent.routing import Router, asked_write, chain_read, load_examples, wants_python
from tools import evaluate

ALL_TOOLS = [
    "calculator", "python", "knowledge", "chain_status", "chain_balance", "chain_job",
    "chain_jobs", "chain_dataset", "chain_peer", "chain_stake", "chain_post_job",
    "chain_dataset_vote",
]  # fmt: skip
DEAD = "0x000000000000000000000000000000000000dEaD"


def test_the_routing_examples_name_every_tool_once_and_mark_only_writes() -> None:
    examples = load_examples()
    names = [t.name for t in examples]
    assert len(names) == len(set(names))
    assert {t.name for t in examples if t.write} == {
        "chain_stake", "chain_post_job", "chain_dataset_vote"
    }  # fmt: skip
    assert all(t.purpose and len(t.examples) >= 2 for t in examples)


@pytest.mark.asyncio
async def test_arithmetic_goes_to_the_calculator_with_an_exact_expression() -> None:
    route = await Router(None).route("What is 2^64 minus 1?", ALL_TOOLS)
    assert route.kind == "calculator"
    assert route.call is not None
    assert route.call.name == "calculator"
    assert evaluate(route.call.arguments["expression"]) == 2**64 - 1


@pytest.mark.asyncio
async def test_arithmetic_is_not_routed_when_the_calculator_is_missing() -> None:
    route = await Router(None).route("What is 2^64 minus 1?", ["python"])
    assert route.kind == "chat"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "question",
    [
        "Use Python to print the first five square numbers.",
        "Write Python code that prints the sum of 1 to 100.",
        "write a program that reverses a string",
        "Run a python script that counts to 3",
    ],
)
async def test_python_requests_go_to_the_python_route(question: str) -> None:
    route = await Router(None).route(question, ALL_TOOLS)
    assert route.kind == "python"
    assert route.call is None  # the model writes the code


@pytest.mark.asyncio
async def test_pasted_code_runs_as_written() -> None:
    route = await Router(None).route("run this:\n```python\nprint(6 * 7)\n```", ALL_TOOLS)
    assert route.call == ToolCall("python", {"code": "print(6 * 7)"})


@pytest.mark.parametrize(
    "question", ["What is Swarm?", "Tell me about snakes.", "Who wrote Hamlet?", "top 10 tips"]
)
def test_ordinary_questions_are_not_python(question: str) -> None:
    assert not wants_python(question)


@pytest.mark.parametrize(
    ("question", "call"),
    [
        ("How many jobs are in the market?", ToolCall("chain_jobs", {})),
        ("list the training jobs", ToolCall("chain_jobs", {})),
        ("show job 0", ToolCall("chain_job", {"job_id": 0})),
        ("What is the reward of job #12?", ToolCall("chain_job", {"job_id": 12})),
        ("what is my stake", ToolCall("chain_status", {})),
        ("How much ETH do I have?", ToolCall("chain_status", {})),
        ("What is the latest block number?", ToolCall("chain_status", {})),
        (f"balance of {DEAD}?", ToolCall("chain_balance", {"address": DEAD})),
        (f"Is {DEAD} registered as a peer?", ToolCall("chain_peer", {"address": DEAD})),
        (f"show the dataset DAO {DEAD}", ToolCall("chain_dataset", {"dao": DEAD})),
    ],
)
def test_chain_reads_get_their_arguments_from_code(question: str, call: ToolCall) -> None:
    assert chain_read(question) == call


@pytest.mark.parametrize(
    "question", ["What is Swarm?", "How do I start a headless knowledge-serving peer?",
                 "What is 2^64 minus 1?", "Tell me a story about a job interview."],
)  # fmt: skip
def test_other_questions_are_not_chain_reads(question: str) -> None:
    assert chain_read(question) is None


@pytest.mark.parametrize(
    ("question", "write"),
    [
        ("Stake 1 ETH.", "chain_stake"),
        ("please stake 0.5 ether", "chain_stake"),
        ("Post a training job with a reward of 1 ETH", "chain_post_job"),
        ("vote yes on proposal 2", "chain_dataset_vote"),
        ("What is my stake?", None),
        ("How does staking work?", None),
        ("Where should I post my question?", None),
        ("Who can vote?", None),
    ],
)
def test_chain_writes_need_an_explicit_request(question: str, write: str | None) -> None:
    assert asked_write(question) == write


@pytest.mark.asyncio
async def test_an_explicit_write_offers_only_that_write() -> None:
    route = await Router(None).route("Post a training job with a reward of 1 ETH", ALL_TOOLS)
    assert route.kind == "chain_write"
    assert route.offered == ("chain_post_job",)
    assert route.call is None  # the model fills in the job; the owner confirms it
    assert route.needs_chain


@pytest.mark.asyncio
async def test_a_stake_amount_is_taken_from_the_words_by_code() -> None:
    route = await Router(None).route("Stake 0.25 ETH please", ALL_TOOLS)
    assert route.kind == "chain_write"
    assert route.call == ToolCall("chain_stake", {"amount_ether": "0.25"})


# ---------------------------------------------------------------- similarity, real embedder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def embed() -> AsyncIterator[object]:
    from swarm_vectordb.embedding import Embedder

    embedder = await Embedder.load()

    async def vectors(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return (await embedder.embed(texts)).vectors

    yield vectors
    await embedder.aclose()


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "Say hello.", "How do I start a headless peer?",
     "What do bees make?", "Tell me a joke about cats.", "Who wrote Hamlet?"],
)  # fmt: skip
async def test_unrelated_questions_are_offered_no_tools(embed: object, question: str) -> None:
    router = Router(embed)  # type: ignore[arg-type]
    route = await router.route(question, ALL_TOOLS)
    assert route.kind == "chat", route.scores
    assert route.offered == ()
    assert max(route.scores.values()) < router.threshold


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("question", "tool"),
    [
        ("Which block is the chain at right now?", "chain_status"),
        ("How much ether is in my wallet?", "chain_status"),
        ("Could you tell me which training jobs exist?", "chain_jobs"),
        ("What is the logarithm of 50?", "calculator"),
    ],
)
async def test_tool_questions_code_cannot_parse_are_offered_that_tool(
    embed: object, question: str, tool: str
) -> None:
    route = await Router(embed).route(question, ALL_TOOLS)  # type: ignore[arg-type]
    assert route.kind == "tools", route.scores
    assert tool in route.offered
    assert len(route.offered) <= 2
    assert not {"chain_stake", "chain_post_job", "chain_dataset_vote"} & set(route.offered)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "question",
    [
        f"ask {DEAD} what is the capital of Zorblax?",
        f"Please ask node {DEAD}: what is the capital of Zorblax?",
        f"ask the peer {DEAD}, what is the capital of Zorblax?",
    ],
)
async def test_a_question_for_a_peer_goes_to_ask_peer_with_its_address_and_text(
    question: str,
) -> None:
    route = await Router(None).route(question, [*ALL_TOOLS, "ask_peer"])
    assert route.kind == "peer"
    assert route.call == ToolCall(
        "ask_peer", {"address": DEAD, "question": "what is the capital of Zorblax?"}
    )


@pytest.mark.asyncio
async def test_asking_a_peer_to_run_code_is_sent_to_the_peer_not_run_here() -> None:
    route = await Router(None).route(
        f"ask {DEAD} to run python: print(6*7)", [*ALL_TOOLS, "ask_peer"]
    )
    assert route.kind == "peer"
    assert route.call is not None
    assert route.call.arguments["question"] == "to run python: print(6*7)"


@pytest.mark.asyncio
async def test_without_the_ask_peer_tool_a_peer_question_is_routed_as_usual() -> None:
    route = await Router(None).route(f"ask {DEAD} what is 2 + 2?", ALL_TOOLS)
    assert route.kind != "peer"
