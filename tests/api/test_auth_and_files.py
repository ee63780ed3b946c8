"""The token, the files in the node home, the public documents and the client's discovery."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import aiohttp
import openai
import pytest

from agent.api.client import NodeClient
from agent.api.discovery import node_file_path, read_node_file, token_path
from agent.api.errors import ApiSetupError
from agent.api.openapi import openapi_document
from agent.api.server import start_api
from agent.config import ApiConfig
from agent.home import NodeHome
from tests.api.conftest import Api

pytestmark = pytest.mark.asyncio


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_missing_and_wrong_tokens_get_401_with_the_error_shape(api: Api) -> None:
    status, body = await get(api.url + "/api/status")
    assert status == 401
    assert body["error"] == {
        "message": body["error"]["message"],
        "type": "authentication_error",
        "param": None,
        "code": "missing_api_key",
    }
    for header in (f"Bearer {api.token}x", f"Basic {api.token}", api.token, "Bearer "):
        status, body = await get(api.url + "/api/status", {"Authorization": header})
        assert status == 401, header
        assert body["error"]["code"] == "invalid_api_key"
    status, _ = await get(api.url + "/api/status", api.auth())
    assert status == 200


async def test_the_openai_client_with_a_wrong_key_gets_an_authentication_error(api: Api) -> None:
    async with openai.AsyncOpenAI(
        base_url=api.url + "/v1", api_key="sk-wrong", max_retries=0
    ) as oa:
        with pytest.raises(openai.AuthenticationError) as caught:
            await oa.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


async def test_token_file_is_private_and_reused(api: Api, tmp_path: Path) -> None:
    path = token_path(api.home.root)
    assert mode(path) == 0o600
    assert path.read_text().strip() == api.token
    assert len(api.token) >= 40
    second = await start_api(api.backend, api.home, settings=ApiConfig(port=0))
    try:
        status, _ = await get(second.url + "/api/status", api.auth())
        assert status == 200  # the same token works on a restarted server
    finally:
        await second.aclose()


async def test_a_readable_token_file_is_refused(api: Api, tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "other")
    home.create()
    token_path(home.root).write_text("a" * 43 + "\n")
    os.chmod(token_path(home.root), 0o644)
    with pytest.raises(ApiSetupError, match="0644"):
        await start_api(api.backend, home)
    assert not node_file_path(home.root).exists()
    os.chmod(token_path(home.root), 0o600)
    server = await start_api(api.backend, home)
    await server.aclose()


async def test_a_symlinked_token_file_is_refused(api: Api, tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "other")
    home.create()
    target = tmp_path / "elsewhere"
    target.write_text("b" * 43)
    target.chmod(0o600)
    token_path(home.root).symlink_to(target)
    with pytest.raises(ApiSetupError, match="not a regular file"):
        await start_api(api.backend, home)


async def test_non_loopback_addresses_are_refused_unless_allowed(api: Api) -> None:
    for host in ("0.0.0.0", "192.0.2.1", "example.com", "::"):
        with pytest.raises(ApiSetupError, match="loopback"):
            await start_api(api.backend, api.home, host=host)
    server = await start_api(api.backend, api.home, host="::1")
    try:
        status, _ = await get(server.url + "/api/status", api.auth())
        assert status == 200
    finally:
        await server.aclose()


async def test_node_file_describes_the_running_api_and_goes_with_it(api: Api) -> None:
    path = node_file_path(api.home.root)
    assert mode(path) == 0o600
    address = read_node_file(api.home.root)
    assert address is not None
    assert address.url == api.url
    assert address.pid == os.getpid()
    assert json.loads(path.read_text())["version"] == api.server.state.version
    client = await asyncio.to_thread(NodeClient.discover, api.home.root)
    assert client is not None
    assert client.url == api.url
    await api.server.aclose()
    assert not path.exists()
    assert await asyncio.to_thread(NodeClient.discover, api.home.root) is None


async def test_discovery_ignores_a_dead_pid_and_a_silent_address(api: Api) -> None:
    path = node_file_path(api.home.root)
    real = json.loads(path.read_text())
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()  # a pid that existed and is gone
    path.write_text(json.dumps({**real, "pid": proc.pid}))
    assert await asyncio.to_thread(NodeClient.discover, api.home.root) is None
    with_port_closed = {**real, "url": "http://127.0.0.1:9"}
    path.write_text(json.dumps(with_port_closed))
    assert await asyncio.to_thread(NodeClient.discover, api.home.root) is None
    path.write_text("{not json")
    assert await asyncio.to_thread(NodeClient.discover, api.home.root) is None


async def test_agent_card_is_public_and_holds_no_secret(api: Api) -> None:
    status, card = await get(api.url + "/.well-known/agent-card.json")
    assert status == 200
    for key in ("name", "description", "url", "version", "capabilities", "skills",
                "defaultInputModes", "defaultOutputModes", "securitySchemes"):  # fmt: skip
        assert card[key], key
    assert card["url"] == api.url
    assert card["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    for skill in card["skills"]:
        assert {"id", "name", "description", "tags", "examples"} <= set(skill)
    text = json.dumps(card)
    assert api.token not in text
    assert str(api.home.root) not in text


async def test_openapi_documents_exactly_the_served_routes(api: Api) -> None:
    status, document = await get(api.url + "/openapi.json")
    assert status == 200
    assert document["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route.method, route.resource.canonical)
        for route in api.server.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert documented == served
    assert document == openapi_document(api.server.state.version, api.url)


async def test_the_client_module_imports_no_aiohttp() -> None:
    import subprocess
    import sys

    probe = "import sys, agent.api.client; print(sorted(m for m in ('aiohttp', 'numpy', " \
        "'llama_cpp') if m in sys.modules))"  # fmt: skip
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


async def test_a_taken_port_is_a_clear_setup_error(api: Api) -> None:
    port = int(api.url.rsplit(":", 1)[1])
    with pytest.raises(ApiSetupError, match=f"cannot listen on 127.0.0.1:{port}"):
        await start_api(api.backend, api.home, port=port)
    assert read_node_file(api.home.root) == api.server.address  # the running one's file stays
