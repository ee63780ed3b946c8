"""AgentRegistry: records bound to their key, updates, enumeration (py-evm)."""

from __future__ import annotations

import pytest

from chain.reverts import InvalidPublicKey, NotRegistered

from .conftest import World, ref

pytestmark = pytest.mark.asyncio


def public_key(world: World, role: str) -> bytes:
    key: bytes = world.accounts[role]._key_obj.public_key.to_bytes()
    return key


async def test_register_update_and_enumerate(pyevm_world: World) -> None:
    world = pyevm_world
    for i, role in enumerate(("v1", "v2", "v3")):
        await world.clients[role].registry.register(ref(i), public_key(world, role), ref(0x90))
    registry = world.clients["outsider"].registry
    assert await registry.count() == 3
    assert await registry.accounts(1, 5) == [world.address("v2"), world.address("v3")]
    assert await registry.accounts(9, 5) == []
    await world.clients["v1"].registry.register(ref(0x77), public_key(world, "v1"), ref(0x91))
    assert await registry.count() == 3  # an update does not enumerate twice
    peer = await registry.peer(world.address("v1"))
    assert (peer.inbox, peer.capabilities) == (ref(0x77), ref(0x91))
    assert peer.registered_at <= peer.updated_at
    assert [p.account for p in await registry.peers()] == [
        world.address(r) for r in ("v1", "v2", "v3")
    ]


async def test_record_must_carry_the_senders_own_key(pyevm_world: World) -> None:
    world = pyevm_world
    with pytest.raises(InvalidPublicKey):
        await world.clients["v1"].registry.register(ref(1), public_key(world, "v2"), ref(2))
    with pytest.raises(InvalidPublicKey):
        await world.clients["v1"].registry.register(ref(1), b"\x04" * 65, ref(2))
    with pytest.raises(NotRegistered):
        await world.clients["v1"].registry.peer(world.address("v1"))
