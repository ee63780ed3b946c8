"""`noosphere model pull` through the real huggingface_hub client, against a local hub.

The hub here is a small HTTP server on loopback that speaks the part of the Hugging
Face file API that `hf_hub_download` uses (HEAD/GET .../resolve/<rev>/<file>), so the
whole pull path runs for real without the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.e2e

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]


class HubHandler(http.server.BaseHTTPRequestHandler):
    server: FakeHub

    def _lookup(self) -> bytes | None:
        # /{org}/{repo}/resolve/{revision}/{file}
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) != 5 or parts[2] != "resolve":
            return None
        return self.server.files.get(f"{parts[0]}/{parts[1]}/{parts[4]}")

    def _headers(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.end_headers()

    def do_HEAD(self) -> None:
        body = self._lookup()
        if body is None:
            self.send_error(404)
            return
        self._headers(body)

    def do_GET(self) -> None:
        body = self._lookup()
        if body is None:
            self.send_error(404)
            return
        self._headers(body)
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub(model_path: Path) -> Iterator[tuple[str, FakeHub]]:
    server = FakeHub(("127.0.0.1", 0), HubHandler)
    server.files = {
        "acme/tiny-GGUF/tiny-q4.gguf": model_path.read_bytes(),
        "acme/tiny-GGUF/fake.gguf": b"this is not a gguf file",
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def test_pull_makes_the_model_active_and_it_answers(cli: Cli, hub: tuple[str, FakeHub]) -> None:
    endpoint, _ = hub
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": None, "HF_HUB_DISABLE_XET": "1"}
    pulled = cli("model", "pull", "acme/tiny-GGUF", "tiny-q4.gguf", env=env)
    assert pulled.returncode == 0, pulled.stderr
    path = Path(pulled.stdout.strip())
    assert path.is_file()
    assert str(cli.home) in str(path.resolve().parent.parent.parent)  # inside the node home

    rows = json.loads(cli("model", "list", "--json").stdout)
    active = [r for r in rows if r["active"]]
    assert [(r["source"], r["name"]) for r in active] == [("pulled", "acme/tiny-GGUF/tiny-q4.gguf")]

    answer = cli("ask", "--json", "--max-tokens", "8", "Say hi")  # offline again
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["model"] == "acme/tiny-GGUF/tiny-q4.gguf"

    # configured by repo+file, resolved from the local cache without the network
    by_name = cli(
        "--set",
        "model.hf_repo=acme/tiny-GGUF",
        "--set",
        "model.hf_file=tiny-q4.gguf",
        "ask",
        "--json",
        "--max-tokens",
        "4",
        "hi",
    )
    assert by_name.returncode == 0, by_name.stderr


@pytest.mark.parametrize(
    ("repo", "file", "status", "words"),
    [
        ("acme/tiny-GGUF", "missing.gguf", 1, "could not pull"),
        ("acme/tiny-GGUF", "fake.gguf", 1, "not a GGUF"),
        ("acme/tiny-GGUF", "weights.bin", 1, "only GGUF"),
    ],
)
def test_pull_failures_are_clear(
    cli: Cli, hub: tuple[str, FakeHub], repo: str, file: str, status: int, words: str
) -> None:
    endpoint, _ = hub
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": None, "HF_HUB_DISABLE_XET": "1"}
    result = cli("model", "pull", repo, file, env=env)
    assert result.returncode == status, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    rows = json.loads(cli("model", "list", "--json").stdout)
    assert [r["source"] for r in rows if r["active"]] == ["bundled"]


def test_configured_hf_model_not_pulled_is_a_clear_error(cli: Cli) -> None:
    result = cli("--set", "model.hf_repo=acme/x", "--set", "model.hf_file=y.gguf", "ask", "hi")
    assert result.returncode == 2
    assert "noosphere model pull acme/x y.gguf" in result.stderr
    half = cli("--set", "model.hf_repo=acme/x", "ask", "hi")
    assert half.returncode == 2
    assert "model.hf_file" in half.stderr
