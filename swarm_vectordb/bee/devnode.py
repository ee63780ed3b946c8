"""A Bee-API-compatible development node: one process, no network, no chain.

::

    node = await DevNode.start("127.0.0.1", 1633, data_dir=None)
    ...                     # talk to node.url with BeeClient or bee-js
    await node.aclose()

It speaks the subset of Bee's HTTP API in ``shared/design/SWARM.md``, with
Bee's references, status codes and JSON error shape, so the same client code
runs against it and against a real node. What differs from Bee: everything is
local (PSS and GSOC reach this node's own subscribers only); postage batches
are bought instantly for free, usable at once and never fill up
(``utilization`` stays 0); ``/bzz`` and feed manifests (``POST /feeds``) are
not served.

Storage is ``devnode_store`` (memory, or a crash-safe log in ``data_dir`` that
keeps chunk data on disk); websocket fan-out with flood protection is
``devnode_pubsub``; PSS mining on its own bounded threads is ``devnode_pss``;
Bee's error shape and input parsing is ``devnode_http``.

Bounds (``DevNodeLimits``): request bodies are streamed and refused with 413
past their limit without being held whole; websocket subscriptions are capped
(503); ``/pss/send`` mining is bounded in time and threads (503 when busy or
out of time). Every refusal has Bee's ``{"code", "message"}`` body.

``usage`` counts the chunks stamped with each batch since the node started
(Bee's ``utilization`` stays 0 here): what a test checks spending against.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.bmt import CHUNK_SIZE, SPAN_SIZE, Chunk, ChunkAddress, keccak256
from swarm_vectordb.bee.chunktree import ChunkTreeSplitter, iter_join
from swarm_vectordb.bee.devnode_http import (
    ApiError,
    error_middleware,
    path_hex,
    read_capped,
    require_batch,
    stream_capped,
)
from swarm_vectordb.bee.devnode_pss import PssMiner
from swarm_vectordb.bee.devnode_pubsub import SubscriberHub
from swarm_vectordb.bee.devnode_store import ChunkStore, StampBook, load_or_create_keys
from swarm_vectordb.bee.errors import InvalidChunkError, PssError, SwarmError
from swarm_vectordb.bee.feeds import feed_update_address, format_feed_index, parse_v1_payload
from swarm_vectordb.bee.pss import pss_public_key, pss_topic, unwrap_trojan
from swarm_vectordb.bee.records import NodeAddresses, NodeHealth, PostageBatch
from swarm_vectordb.bee.soc import SingleOwnerChunk, soc_address

__all__ = ["DevNode", "DevNodeLimits"]

log = logging.getLogger(__name__)

VERSION = "2.8.1-noosphere-dev"
API_VERSION = "8.1.0"  # Bee 2.8.1's, checked against real Bee by the realbee tier
NETWORK_ID = 1337
_MAX_CHUNK_BODY = SPAN_SIZE + CHUNK_SIZE
_WRITE_SIZE = 64 * 1024  # bytes buffered per write when streaming a download
_MIN_DEPTH, _BUCKET_DEPTH = 17, 16
_PRICE_PER_BLOCK, _BLOCK_SECONDS = 24_000, 5
_FLUSH_CHUNKS = 256  # chunks of a /bytes upload held before they are written (1 MiB of data)


@dataclass(frozen=True, slots=True)
class DevNodeLimits:
    """What one request, or all of them together, may take from the dev node."""

    max_upload: int = 1 << 30
    """Bytes of one ``POST /bytes`` body; past it 413 (the body is never held whole)."""
    max_subscribers: int = 1024
    """Open GSOC and PSS websocket subscriptions, all channels together; past it 503."""
    pss_workers: int = 2
    """Threads mining ``/pss/send`` trojan chunks; a request finding all busy gets 503."""
    pss_time_limit: float = 20.0
    """Seconds one ``/pss/send`` may mine before it gives up with 503."""
    pss_slice_attempts: int = 1 << 14
    """Nonces tried between two checks of the time limit."""


@dataclass(frozen=True, slots=True)
class _NodeState:
    """What a node loads from its data directory (or makes fresh in memory)."""

    data_dir: Path | None
    store: ChunkStore
    stamps: StampBook
    keys: dict[str, bytes]

    @classmethod
    def load(cls, data_dir: Path | None) -> _NodeState:
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            data_dir, ChunkStore(data_dir), StampBook(data_dir), load_or_create_keys(data_dir)
        )


class DevNode:
    """The dev node; see the module docstring. Build it with ``await DevNode.start()``."""

    def __init__(
        self,
        state: _NodeState,
        *,
        subscriber_queue: int = 256,
        ws_send_timeout: float = 5.0,
        limits: DevNodeLimits | None = None,
    ) -> None:
        self.data_dir = state.data_dir
        self.store = state.store
        self.stamps = state.stamps
        self.limits = limits = limits or DevNodeLimits()
        self.hub = SubscriberHub(
            queue_size=subscriber_queue,
            send_timeout=ws_send_timeout,
            max_subscribers=limits.max_subscribers,
        )
        self.pss_miner = PssMiner(
            workers=limits.pss_workers,
            time_limit=limits.pss_time_limit,
            slice_attempts=limits.pss_slice_attempts,
        )
        self.usage: Counter[bytes] = Counter()
        """Chunks stamped per batch id since the node started."""
        node_key = PrivateKey(state.keys["node_key"])
        self._pss_key = state.keys["pss_key"]
        ethereum = node_key.public_key.to_canonical_address()
        self.addresses = NodeAddresses(
            overlay=keccak256(ethereum, struct.pack("<Q", NETWORK_ID), state.keys["nonce"]),
            ethereum=ethereum,
            public_key=node_key.public_key.to_compressed_bytes(),
            pss_public_key=pss_public_key(self._pss_key),
        )
        self._runner: web.AppRunner | None = None
        self.url = ""

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 1633,
        data_dir: Path | str | None = None,
        *,
        subscriber_queue: int = 256,
        ws_send_timeout: float = 5.0,
        limits: DevNodeLimits | None = None,
    ) -> DevNode:
        """Start serving on ``host:port`` (port 0 picks a free one; see ``url``)."""
        directory = None if data_dir is None else Path(data_dir)
        state = await asyncio.to_thread(_NodeState.load, directory)
        node = cls(
            state, subscriber_queue=subscriber_queue, ws_send_timeout=ws_send_timeout, limits=limits
        )
        app = web.Application(middlewares=[error_middleware], client_max_size=_MAX_CHUNK_BODY)
        node._routes(app)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            node.pss_miner.close()
            node.store.close()
            raise
        node._runner = runner
        bound = runner.addresses[0]
        node.url = f"http://{host}:{bound[1]}"
        log.info("dev node listening on %s (data: %s)", node.url, directory or "memory")
        return node

    async def aclose(self) -> None:
        """Close subscriptions and stop serving; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self.hub.close_all()
            self.pss_miner.close()
            await runner.cleanup()
            self.store.close()

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.rpc_health)
        app.router.add_get("/readiness", self.rpc_health)
        app.router.add_get("/addresses", self.rpc_addresses)
        app.router.add_post("/bytes", self.rpc_upload_bytes)
        app.router.add_get("/bytes/{reference}", self.rpc_download_bytes)
        app.router.add_post("/chunks", self.rpc_upload_chunk)
        app.router.add_get("/chunks/{address}", self.rpc_download_chunk)
        app.router.add_post("/soc/{owner}/{id}", self.rpc_upload_soc)
        app.router.add_get("/soc/{owner}/{id}", self.rpc_download_soc)
        app.router.add_get("/feeds/{owner}/{topic}", self.rpc_feed)
        app.router.add_get("/chainstate", self.rpc_chainstate)
        app.router.add_get("/batches", self.rpc_batches)
        app.router.add_get("/stamps", self.rpc_stamps)
        app.router.add_get("/stamps/{batch_id}", self.rpc_stamp)
        app.router.add_post("/stamps/{amount}/{depth}", self.rpc_buy_stamp)
        app.router.add_post("/pss/send/{topic}/{targets}", self.rpc_pss_send)
        app.router.add_get("/pss/subscribe/{topic}", self.rpc_pss_subscribe)
        app.router.add_get("/gsoc/subscribe/{address}", self.rpc_gsoc_subscribe)

    # --- node ---------------------------------------------------------------------------

    async def rpc_health(self, request: web.Request) -> web.Response:
        status = "ready" if request.path == "/readiness" else "ok"
        return web.json_response(NodeHealth(status, VERSION, API_VERSION).to_json())

    async def rpc_addresses(self, request: web.Request) -> web.Response:
        return web.json_response(self.addresses.to_json())

    # --- bytes and chunks ---------------------------------------------------------------

    async def rpc_upload_bytes(self, request: web.Request) -> web.Response:
        """Split the body as it streams in, writing every 256 chunks: memory stays flat."""
        batch = require_batch(request, self.stamps.get)
        splitter = ChunkTreeSplitter()
        made: list[tuple[bytes, bytes]] = []
        async for piece in stream_capped(request, self.limits.max_upload):
            made.extend((c.address, c.data) for c in splitter.write(piece))
            if len(made) >= _FLUSH_CHUNKS:
                await self._store(batch, made)
                made = []
        made.extend((c.address, c.data) for c in splitter.finish())
        await self._store(batch, made)
        return web.json_response({"reference": splitter.root.hex()}, status=201)

    async def _store(self, batch: bytes, chunks: list[tuple[bytes, bytes]]) -> None:
        """Store content-addressed chunks stamped with ``batch``."""
        self.usage[bytes(batch)] += len(chunks)
        await self.store.put_many(chunks, content_addressed=True)

    def _cac(self, address: bytes) -> Chunk:
        data = self.store.get(address)
        if data is None:
            raise ApiError(404, "Not Found")
        return Chunk.parse(data, address)

    async def rpc_download_bytes(self, request: web.Request) -> web.StreamResponse:
        reference = ChunkAddress(path_hex(request, "reference", (32,)))
        root = self._cac(reference)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = root.span
        await response.prepare(request)
        if request.method == "HEAD":
            return response

        def get(address: ChunkAddress) -> bytes:
            data = self.store.get(address)
            if data is None:
                raise SwarmError(f"chunk {address.hex()} is missing")
            return data

        try:
            pending = bytearray()
            for piece in iter_join(reference, get):
                pending += piece
                if len(pending) >= _WRITE_SIZE:
                    await response.write(bytes(pending))
                    pending.clear()
            await response.write(bytes(pending))
        except SwarmError as error:  # the status is sent: all we can do is cut the body short
            log.warning("GET /bytes/%s: %s", reference.hex(), error)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def rpc_upload_chunk(self, request: web.Request) -> web.Response:
        batch = require_batch(request, self.stamps.get)
        body = await read_capped(request, _MAX_CHUNK_BODY)
        if len(body) < SPAN_SIZE:
            raise ApiError(400, "insufficient data length")
        try:
            chunk = Chunk.parse(body)
        except InvalidChunkError as error:
            raise ApiError(400, f"invalid chunk: {error}") from error
        await self._store(batch, [(chunk.address, chunk.data)])
        return web.json_response({"reference": chunk.address.hex()}, status=201)

    async def rpc_download_chunk(self, request: web.Request) -> web.Response:
        address = path_hex(request, "address", (32,))
        data = self.store.get(address)
        if data is None:
            raise ApiError(404, "Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    # --- single-owner chunks and feeds --------------------------------------------------

    async def rpc_upload_soc(self, request: web.Request) -> web.Response:
        owner = path_hex(request, "owner", (20,))
        identifier = path_hex(request, "id", (32,))
        try:
            signature = bytes.fromhex(request.query.get("sig", ""))
        except ValueError:
            signature = b""
        if len(signature) != 65:
            raise ApiError(
                400, "invalid query params", [{"field": "sig", "error": "want 130 hex characters"}]
            )
        batch = require_batch(request, self.stamps.get)
        body = await read_capped(request, _MAX_CHUNK_BODY)
        if len(body) < SPAN_SIZE:
            raise ApiError(400, "insufficient data length")
        try:
            soc = SingleOwnerChunk.from_signature(identifier, Chunk.parse(body), signature, owner)
        except InvalidChunkError as error:
            raise ApiError(401, "invalid chunk") from error
        await self.store.put_many([(soc.address, soc.data)])
        self.usage[bytes(batch)] += 1
        self.hub.publish(("gsoc", soc.address), soc.wrapped.payload)
        return web.json_response({"reference": soc.address.hex()}, status=201)

    def _soc(self, address: bytes, owner: bytes) -> SingleOwnerChunk | None:
        data = self.store.get(address)
        return None if data is None else SingleOwnerChunk.parse(data, address=address, owner=owner)

    async def rpc_download_soc(self, request: web.Request) -> web.Response:
        owner = path_hex(request, "owner", (20,))
        identifier = path_hex(request, "id", (32,))
        soc = self._soc(soc_address(identifier, owner), owner)
        if soc is None:
            raise ApiError(404, "Not Found")
        return web.Response(
            body=soc.wrapped.payload,
            content_type="application/octet-stream",
            headers={"Swarm-Soc-Signature": soc.signature.hex()},
        )

    async def rpc_feed(self, request: web.Request) -> web.Response:
        owner = path_hex(request, "owner", (20,))
        topic = path_hex(request, "topic", (32,))
        if request.query.get("type", "sequence") != "sequence":
            raise ApiError(400, "only sequence feeds are supported")
        index = self.store.latest_feed_index(owner, topic)
        soc = None if index is None else self._soc(feed_update_address(owner, topic, index), owner)
        if index is None or soc is None:
            raise ApiError(404, "lookup at failed")  # Bee's words for an empty feed
        wrapped = soc.wrapped
        if request.headers.get("swarm-only-root-chunk", "").lower() == "true":
            body = wrapped.data
        elif request.headers.get("swarm-feed-legacy-resolve", "").lower() == "true":
            body = self._join(parse_v1_payload(wrapped).reference[:32], None)
        else:
            body = self._join(wrapped.address, wrapped)
        headers = {
            "Swarm-Feed-Index": format_feed_index(index),
            "Swarm-Feed-Index-Next": format_feed_index(index + 1),
            "Swarm-Soc-Signature": soc.signature.hex(),
            "Access-Control-Expose-Headers": "Swarm-Feed-Index, Swarm-Feed-Index-Next",
        }
        return web.Response(body=body, content_type="application/octet-stream", headers=headers)

    def _join(self, root: bytes, root_chunk: Chunk | None) -> bytes:
        def get(address: ChunkAddress) -> bytes:
            if root_chunk is not None and address == root_chunk.address:
                return root_chunk.data
            data = self.store.get(address)
            if data is None:
                raise ApiError(404, "Not Found")
            return data

        try:
            return b"".join(iter_join(root, get))
        except InvalidChunkError as error:
            raise ApiError(500, f"stored tree is corrupt: {error}") from error

    # --- postage stamps -----------------------------------------------------------------

    async def rpc_chainstate(self, request: web.Request) -> web.Response:
        """What bee-js reads before buying a batch (it checks the amount against the price)."""
        block = int(time.time()) // _BLOCK_SECONDS
        return web.json_response(
            {
                "chainTip": block,
                "block": block,
                "totalAmount": "0",
                "currentPrice": str(_PRICE_PER_BLOCK),
            }
        )

    async def rpc_batches(self, request: web.Request) -> web.Response:
        """Every batch on the (imaginary) chain: the ones this node sold."""
        owner = "0x" + self.addresses.ethereum.hex()
        return web.json_response(
            {
                "batches": [
                    {
                        "batchID": b.batch_id.hex(),
                        "value": str(b.amount),
                        "start": b.block_number,
                        "owner": owner,
                        "depth": b.depth,
                        "bucketDepth": b.bucket_depth,
                        "immutable": b.immutable,
                        "batchTTL": b.batch_ttl,
                    }
                    for b in self.stamps.all()
                ]
            }
        )

    async def rpc_stamps(self, request: web.Request) -> web.Response:
        return web.json_response({"stamps": [b.to_json() for b in self.stamps.all()]})

    async def rpc_stamp(self, request: web.Request) -> web.Response:
        batch = self.stamps.get(path_hex(request, "batch_id", (32,)))
        if batch is None:
            raise ApiError(404, "issuer does not exist")
        return web.json_response(batch.to_json())

    async def rpc_buy_stamp(self, request: web.Request) -> web.Response:
        amount_text, depth_text = request.match_info["amount"], request.match_info["depth"]
        if not amount_text.isdigit() or int(amount_text) <= 0:
            raise ApiError(400, "invalid path params", [{"field": "amount", "error": "invalid"}])
        if not depth_text.isdigit() or not _MIN_DEPTH <= int(depth_text) <= 255:
            raise ApiError(400, "invalid path params", [{"field": "depth", "error": "invalid"}])
        amount = int(amount_text)
        batch = PostageBatch(
            batch_id=self.stamps.new_id(),
            amount=amount,
            depth=int(depth_text),
            bucket_depth=_BUCKET_DEPTH,
            utilization=0,
            usable=True,
            exists=True,
            batch_ttl=amount // _PRICE_PER_BLOCK * _BLOCK_SECONDS,
            label=request.query.get("label", ""),
            immutable=request.headers.get("immutable", "true").lower() != "false",
        )
        await self.stamps.add(batch)
        return web.json_response(
            {"batchID": batch.batch_id.hex(), "txHash": "0x" + "00" * 32}, status=201
        )

    # --- messaging ----------------------------------------------------------------------

    async def rpc_gsoc_subscribe(self, request: web.Request) -> web.WebSocketResponse:
        address = path_hex(request, "address", (32,))
        return await self.hub.serve(request, ("gsoc", address))

    async def rpc_pss_subscribe(self, request: web.Request) -> web.WebSocketResponse:
        return await self.hub.serve(request, ("pss", pss_topic(request.match_info["topic"])))

    async def rpc_pss_send(self, request: web.Request) -> web.Response:
        topic = pss_topic(request.match_info["topic"])
        try:
            targets = [bytes.fromhex(t) for t in request.match_info["targets"].split(",")]
            recipient = (
                bytes.fromhex(request.query["recipient"]) if "recipient" in request.query else None
            )
        except ValueError as error:
            raise ApiError(
                400, "invalid path params", [{"field": "targets", "error": str(error)}]
            ) from error
        batch = require_batch(request, self.stamps.get)
        message = await read_capped(request, 4000)
        trojan = await self.pss_miner.wrap(topic, message, targets, recipient)
        self.usage[bytes(batch)] += 1
        try:  # the only node in reach is this one: deliver if it can open the message
            opened = unwrap_trojan(trojan, self._pss_key, [topic])
        except PssError:
            log.debug("pss message on %s is not for this node", topic.hex())
        else:
            self.hub.publish(("pss", topic), opened.message)
        return web.json_response({"code": 201, "message": "Created"}, status=201)
