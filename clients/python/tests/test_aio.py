"""The asyncio client against a real single-node server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

import lockmgr
import lockmgr.aio
from lockmgr.v1 import lockmgr_pb2 as pb

WAIT_S = 60.0


@pytest.fixture()
async def client(endpoint: str) -> AsyncIterator[lockmgr.aio.Client]:
    async with lockmgr.aio.Client([endpoint]) as client:
        yield client


async def eventually_async(condition: Any, timeout: float = 30.0, what: str = "it") -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"{what} did not happen within {timeout} s")


async def waiters(client: lockmgr.aio.Client, path: str) -> list[int]:
    info = await client.get_lock(path)
    return [w.lease_id for w in info.waiters] if info else []


async def test_lock_unlock_and_increasing_tokens(client: lockmgr.aio.Client, path: str) -> None:
    tokens = []
    for _ in range(3):
        async with client.session(ttl=10) as session:
            async with session.lock(path, wait=WAIT_S) as lock:
                assert lock.path == path and lock.lease_id == session.lease_id
                assert (await client.validate_fence(path, lock.fencing_token)).valid
                tokens.append(lock.fencing_token)
            assert await client.get_lock(path) is None
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


async def test_try_lock_and_a_blocking_lock(client: lockmgr.aio.Client, path: str) -> None:
    async with client.session() as holder, client.session() as waiter:
        held = await holder.lock(path)
        assert await waiter.try_lock(path) is None
        with pytest.raises(lockmgr.LockBusy):
            await waiter.lock(path, wait=0)
        waiting = asyncio.create_task(waiter.acquire(path, mode="exclusive", wait=WAIT_S))

        async def queued() -> bool:
            return waiter.lease_id in await waiters(client, path)

        await eventually_async(queued, what="the waiter queued")
        assert not waiting.done()
        await held.unlock()
        lock = await asyncio.wait_for(waiting, WAIT_S)
        assert lock is not None and lock.fencing_token > held.fencing_token
        await lock.unlock()


async def test_shared_locks(client: lockmgr.aio.Client, path: str) -> None:
    async with client.session() as a, client.session() as b, client.session() as c:
        async with a.lock(path, mode="shared"), b.lock(path, mode=lockmgr.LockMode.SHARED):
            info = await client.get_lock(path)
            assert info is not None and {h.lease_id for h in info.holders} == {
                a.lease_id,
                b.lease_id,
            }
            assert await c.try_lock(path) is None


async def test_a_revoked_lease_sets_lost(client: lockmgr.aio.Client, path: str) -> None:
    async with client.session(ttl=10) as session:
        await session.lock(path)
        await client.revoke_lease(session.lease_id)
        await asyncio.wait_for(session.lost.wait(), WAIT_S)
        assert session.is_lost
        with pytest.raises(lockmgr.SessionLost):
            await session.try_lock(path)


async def test_a_wait_ends_with_lease_lost_when_the_lease_is_revoked(
    client: lockmgr.aio.Client, path: str
) -> None:
    async with client.session() as holder, client.session() as waiter, holder.lock(path):
        waiting = asyncio.create_task(waiter.acquire(path, mode="exclusive", wait=WAIT_S))

        async def queued() -> bool:
            return waiter.lease_id in await waiters(client, path)

        await eventually_async(queued, what="the waiter queued")
        await client.revoke_lease(waiter.lease_id)
        with pytest.raises(lockmgr.SessionLost) as raised:
            await asyncio.wait_for(waiting, WAIT_S)
        assert (raised.value.code, raised.value.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")


async def test_errors_carry_the_reason(client: lockmgr.aio.Client, path: str) -> None:
    with pytest.raises(lockmgr.InvalidArgument) as raised:
        await client.list_locks("relative/prefix")
    assert raised.value.reason == "INVALID_PATH"
    with pytest.raises(lockmgr.LeaseNotFound):
        await client.time_to_live(987_654_321)
    async with client.session() as holder, client.session() as waiter, holder.lock(path):
        with pytest.raises(lockmgr.WaitTimeout) as timed_out:
            await waiter.lock(path, wait=0.2)
        assert timed_out.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_watch(client: lockmgr.aio.Client, path: str) -> None:
    async with client.watch(path) as watch, client.session() as session:
        async with session.lock(f"{path}/a") as lock:
            pass
        seen = []
        async for event in watch:
            seen.append((event.kind, event.path, event.fencing_token, event.reason))
            if len(seen) == 2:
                break
    assert seen == [
        (lockmgr.EventKind.ACQUIRED, f"{path}/a", lock.fencing_token, None),
        (lockmgr.EventKind.RELEASED, f"{path}/a", lock.fencing_token, "released"),
    ]


class FirstLockCut(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The first ``Lock`` attempt gets a deadline too short for its wait."""

    def __init__(self) -> None:
        self.sent: list[pb.LockRequest] = []

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.endswith("/Lock"):
            self.sent.append(request)
            if len(self.sent) == 1:
                details = details._replace(timeout=1.0)
        return await continuation(details, request)


async def test_a_retried_lock_reuses_its_request_id(endpoint: str, path: str) -> None:
    cut = FirstLockCut()
    async with (
        lockmgr.aio.Client([endpoint]) as admin,
        lockmgr.aio.Client([endpoint], interceptors=[cut]) as client,
        admin.session() as holder,
        client.session() as waiter,
    ):
        held = await holder.lock(path)
        waiting = asyncio.create_task(waiter.acquire(path, mode="exclusive", wait=WAIT_S))

        async def retried() -> bool:
            return len(cut.sent) >= 2 and waiter.lease_id in await waiters(admin, path)

        await eventually_async(retried, what="the cut attempt was retried")
        assert await waiters(admin, path) == [waiter.lease_id]
        await held.unlock()
        lock = await asyncio.wait_for(waiting, WAIT_S)
        assert lock is not None
        assert len({r.request_id for r in cut.sent}) == 1, cut.sent
        info = await admin.get_lock(path)
        assert info is not None and [h.lease_id for h in info.holders] == [waiter.lease_id]


async def test_a_semaphore_admits_its_permits_then_queues(
    client: lockmgr.aio.Client, path: str
) -> None:
    async with client.session() as a, client.session() as b, client.session() as c:
        first = await a.acquire_permit(path, 2)
        async with b.acquire_permit(path, 2) as second:
            assert second.fencing_token > first.fencing_token
            assert await c.try_acquire_permit(path, 2) is None
            with pytest.raises(lockmgr.PermitsMismatch):
                await c.try_acquire_permit(path, 3)
            waiting = asyncio.create_task(c.acquire(path, mode="semaphore", wait=WAIT_S, permits=2))

            async def queued() -> bool:
                return c.lease_id in await waiters(client, path)

            await eventually_async(queued, what="the third queued")
            assert not waiting.done()
            await first.unlock()
            third = await asyncio.wait_for(waiting, WAIT_S)
            assert third is not None and third.fencing_token > second.fencing_token
            await third.unlock()


async def test_campaign_proclaim_resign_and_observe(client: lockmgr.aio.Client, path: str) -> None:
    async with client.session() as a, client.session() as b:
        first = await a.campaign(path, "a")
        async with client.observe(path) as changes:
            now = await changes.__anext__()
            assert now.leader == lockmgr.Leader(path, a.lease_id, first.fencing_token, "a")
            await first.proclaim("a-2")
            leader = await client.leader(path)
            assert leader is not None and leader.value == "a-2"
            campaign = asyncio.ensure_future(b.campaign(path, "b", WAIT_S))

            async def queued() -> bool:
                return b.lease_id in await waiters(client, path)

            await eventually_async(queued, what="b queued")
            assert not campaign.done()
            await first.resign()
            second = await asyncio.wait_for(campaign, WAIT_S)
            assert second.fencing_token > first.fencing_token
            seen = []
            async for change in changes:
                seen.append(change.leader.value if change.leader else None)
                if change.leader is not None and change.leader.lease_id == b.lease_id:
                    break
        assert [value for value in seen if value] == ["a-2", "b"], seen
        assert first.is_lost, "resigned"
        async with second:
            assert not second.is_lost
        assert second.is_lost
    assert await client.leader(path) is None


async def test_leadership_lost_when_the_election_names_nobody(
    client: lockmgr.aio.Client, path: str
) -> None:
    async with client.session() as session:
        leadership = await session.campaign(path, "me")
        await leadership.proclaim("still me")  # a new value is no loss
        # Someone resigns the leadership from under it (its key is no secret).
        resign = pb.ResignRequest(leader=leadership.key, request_id=session.next_request_id())
        await client.resign_request(resign)
        await asyncio.wait_for(leadership.lost.wait(), WAIT_S)
        assert not session.is_lost
        with pytest.raises(lockmgr.LockNotHeld):
            await leadership.proclaim("me again")


async def test_a_lock_stream_queued_acquired_lost(client: lockmgr.aio.Client, path: str) -> None:
    async with client.session() as holder, client.session() as waiter:
        held = await holder.lock(path)
        with pytest.raises(lockmgr.SessionLost):
            async with waiter.lock_stream(path, wait=WAIT_S) as states:
                states_seen = [(await states.__anext__()).state]
                await held.unlock()
                states_seen.append((await states.__anext__()).state)
                await client.revoke_lease(waiter.lease_id)
                states_seen.extend([state.state async for state in states])
        assert states_seen == [
            lockmgr.AcquisitionState.QUEUED,
            lockmgr.AcquisitionState.ACQUIRED,
            lockmgr.AcquisitionState.LOST,
        ]
