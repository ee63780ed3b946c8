"""Async client for Bee's HTTP API (and the dev node that speaks it), on aiohttp.

::

    async with BeeClient("http://127.0.0.1:1633") as bee:
        batch = await bee.buy_stamp(amount=10**8, depth=20)
        ref = await bee.upload_bytes(b"hello", batch)
        assert await bee.download_bytes(ref) == b"hello"

Nothing downloaded is trusted: chunks are checked against their address,
``/bytes`` downloads are re-split as they stream in and the root compared with
the reference, SOCs and feed updates have their signature and address checked.
Uploads are checked too: the reference the node returns must be the one
computed here, so a node that stores something else is caught at once.

Every call has a timeout (``timeout`` for small calls, ``transfer_timeout``
for ``/bytes``, overridable per call). Failures are ``SwarmError``: HTTP
statuses map to ``BeeHttpError`` leaves carrying Bee's JSON ``message``;
aiohttp's timeouts and connection errors become ``SwarmTimeoutError`` and
``SwarmConnectionError`` here, at the boundary. Uploads always send
``Swarm-Redundancy-Level: 0`` so references stay plain chunk trees, and
``/bytes`` downloads send it too, so Bee does not hunt for replicas that were
never made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from urllib.parse import quote

from swarm_vectordb.bee.bmt import Chunk, ChunkAddress
from swarm_vectordb.bee.chunktree import ChunkTreeSplitter, join_async
from swarm_vectordb.bee.errors import (
    BeeHttpError,
    ChunkAddressMismatch,
    NotFoundError,
    SwarmError,
    SwarmTimeoutError,
)
from swarm_vectordb.bee.feeds import (
    FeedIndex,
    feed_update_address,
    make_v2_update,
    parse_feed_index,
)
from swarm_vectordb.bee.gsoc import GsocKey
from swarm_vectordb.bee.records import (
    BatchId,
    FeedUpdate,
    NodeAddresses,
    NodeHealth,
    PostageBatch,
    parse_hex,
)
from swarm_vectordb.bee.soc import SingleOwnerChunk, owner_address, soc_address
from swarm_vectordb.bee.subscription import Connector, Subscription
from swarm_vectordb.bee.transport import PIECE, ClientState, HttpTransport, Reply

__all__ = ["BeeClient", "ClientState"]


_PLAIN_TREE = {"Swarm-Redundancy-Level": "0"}
"""Downloads name the level too: Bee's default (PARANOID) looks for replicas of a root
that is missing, which turns a quick 404 into a minute of retrieval attempts."""
_NO_PEER_HAD_IT = "read chunk failed"


def _reference(reply: Reply) -> ChunkAddress:
    return ChunkAddress(parse_hex(reply.json().get("reference"), 32, what="reference"))


def _check_reference(returned: ChunkAddress, computed: bytes) -> ChunkAddress:
    if returned != computed:
        raise ChunkAddressMismatch(expected=bytes(computed), actual=returned)
    return returned


class BeeClient:
    """One Bee node's HTTP API; see the module docstring."""

    def __init__(self, url: str, *, timeout: float = 30.0, transfer_timeout: float = 600.0) -> None:
        self._http = HttpTransport(url, timeout)
        self.transfer_timeout = transfer_timeout
        self._subscriptions: set[Subscription] = set()
        self._written_feeds: dict[tuple[bytes, bytes], int] = {}
        """Highest update index this client wrote per (owner, topic): see write_next_feed_update."""

    @classmethod
    async def create(
        cls,
        url: str,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - the client's default per-call limit
        transfer_timeout: float = 600.0,
    ) -> BeeClient:
        """An open client (the same as ``async with BeeClient(url)``, closed with ``aclose``)."""
        client = cls(url, timeout=timeout, transfer_timeout=transfer_timeout)
        client._http.open()
        return client

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def timeout(self) -> float:
        """Default limit, in seconds, of every call but ``/bytes`` transfers."""
        return self._http.timeout

    @property
    def state(self) -> ClientState:
        return self._http.state

    async def aclose(self) -> None:
        """Close subscriptions and the HTTP session; idempotent."""
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        self._subscriptions.clear()
        await self._http.aclose()

    async def __aenter__(self) -> BeeClient:
        self._http.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @staticmethod
    def _upload_headers(batch: BatchId, pin: bool = False) -> dict[str, str]:
        headers = {
            "Swarm-Postage-Batch-Id": bytes(batch).hex(),
            "Swarm-Redundancy-Level": "0",
            "Content-Type": "application/octet-stream",
        }
        if pin:
            headers["Swarm-Pin"] = "true"
        return headers

    # --- node ---------------------------------------------------------------------------

    async def health(self) -> NodeHealth:
        return NodeHealth.from_json((await self._http.call("GET", "/health")).json())

    async def readiness(self) -> bool:
        """True when the node says it is ready to serve."""
        try:
            await self._http.call("GET", "/readiness")
        except SwarmError:
            return False
        return True

    async def addresses(self) -> NodeAddresses:
        return NodeAddresses.from_json((await self._http.call("GET", "/addresses")).json())

    # --- bytes --------------------------------------------------------------------------

    async def upload_bytes(
        self,
        data: bytes | AsyncIterable[bytes],
        batch: BatchId,
        *,
        pin: bool = False,
        time_limit: float | None = None,
    ) -> ChunkAddress:
        """Upload data of any size (bytes, or streamed from an async iterable); its reference.

        The reference is computed here as the data goes out and must match the
        node's, else ``ChunkAddressMismatch``. The upload is not deferred: when it
        returns, the chunks have reached the network, not only the local node.
        """
        splitter = ChunkTreeSplitter()

        async def body() -> AsyncIterator[bytes]:
            if isinstance(data, bytes | bytearray | memoryview):
                view = memoryview(data)
                for start in range(0, len(view), PIECE):
                    piece = bytes(view[start : start + PIECE])
                    splitter.write(piece)
                    yield piece
                    await asyncio.sleep(0)
            else:
                async for piece in data:
                    splitter.write(piece)
                    yield bytes(piece)

        headers = self._upload_headers(batch, pin)
        # Bee defers /bytes uploads (stores locally, pushes later); pushing at once means
        # the reference is retrievable from other nodes when it is returned.
        headers["Swarm-Deferred-Upload"] = "false"
        if isinstance(data, bytes | bytearray | memoryview):
            headers["Content-Length"] = str(len(data))
        reply = await self._http.call(
            "POST",
            "/bytes",
            headers=headers,
            data=body(),
            time_limit=self.transfer_timeout if time_limit is None else time_limit,
        )
        splitter.finish()
        return _check_reference(_reference(reply), splitter.root)

    async def iter_bytes(
        self, reference: bytes, *, time_limit: float | None = None
    ) -> AsyncIterator[bytes]:
        """Stream the data under ``reference``; raises at the end if it does not hash to it.

        Pieces are yielded before the root can be checked: a consumer that must
        not act on unverified data uses ``download_bytes``. Consume it to the end
        (or close it with ``contextlib.aclosing``) so the response is released.
        """
        splitter = ChunkTreeSplitter()
        limit = self.transfer_timeout if time_limit is None else time_limit
        async with self._http.response(
            "GET",
            f"/bytes/{bytes(reference).hex()}",
            time_limit=limit,
            headers=_PLAIN_TREE,
        ) as r:
            async for piece in r.content.iter_chunked(PIECE):
                splitter.write(piece)
                yield piece
        splitter.finish()
        _check_reference(ChunkAddress(bytes(reference)), splitter.root)

    async def download_bytes(self, reference: bytes, *, time_limit: float | None = None) -> bytes:
        """The data under ``reference`` via ``GET /bytes``, verified against the reference."""
        return b"".join(
            [piece async for piece in self.iter_bytes(reference, time_limit=time_limit)]
        )

    async def download_bytes_by_chunks(self, reference: bytes, *, concurrency: int = 16) -> bytes:
        """The data under ``reference`` walked chunk by chunk with ``GET /chunks``."""
        return await join_async(reference, self.download_chunk_data, concurrency=concurrency)

    # --- chunks -------------------------------------------------------------------------

    async def upload_chunk(self, chunk: Chunk, batch: BatchId) -> ChunkAddress:
        """Upload one content-addressed chunk (``span || payload``)."""
        reply = await self._http.call(
            "POST", "/chunks", headers=self._upload_headers(batch), data=chunk.data
        )
        return _check_reference(_reference(reply), chunk.address)

    async def download_chunk_data(self, address: bytes) -> bytes:
        """Raw bytes stored at ``address`` (a CAC's ``span || payload`` or a SOC), unchecked.

        ``NotFoundError`` when the node does not have it and no peer delivers it:
        Bee says 404, or 500 ``read chunk failed`` when it ran out of peers to ask.
        """
        try:
            return (await self._http.call("GET", f"/chunks/{bytes(address).hex()}")).body
        except BeeHttpError as error:
            if error.status == 500 and error.message == _NO_PEER_HAD_IT:
                raise NotFoundError(error.status, error.message) from error
            raise

    async def download_chunk(self, address: bytes) -> Chunk:
        """The content-addressed chunk at ``address``, verified."""
        return Chunk.parse(await self.download_chunk_data(address), address)

    # --- single-owner chunks ------------------------------------------------------------

    async def upload_soc(self, soc: SingleOwnerChunk, batch: BatchId) -> ChunkAddress:
        """Upload a signed SOC with ``POST /soc/{owner}/{id}?sig=``."""
        reply = await self._http.call(
            "POST",
            f"/soc/{soc.owner.hex()}/{soc.identifier.hex()}",
            params={"sig": soc.signature.hex()},
            headers=self._upload_headers(batch),
            data=soc.wrapped.data,
        )
        return _check_reference(_reference(reply), soc.address)

    async def download_soc(self, owner: bytes, identifier: bytes) -> SingleOwnerChunk:
        """The SOC of ``owner`` under ``identifier``, its address and signature checked."""
        address = soc_address(identifier, owner)
        data = await self.download_chunk_data(address)
        return SingleOwnerChunk.parse(data, address=address, owner=owner)

    # --- feeds --------------------------------------------------------------------------

    async def write_feed_update(
        self,
        private_key: bytes,
        topic: bytes,
        index: int,
        content: bytes | Chunk,
        batch: BatchId,
    ) -> SingleOwnerChunk:
        """Sign and upload update ``index`` (v2: the wrapped chunk is the content)."""
        soc = make_v2_update(private_key, topic, index, content)
        await self.upload_soc(soc, batch)
        key = (soc.owner, bytes(topic))
        self._written_feeds[key] = max(index, self._written_feeds.get(key, -1))
        return soc

    async def write_next_feed_update(
        self, private_key: bytes, topic: bytes, content: bytes | Chunk, batch: BatchId
    ) -> FeedIndex:
        """Write the update after the latest (0 for an empty feed); its index.

        The latest is the node's answer or, when higher, the last index this client
        wrote: a real Bee node can miss an update written seconds ago (it remembers
        for a minute that the peer it asked did not have that chunk yet), and
        trusting it alone would overwrite the update.
        """
        owner = owner_address(private_key)
        latest = await self.feed_indexes(owner, topic)
        written = self._written_feeds.get((owner, bytes(topic)), -1)
        index = FeedIndex(max(0 if latest is None else latest[1], written + 1))
        await self.write_feed_update(private_key, topic, index, content, batch)
        return index

    async def feed_indexes(self, owner: bytes, topic: bytes) -> tuple[FeedIndex, FeedIndex] | None:
        """``(latest, next)`` index the node finds for the feed, None when it finds none."""
        try:
            reply = await self._http.call(
                "GET",
                f"/feeds/{bytes(owner).hex()}/{bytes(topic).hex()}",
                headers={"Swarm-Only-Root-Chunk": "true"},
            )
        except NotFoundError:
            return None
        try:
            latest = parse_feed_index(reply.headers["Swarm-Feed-Index"])
            following = parse_feed_index(reply.headers["Swarm-Feed-Index-Next"])
        except (KeyError, ValueError, SwarmError) as error:
            raise SwarmError(f"feed reply without valid index headers: {error}") from error
        return latest, following

    async def read_feed(self, owner: bytes, topic: bytes) -> FeedUpdate | None:
        """Latest update as the node finds it, fetched and verified by index; None if empty."""
        indexes = await self.feed_indexes(owner, topic)
        if indexes is None:
            return None
        update = await self.read_feed_update(owner, topic, indexes[0])
        return FeedUpdate(update.index, indexes[1], update.soc, update.content)

    async def read_feed_update(self, owner: bytes, topic: bytes, index: int) -> FeedUpdate:
        """Update ``index`` exactly (no lookup): ``NotFoundError`` when it does not exist."""
        address = feed_update_address(owner, topic, index)
        soc = SingleOwnerChunk.parse(
            await self.download_chunk_data(address), address=address, owner=owner
        )
        wrapped = soc.wrapped
        if wrapped.is_leaf:
            content = wrapped.payload
        else:

            async def get(address: ChunkAddress) -> bytes:
                if address == wrapped.address:
                    return wrapped.data
                return await self.download_chunk_data(address)

            content = await join_async(wrapped.address, get)
        return FeedUpdate(FeedIndex(index), FeedIndex(index + 1), soc, content)

    # --- GSOC and PSS -------------------------------------------------------------------

    async def gsoc_send(self, key: GsocKey, payload: bytes, batch: BatchId) -> SingleOwnerChunk:
        """Sign ``payload`` (<= 4096 bytes) with the mined key and upload it to its inbox."""
        soc = SingleOwnerChunk.sign(key.identifier, Chunk.create(payload), key.private_key)
        await self.upload_soc(soc, batch)
        return soc

    async def gsoc_subscribe(self, address: bytes, *, queue_size: int = 256) -> Subscription:
        """Messages uploaded to the SOC ``address`` (payload without span), connected."""
        return await self._subscribe(
            f"/gsoc/subscribe/{bytes(address).hex()}", queue_size=queue_size, drop_empty=False
        )

    async def pss_send(
        self,
        topic: str,
        targets: bytes,
        message: bytes,
        batch: BatchId,
        *,
        recipient: bytes | None = None,
    ) -> None:
        """Send ``message`` on ``topic`` to the neighbourhood ``targets`` (1..3-byte prefix)."""
        params = {} if recipient is None else {"recipient": bytes(recipient).hex()}
        await self._http.call(
            "POST",
            f"/pss/send/{quote(topic, safe='')}/{bytes(targets).hex()}",
            params=params,
            headers=self._upload_headers(batch),
            data=message,
        )

    async def pss_subscribe(self, topic: str, *, queue_size: int = 256) -> Subscription:
        """Messages on ``topic`` this node can open; empty frames are dropped."""
        return await self._subscribe(
            f"/pss/subscribe/{quote(topic, safe='')}", queue_size=queue_size, drop_empty=True
        )

    async def _subscribe(self, path: str, *, queue_size: int, drop_empty: bool) -> Subscription:
        subscription = _OwnedSubscription(
            self, path, lambda: self._http.ws_connect(path), queue_size, drop_empty
        )
        self._subscriptions.add(subscription)
        try:
            await subscription.start()
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    # --- postage stamps -----------------------------------------------------------------

    async def list_stamps(self) -> list[PostageBatch]:
        stamps = (await self._http.call("GET", "/stamps")).json().get("stamps") or []
        if not isinstance(stamps, list):
            raise SwarmError("GET /stamps: 'stamps' is not a list")
        return [PostageBatch.from_json(item) for item in stamps if isinstance(item, dict)]

    async def get_stamp(self, batch: BatchId) -> PostageBatch:
        return PostageBatch.from_json(
            (await self._http.call("GET", f"/stamps/{batch.hex()}")).json()
        )

    async def buy_stamp(
        self,
        amount: int,
        depth: int,
        *,
        label: str | None = None,
        immutable: bool = True,
        time_limit: float = 300.0,
    ) -> BatchId:
        """Buy a postage batch; on a real node it becomes usable later (``wait_until_usable``).

        Every message sent to one GSOC inbox takes a new slot of the batch bucket
        its address falls in (2^(depth-16) slots): an immutable batch then refuses
        more with 400 ``chunk write error``, a mutable one (``immutable=False``)
        reuses the bucket's oldest slots.
        """
        params = {} if label is None else {"label": label}
        reply = await self._http.call(
            "POST",
            f"/stamps/{amount}/{depth}",
            params=params,
            headers={"Immutable": "true" if immutable else "false"},
            time_limit=time_limit,
        )
        return BatchId(parse_hex(reply.json().get("batchID"), 32, what="batchID"))

    async def wait_until_usable(
        self, batch: BatchId, *, time_limit: float = 600.0, poll: float = 1.0
    ) -> PostageBatch:
        """Poll ``GET /stamps/{id}`` until the batch is usable."""
        try:
            async with asyncio.timeout(time_limit):
                while True:
                    try:
                        stamp = await self.get_stamp(batch)
                        if stamp.usable:
                            return stamp
                    except NotFoundError:
                        pass  # a just-bought batch is unknown until the node sees its event
                    await asyncio.sleep(poll)
        except TimeoutError as error:
            raise SwarmTimeoutError(
                f"batch {batch.hex()} not usable within {time_limit} s"
            ) from error


class _OwnedSubscription(Subscription):
    """A subscription that leaves its client's registry when closed."""

    def __init__(
        self,
        client: BeeClient,
        path: str,
        connect: Connector,
        queue_size: int,
        drop_empty: bool,
    ) -> None:
        super().__init__(path, connect, queue_size=queue_size, drop_empty=drop_empty)
        self._client = client

    async def aclose(self) -> None:
        await super().aclose()
        self._client._subscriptions.discard(self)
