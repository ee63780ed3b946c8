"""The node's own routes through the standard-library client the CLI uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.api.client import NodeApiError, NodeClient
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BEES = "Honey bees make honey from flower nectar and store it in wax combs."
SWARM = "Swarm stores data in chunks of 4096 bytes, addressed by their BMT hash."


def client(api: Api) -> NodeClient:
    found = NodeClient.discover(api.home.root)
    assert found is not None
    return found


async def test_ingested_text_is_found_by_search_and_counted_in_status(api: Api) -> None:
    node = await asyncio.to_thread(client, api)
    report = await asyncio.to_thread(node.ingest_text, "bees.md", BEES)
    assert report["chunks_added"] == 1
    again = await asyncio.to_thread(node.ingest_text, "bees.md", BEES)
    assert again["chunks_added"] == 0  # unchanged: nothing new
    found = await asyncio.to_thread(node.search, "What do bees make?", k=3)
    assert found["query"] == "What do bees make?"
    assert [h["text"] for h in found["hits"]] == [BEES]
    assert found["hits"][0]["score"] > 0.3
    status = await asyncio.to_thread(node.status)
    assert status["index_size"] == 1
    assert status["model"] == api.backend.model_name
    assert status["embedder"] == api.backend.embedder_id
    assert status["uptime_s"] > 0


async def test_ingested_paths_are_searchable_and_missing_paths_are_named(
    api: Api, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "swarm.md").write_text(SWARM)
    (docs / "bees.txt").write_text(BEES)
    node = await asyncio.to_thread(client, api)
    report = await asyncio.to_thread(node.ingest_paths, [docs])
    assert report["files_seen"] == 2
    assert report["chunks_added"] == 2
    found = await asyncio.to_thread(node.search, "chunk size in Swarm", k=1)
    assert found["hits"][0]["text"] == SWARM
    assert found["hits"][0]["source"] == str((docs / "swarm.md").resolve())
    with pytest.raises(NodeApiError) as caught:
        await asyncio.to_thread(node.ingest_paths, [docs, tmp_path / "missing.md"])
    assert caught.value.status == 400
    assert "does not exist" in str(caught.value)


async def test_ask_answers_with_the_assistant_turn(api: Api) -> None:
    node = await asyncio.to_thread(client, api)
    report = await asyncio.to_thread(node.ask, "How much is 48 times 52?")
    assert "2496" in report["answer"]
    assert report["route"] == "calculator"


async def test_streamed_ask_sends_tokens_then_the_report(api: Api) -> None:
    node = await asyncio.to_thread(client, api)

    def collect() -> list[tuple[str, dict[str, object]]]:
        return list(node.ask_stream("Write one sentence about the sea."))

    events = await asyncio.to_thread(collect)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "report"
    assert kinds.count("report") == 1
    assert "token" in kinds
    streamed = "".join(str(data["text"]) for kind, data in events if kind == "token")
    report = events[-1][1]
    assert streamed.strip()
    assert str(report["answer"]).startswith(streamed.strip()[:20])


async def test_a_client_that_leaves_a_streamed_ask_stops_the_turn(api: Api) -> None:
    node = await asyncio.to_thread(client, api)
    core = await api.backend.core()

    def first_tokens() -> None:
        stream = node.ask_stream("Tell me a very long story about a dragon and a knight.")
        for kind, _ in stream:
            if kind == "token":
                break
        stream.close()  # closes the connection

    await asyncio.to_thread(first_tokens)
    at_leave = core.tokens_generated
    report = await asyncio.to_thread(node.ask, "How much is 2 plus 2?")
    assert "4" in report["answer"]
    assert core.tokens_generated - at_leave < 64


async def test_bad_node_requests_are_400s(api: Api) -> None:
    node = await asyncio.to_thread(client, api)
    with pytest.raises(NodeApiError) as caught:
        await asyncio.to_thread(node.search, "x", k=0)
    assert caught.value.status == 400
    with pytest.raises(NodeApiError) as caught:
        await asyncio.to_thread(node.ingest_text, "../../etc/passwd", "x")
    assert caught.value.status == 400
    assert not (api.home.root.parent.parent / "etc").exists()
